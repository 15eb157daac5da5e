"""The sweep's summary: score tables, paired differences, step efficiency."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ...protocol import BASELINES, METHODS
from ..plotting import replaced_atomically
from ..stats import mean_std, paired_difference
from .plots import SAMPLE_EFFICIENCY_PLOT, STEP_EFFICIENCY_PLOT, plot_sample_efficiency, plot_step_efficiency
from .store import RUNS_FILE, SETTINGS_FILE, RunsFile

SUMMARY_FILE = "summary.md"


def final_scores(rows: Iterable[dict], split: str = "test") -> dict[tuple[str, int], dict[int, float]]:
    """(method, K) -> {seed: F1 at the run's last eval point} for one split."""
    last: dict[tuple[str, int, int], tuple[int, float]] = {}
    for row in rows:
        if row["split"] == split:
            key = (row["method"], row["k"], row["seed"])
            if key not in last or row["step"] > last[key][0]:
                last[key] = (row["step"], row["f1"])
    scores: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for (method, k, seed), (_, f1) in last.items():
        scores[(method, k)][seed] = f1
    return dict(scores)


def best_dev_scores(rows: Iterable[dict]) -> dict[tuple[str, int], dict[int, float]]:
    """(method, K) -> {seed: test F1 at the eval point where that run's dev F1 was highest}.

    Early stopping on dev, done afterwards from the recorded points (ties go to the earlier step). It
    costs no extra training and shows whether a method's early lead survives model selection.
    """
    points: dict[tuple[str, int, int], dict[int, dict[str, float]]] = defaultdict(dict)
    for row in rows:
        points[(row["method"], row["k"], row["seed"])].setdefault(row["step"], {})[row["split"]] = row["f1"]
    scores: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for (method, k, seed), by_step in points.items():
        scored = [(step, split_f1) for step, split_f1 in sorted(by_step.items()) if {"dev", "test"} <= set(split_f1)]
        if scored:
            _, best = max(scored, key=lambda item: (item[1]["dev"], -item[0]))
            scores[(method, k)][seed] = best["test"]
    return dict(scores)


def scores_at_step(rows: Iterable[dict], step: int, split: str = "test") -> dict[tuple[str, int], dict[int, float]]:
    """(method, K) -> {seed: F1 at `step`} for one split (runs without that eval point are left out)."""
    scores: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row["split"] == split and row["step"] == step:
            scores[(row["method"], row["k"])][row["seed"]] = row["f1"]
    return dict(scores)


def curve_scores(rows: Iterable[dict], split: str = "test") -> dict[tuple[str, int], dict[int, list[float]]]:
    """(method, K) -> {step: [F1 of each seed]} for one split."""
    curves: dict[tuple[str, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["split"] == split:
            curves[(row["method"], row["k"])][row["step"]].append(row["f1"])
    return {key: dict(value) for key, value in curves.items()}


def _ordered_methods(names: Iterable[str]) -> list[str]:
    order = list(METHODS)
    return sorted(set(names), key=lambda name: (order.index(name) if name in order else len(order), name))


def _score_table(scores: dict[tuple[str, int], dict[int, float]], methods: list[str], ks: list[int]) -> list[str]:
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        cells = []
        for k in ks:
            seeds = scores.get((method, k))
            if not seeds:
                cells.append("")
                continue
            mean, std = mean_std(list(seeds.values()))
            spread = f" ± {100 * std:.1f}" if len(seeds) > 1 else ""  # one seed has no spread to show
            cells.append(f"{100 * mean:.1f}{spread} ({len(seeds)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _difference_cell(ours: dict[int, float], theirs: dict[int, float]) -> str:
    """Paired difference over the seeds both have, as 'mean [low, high] (n) **sig**'; '' when none."""
    common = sorted(set(ours) & set(theirs))
    if not common:
        return ""
    diff = paired_difference([ours[s] for s in common], [theirs[s] for s in common])
    interval = "n/a" if diff.low is None else f"{100 * diff.low:+.2f}, {100 * diff.high:+.2f}"
    marker = " **sig**" if diff.significant else ""
    return f"{100 * diff.mean:+.2f} [{interval}] ({diff.n}){marker}"


def _difference_table(
    scores: dict[tuple[str, int], dict[int, float]], methods: list[str], ks: list[int], baseline: str
) -> list[str]:
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        if method != baseline:
            cells = [_difference_cell(scores.get((method, k), {}), scores.get((baseline, k), {})) for k in ks]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def step_difference_table(rows: list[dict], methods: list[str], k: int, baseline: str) -> list[str]:
    """Paired test-F1 differences vs `baseline` at every eval point of K=k: step efficiency with CIs."""
    steps = sorted({row["step"] for row in rows if row["k"] == k})
    lines = ["| method | " + " | ".join(f"step {step}" for step in steps) + " |", "|---|" + "---:|" * len(steps)]
    at_step = {step: scores_at_step(rows, step) for step in steps}
    for method in methods:
        if method != baseline:
            cells = [
                _difference_cell(at_step[s].get((method, k), {}), at_step[s].get((baseline, k), {})) for s in steps
            ]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _parameter_table(rows: list[dict], methods: list[str]) -> list[str]:
    added = {row["method"]: row["fusion_parameters"] for row in rows}
    trainable = {row["method"]: row["trainable_parameters"] for row in rows}
    reference = added.get("dwatt") or added.get("dwatt_sqrt_d")
    lines = [
        "| method | added parameters | vs DWAtt | trainable parameters (with head) |",
        "|---|---:|---:|---:|",
    ]
    for method in methods:
        relative = f"{added[method] / reference:.2f}x" if reference else "-"
        lines.append(f"| {method} | {added[method]:,} | {relative} | {trainable[method]:,} |")
    return lines


def _curve_table(curves, methods: list[str], k: int) -> list[str]:
    steps = sorted({step for (method, kk), points in curves.items() if kk == k for step in points})
    lines = ["| method | " + " | ".join(f"step {step}" for step in steps) + " |", "|---|" + "---:|" * len(steps)]
    for method in methods:
        points = curves.get((method, k), {})
        cells = [f"{100 * statistics.fmean(points[step]):.1f}" if step in points else "" for step in steps]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def write_summary(results_dir: str | Path, curve_k: int | None = None) -> Path | None:
    """Write `summary.md` and the two plots from `runs.csv`; None when there are no runs yet."""
    results_dir = Path(results_dir)
    rows = RunsFile(results_dir / RUNS_FILE).read()
    if not rows:
        return None
    settings = json.loads((results_dir / SETTINGS_FILE).read_text()) if (results_dir / SETTINGS_FILE).is_file() else {}
    methods = _ordered_methods(row["method"] for row in rows)
    ks = sorted({row["k"] for row in rows})
    if curve_k is None or curve_k not in ks:
        curve_k = 100 if 100 in ks else ks[0]
    test, dev, selected = final_scores(rows, "test"), final_scores(rows, "dev"), best_dev_scores(rows)
    runs = {(row["method"], row["k"], row["seed"]) for row in rows}
    hours = sum({(r["method"], r["k"], r["seed"]): r["wall_seconds"] for r in rows}.values()) / 3600

    lines = [
        f"# Few-shot sweep `{results_dir.name}`",
        "",
        f"{len(runs)} finished runs ({hours:.1f} h of run time: each run's wall clock, summed; parallel shards "
        "take less). Entity micro F1 (seqeval) x 100 on the bundled "
        "WNUT-16 split; K training sentences sampled from the pool per seed; seed index s = few-shot sample s = "
        "training seed s for every method (paired). Cells: mean ± std (number of seeds; one seed shows its "
        "score alone), at the last eval point.",
        "",
        "Settings (identical for every method): "
        + ", ".join(f"{name}={value}" for name, value in sorted(settings.items())),
        "",
        "## Test F1",
        "",
        *_score_table(test, methods, ks),
        "",
        "## Dev F1 (for choosing settings; report test)",
        "",
        *_score_table(dev, methods, ks),
        "",
        "## Test F1 at each run's best dev point (early stopping on dev, chosen after the fact)",
        "",
        *_score_table(selected, methods, ks),
    ]
    for baseline in BASELINES:
        if baseline in methods:
            lines += [
                "",
                f"## Paired test-F1 differences vs `{baseline}`",
                "",
                "Mean per-seed difference [95% CI, Student t] (seeds). **sig**: the interval excludes 0.",
                "",
                "At the last eval point:",
                "",
                *_difference_table(test, methods, ks, baseline),
                "",
                "At each run's best dev point:",
                "",
                *_difference_table(selected, methods, ks, baseline),
            ]
    curves = curve_scores(rows, "test")
    lines += [
        "",
        "## Parameters (dwatt.experiments.budget: added to the backbone, heads excluded; trainable counted in the run)",
        "",
        *_parameter_table(rows, methods),
        "",
        f"## Test F1 along training, K={curve_k} (mean over seeds)",
        "",
        *_curve_table(curves, methods, curve_k),
        "",
    ]
    for baseline in BASELINES:
        if baseline in methods:
            lines += [
                f"Paired test-F1 differences vs `{baseline}` along training, K={curve_k}:",
                "",
                *step_difference_table(rows, methods, curve_k, baseline),
                "",
            ]
    lines += [
        f"![test F1 vs K]({SAMPLE_EFFICIENCY_PLOT})",
        "",
        f"![test F1 vs step]({STEP_EFFICIENCY_PLOT})",
        "",
    ]
    path = results_dir / SUMMARY_FILE
    with replaced_atomically(path) as temporary:  # shards may finish together
        temporary.write_text("\n".join(lines))
    plot_sample_efficiency(test, methods, ks, results_dir / SAMPLE_EFFICIENCY_PLOT)
    plot_step_efficiency(curves, methods, ks, results_dir / STEP_EFFICIENCY_PLOT)
    return path
