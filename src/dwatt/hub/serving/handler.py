"""Inference Endpoints handler of a DWAtt NER model (custom handler: `handler.py` at the repository's root).

Request: {"inputs": "a text" or ["pre", "split", "words"], "parameters": {"layer_weights": true}}
Response: {"entities": [{"entity_group", "word", "start", "end", "score"}, ...]} and, with layer_weights, the
`layer-map` of the text: {"layers": [...], "words": [{"word", "start", "end", "weights"}, ...]}.
Pre-split words are joined with single spaces; offsets refer to that text. Imports only torch and transformers.
"""

from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline


class EndpointHandler:
    def __init__(self, path: str = ""):
        model = AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        self.tagger = pipeline("token-classification", model=model, tokenizer=tokenizer,
                               aggregation_strategy="simple")  # fmt: skip
        self.layer_map = pipeline("layer-map", model=path, trust_remote_code=True)

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
