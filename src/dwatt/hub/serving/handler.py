"""Inference Endpoints handler of a DWAtt NER model (custom handler: `handler.py` at the repository's root).

Request: {"inputs": "a text" or ["pre", "split", "words"], "parameters": {"layer_weights": true}}
Response: {"entities": [{"entity_group", "word", "start", "end", "score"}, ...]} and, with layer_weights, the
`layer-map` of the text: {"layers": [...], "words": [{"word", "start", "end", "weights"}, ...]}.
Pre-split words are joined with single spaces; offsets refer to that text. A text longer than the model's window
is read in overlapping windows (the `layer-map` pipeline's, `layer_map.py`): entities and layer weights cover every
word. Imports only torch and transformers.
"""

from transformers import pipeline


class EndpointHandler:
    def __init__(self, path: str = ""):
        self.layer_map = pipeline("layer-map", model=path, trust_remote_code=True)
        self.layer_map.model.eval()
        self.tagger = self.layer_map.tagger()  # the same model and tokenizer, windows over the whole text

    def __call__(self, data: dict) -> dict:
        inputs = data.get("inputs")
        if isinstance(inputs, list) and all(isinstance(word, str) for word in inputs):
            inputs = " ".join(inputs)
        if not isinstance(inputs, str) or not inputs.strip():
            raise ValueError('expected "inputs": a non-empty text or a list of words')
        entities = [{**entity, "score": float(entity["score"]), "start": int(entity["start"]),
                     "end": int(entity["end"])} for entity in self.tagger(inputs)]  # fmt: skip
        response = {"entities": entities}
        if (data.get("parameters") or {}).get("layer_weights"):
            response.update(self.layer_map(inputs))
        return response
