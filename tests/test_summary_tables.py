"""The sweep summary's tables and progress line in the states the golden slices do not reach: a comparison with
one common seed or without per-sentence counts (n/a, cell by cell), a comparison outside the Holm family, a grid
without dev scores, runs the config no longer plans, and a regime with a single rate."""

from dataclasses import replace
from pathlib import Path

import numpy as np

from dwatt.experiments.stats import paired_difference
from dwatt.experiments.sweep.config import load_sweep_config
from dwatt.experiments.sweep.selection import RateChoice, choose_rates
from dwatt.experiments.sweep.store import RUNS_FILE, RunsFile
from dwatt.experiments.sweep.summary import (
    RunPoints,
    difference_table,
    planned_runs,
    progress_line,
    rate_table,
    regime_family,
)

FIXTURE = Path(__file__).with_name("fixtures") / "tiny_sweep"
KS = [100, 500]


def fixture_rows() -> list[dict]:
    return RunsFile(FIXTURE / RUNS_FILE).read()


def test_difference_cells_say_n_a_for_one_seed_missing_counts_and_a_comparison_outside_the_family():
    test = {
        ("r", "last", 100): {0: 0.20},
        ("r", "dwatt", 100): {0: 0.30},  # one common seed: no t-interval
        ("r", "last", 500): {0: 0.40, 1: 0.42},
        ("r", "dwatt", 500): {0: 0.50, 1: 0.49},
    }
    counts = {("r", "dwatt", 500): {0: np.ones((4, 3)), 1: np.ones((4, 3))}}  # the baseline kept none
    diff = paired_difference([0.50, 0.49], [0.40, 0.42])
    interval = f"[{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
    family = {(frozenset({"dwatt", "last"}), 500): 0.2}  # K = 100 is outside it
    lines = difference_table(test, counts, "r", ["last", "dwatt"], KS, "last", family)
    assert lines[-1] == f"| dwatt | +10.0 n/a n/a p=n/a (1) | +8.5 {interval} n/a p=0.200 (2) |"
    exploratory = difference_table(test, counts, "r", ["last", "dwatt"], KS, "last")
    assert exploratory[-1] == f"| dwatt | +10.0 n/a n/a (1) | +8.5 {interval} n/a (2) |"


def test_a_missing_seed_in_the_counts_leaves_the_sentence_interval_out_and_a_missing_cell_the_rest_in():
    test = {("r", "last", 500): {0: 0.40, 1: 0.42}, ("r", "dwatt", 500): {0: 0.50, 1: 0.49}}
    counts = {("r", "dwatt", 500): {0: np.ones((4, 3)), 1: np.ones((4, 3))},
              ("r", "last", 500): {0: np.ones((4, 3))}}  # fmt: skip
    lines = difference_table(test, counts, "r", ["last", "dwatt"], KS, "last", {})
    assert lines[-1].startswith("| dwatt |  | +8.5 ") and lines[-1].endswith(" n/a p=n/a (2) |")


def test_the_family_holds_each_comparison_once_whatever_the_order_of_methods():
    noise = {"last": (0.0, 0.01, -0.02), "deeper": (0.01, 0.03, 0.0), "dwatt": (-0.01, 0.02, 0.04)}
    test = {("r", method, 100): {seed: value + noise[method][seed] for seed in range(3)}
            for method, value in (("last", 0.2), ("deeper", 0.25), ("dwatt", 0.3))}  # fmt: skip
    family = regime_family(test, "r", ["dwatt", "last", "deeper"], [100])
    assert family == regime_family(test, "r", ["deeper", "last", "dwatt"], [100])
    assert set(family) == {(frozenset({"dwatt", "last"}), 100), (frozenset({"deeper", "last"}), 100),
                           (frozenset({"dwatt", "deeper"}), 100)}  # fmt: skip
    assert regime_family({}, "r", ["last", "dwatt"], [100]) == {}


def test_a_choice_without_dev_scores_shows_the_rate_alone():
    choices = {("r", "last", 100): RateChoice(1e-3, {}), ("r", "dwatt", 100): RateChoice(1e-3, {1e-3: 0.25})}
    lines = rate_table(choices, "r", ["last", "dwatt"], [100])
    assert lines[2:] == ["| last | **0.001** |", "| dwatt | **0.001** (dev 0.001: 25.0) |"]


def test_progress_counts_planned_runs_only_and_each_run_at_a_dropped_rate():
    config = load_sweep_config(FIXTURE / "config.yaml")
    rows = fixture_rows()
    choices = choose_rates(rows, config)
    dropped = "{} more finished at a rate that is no longer the chosen one (the grid grew after they ran); they stay "
    dropped += "in runs.csv and enter no table."
    # The slice holds one such run (scalar_mix, seed 2, at 0.01)
    assert progress_line(RunPoints(rows), config, "frozen", choices) == (
        "Runs: 33 of the 33 the config plans (complete). " + dropped.format(1)
    )
    # Seed 4 and scalar_mix leave the plan (that run with them); two `last` runs come in at a rate not chosen.
    smaller = replace(config, seeds=range(4), methods=("last", "dwatt_sqrt_d"))
    chosen = choices[("frozen", "last", 100)].learning_rate
    other = next(rate for rate in config.regimes["frozen"].learning_rates if rate != chosen)
    extra = [dict(row, learning_rate=other, seed=seed) for row in rows if (row["method"], row["seed"]) ==
             ("last", 2) and row["learning_rate"] == chosen for seed in (2, 3)]  # fmt: skip
    line = progress_line(RunPoints(rows + extra), smaller, "frozen", choose_rates(rows + extra, smaller))
    assert line == "Runs: 20 of the 20 the config plans (complete). " + dropped.format(2)


def test_a_regime_with_one_rate_plans_one_run_per_cell_and_seed():
    config = load_sweep_config(FIXTURE / "config.yaml")
    single = replace(config.regimes["frozen"], learning_rates=(1e-3,))
    config = replace(config, regimes={"frozen": single})
    assert planned_runs(config, "frozen") == 3 * 1 * 5


def test_a_comparison_at_the_family_level_exactly_survives_holm_and_is_bold():
    test = {("r", "last", 100): {0: 0.40, 1: 0.42}, ("r", "dwatt", 100): {0: 0.50, 1: 0.49}}
    at_level = difference_table(
        test, {}, "r", ["last", "dwatt"], [100], "last", {(frozenset({"dwatt", "last"}), 100): 0.05}
    )
    above = difference_table(
        test, {}, "r", ["last", "dwatt"], [100], "last", {(frozenset({"dwatt", "last"}), 100): 0.0501}
    )
    assert at_level[-1].startswith("| dwatt | **+8.5 ") and at_level[-1].endswith(" p=0.050 (2)** |")
    assert above[-1].startswith("| dwatt | +8.5 ") and above[-1].endswith(" p=0.050 (2) |")
