"""run_ner end to end: real learning, file input, resume after interruption, DDP on CPU, pipeline."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import parse_run_args
from transformers import TrainerCallback, TrainingArguments, pipeline

from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.ner import NerDataArguments, run_ner

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures")


def ner_args(output_dir, *extra):
    return parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--output_dir", output_dir, "--report_to", "none", "--use_cpu", "--seed", "0",
         "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--disable_tqdm", "true",
         *extra],
    )  # fmt: skip


def tiny_job(model_dir, output_dir, *extra):
    """A tiny random backbone on a WNUT-16 slice: a few seconds."""
    return ner_args(
        output_dir, "--model_name_or_path", model_dir, "--few_shot_k", "32", "--max_eval_samples", "24",
        "--max_predict_samples", "24", "--do_train", "--do_eval", "--do_predict", "--max_steps", "8",
        "--learning_rate", "5e-4", *extra,
    )  # fmt: skip


@pytest.mark.slow
def test_real_short_run_beats_the_untrained_model(minilm_path, tmp_path):
    """Bundled MiniLM on a WNUT-16 slice: 30 steps must raise test entity F1 clearly (0.34 measured)."""
    common = ["--model_name_or_path", minilm_path, "--dwatt_scale", "sqrt_d", "--max_predict_samples", "100",
              "--do_predict", "--max_seq_length", "48"]  # fmt: skip
    untrained = run_ner(*ner_args(tmp_path / "untrained", *common))
    trained = run_ner(*ner_args(
        tmp_path / "trained", *common, "--do_train", "--few_shot_k", "300", "--max_steps", "30",
        "--learning_rate", "3e-4", "--fusion_learning_rate", "3e-3", "--per_device_train_batch_size", "16",
        "--warmup_steps", "4",
    ))  # fmt: skip
    assert untrained["predict_f1"] < 0.05
    assert trained["predict_f1"] > untrained["predict_f1"] + 0.15, (untrained, trained)
    sentences = (tmp_path / "trained" / "predictions.conll").read_text().strip().split("\n\n")
    assert len(sentences) == 100  # one block per test sentence, none dropped


def test_conll_files_with_iob1_tags(tiny_bert_dir, tmp_path):
    train = FIXTURES / "conll2003_iob1_sample.txt"
    model_args, data_args, training_args = ner_args(
        tmp_path / "run", "--model_name_or_path", tiny_bert_dir, "--train_file", train,
        "--validation_file", FIXTURES / "conll2003_iob1_dev.txt", "--test_file", train,
        "--do_train", "--do_eval", "--do_predict", "--max_steps", "2",
    )  # fmt: skip
    results = run_ner(model_args, data_args, training_args)
    assert {"eval_f1", "predict_f1", "train_loss"} <= set(results)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    labels = sorted(config["label2id"], key=config["label2id"].get)
    assert labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    # The gold column is the IOB2 conversion: an I- that starts a chunk becomes B-; IOB1's B-PER stays.
    blocks = (tmp_path / "run" / "predictions.conll").read_text().strip().split("\n\n")
    gold = [[line.split()[1] for line in block.split("\n")] for block in blocks]
    assert gold == [
        ["B-ORG", "O", "O", "O", "B-LOC", "I-LOC", "O"],
        ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O"],
        ["O", "B-LOC", "B-PER", "B-PER", "I-PER", "O", "B-MISC", "O", "O"],
    ]


class StopAt(TrainerCallback):
    """Stops training after a given step, as a killed job would (after its last checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def test_resume_after_interruption_gives_the_same_result(tiny_bert_dir, tmp_path):
    extra = ["--save_strategy", "steps", "--save_steps", "4", "--fusion_dropout", "0.1"]
    uninterrupted = run_ner(*tiny_job(tiny_bert_dir, tmp_path / "straight", *extra))

    interrupted_dir = tmp_path / "interrupted"
    run_ner(*tiny_job(tiny_bert_dir, interrupted_dir, *extra), callbacks=[StopAt(4)])
    assert (interrupted_dir / "checkpoint-4").is_dir() and not (interrupted_dir / "checkpoint-8").exists()
    resumed = run_ner(*tiny_job(tiny_bert_dir, interrupted_dir, *extra))  # picks up checkpoint-4 by itself

    assert (interrupted_dir / "checkpoint-8").is_dir()
    for key in ("eval_loss", "predict_loss", "predict_f1", "eval_f1"):
        assert resumed[key] == pytest.approx(uninterrupted[key], rel=1e-5, abs=1e-6), key


def test_pipeline_on_a_saved_checkpoint(tiny_bert_dir, tmp_path):
    run_ner(*tiny_job(tiny_bert_dir, tmp_path / "run"))
    tagger = pipeline(
        "token-classification", model=str(tmp_path / "run"), trust_remote_code=True, aggregation_strategy="simple"
    )
    # An 8-step model predicts O everywhere; bias its head towards one entity type so the pipeline has
    # entities to group (what is checked is the pipeline's handling of our outputs, not the model's skill).
    label2id = tagger.model.config.label2id
    with torch.no_grad():
        tagger.model.classifier.bias[label2id["B-person"]] += 100.0
    text = "Barack Obama visited the Eiffel Tower in Paris with Microsoft people"
    entities = tagger(text)
    assert entities and all(entity["entity_group"] == "person" for entity in entities)
    for entity in entities:
        assert {"entity_group", "score", "word", "start", "end"} <= set(entity)
        assert 0 <= entity["start"] < entity["end"] <= len(text) and entity["score"] > 0.9
    assert type(tagger.model).__name__ == "DWAttForTokenClassification"


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tiny_bert_dir, tmp_path):
    """`accelerate launch` with configs/accelerate/cpu-ddp.yaml and --use_cpu: gloo DDP, one saved checkpoint."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    output_dir = tmp_path / "ddp"
    command = [
        accelerate, "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "cpu-ddp.yaml"),
        "--main_process_port", "29517",
        str(ROOT / "scripts" / "run_ner.py"),
        "--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(output_dir), "--use_cpu",
        "--few_shot_k", "32", "--max_eval_samples", "16", "--do_train", "--do_eval", "--max_steps", "4",
        "--per_device_train_batch_size", "4", "--report_to", "none", "--disable_tqdm", "true",
        "--save_strategy", "no", "--log_level", "info",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    train_results = json.loads((output_dir / "train_results.json").read_text())
    assert train_results["train_samples"] == 32
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["train_batch_size"] == 4
    from dwatt import DWAttForTokenClassification

    model = DWAttForTokenClassification.from_pretrained(output_dir)
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    untrained = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=model.config.num_labels)
    trained_classifier = model.classifier.weight.detach()
    assert not torch.equal(trained_classifier, untrained.classifier.weight.detach())  # 4 steps of training moved it
    log = completed.stdout + completed.stderr
    assert "Total train batch size (w. parallel, distributed & accumulation) = 8" in log  # 2 ranks x 4


def test_predictions_label_every_word_of_sentences_longer_than_max_seq_length(tiny_bert_dir, tmp_path, monkeypatch):
    """Test tweets cut by --max_seq_length are predicted again with overlapping windows (of the run's length and
    stride): no word unscored."""
    import dwatt.tasks.ner as ner

    windows = []

    def predict_word_labels(model, tokenizer, words, max_seq_length=None, stride=None):
        windows.append((max_seq_length, stride))
        return real(model, tokenizer, words, max_seq_length, stride)

    real = ner.predict_word_labels
    monkeypatch.setattr(ner, "predict_word_labels", predict_word_labels)
    results = run_ner(*tiny_job(tiny_bert_dir, tmp_path / "run", "--max_seq_length", "8", "--stride", "2"))
    assert results["predict_truncated_sentences"] > 0 and results["predict_scored_with_windows"] is True
    assert windows == [(8, 2)]
    blocks = (tmp_path / "run" / "predictions.conll").read_text().strip().split("\n\n")
    from dwatt.data.corpora import load_wnut16

    test_tokens = load_wnut16()["test"]["tokens"][:24]
    assert [len(block.split("\n")) for block in blocks] == [len(tokens) for tokens in test_tokens]
    # Each phase's counts reach its results file (the model card and the sweep read them there).
    written = {phase: json.loads((tmp_path / "run" / f"{phase}_results.json").read_text())
               for phase in ("train", "eval", "predict")}  # fmt: skip
    assert written["train"]["train_truncated_sentences"] == results["train_truncated_sentences"] > 0
    assert written["eval"]["eval_truncated_sentences"] == results["eval_truncated_sentences"] > 0
    assert written["eval"]["eval_samples"] == written["predict"]["predict_samples"] == 24
    assert written["predict"]["predict_truncated_sentences"] == results["predict_truncated_sentences"]


def test_the_best_model_by_f1_as_transformers_users_ask_for_it(tiny_bert_dir, tmp_path):
    """`--metric_for_best_model f1 --load_best_model_at_end`, as with transformers' own run_ner: the metric keys
    are the example's (`eval_f1`, not `eval_overall_f1`)."""
    results = run_ner(*tiny_job(tiny_bert_dir, tmp_path / "run", "--eval_strategy", "steps", "--eval_steps", "4",
                                "--save_strategy", "steps", "--save_steps", "4", "--metric_for_best_model", "f1",
                                "--load_best_model_at_end"))  # fmt: skip
    assert {"eval_f1", "eval_precision", "eval_recall", "eval_accuracy", "predict_f1"} <= set(results)
    assert not [key for key in results if "overall" in key]
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["best_metric"] is not None and state["best_model_checkpoint"].endswith(
        ("checkpoint-4", "checkpoint-8")
    )
