"""Figures of the layer analysis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..plotting import new_figure, save_figure
from .probes import FULL, LayerAnalysis, first_k_name
from .profiles import AblationRow, Profile


def _short_tag(tag: str) -> str:
    return tag if len(tag) <= 12 else tag[:11] + "…"


def plot_sentence_heatmaps(result: LayerAnalysis, sentences: Sequence[int], path: Path) -> Path:
    """Words x fused layers heatmaps of the pooled weights, one panel per sentence, on one colour scale."""
    words = result.words
    panels = [np.flatnonzero(words.sentence == sentence) for sentence in sentences]
    vmax = max(float(words.weights[indices].max()) for indices in panels)
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    tallest = max(len(indices) for indices in panels)
    figure = new_figure(5.2 * columns, 0.8 + 0.24 * tallest * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for axis, sentence, indices in zip(axes.flat, sentences, panels):
        image = axis.imshow(words.weights[indices], aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax)
        labels = []
        for i in indices:
            gold, predicted = words.gold[i], words.predicted[i]
            label = f"{words.words[i][:16]}  {_short_tag(gold)}" if gold != "O" else words.words[i][:16]
            labels.append(label + (f" ✗{_short_tag(predicted)}" if predicted != gold else ""))
        axis.set_yticks(range(len(indices)), labels, fontsize=7)
        axis.set_xticks(range(len(result.layer_indices)), result.layer_indices, fontsize=7)
        axis.set_xlabel("fused hidden state (0 = embeddings)", fontsize=7)
        axis.set_title(f"sentence {sentence}", fontsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.colorbar(image, ax=axes, shrink=0.6, label="fusion weight (mean over the word's pieces)")
    figure.suptitle("Per-word fusion weights (gold tag after the word; ✗ = the model's wrong tag)", fontsize=9)
    return save_figure(figure, path)


def plot_type_profiles(profiles: Sequence[Profile], layer_indices: Sequence[int], path: Path) -> Path:
    """One small bar chart per entity type (mean weight per layer, ± s.e.), with the ``O`` profile as a line."""
    reference = next(profile for profile in profiles if profile.name == "O")
    entity_profiles = [profile for profile in profiles if profile.name != "O"]
    columns = min(5, max(1, len(entity_profiles)))
    rows = max(1, math.ceil(len(entity_profiles) / columns))
    figure = new_figure(2.3 * columns, 1.9 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    x = np.arange(len(layer_indices))
    for axis, profile in zip(axes.flat, entity_profiles):
        axis.bar(x, profile.mean, yerr=profile.stderr, color="tab:blue", alpha=0.8, error_kw={"lw": 0.8})
        axis.plot(x, reference.mean, color="black", marker=".", lw=1, label=f"O (n={reference.count})")
        axis.set_title(f"{profile.name} (n={profile.count})", fontsize=8)
        axis.set_xticks(x, layer_indices, fontsize=7)
        axis.tick_params(axis="y", labelsize=7)
    for axis in list(axes.flat)[len(entity_profiles) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=6, loc="upper right")
    figure.supxlabel("fused hidden state (0 = embeddings)", fontsize=8)
    figure.supylabel("mean fusion weight", fontsize=8)
    figure.suptitle("Where words of each gold entity type draw from (bars ± s.e.; line: O words)", fontsize=9)
    return save_figure(figure, path)


def plot_ablation(rows: Sequence[AblationRow], path: Path) -> Path:
    """Mass per layer (top) next to the F1 change when that layer is masked out (bottom, 95% intervals)."""
    figure = new_figure(6.0, 4.6)
    top, bottom = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(rows))
    top.bar(x - 0.2, [row.mass_entity for row in rows], 0.4, label="entity words (gold or predicted)")
    top.bar(x + 0.2, [row.mass_all for row in rows], 0.4, label="all words", color="tab:gray")
    top.set_ylabel("mean fusion weight", fontsize=8)
    top.legend(fontsize=7)
    deltas = np.array([row.delta for row in rows]) * 100
    errors = (
        np.array(
            [[row.delta - row.interval[0], row.interval[1] - row.delta] if row.interval else [0, 0] for row in rows]
        ).T
        * 100
    )
    colours = ["tab:red" if row.disagreement else "tab:blue" for row in rows]
    bottom.bar(x, deltas, yerr=errors, color=colours, error_kw={"lw": 0.8, "capsize": 2})
    bottom.axhline(0, color="black", lw=0.8)
    bottom.set_ylabel("F1 change without it (points)", fontsize=8)
    bottom.set_xticks(x, [row.layer for row in rows])
    bottom.set_xlabel("masked fused hidden state (red: mass and effect disagree in rank)", fontsize=8)
    figure.suptitle("Layer ablation: attention mass vs effect on entity F1", fontsize=9)
    return save_figure(figure, path)


def plot_first_k(result: LayerAnalysis, path: Path) -> Path:
    """Entity F1 (95% interval) and measured speed-up of first-k-layer inference per k."""
    ks = result.first_ks
    full = result.f1(FULL)
    f1 = np.array([result.f1(first_k_name(k)) for k in ks]) * 100
    low = np.array([full + result.intervals.get(first_k_name(k), (0.0, 0.0))[0] for k in ks]) * 100
    high = np.array([full + result.intervals.get(first_k_name(k), (0.0, 0.0))[1] for k in ks]) * 100
    figure = new_figure(5.6, 3.4)
    axis = figure.subplots()
    axis.fill_between(ks, low, high, color="tab:blue", alpha=0.2, lw=0)
    axis.plot(ks, f1, marker="o", color="tab:blue", label="entity F1")
    axis.set_xlabel("backbone layers run (k)", fontsize=8)
    axis.set_ylabel("entity F1 (%)", color="tab:blue", fontsize=8)
    axis.set_xticks(ks)
    if result.timing is not None:
        speed = axis.twinx()
        medians = np.array([result.timing.speedup(k) for k in ks])
        quartiles = np.array([np.percentile(result.timing.speedups(k), [25, 75]) for k in ks])
        spread = np.stack([medians - quartiles[:, 0], quartiles[:, 1] - medians])
        speed.errorbar(ks, medians, yerr=spread, marker="s", color="tab:orange", capsize=2, lw=1)
        speed.set_ylabel("speed-up vs all layers (x)", color="tab:orange", fontsize=8)
    figure.suptitle("First-k-layer inference: F1 (band: 95% interval) and speed-up (bars: IQR)", fontsize=9)
    return save_figure(figure, path)
