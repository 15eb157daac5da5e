"""The sweep's summary: chosen rates, scores at them, paired differences with seed-only and seed-and-sentence
intervals (Holm-adjusted per table), and step efficiency; plus two figures."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ...protocol import BASELINES, METHODS
from ..plotting import replaced_atomically
from ..stats import holm_adjusted, mean_std, paired_difference, paired_t_p_value, seed_and_sentence_interval
from .config import SweepConfig
from .plots import SAMPLE_EFFICIENCY_PLOT, STEP_EFFICIENCY_PLOT, plot_sample_efficiency, plot_step_efficiency
from .samples import SAMPLES_FILE, write_few_shot_samples
from .selection import RateChoice, choose_rates
from .store import COUNTS_FILE, RUNS_FILE, RunKey, RunsFile, SentenceCounts

SUMMARY_FILE = "summary.md"
#: Steps at which dev F1 is reported for step efficiency, and the fraction of a run's own final dev F1.
EARLY_STEPS = (50, 100)
FRACTION_OF_FINAL = 0.9
BOOTSTRAP_SAMPLES = 2000
FAMILY_LEVEL = 0.05

Cell = tuple[str, str, int]  # (regime, method, K)


class RunPoints:
    """Every finished run's dev and test F1 by step, read from `runs.csv` rows."""

    def __init__(self, rows: Iterable[dict]):
        self.f1: dict[RunKey, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
        for row in rows:
            self.f1[RunKey.of(row)][row["split"]][row["step"]] = row["f1"]

    def last_step(self, key: RunKey) -> int:
        return max(self.f1[key]["dev"])

    def best_dev_step(self, key: RunKey) -> int:
        """The step of the highest dev F1 (the earlier one on ties): early stopping on dev, after the fact."""
        dev = self.f1[key]["dev"]
        return max(dev, key=lambda step: (dev[step], -step))

    def step(self, key: RunKey, point: str) -> int:
        return self.last_step(key) if point == "last" else self.best_dev_step(key)


def chosen_runs(
    points: RunPoints, choices: dict[Cell, RateChoice], seeds: Iterable[int] | None = None
) -> dict[Cell, dict[int, RunKey]]:
    """Cell -> {seed: its finished run at the cell's chosen rate}, for the config's `seeds` (None: any)."""
    runs: dict[Cell, dict[int, RunKey]] = defaultdict(dict)
    seeds = None if seeds is None else set(seeds)
    for key in points.f1:
        if seeds is not None and key.seed not in seeds:
            continue
        choice = choices.get((key.regime, key.method, key.k))
        if choice is not None and key.learning_rate == choice.learning_rate:
            runs[(key.regime, key.method, key.k)][key.seed] = key
    return dict(runs)


def scores_at(points: RunPoints, runs: dict[Cell, dict[int, RunKey]], point: str, split: str = "test"):
    """Cell -> {seed: F1 of `split` at the run's last or best-dev eval point}."""
    return {
        cell: {seed: points.f1[key][split][points.step(key, point)] for seed, key in by_seed.items()}
        for cell, by_seed in runs.items()
    }


def steps_to_fraction(dev_by_step: dict[int, float], fraction: float = FRACTION_OF_FINAL) -> int:
    """The first eval step whose dev F1 reaches `fraction` of the run's final dev F1."""
    final = dev_by_step[max(dev_by_step)]
    return min(step for step, f1 in dev_by_step.items() if f1 >= fraction * final)


def regime_family(test: dict[Cell, dict[int, float]], regime: str, methods: list[str], ks: list[int]) -> dict:
    """Holm-adjusted p-values of one regime's family: every distinct pair of a method and a baseline
    (`BASELINES`), at every K, paired t-test over the seeds both have at the last eval point. Each comparison is
    in the family once, whichever table shows it. Returns {(frozenset({a, b}), K): adjusted p}."""
    pairs = sorted({frozenset((method, baseline)) for baseline in BASELINES if baseline in methods
                    for method in methods if method != baseline}, key=sorted)  # fmt: skip
    tested, p_values = [], []
    for pair in pairs:
        first, second = sorted(pair)
        for k in ks:
            ours, theirs = test.get((regime, first, k), {}), test.get((regime, second, k), {})
            common = sorted(set(ours) & set(theirs))
            if common:
                tested.append((pair, k))
                p_values.append(paired_t_p_value([ours[s] for s in common], [theirs[s] for s in common]))
    return dict(zip(tested, holm_adjusted(p_values))) if tested else {}


def difference_table(
    test: dict[Cell, dict[int, float]],
    counts: dict[Cell, np.ndarray | None],
    regime: str,
    methods: list[str],
    ks: list[int],
    baseline: str,
    family: dict | None = None,
) -> list[str]:
    """Paired test-F1 differences vs `baseline`: mean, t-interval over seeds, t-interval over seeds and test
    sentences (bootstrap standard error), and the Holm-adjusted p of the regime's family (`regime_family`;
    None: an exploratory table, without p-values). Bold: survives Holm at the family level."""
    cells: dict[tuple[str, int], str] = {}
    for method in methods:
        for k in ks:
            ours, theirs = test.get((regime, method, k), {}), test.get((regime, baseline, k), {})
            common = sorted(set(ours) & set(theirs))
            if method == baseline or not common:
                continue
            diff = paired_difference([ours[s] for s in common], [theirs[s] for s in common])
            interval = "n/a" if diff.low is None else f"[{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
            bootstrap = "n/a"
            ours_counts, theirs_counts = counts.get((regime, method, k)), counts.get((regime, baseline, k))
            if ours_counts is not None and theirs_counts is not None:
                seeds_ours, seeds_theirs = _seed_rows(ours_counts, common), _seed_rows(theirs_counts, common)
                if seeds_ours is not None and seeds_theirs is not None:
                    _, low, high = seed_and_sentence_interval(seeds_ours, seeds_theirs, BOOTSTRAP_SAMPLES, seed=0)
                    bootstrap = f"[{100 * low:+.1f}, {100 * high:+.1f}]"
            text = f"{100 * diff.mean:+.1f} {interval} {bootstrap}"
            if family is None:
                cells[(method, k)] = f"{text} ({diff.n})"
                continue
            p_holm = family.get((frozenset((method, baseline)), k), float("nan"))
            text += f" p={'n/a' if np.isnan(p_holm) else f'{p_holm:.3f}'} ({diff.n})"
            cells[(method, k)] = f"**{text}**" if not np.isnan(p_holm) and p_holm <= FAMILY_LEVEL else text
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        if method != baseline:
            lines.append(f"| {method} | " + " | ".join(cells.get((method, k), "") for k in ks) + " |")
    return lines


def _seed_rows(counts: dict[int, np.ndarray], seeds: list[int]) -> np.ndarray | None:
    if not all(seed in counts for seed in seeds):
        return None
    return np.stack([counts[seed] for seed in seeds])


def cell_counts(
    points: RunPoints, runs: dict[Cell, dict[int, RunKey]], stored: dict[RunKey, dict[int, np.ndarray]], point: str
) -> dict[Cell, dict[int, np.ndarray]]:
    """Cell -> {seed: per-sentence test counts at the run's last or best-dev point}, for runs that kept them."""
    counts: dict[Cell, dict[int, np.ndarray]] = defaultdict(dict)
    for cell, by_seed in runs.items():
        for seed, key in by_seed.items():
            step_counts = stored.get(key, {}).get(points.step(key, point))
            if step_counts is not None:
                counts[cell][seed] = step_counts
    return dict(counts)


def _score_table(scores: dict[Cell, dict[int, float]], regime: str, methods: list[str], ks: list[int]) -> list[str]:
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        cells = []
        for k in ks:
            seeds = scores.get((regime, method, k))
            if not seeds:
                cells.append("")
                continue
            mean, std = mean_std(list(seeds.values()))
            spread = f" ± {100 * std:.1f}" if len(seeds) > 1 else ""
            cells.append(f"{100 * mean:.1f}{spread} ({len(seeds)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def rate_table(choices: dict[Cell, RateChoice], regime: str, methods: list[str], ks: list[int]) -> list[str]:
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        cells = []
        for k in ks:
            choice = choices.get((regime, method, k))
            if choice is None:
                cells.append("(tuning)")
                continue
            dev = " / ".join(f"{rate:g}: {100 * f1:.1f}" for rate, f1 in choice.dev_by_rate.items())
            edge = {"lowest": " ↓", "highest": " ↑"}.get(choice.grid_edge, "")
            cells.append(f"**{choice.learning_rate:g}**{edge}" + (f" (dev {dev})" if dev else ""))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if any(choice.grid_edge for (r, _, _), choice in choices.items() if r == regime):
        lines += [
            "",
            "↑ / ↓: the grid's highest / lowest rate was chosen. That method's best rate may lie beyond the "
            "grid, so its scores are those the grid allows; wider tuning might reach more (not a bound: the rate is "
            "chosen on dev, and a better dev rate need not score better on test).",
        ]
    return lines


def _step_table(points: RunPoints, runs, regime: str, methods: list[str], ks: list[int]) -> list[str]:
    columns = [(k, label) for k in ks for label in (*(f"dev@{s}" for s in EARLY_STEPS), "steps to 90%")]
    lines = ["| method | " + " | ".join(f"K={k} {label}" for k, label in columns) + " |",
             "|---|" + "---:|" * len(columns)]  # fmt: skip
    for method in methods:
        cells = []
        for k in ks:
            keys = list(runs.get((regime, method, k), {}).values())
            for step in EARLY_STEPS:
                values = [points.f1[key]["dev"][step] for key in keys if step in points.f1[key]["dev"]]
                cells.append(f"{100 * statistics.fmean(values):.1f}" if values else "")
            reached = [steps_to_fraction(points.f1[key]["dev"]) for key in keys]
            cells.append(f"{statistics.fmean(reached):.0f}" if reached else "")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def progress_line(points: RunPoints, config: SweepConfig, regime: str, choices: dict[Cell, RateChoice]) -> str:
    """How many of the regime's planned runs are in, and how many finished runs the plan no longer asks for
    (a seed run at a rate chosen before its grid grew): those stay in runs.csv but enter no table."""
    settings = config.regimes[regime]
    tuning = set(config.selection.tuning_seeds) if settings.tuned else set()
    in_plan = outside = 0
    for key in points.f1:
        if key.regime != regime or key.method not in config.methods or key.k not in config.ks:
            continue
        if key.seed not in config.seeds:
            continue
        choice = choices.get((regime, key.method, key.k))
        tuning_run = key.seed in tuning and key.learning_rate in settings.learning_rates
        if tuning_run or (choice is not None and key.learning_rate == choice.learning_rate):
            in_plan += 1
        else:
            outside += 1
    planned = planned_runs(config, regime)
    status = "complete" if in_plan >= planned else "**running**: cells left blank or marked (tuning) are not in"
    line = f"Runs: {in_plan} of the {planned} the config plans ({status})."
    if outside:
        line += (f" {outside} more finished at a rate that is no longer the chosen one (the grid grew after they "
                 "ran); they stay in runs.csv and enter no table.")  # fmt: skip
    return line


def beyond_plan_line(points: RunPoints, config: SweepConfig, regime: str) -> str:
    """The regime's finished runs of a method, K or seed the config does not list (a sitting's --methods, --ks or
    --seeds went beyond it), which `progress_line` leaves out: counted here so every finished run is counted
    somewhere. Empty when there are none."""
    beyond = sum(
        key.regime == regime
        and (key.method not in config.methods or key.k not in config.ks or key.seed not in config.seeds)
        for key in points.f1
    )
    if not beyond:
        return ""
    return (f" {beyond} more finished for a method, K or seed the config does not list (a sitting's --methods, --ks "
            "or --seeds went beyond it); they stay in runs.csv and enter no table: list them in the config to "
            "include them.")  # fmt: skip


def _ordered_methods(names: Iterable[str]) -> list[str]:
    order = list(METHODS)
    return sorted(set(names), key=lambda name: (order.index(name) if name in order else len(order), name))


def planned_runs(config: SweepConfig, regime: str) -> int:
    """How many runs the config asks of a regime: the whole grid on the tuning seeds, one rate on the rest."""
    cells = len(config.methods) * len(config.ks)
    if not config.regimes[regime].tuned:
        return cells * len(config.seeds)
    tuning = [seed for seed in config.seeds if seed in config.selection.tuning_seeds]
    rates = len(config.regimes[regime].learning_rates)
    return cells * (len(tuning) * rates + len(config.seeds) - len(tuning))


def write_summary(results_dir: str | Path, config: SweepConfig) -> Path | None:
    """Write `summary.md`, `chosen_rates.json` and the two plots from all of `runs.csv` and
    `sentence_counts.jsonl`, with the plan of the whole config (`config.full`: a sitting's --methods, --ks,
    --seeds or --regimes limit what it trains, never what the summary shows); None when no run has finished
    yet."""
    results_dir = Path(results_dir)
    config = config.full
    rows = RunsFile(results_dir / RUNS_FILE).read()
    if not rows:
        return None
    points = RunPoints(rows)
    stored = SentenceCounts(results_dir / COUNTS_FILE).read()
    choices = choose_rates(rows, config)
    runs = chosen_runs(points, choices, config.seeds)
    methods = _ordered_methods(key.method for key in points.f1 if key.method in config.methods)
    ks = sorted({key.k for key in points.f1 if key.k in config.ks})
    regimes = [name for name in config.regimes if any(key.regime == name for key in points.f1)]
    other_regimes = sum(key.regime not in config.regimes for key in points.f1)
    run_seconds = {key: row["wall_seconds"] for row in rows for key in [RunKey.of(row)]}
    hours = sum(run_seconds.values()) / 3600
    with_counts = sum(key in stored for key in points.f1)
    rule = config.selection
    lines = [
        f"# Few-shot sweep `{config.name}`",
        "",
        config.description,
        "",
        f"Config: `{config.source}`. {len(points.f1)} finished runs ({hours:.1f} h of run time: each run's wall "
        f"clock, summed; parallel shards take less); {with_counts} kept per-sentence test counts. Entity micro "
        "F1 (seqeval) x 100. Seed index s = few-shot sample s = training seed s for every method, regime and "
        f"rate (paired); the samples' sentence ids are in `{SAMPLES_FILE}`, to rerun the exact shots.",
        "",
        "Rate choice (a rule fixed before the runs; the grids are the config's): per (regime, method, K), the "
        f"rate of the grid with the highest mean dev F1 at each run's {'last' if rule.point == 'last' else 'best'} "
        f"eval point over tuning seeds {list(rule.tuning_seeds)}; ties go to the rate listed first. Test never "
        "enters it. The other seeds run only at the chosen rate; every score below is at it.",
        "",
        "Settings (identical for every method): "
        + ", ".join(f"{name}={value}" for name, value in sorted(config.fixed_settings().items())),
    ]
    if other_regimes:
        lines += ["", f"{other_regimes} of the finished runs are of regimes the config no longer lists; they stay in "
                      "runs.csv and enter no table."]  # fmt: skip
    test_last, test_best = scores_at(points, runs, "last"), scores_at(points, runs, "best")
    counts_last, counts_best = (cell_counts(points, runs, stored, point) for point in ("last", "best"))
    for regime in regimes:
        options = ", ".join(f"{name}={value}" for name, value in config.regimes[regime].model_values.items())
        lines += [
            "",
            f"## Regime `{regime}`" + (f" ({options})" if options else ""),
            "",
            progress_line(points, config, regime, choices)
            + beyond_plan_line(points, config, regime)
            + f" Run time: {sum(t for key, t in run_seconds.items() if key.regime == regime) / 3600:.1f} h.",
            "",
            "Chosen learning rate (mean dev F1 of the tuning seeds at each rate):",
            "",
            *rate_table(choices, regime, methods, ks),
            "",
            "Test F1 at the last eval point: mean ± std (seeds)",
            "",
            *_score_table(test_last, regime, methods, ks),
            "",
            "Test F1 at each run's best dev point (early stopping on dev, after the fact)",
            "",
            *_score_table(test_best, regime, methods, ks),
        ]
        family = regime_family(test_last, regime, methods, ks)
        lines += [
            "",
            f"Paired test-F1 differences (method minus baseline): mean [95% t-interval over seeds] [95% interval over "
            "seeds and test sentences: t with n-1 degrees of freedom, bootstrap standard error] and the Holm-adjusted "
            f"p of this regime's family: the {len(family)} distinct comparisons of a method with a baseline "
            f"({', '.join(b for b in BASELINES if b in methods)}) at each K, paired t-test over seeds at the last eval "
            f"point, each comparison counted once whichever table shows it. **Bold**: survives Holm at {FAMILY_LEVEL}.",
        ]
        for baseline in (b for b in BASELINES if b in methods):
            lines += ["", f"vs `{baseline}`, last eval point:", "",
                      *difference_table(test_last, counts_last, regime, methods, ks, baseline, family)]  # fmt: skip
        lines += [
            "",
            "At each run's best dev point (exploratory: chosen after the fact, outside the family, no p-values):",
        ]
        for baseline in (b for b in BASELINES if b in methods):
            lines += ["", f"vs `{baseline}`, best dev point:", "",
                      *difference_table(test_best, counts_best, regime, methods, ks, baseline)]  # fmt: skip
        lines += [
            "",
            f"Step efficiency (dev F1 x 100, mean over seeds): at steps {' and '.join(map(str, EARLY_STEPS))}, and "
            f"the first eval step reaching {FRACTION_OF_FINAL:.0%} of the run's own final dev F1",
            "",
            *_step_table(points, runs, regime, methods, ks),
        ]
    parameters = {key.method: row for row in rows for key in [RunKey.of(row)]}
    lines += [
        "",
        "## Parameters (added to the backbone, heads excluded: dwatt.experiments.budget; trainable: counted in "
        "the run, per regime)",
        "",
        "| method | added | " + " | ".join(f"trainable ({regime})" for regime in regimes) + " |",
        "|---|---:|" + "---:|" * len(regimes),
    ]
    trainable = {(key.regime, key.method): row["trainable_parameters"] for row in rows for key in [RunKey.of(row)]}
    for method in methods:
        cells = [f"{trainable[(r, method)]:,}" if (r, method) in trainable else "" for r in regimes]
        lines.append(f"| {method} | {parameters[method]['fusion_parameters']:,} | " + " | ".join(cells) + " |")
    lines += ["", f"![test F1 vs K]({SAMPLE_EFFICIENCY_PLOT})", "", f"![dev F1 vs step]({STEP_EFFICIENCY_PLOT})", ""]
    path = results_dir / SUMMARY_FILE
    with replaced_atomically(path) as temporary:  # shards may finish together
        temporary.write_text("\n".join(lines))
    write_few_shot_samples(results_dir, config)
    curves = {
        cell: {step: [points.f1[key]["dev"][step] for key in by_seed.values() if step in points.f1[key]["dev"]]
               for step in sorted({s for key in by_seed.values() for s in points.f1[key]["dev"]})}
        for cell, by_seed in runs.items()
    }  # fmt: skip
    plot_sample_efficiency(test_last, regimes, methods, ks, results_dir / SAMPLE_EFFICIENCY_PLOT)
    plot_step_efficiency(curves, regimes, methods, ks, results_dir / STEP_EFFICIENCY_PLOT)
    (results_dir / "chosen_rates.json").write_text(
        json.dumps(
            {f"{r}/{m}/k{k}": c.learning_rate for (r, m, k), c in sorted(choices.items()) if r in regimes}, indent=1
        )
        + "\n"
    )
    return path
