"""The sweep's figures: test F1 against K, and dev F1 against training steps, per regime at the chosen rates."""

from __future__ import annotations

from pathlib import Path

from ..plotting import new_figure, replaced_atomically, save_figure
from ..stats import mean_std

SAMPLE_EFFICIENCY_PLOT = "f1_vs_k.png"
STEP_EFFICIENCY_PLOT = "f1_vs_step.png"


def add_legend(figure) -> None:
    """One legend listing every method drawn in any panel, on the panel with the most of them (a sweep still
    running has empty panels; a legend on one of those would be empty)."""
    by_label = {}
    for axis in figure.axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            by_label.setdefault(label, (axis, handle))
    if by_label:
        axis = max(figure.axes, key=lambda axis: len(axis.get_legend_handles_labels()[1]))
        axis.legend([handle for _, handle in by_label.values()], list(by_label), fontsize="small")


def plot_sample_efficiency(scores, regimes: list[str], methods: list[str], ks: list[int], path: Path) -> None:
    """Test F1 against K (log axis), one panel per regime, one line per method, error bars = std over seeds.
    `scores`: (regime, method, K) -> {seed: F1}."""
    figure = new_figure(4.2 * len(regimes), 3.8)
    axes = figure.subplots(1, len(regimes), sharey=True, squeeze=False)[0]
    for axis, regime in zip(axes, regimes):
        drawn = 0
        for method in methods:
            present = [k for k in ks if scores.get((regime, method, k))]
            if not present:  # not at its chosen rate yet: no empty entry in the legend
                continue
            stats_ = [mean_std(list(scores[(regime, method, k)].values())) for k in present]
            axis.errorbar(present, [100 * m for m, _ in stats_], yerr=[100 * s for _, s in stats_], marker="o",
                          capsize=3, label=method)  # fmt: skip
            drawn += 1
        axis.set_xscale("log")
        axis.set_xlim(min(ks) / 1.5, max(ks) * 1.5)
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.minorticks_off()
        axis.set_xlabel("K (training sentences)")
        axis.set_title(regime if drawn else f"{regime} (no run at a chosen rate yet)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("test entity F1 (chosen rate)")
    add_legend(figure)
    with replaced_atomically(path) as temporary:
        save_figure(figure, temporary, dpi=120)


def plot_step_efficiency(curves, regimes: list[str], methods: list[str], ks: list[int], path: Path) -> None:
    """Dev F1 against training step, a panel per (regime, K), mean over seeds with a +-std band.
    `curves`: (regime, method, K) -> {step: [F1 of each seed]}."""
    figure = new_figure(4.0 * len(ks), 3.2 * len(regimes))
    axes = figure.subplots(len(regimes), len(ks), sharey=True, squeeze=False)
    for row, regime in zip(axes, regimes):
        for axis, k in zip(row, ks):
            for method in methods:
                points = curves.get((regime, method, k))
                if not points:
                    continue
                steps = sorted(points)
                stats_ = [mean_std(points[step]) for step in steps]
                means = [100 * m for m, _ in stats_]
                line = axis.plot(steps, means, marker=".", label=method)[0]
                lows = [m - 100 * s for m, (_, s) in zip(means, stats_)]
                highs = [m + 100 * s for m, (_, s) in zip(means, stats_)]
                axis.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.15)
            axis.set_title(f"{regime}, K={k}")
            axis.grid(alpha=0.3)
        row[0].set_ylabel("dev entity F1")
    for axis in axes[-1]:
        axis.set_xlabel("step")
    add_legend(figure)
    with replaced_atomically(path) as temporary:
        save_figure(figure, temporary, dpi=120)
