"""The learning-rate choice of a tuned sweep: per (regime, method, K), the rate of the grid with the highest
mean dev F1 over the tuning seeds, by the rule the config fixes before any run. Test never enters it."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .config import SweepConfig

Cell = tuple[str, str, int]  # (regime, method, K)


@dataclass(frozen=True)
class RateChoice:
    """The chosen rate of one cell and the mean dev F1 of every rate of the grid (tuning seeds only)."""

    learning_rate: float
    dev_by_rate: dict[float, float]

    @property
    def grid_edge(self) -> str | None:
        """ "lowest" or "highest" when the choice is an end of a grid of three or more rates: the method's best
        rate may lie beyond the grid, so its scores are what this grid allows, not what tuning could reach. (With
        one or two rates every choice is an end; that says nothing.)"""
        if len(self.dev_by_rate) < 3:
            return None
        if self.learning_rate == min(self.dev_by_rate):
            return "lowest"
        return "highest" if self.learning_rate == max(self.dev_by_rate) else None


def run_dev_scores(rows: Iterable[dict], point: str = "last") -> dict[tuple, float]:
    """(regime, learning_rate, method, K, seed) -> the run's dev F1 at its last eval point (`last`) or its
    highest (`best`)."""
    by_run: dict[tuple, dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row["split"] == "dev":
            run = (row["regime"], row["learning_rate"], row["method"], row["k"], row["seed"])
            by_run[run][row["step"]] = row["f1"]
    if point == "last":
        return {run: points[max(points)] for run, points in by_run.items()}
    return {run: max(points.values()) for run, points in by_run.items()}


def choose_rates(rows: Iterable[dict], config: SweepConfig) -> dict[Cell, RateChoice]:
    """Every cell whose tuning runs are all finished, with its chosen rate. A regime with one rate needs no
    tuning runs: that rate is chosen from the start."""
    dev = run_dev_scores(rows, config.selection.point)
    choices = {}
    for regime in config.regimes.values():
        for method in config.methods:
            for k in config.ks:
                if not regime.tuned:
                    choices[(regime.name, method, k)] = RateChoice(regime.learning_rates[0], {})
                    continue
                runs = {rate: [dev.get((regime.name, rate, method, k, seed)) for seed in config.selection.tuning_seeds]
                        for rate in regime.learning_rates}  # fmt: skip
                if any(score is None for scores in runs.values() for score in scores):
                    continue
                means = {rate: statistics.fmean(scores) for rate, scores in runs.items()}
                best = max(regime.learning_rates, key=lambda rate: means[rate])  # ties: the first listed
                choices[(regime.name, method, k)] = RateChoice(best, means)
    return choices
