"""Few-shot sweep machinery: paired statistics, run arguments, the test-split callback, and a tiny
end-to-end sweep that is resumed, widened and interrupted."""

import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, TrainerCallback

from dwatt.experiments.budget import fusion_budget
from dwatt.experiments.stats import paired_difference
from dwatt.experiments.sweep import runner as sweep_runner
from dwatt.experiments.sweep.evaluator import TestSplitEvaluator, tokenized_test_split
from dwatt.experiments.sweep.runner import parse_seeds, plan_runs, run_sweep, run_values, shard_of
from dwatt.experiments.sweep.store import RunKey, RunsFile
from dwatt.experiments.sweep.summary import best_dev_scores, step_difference_table
from dwatt.protocol import DEFAULT_NER_JOB, METHODS, SweepSettings
from dwatt.tasks.ner import parse_run_values, run_ner

ROOT = Path(__file__).resolve().parents[1]
T_975_DF2 = 4.302652729749462  # Student t quantile 0.975 with 2 degrees of freedom (tables: 4.303)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and much faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_settings(model_dir, **overrides) -> SweepSettings:
    # No test tweet is cut at 128 sub-words, so the callback and --do_predict score the same words.
    fields = dict(model_name_or_path=str(model_dir), max_steps=4, eval_every=2, max_eval_samples=16,
                  max_predict_samples=16, max_seq_length=128, learning_rate=5e-4)  # fmt: skip
    return SweepSettings(**{**fields, **overrides})


