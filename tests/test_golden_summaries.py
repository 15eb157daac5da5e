"""Every committed sweep summary follows from its own runs: re-rendered from the committed `runs.csv` and
`sentence_counts.jsonl` with its config, `summary.md`, `chosen_rates.json` and `few_shot_samples.json` come out
byte for byte as committed. A change to the statistics, the rate choice or the rendering that would change a
published number fails here until the summaries are re-rendered (and the docs that quote them follow,
tests/test_results_docs.py).

Sweeps under results/ without a config file (wnut16, wnut16-frozen*, wnut16-fusion-lr-1e-3) were run by the
superseded command-line sweep, before configs and per-sentence counts existed: they cannot be re-rendered and
are kept as the record docs/RESULTS.md describes.
"""

import shutil
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


TINY_SWEEP = Path(__file__).with_name("fixtures") / "tiny_sweep"


def test_a_slice_of_the_tuned_sweep_renders_as_committed(tmp_path, monkeypatch):
    """The fast golden test (no `slow` mark, so `make test-fast` and the mutation runs have it): a slice of
    wnut16-tuned's runs (frozen, K = 100, three methods) renders to the committed expected files."""
    copy = tmp_path / "tiny-sweep"
    copy.mkdir()
    for file in (RUNS_FILE, COUNTS_FILE):
        shutil.copy(TINY_SWEEP / file, copy / file)
    monkeypatch.chdir(ROOT)
    write_summary(copy, load_sweep_config("tests/fixtures/tiny_sweep/config.yaml"))
    for file in RENDERED:
        assert (copy / file).read_text() == (TINY_SWEEP / "expected" / file).read_text(), file
