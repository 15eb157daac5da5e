"""The `layer-map` pipeline of a DWAtt model: text in, for every word the weight each fused layer gets there.

    from transformers import pipeline
    layer_map = pipeline("layer-map", model="you/dwatt-ner", trust_remote_code=True)
    layer_map("Ada Lovelace lived in London")
    # {"layers": ["embeddings", "layer 1", ...], "words": [{"word": "Ada", "start": 0, "end": 3,
    #   "weights": [0.02, ...]}, ...]}

A word's weights are the mean over its sub-words of the fusion's per-token weights (DWAtt: each token's own
attention over depth; scalar_mix and mean: the same weights for every token). A text longer than the model's
window is cut into overlapping windows (a quarter of the window shared with the next), and each word is read from
the window where it has the most context, so every word of the text is mapped. `LayerMapPipeline.tagger()` gives
the token-classification pipeline over the same windows. Shipped beside the model by dwatt's push; it imports
only torch and transformers.
"""

import torch
from transformers import Pipeline, pipeline

#: The window when neither the tokenizer nor the model's position embeddings state a length.
DEFAULT_WINDOW = 512


def window_length(model, tokenizer) -> int:
    """Sub-words (special tokens included) one pass of the model takes: the tokenizer's `model_max_length` when it
    states a usable one, at most the positions the model's learned position embeddings can number."""
    limit = getattr(tokenizer, "model_max_length", None)
    length = int(limit) if isinstance(limit, int) and 0 < limit < 100_000 else DEFAULT_WINDOW
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0  # RoBERTa counts after padding
            length = min(length, module.num_embeddings - offset)
            break
    return length


def full_text_tagger(model, tokenizer):
    """The token-classification pipeline (entities grouped) over the whole text: windows of `window_length`
    sub-words overlapping by a quarter, where the stock pipeline would cut the text after the first window."""
    length = window_length(model, tokenizer)
    tokenizer.model_max_length = length  # the windows the pipeline cuts
    return pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple",
                    stride=length // 4)  # fmt: skip


class LayerMapPipeline(Pipeline):
    def _sanitize_parameters(self, **kwargs):
        return {}, {}, {}

    def tagger(self):
        """The entities of whole texts, from this pipeline's model and tokenizer (see `full_text_tagger`)."""
        return full_text_tagger(self.model, self.tokenizer)

    def preprocess(self, text):
        length = window_length(self.model, self.tokenizer)
        inputs = self.tokenizer(text, return_offsets_mapping=True, return_tensors="pt", truncation=True,
                                max_length=length, stride=length // 4, return_overflowing_tokens=True,
                                padding=True)  # fmt: skip
        inputs.pop("overflow_to_sample_mapping", None)
        word_ids = [inputs.word_ids(window) for window in range(len(inputs["input_ids"]))]
        return {"text": text, "offsets": inputs.pop("offset_mapping"), "word_ids": word_ids, "model_inputs": inputs}

    def _forward(self, prepared):
        output = self.model(**prepared["model_inputs"], output_fusion_weights=True)
        if output.fusion_weights is None:
            raise ValueError(f"fusion={self.model.config.fusion!r} has no weights over layers to map")
        return {**prepared, "weights": output.fusion_weights}

    def postprocess(self, outputs):
        weights, offsets, text = outputs["weights"].float(), outputs["offsets"], outputs["text"]
        places = {}  # word -> [(window, positions)], in window order
        for window, ids in enumerate(outputs["word_ids"]):
            for position, word in enumerate(ids):
                if word is not None:
                    found = places.setdefault(word, [])
                    if not found or found[-1][0] != window:
                        found.append((window, []))
                    found[-1][1].append(position)
        words = []
        for word in sorted(places):
            start = min(int(offsets[window][positions[0]][0]) for window, positions in places[word])
            end = max(int(offsets[window][positions[-1]][1]) for window, positions in places[word])
            window, positions = max(places[word], key=lambda place: _context(place, outputs["word_ids"]))
            mean = weights[window][positions].mean(dim=0)
            words.append({"word": text[start:end], "start": start, "end": end,
                          "weights": [round(float(value), 6) for value in mean]})  # fmt: skip
        return {"layers": layer_names(self.model.config), "words": words}


def _context(place, word_ids) -> tuple:
    """How well a window holds a word: the most of its sub-words (a word cut at a window's edge has fewer), then the
    sub-words of context on the word's smaller side."""
    window, positions = place
    content = [position for position, word in enumerate(word_ids[window]) if word is not None]
    return len(positions), min(positions[0] - content[0], content[-1] - positions[-1])


def layer_names(config) -> list:
    """Names of the fused hidden states: 0 is the embedding output, n the n-th layer."""
    total = config.backbone_config.num_hidden_layers + 1
    fused = config.fusion_layers
    indices = list(range(total)) if fused == "all" else sorted({index % total for index in fused})
    return ["embeddings" if index == 0 else f"layer {index}" for index in indices]
