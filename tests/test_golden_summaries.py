"""Every committed sweep summary follows from its own runs: re-rendered from the committed `runs.csv` and
`sentence_counts.jsonl` with its config, `summary.md`, `chosen_rates.json` and `few_shot_samples.json` come out
byte for byte as committed. A change to the statistics, the rate choice or the rendering that would change a
published number fails here until the summaries are re-rendered (and the docs that quote them follow,
tests/test_results_docs.py).

Sweeps under results/ without a config file (wnut16, wnut16-frozen*, wnut16-fusion-lr-1e-3) were run by the
superseded command-line sweep, before configs and per-sentence counts existed: they cannot be re-rendered and
are kept as the record docs/RESULTS.md describes.
"""

import csv
import json
import os
import shutil
from operator import itemgetter
from pathlib import Path

import pytest

from dwatt.experiments.sweep.config import load_sweep_config
from dwatt.experiments.sweep.samples import SAMPLES_FILE
from dwatt.experiments.sweep.store import COUNTS_FILE, RUNS_FILE
from dwatt.experiments.sweep.summary import SUMMARY_FILE, write_summary

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "sweeps"
RENDERED = (SUMMARY_FILE, "chosen_rates.json", SAMPLES_FILE)
SWEEPS = sorted(path.parent.name for path in (ROOT / "results").glob(f"*/{RUNS_FILE}")
                if (CONFIGS / f"{path.parent.name}.yaml").is_file())  # fmt: skip
WITHOUT_CONFIG = sorted(path.parent.name for path in (ROOT / "results").glob(f"*/{SUMMARY_FILE}")
                        if path.parent.name not in SWEEPS)  # fmt: skip


