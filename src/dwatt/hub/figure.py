"""The card's figure: DWAtt's per-token depth weights, measured by running the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.ner_files import read_conll_sentences
from ..experiments.plotting import new_figure, save_figure
from ..inference import run_batches
from .record import RunFolder

FIGURE_FILE = "fusion_weights.png"


@dataclass
class FusionWeightSummary:
    """Mean fusion weight per fused hidden state, measured on some test sentences."""

    labels: list[str]
    means: list[float]
    stds: list[float]
    num_sentences: int
    num_tokens: int
    source: str
    file: str = FIGURE_FILE
    description: str = field(init=False, default="")

    def __post_init__(self):
        self.description = (
            f"Mean fusion weight per hidden state (0 = embedding output) over the {self.num_tokens:,} sub-word "
            f"tokens (special tokens and padding excluded) of the first {self.num_sentences} sentences of "
            f"`{self.source}`, computed when this card was rendered with `output_fusion_weights=True`; "
            "error bars: standard deviation over tokens."
        )

    def for_template(self) -> dict:
        return {
            "file": self.file,
            "labels": self.labels,
            "means": [f"{value:.3f}" for value in self.means],
            "description": self.description,
        }


def measure_fusion_weights(
    model, tokenizer, sentences: list[list[str]], source: str, max_length: int = 128, batch_size: int = 32
) -> FusionWeightSummary | None:
    """Per-layer mean and std of `fusion_weights` over real tokens; None when the fusion has no weights."""
    if model.config.fusion not in ("dwatt", "scalar_mix") or not sentences:
        return None
    encoded = [
        tokenizer(
            sentences[start : start + batch_size],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        for start in range(0, len(sentences), batch_size)
    ]
    # Real tokens only: not padding, not [CLS]/[SEP].
    real = [batch.pop("special_tokens_mask").bool().logical_not() & batch["attention_mask"].bool() for batch in encoded]
    weights = run_batches(model, encoded, lambda _, output: output.fusion_weights.cpu(), output_fusion_weights=True)
    collected = [batch_weights[mask].float() for batch_weights, mask in zip(weights, real, strict=True)]
    weights = torch.cat(collected)  # [tokens, N]
    labels = ["emb" if index == 0 else str(index) for index in model.config.fused_layer_indices]
    return FusionWeightSummary(
        labels=labels,
        means=weights.mean(0).tolist(),
        stds=weights.std(0).tolist() if len(weights) > 1 else [0.0] * len(labels),
        num_sentences=len(sentences),
        num_tokens=len(weights),
        source=source,
    )


def plot_fusion_weights(summary: FusionWeightSummary, path: str | Path, title: str) -> Path:
    """A bar chart of the mean weight per hidden state (matplotlib, Agg backend, PNG)."""
    figure = new_figure(5.5, 3.2)
    axes = figure.subplots()
    axes.bar(summary.labels, summary.means, yerr=summary.stds, capsize=3, color="#4c72b0")
    axes.set_xlabel("hidden state (emb = embedding output, n = encoder layer n)")
    axes.set_ylabel("mean fusion weight")
    axes.set_ylim(0, min(1.0, max(m + s for m, s in zip(summary.means, summary.stds, strict=True)) * 1.15 + 1e-6))
    axes.set_title(title, fontsize=10)
    return save_figure(figure, Path(path), dpi=110)


def fusion_weight_figure(run_dir: str | Path, out_dir: str | Path, max_sentences: int = 100):
    """Measure and plot the fusion weights of the run's model on its own test sentences (predictions.conll).

    Returns the summary, or None when the fusion has no weights or the run wrote no predictions.
    """
    run_dir = Path(run_dir)
    predictions = run_dir / "predictions.conll"
    config = RunFolder.read(run_dir).dwatt_config()
    if config.fusion not in ("dwatt", "scalar_mix") or not predictions.is_file():
        return None
    from transformers import AutoTokenizer

    from ..modeling_dwatt import DWAttForTokenClassification

    model = DWAttForTokenClassification.from_pretrained(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    summary = measure_fusion_weights(
        model, tokenizer, read_conll_sentences(predictions, max_sentences), source="test split (predictions.conll)"
    )
    if summary is not None:
        title = f"{config.fusion}: mean fusion weight per layer, {summary.num_sentences} test sentences"
        plot_fusion_weights(summary, Path(out_dir) / summary.file, title=title)
    return summary
