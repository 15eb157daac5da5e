"""The sweep's figures: F1 against K and against training steps."""

from __future__ import annotations

import math
from pathlib import Path

from ..plotting import new_figure, replaced_atomically, save_figure
from ..stats import mean_std

SAMPLE_EFFICIENCY_PLOT = "f1_vs_k.png"
STEP_EFFICIENCY_PLOT = "f1_vs_step.png"


def plot_sample_efficiency(scores, methods: list[str], ks: list[int], path: Path) -> None:
    """Final test F1 against K (log axis), one line per method, error bars = std over seeds."""
    figure = new_figure(6.5, 4.5)
    axis = figure.subplots()
    for method in methods:
        present = [k for k in ks if scores.get((method, k))]
        stats_ = [mean_std(list(scores[(method, k)].values())) for k in present]
        axis.errorbar(present, [100 * m for m, _ in stats_], yerr=[100 * s for _, s in stats_], marker="o",
                      capsize=3, label=method)  # fmt: skip
    axis.set_xscale("log")
    axis.set_xticks(ks, [str(k) for k in ks])
    axis.set_xlabel("K (training sentences)")
    axis.set_ylabel("test entity F1")
    axis.set_title("Sample efficiency")
    axis.grid(alpha=0.3)
    axis.legend()
    with replaced_atomically(path) as temporary:
        save_figure(figure, temporary, dpi=120)


def plot_step_efficiency(curves, methods: list[str], ks: list[int], path: Path) -> None:
    """Test F1 against training step, one panel per K, mean over seeds with a +-std band."""
    columns = min(3, len(ks))
    rows = math.ceil(len(ks) / columns)
    figure = new_figure(4.2 * columns, 3.4 * rows)
    axes = figure.subplots(rows, columns, sharey=True, squeeze=False)
    for axis in axes.flat[len(ks) :]:
        axis.set_visible(False)
    for axis, k in zip(axes.flat, ks):
        for method in methods:
            points = curves.get((method, k))
            if not points:
                continue
            steps = sorted(points)
            stats_ = [mean_std(points[step]) for step in steps]
            means = [100 * m for m, _ in stats_]
            line = axis.plot(steps, means, marker=".", label=method)[0]
            lows = [m - 100 * s for m, (_, s) in zip(means, stats_)]
            highs = [m + 100 * s for m, (_, s) in zip(means, stats_)]
            axis.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.15)
        axis.set_title(f"K={k}")
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("test entity F1")
    axes.flat[len(ks) - 1].legend(fontsize="small")
    with replaced_atomically(path) as temporary:
        save_figure(figure, temporary, dpi=120)