def test_the_sweeps_without_a_config_are_the_superseded_ones():
    assert "wnut16-tuned" in SWEEPS
    assert WITHOUT_CONFIG == ["wnut16", "wnut16-frozen", "wnut16-frozen-lr1e-1", "wnut16-frozen-lr1e-2",
                              "wnut16-frozen-lr1e-3", "wnut16-fusion-lr-1e-3"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", SWEEPS)
def test_a_committed_summary_is_what_its_runs_render(name, tmp_path, monkeypatch):
    committed = ROOT / "results" / name
    copy = tmp_path / name
    copy.mkdir()
    for file in (RUNS_FILE, COUNTS_FILE):
        if (committed / file).is_file():
            shutil.copy(committed / file, copy / file)
    monkeypatch.chdir(ROOT)  # the summary names its config by the path it was given: repo-relative
    write_summary(copy, load_sweep_config(f"configs/sweeps/{name}.yaml"))
    for file in RENDERED:
        assert (copy / file).read_text() == (committed / file).read_text(), f"{name}/{file} is not what its runs render"


FIXTURES = Path(__file__).with_name("fixtures")


@pytest.mark.parametrize("fixture", ["tiny_sweep", "tiny_sweep_partial"])
def test_a_slice_of_a_committed_sweep_renders_as_committed(fixture, tmp_path, monkeypatch):
    """The fast golden tests (no `slow` mark, so `make test-fast` and the mutation runs have them): a slice of
    wnut16-tuned (frozen, K = 100, three methods, complete), and a slice of wnut16-mpnet while its LoRA regime
    was running (missing cells, untuned rates, rates chosen at the best dev point), render to the committed
    expected files. DWATT_UPDATE_GOLDEN=1 rewrites them (then read the diff)."""
    copy = tmp_path / fixture
    copy.mkdir()
    for file in (RUNS_FILE, COUNTS_FILE):
        shutil.copy(FIXTURES / fixture / file, copy / file)
    monkeypatch.chdir(ROOT)
    write_summary(copy, load_sweep_config(f"tests/fixtures/{fixture}/config.yaml"))
    expected = FIXTURES / fixture / "expected"
    for file in RENDERED:
        if os.environ.get("DWATT_UPDATE_GOLDEN"):
            expected.mkdir(exist_ok=True)
            shutil.copy(copy / file, expected / file)
        assert (copy / file).read_text() == (expected / file).read_text(), file


def test_methods_outside_the_catalogue_order_come_last_by_name():
    from dwatt.experiments.sweep.summary import _ordered_methods

    assert _ordered_methods(["zeta", "dwatt_sqrt_d", "last", "alpha", "last"]) == ["last", "dwatt_sqrt_d", "alpha",
                                                                                   "zeta"]  # fmt: skip


def test_a_regime_without_options_and_run_times_at_a_rounding_edge(tmp_path, monkeypatch):
    """The header lines the slices do not reach: a regime with no model options is titled by its name alone, and
    run time is hours of 3600 s, to one decimal (180.01 s is 0.1 h; at 3601 s an hour it would print 0.0)."""
    run_of = itemgetter("regime", "learning_rate", "method", "k", "seed")

    def one_run_of_180_01_seconds(rows):
        return [dict(row, wall_seconds="180.01" if run_of(row) == run_of(rows[0]) else "0") for row in rows]

    config = (FIXTURES / "tiny_sweep" / "config.yaml").read_text().replace("    freeze_backbone: true\n", "")
    copy = rendered_with("tiny_sweep", tmp_path, monkeypatch, one_run_of_180_01_seconds, config)
    summary = (copy / SUMMARY_FILE).read_text()
    assert "finished runs (0.1 h of run time" in summary
    assert "\n## Regime `frozen`\n" in summary
    assert " Run time: 0.1 h.\n" in summary


def rendered_with(fixture: str, tmp_path, monkeypatch, edit_rows, config: str | None = None) -> Path:
    """The fixture's sweep rendered from its runs as `edit_rows(rows)` leaves them, with its config (or the
    given config text)."""
    copy = tmp_path / fixture
    copy.mkdir()
    shutil.copy(FIXTURES / fixture / COUNTS_FILE, copy / COUNTS_FILE)
    with open(FIXTURES / fixture / RUNS_FILE, newline="") as file:
        rows = list(csv.DictReader(file))
    with open(copy / RUNS_FILE, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(edit_rows(rows))
    config_path = FIXTURES / fixture / "config.yaml"
    if config is not None:
        config_path = tmp_path / "config.yaml"
        config_path.write_text(config)
    monkeypatch.chdir(ROOT)
    write_summary(copy, load_sweep_config(os.path.relpath(config_path, ROOT)))
    return copy


def test_a_method_not_run_in_a_regime_has_an_empty_trainable_cell(tmp_path, monkeypatch):
    def without_lora_deeper(rows):
        return [row for row in rows if (row["regime"], row["method"]) != ("lora", "deeper")]

    copy = rendered_with("tiny_sweep_partial", tmp_path, monkeypatch, without_lora_deeper)
    assert "| deeper | 8,323,620 | 8,339,769 |  |" in (copy / SUMMARY_FILE).read_text().splitlines()


def test_the_step_efficiency_plot_gets_each_cells_mean_dev_curve(tmp_path, monkeypatch):
    from dwatt.experiments.sweep import summary

    plotted = {}
    monkeypatch.setattr(summary, "plot_step_efficiency", lambda curves, *args: plotted.update(curves))
    rendered_with("tiny_sweep", tmp_path, monkeypatch, lambda rows: rows)
    with open(FIXTURES / "tiny_sweep" / RUNS_FILE, newline="") as file:
        rows = list(csv.DictReader(file))
    chosen = json.loads((FIXTURES / "tiny_sweep" / "expected" / "chosen_rates.json").read_text())
    for (regime, method, k), curve in plotted.items():
        rate = chosen[f"{regime}/{method}/k{k}"]
        dev = [row for row in rows if (row["regime"], row["method"], int(row["k"]), row["split"]) ==
               (regime, method, k, "dev") and float(row["learning_rate"]) == rate]  # fmt: skip
        assert sorted(curve) == sorted({int(row["step"]) for row in dev})
        for step, values in curve.items():
            assert sorted(values) == sorted(float(row["f1"]) for row in dev if int(row["step"]) == step)
    assert len(plotted) == 3