def load_script(name: str):
    """A module of scripts/ (not a package), loaded by path."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_cli():
    return load_script("fewshot_sweep")


# ----------------------------------------------------------------------------------------------------
# Statistics and arguments (no training)
# ----------------------------------------------------------------------------------------------------


def test_paired_difference_interval_on_hand_made_numbers():
    # Differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) * 1 / sqrt(3).
    diff = paired_difference([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    half_width = T_975_DF2 / math.sqrt(3)
    assert (diff.mean, diff.n) == (2.0, 3)
    assert diff.low == pytest.approx(2.0 - half_width, abs=1e-12)
    assert diff.high == pytest.approx(2.0 + half_width, abs=1e-12)
    assert diff.low == pytest.approx(-0.4841377117503303, abs=1e-12)
    assert not diff.significant  # the interval holds 0
    assert paired_difference([3.0, 4.0, 5.0], [1.0, 1.0, 1.0]).significant  # mean 3, interval [0.52, 5.48]
    assert paired_difference([-3.0, -4.0, -5.0], [0.0, 0.0, 0.0]).significant  # below 0 counts too
    single = paired_difference([0.7], [0.5])
    assert single.mean == pytest.approx(0.2) and single.low is None and not single.significant
    with pytest.raises(ValueError, match="paired"):
        paired_difference([0.1, 0.2], [0.1])


def test_step_differences_pair_seeds_at_each_eval_point():
    """Step efficiency with intervals: at each step, dwatt minus last over the seeds both have there."""

    def row(method, seed, step, f1):
        return {"method": method, "k": 16, "seed": seed, "step": step, "split": "test", "f1": f1}

    rows = [row("last", seed, step, 0.1 * seed + 0.01 * step) for seed in range(3) for step in (2, 4)]
    rows += [row("dwatt", seed, 2, 0.1 * seed + 0.02 + (seed + 1) / 100) for seed in range(3)]  # +1, +2, +3 points
    rows += [row("dwatt", seed, 4, 0.1 * seed + 0.01 * 4 - 0.05) for seed in range(2)]  # -5 points, 2 seeds
    rows += [row("dwatt", 0, 4, 0.9) | {"split": "dev"}]  # dev rows never enter test differences
    table = step_difference_table(rows, ["last", "dwatt"], 16, "last")
    assert table[0] == "| method | step 2 | step 4 |"
    half_width = 100 * 0.01 * T_975_DF2 / math.sqrt(3)  # differences 1, 2, 3 points: sd 1 point
    step2, step4 = (cell.strip() for cell in table[2].split("|")[2:4])
    assert step2 == f"+2.00 [{2 - half_width:+.2f}, {2 + half_width:+.2f}] (3)"
    assert step4 == "-5.00 [-5.00, -5.00] (2) **sig**"  # identical differences: a zero-width interval
    assert len(table) == 3  # the baseline gets no row of its own


def test_best_dev_point_picks_each_runs_test_score_where_dev_peaked():
    def rows(method, seed, dev_by_step, test_by_step):
        return [{"method": method, "k": 16, "seed": seed, "step": step, "split": split, "f1": f1}
                for split, by_step in (("dev", dev_by_step), ("test", test_by_step))
                for step, f1 in by_step.items()]  # fmt: skip

    table = [
        *rows("dwatt", 0, {50: 0.4, 100: 0.3, 150: 0.4}, {50: 0.35, 100: 0.5, 150: 0.2}),  # tie: earlier step
        *rows("dwatt", 1, {50: 0.1, 100: 0.6}, {50: 0.9, 100: 0.25}),
        *rows("last", 0, {50: 0.2}, {}),  # a point without test F1 is never chosen
    ]
    assert best_dev_scores(table) == {("dwatt", 16): {0: 0.35, 1: 0.25}}


def test_run_arguments_differ_only_in_method_flags_and_pair_seeds():
    settings = SweepSettings()
    parsed = {}
    for method in METHODS:
        parsed[method] = parse_run_values(run_values(settings, RunKey(method, 100, 3), "out"))
    default_model, _, default_training = parse_run_values(DEFAULT_NER_JOB)
    for model_args, data_args, training_args in parsed.values():
        assert (data_args.few_shot_k, data_args.few_shot_seed, training_args.seed) == (100, 3, 3)
        # run_ner's default-job hyper-parameters, the same for every method
        assert model_args.fusion_learning_rate == default_model.fusion_learning_rate is None  # one rate
        for name in ("learning_rate", "max_steps", "warmup_steps", "lr_scheduler_type", "weight_decay",
                     "per_device_train_batch_size", "per_device_eval_batch_size", "optim"):  # fmt: skip
            assert getattr(training_args, name) == getattr(default_training, name), name
        assert training_args.learning_rate == 1e-4 and training_args.max_steps == 300
        assert training_args.per_device_train_batch_size == 16 and training_args.save_strategy == "no"
        assert training_args.eval_strategy == "steps" and training_args.eval_steps == 50
        assert model_args.deeper_num_layers is None  # deeper is budget-matched by the model itself
    assert parsed["dwatt_sqrt_d"][0].fusion == "dwatt" and parsed["dwatt_sqrt_d"][0].dwatt_scale == "sqrt_d"
    assert parsed["dwatt"][0].dwatt_scale == "none" and parsed["scalar_mix"][0].fusion == "scalar_mix"

    identity = SweepSettings(fusion_init="identity", freeze_backbone=True)
    init = {m: parse_run_values(run_values(identity, RunKey(m, 50, 0), "out"))[0] for m in METHODS}
    assert {m for m, args in init.items() if args.fusion_init == "identity"} == {
        "dwatt",
        "dwatt_sqrt_d",
        "concat",
        "last",
    }
    assert all(args.freeze_backbone for args in init.values())
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("0,5, 7") == [0, 5, 7]

    plan = plan_runs(["last", "dwatt"], [50, 100], [0, 1])
    assert plan[:4] == [RunKey("last", 50, 0), RunKey("dwatt", 50, 0), RunKey("last", 100, 0), RunKey("dwatt", 100, 0)]
    shards = [shard_of(plan, (index, 3)) for index in range(3)]
    assert sorted(key for shard in shards for key in shard) == sorted(plan)  # each run in exactly one shard


# ----------------------------------------------------------------------------------------------------
# Tiny training runs
# ----------------------------------------------------------------------------------------------------


def test_test_split_callback_scores_as_run_ner_predict(tiny_bert_dir, tmp_path, one_thread):
    """At the last step the callback's test scores equal run_ner's own --do_predict, dev the same, and
    training is exactly what it is without the callback (it draws no random numbers)."""
    values = run_values(tiny_settings(tiny_bert_dir), RunKey("dwatt", 16, 0), tmp_path / "run")
    model_args, data_args, training_args = parse_run_values({**values, "do_predict": True})
    test_dataset, label_list, collator = tokenized_test_split(model_args, data_args)
    evaluator = TestSplitEvaluator(test_dataset, label_list, collator, training_args.per_device_eval_batch_size)
    results = run_ner(model_args, data_args, training_args, callbacks=[evaluator])

    assert sorted(evaluator.points) == [2, 4]  # run_ner's final --do_eval at step 4 is not recorded twice
    final = evaluator.points[4]
    for name in ("f1", "precision", "recall", "accuracy"):
        assert final["test"][name] == pytest.approx(results[f"predict_overall_{name}"], abs=1e-9), name
        assert final["dev"][name] == pytest.approx(results[f"eval_overall_{name}"], abs=1e-9), name
    assert 0.3 < final["test"]["accuracy"] < 1.0  # a real comparison even while F1 is still 0
    assert evaluator.trainable_parameters > 0

    plain = run_values(tiny_settings(tiny_bert_dir), RunKey("dwatt", 16, 0), tmp_path / "plain")
    without = run_ner(*parse_run_values(plain))
    assert (without["train_loss"], without["eval_loss"]) == (results["train_loss"], results["eval_loss"])


class FailAtStep(TrainerCallback):
    """Raises mid-training, as a killed process would stop."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise RuntimeError("simulated kill")


