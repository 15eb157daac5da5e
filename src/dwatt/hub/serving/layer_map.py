"""The `layer-map` pipeline of a DWAtt model: text in, for every word the weight each fused layer gets there.

    from transformers import pipeline
    layer_map = pipeline("layer-map", model="you/dwatt-ner", trust_remote_code=True)
    layer_map("Ada Lovelace lived in London")
    # {"layers": ["embeddings", "layer 1", ...], "words": [{"word": "Ada", "start": 0, "end": 3,
    #   "weights": [0.02, ...]}, ...]}

A word's weights are the mean over its sub-words of the fusion's per-token weights (DWAtt: each token's own
attention over depth; scalar_mix and mean: the same weights for every token). Shipped beside the model by dwatt's
push; it imports only torch and transformers.
"""

from transformers import Pipeline


class LayerMapPipeline(Pipeline):
    def _sanitize_parameters(self, **kwargs):
        return {}, {}, {}

    def preprocess(self, text):
        inputs = self.tokenizer(text, return_offsets_mapping=True, return_tensors="pt", truncation=True)
        return {"text": text, "offsets": inputs.pop("offset_mapping")[0], "word_ids": inputs.word_ids(0),
                "model_inputs": inputs}  # fmt: skip

    def _forward(self, prepared):
        output = self.model(**prepared["model_inputs"], output_fusion_weights=True)
        if output.fusion_weights is None:
            raise ValueError(f"fusion={self.model.config.fusion!r} has no weights over layers to map")
        return {**prepared, "weights": output.fusion_weights[0]}

    def postprocess(self, outputs):
        weights, offsets, text = outputs["weights"].float(), outputs["offsets"], outputs["text"]
        words = []
        for word in sorted({w for w in outputs["word_ids"] if w is not None}):
            positions = [i for i, w in enumerate(outputs["word_ids"]) if w == word]
            start, end = int(offsets[positions[0]][0]), int(offsets[positions[-1]][1])
            mean = weights[positions].mean(dim=0)
            words.append({"word": text[start:end], "start": start, "end": end,
                          "weights": [round(float(value), 6) for value in mean]})  # fmt: skip
        return {"layers": layer_names(self.model.config), "words": words}


def layer_names(config) -> list:
    """Names of the fused hidden states: 0 is the embedding output, n the n-th layer."""
    total = config.backbone_config.num_hidden_layers + 1
    fused = config.fusion_layers
    indices = list(range(total)) if fused == "all" else sorted({index % total for index in fused})
    return ["embeddings" if index == 0 else f"layer {index}" for index in indices]
