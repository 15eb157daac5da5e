"""A Gradio Space for a DWAtt NER model: type a sentence, see its entities and, for every word, the weight each
fused layer gets there (the depth attention as a heatmap).

Written into a Space folder by `dwatt space` with `space.json` (the model's repo id or folder and revision) and
the `layer-map` pipeline beside it; runs with torch, transformers, gradio and matplotlib, without dwatt. A text longer
than the model's window is read in overlapping windows: every word gets its entity tag and its layer weights.
`DWATT_MODEL` (and `DWATT_REVISION`) in the environment override `space.json`.
"""

import json
import os
from pathlib import Path

import gradio as gr
import matplotlib

matplotlib.use("Agg")  # a server renders figures without a display
import matplotlib.pyplot as plt  # noqa: E402
from layer_map import LayerMapPipeline, full_text_tagger  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer  # noqa: E402

HERE = Path(__file__).resolve().parent
EXAMPLE = "Watching the Lakers play in Los Angeles tonight with Kobe Bryant"


def load_settings() -> dict:
    settings = json.loads((HERE / "space.json").read_text()) if (HERE / "space.json").is_file() else {}
    settings["model"] = os.environ.get("DWATT_MODEL", settings.get("model"))
    settings["revision"] = os.environ.get("DWATT_REVISION", settings.get("revision"))
    if not settings["model"]:
        raise SystemExit(f'{HERE / "space.json"}: no model; expected {{"model": repo id or folder}} or DWATT_MODEL')
    return settings


def build_demo(model_id: str, revision: str | None = None) -> gr.Blocks:
    model = AutoModelForTokenClassification.from_pretrained(model_id, revision=revision, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(model_id, revision=revision, trust_remote_code=True)
    model.eval()
    tagger = full_text_tagger(model, tokenizer)  # overlapping windows: entities of every word of a long text
    has_weights = model.config.fusion in ("dwatt", "scalar_mix", "mean")
    layer_map = LayerMapPipeline(model=model, tokenizer=tokenizer) if has_weights else None

    def tag(text: str):
        """Entities as highlighted spans, the per-word layer weights as a heatmap (None for a fusion without
        weights over layers), and both as data."""
        if not text.strip():
            raise gr.Error("Type a sentence first.")
        entities = [{"entity": e["entity_group"], "start": int(e["start"]), "end": int(e["end"]),
                     "word": e["word"], "score": round(float(e["score"]), 4)} for e in tagger(text)]  # fmt: skip
        mapped = layer_map(text) if layer_map is not None else {"layers": [], "words": []}
        return {"text": text, "entities": entities}, heatmap(mapped), {"entities": entities, **mapped}

    shown = Path(model_id).name if Path(model_id).exists() else model_id  # a local folder by its name
    with gr.Blocks(title=f"DWAtt NER: {shown}") as demo:
        gr.Markdown(f"# Depth-Wise Attention NER\n`{shown}` (fusion `{model.config.fusion}`): entities, and for "
                    "each word the weight each layer of the encoder gets in its final representation.")  # fmt: skip
        text = gr.Textbox(value=EXAMPLE, label="Sentence", lines=2)
        run = gr.Button("Tag", variant="primary")
        entities = gr.HighlightedText(label="Entities", combine_adjacent=False)
        figure = gr.Plot(label="Weight of each layer, per word")
        data = gr.JSON(label="As data", visible=False)
        run.click(tag, inputs=text, outputs=[entities, figure, data], api_name="tag")
        demo.load(tag, inputs=text, outputs=[entities, figure, data])
    return demo


def heatmap(mapped: dict):
    """Words down, fused layers across, each cell the layer's weight at that word."""
    if not mapped["words"]:
        return None
    weights = [word["weights"] for word in mapped["words"]]
    figure, axes = plt.subplots(figsize=(1.2 + 0.55 * len(mapped["layers"]), 0.8 + 0.32 * len(weights)))
    image = axes.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0)
    axes.set_xticks(range(len(mapped["layers"])), mapped["layers"], rotation=45, ha="right")
    axes.set_yticks(range(len(weights)), [word["word"] for word in mapped["words"]])
    figure.colorbar(image, ax=axes, label="weight")
    figure.tight_layout()
    plt.close(figure)  # gradio draws it; pyplot need not keep it
    return figure


if __name__ == "__main__":
    settings = load_settings()
    build_demo(settings["model"], settings["revision"]).launch()