def test_tiny_sweep_writes_results_resumes_and_redoes_a_killed_run(tiny_bert_dir, tmp_path, monkeypatch, one_thread):
    cli = load_cli()
    results_dir, work_dir = tmp_path / "results" / "tiny", tmp_path / "work"
    common = ["--name", "tiny", "--ks", "16", "--max_steps", "4", "--eval_every", "2", "--learning_rate", "5e-4",
              "--model_name_or_path", str(tiny_bert_dir), "--max_eval_samples", "16", "--max_predict_samples", "16",
              "--max_seq_length", "128", "--output_root", str(tmp_path / "results"), "--work_dir", str(work_dir),
              "--no_progress"]  # fmt: skip
    cli.main([*common, "--methods", "last,dwatt", "--seeds", "1"])

    runs = RunsFile(results_dir / "runs.csv")
    rows = runs.read()
    points = sorted((r["method"], r["step"], r["split"]) for r in rows)
    assert points == sorted((m, step, split) for m in ("last", "dwatt") for step in (2, 4) for split in ("dev", "test"))
    assert all(r["k"] == 16 and r["seed"] == 0 and 0 <= r["f1"] <= 1 and r["wall_seconds"] > 0 for r in rows)
    parameters = {r["method"]: (r["fusion_parameters"], r["trainable_parameters"]) for r in rows}
    assert parameters["last"][0] == 0 and parameters["dwatt"][0] > 0
    assert parameters["dwatt"][1] - parameters["last"][1] == parameters["dwatt"][0]  # same backbone and head

    summary = (results_dir / "summary.md").read_text()
    dwatt_budget = fusion_budget(AutoConfig.from_pretrained(tiny_bert_dir), "dwatt").fusion_parameters
    for text in (
        "## Test F1",
        "## Dev F1",
        "best dev point",
        "vs `last`",
        "| last |",
        "| dwatt |",
        "K=16",
        f"{dwatt_budget:,}",
        "step 4",
    ):
        assert text in summary, text
    assert re.search(r"\| last \| \d+\.\d \(1\) \|", summary)  # one seed: a mean, no spread
    for plot in ("f1_vs_k.png", "f1_vs_step.png"):
        assert (results_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(work_dir.rglob("*.safetensors")) and list(work_dir.rglob("trainer_state.json"))

    # Same command again: nothing is trained, nothing written twice.
    before = (results_dir / "runs.csv").read_text()
    monkeypatch.setattr(sweep_runner, "run_one", lambda *args, **kwargs: pytest.fail("a finished run was run again"))
    cli.main([*common, "--methods", "last,dwatt", "--seeds", "1"])
    assert (results_dir / "runs.csv").read_text() == before
    monkeypatch.undo()
    with pytest.raises(ValueError, match="other settings"):  # hyper-parameters are fixed per sweep name
        cli.main([*common, "--max_steps", "6", "--methods", "last", "--seeds", "1"])

    # Widen the sweep to seed 1 and kill its run midway: no rows, the earlier rows untouched.
    settings = tiny_settings(tiny_bert_dir)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_sweep("tiny", ["last"], [16], [0, 1], settings, tmp_path / "results", work_dir,
                  callbacks=[FailAtStep(1)], progress=False)  # fmt: skip
    assert (results_dir / "runs.csv").read_text() == before
    assert (work_dir / "tiny" / "last-k16-s1").is_dir()  # the killed run's leftovers
    (results_dir / "runs.csv.tmp.12345").write_text("last,16,1,2,dev,0.5")  # as if killed while writing

    cli.main([*common, "--methods", "last", "--seeds", "2"])  # redoes exactly the killed run
    text = (results_dir / "runs.csv").read_text()
    assert text.startswith(before) and not list(results_dir.glob("runs.csv.tmp.*"))
    rows = runs.read()
    keys = [(r["method"], r["k"], r["seed"], r["step"], r["split"]) for r in rows]
    assert len(keys) == len(set(keys)) == 12
    assert sorted(k for k in keys if k[:3] == ("last", 16, 1)) == [
        ("last", 16, 1, step, split) for step in (2, 4) for split in ("dev", "test")
    ]
    summary = (results_dir / "summary.md").read_text()
    assert re.search(r"\| last \| \d+\.\d ± \d+\.\d \(2\) \|", summary)  # two seeds at K=16: mean ± std
