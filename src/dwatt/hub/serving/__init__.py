"""Files pushed beside a model so services can run it without dwatt: the `layer-map` pipeline (per-word weights over
the fused layers) and the Inference Endpoints handler. Both import only the standard library, torch and
transformers, like the two model files."""

from pathlib import Path

#: Copied into every push-ready folder, beside the model's two .py files.
SERVING_FILES = tuple(Path(__file__).with_name(name) for name in ("layer_map.py", "handler.py"))
#: config.json's `custom_pipelines`: `pipeline("layer-map", model=repo, trust_remote_code=True)` finds the class.
CUSTOM_PIPELINES = {
    "layer-map": {"impl": "layer_map.LayerMapPipeline", "pt": ["AutoModelForTokenClassification"], "tf": [],
                  "type": "text"},
}  # fmt: skip
