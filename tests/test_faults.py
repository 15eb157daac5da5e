"""Faults during training: a run killed hard resumes from its last checkpoint and ends as if never killed.

`scripts/run_ner.py` runs as a real subprocess on a tiny random backbone; SIGKILL gives it no chance to
clean up. Rerunning the same command must resume by itself (`dwatt.tasks.runner.checkpoint_to_resume`) and
reach the metrics of an uninterrupted run. A kill that lands while a checkpoint is being written leaves
a folder cut short, which must be skipped (`dwatt.tasks.checkpoints.last_complete_checkpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import parse_run_args
from transformers import TrainingArguments

from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.checkpoints import checkpoint_problem, last_complete_checkpoint
from dwatt.tasks.ner import NerDataArguments, run_ner
from dwatt.tasks.runner import checkpoint_to_resume

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 8
SAVE_STEPS = 2
COMPARED = ("eval_loss", "eval_f1", "predict_loss", "predict_f1", "predict_accuracy")


def job_args(model_dir: Path, output_dir: Path) -> list[str]:
    """A run_ner job of a few seconds that checkpoints every SAVE_STEPS steps, with layer dropout (RNG state).

    max_seq_length 24 cuts some tweets, so the same run also shows that truncation is counted and reported.
    """
    return [
        "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir), "--use_cpu", "--seed", "0",
        "--few_shot_k", "32", "--max_eval_samples", "24", "--max_predict_samples", "24",
        "--do_train", "--do_eval", "--do_predict", "--max_steps", str(MAX_STEPS), "--learning_rate", "5e-4",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--fusion_dropout", "0.1",
        "--save_strategy", "steps", "--save_steps", str(SAVE_STEPS), "--report_to", "none",
        "--disable_tqdm", "true", "--log_level", "info", "--max_seq_length", "24",
    ]  # fmt: skip


def run_in_process(model_dir: Path, output_dir: Path) -> dict:
    args = parse_run_args((ModelArguments, NerDataArguments, TrainingArguments), job_args(model_dir, output_dir))
    return run_ner(*args)


@pytest.fixture(scope="module")
def uninterrupted(tiny_bert_dir, tmp_path_factory) -> tuple[dict, Path]:
    """Metrics of the same job run straight through, and its output folder (a checkpoint every SAVE_STEPS)."""
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    return run_in_process(tiny_bert_dir, output_dir), output_dir


def assert_same_metrics(resumed: dict, reference: dict) -> None:
    for key in COMPARED:
        assert resumed[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-6), key


def script_command(model_dir: Path, output_dir: Path) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "run_ner.py"), *job_args(model_dir, output_dir)]


def script_env() -> dict[str, str]:
    # Same thread count as the in-process reference run, so the float reductions match.
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(torch.get_num_threads()))


def wait_for_first_checkpoint(process: subprocess.Popen, output_dir: Path, timeout: float = 150.0) -> None:
    """Return as soon as the first checkpoint is completely written (trainer_state.json, written last, parses)."""
    folder = output_dir / f"checkpoint-{SAVE_STEPS}"
    deadline = time.monotonic() + timeout
    while not folder.is_dir() or checkpoint_problem(folder) is not None:
        if process.poll() is not None:
            pytest.fail(f"run_ner ended (code {process.returncode}) before completing {folder}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{folder} not complete after {timeout} s")
        time.sleep(0.005)


@pytest.mark.slow
def test_sigkill_mid_run_then_the_same_command_resumes_to_the_same_metrics(tiny_bert_dir, tmp_path, uninterrupted):
    output_dir = tmp_path / "killed"
    command, env = script_command(tiny_bert_dir, output_dir), script_env()
    log = (tmp_path / "first.log").open("w")
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    wait_for_first_checkpoint(process, output_dir)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    log.close()

    # It really died mid-run: no final model, no final checkpoint, no results.
    assert not (output_dir / f"checkpoint-{MAX_STEPS}").exists()
    assert not (output_dir / "train_results.json").exists()
    resume_from = last_complete_checkpoint(output_dir)
    assert resume_from is not None
    assert checkpoint_to_resume(TrainingArguments(output_dir=str(output_dir), do_train=True)) == resume_from

    completed = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"Resuming from {resume_from}" in completed.stdout + completed.stderr
    resumed = {}
    for name in ("eval_results.json", "predict_results.json"):
        resumed.update(json.loads((output_dir / name).read_text()))
    assert_same_metrics(resumed, uninterrupted[0])
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == MAX_STEPS


def cut_short(checkpoint: Path) -> None:
    """Make `checkpoint` look like a save killed after the weights: everything Trainer writes later is gone."""
    for path in checkpoint.iterdir():
        if path.name not in ("model.safetensors", "config.json", "configuration_dwatt.py", "modeling_dwatt.py"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_last_complete_checkpoint_skips_folders_cut_short(tmp_path):
    def make(step: int, state: str | None = '{"global_step": STEP}', weights: bool = True) -> Path:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if weights:
            (folder / "model.safetensors").write_bytes(b"weights")
        if state is not None:
            (folder / "trainer_state.json").write_text(state.replace("STEP", str(step)))
        return folder

    assert last_complete_checkpoint(tmp_path / "missing") is None
    make(4)
    make(8)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-8")
    make(12, state=None)  # killed before trainer_state.json
    make(16, state='{"global_st')  # killed while writing it
    make(20, weights=False)  # killed before the weights
    make(24, state='{"global_step": 4}')  # a copied or renamed folder
    (tmp_path / "checkpoint-28").write_text("a file, not a folder")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-8")
    assert "trainer_state.json" in checkpoint_problem(tmp_path / "checkpoint-12")
    assert "cut short" in checkpoint_problem(tmp_path / "checkpoint-16")
    assert "no weights" in checkpoint_problem(tmp_path / "checkpoint-20")
    assert "global_step=4" in checkpoint_problem(tmp_path / "checkpoint-24")


SHARDED_LAYOUTS = {
    # FSDP with SHARDED_STATE_DICT: a torch.distributed.checkpoint folder; .metadata comes when all ranks finish
    "fsdp": ("pytorch_model_fsdp_0", "__0_0.distcp", ".metadata", ".metadata"),
    # DeepSpeed ZeRO-2/3 without gathered 16-bit weights: per-rank model states in global_step<N>/
    "deepspeed": (
        "global_stepSTEP",
        "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "mp_rank_00_model_states.pt",
        "*model_states.pt",
    ),  # fmt: skip
}


@pytest.mark.parametrize("layout", sorted(SHARDED_LAYOUTS))
def test_sharded_checkpoints_are_resumed_from_and_a_half_written_one_is_skipped(tmp_path, layout):
    folder_name, first_file, last_file, missing = SHARDED_LAYOUTS[layout]
    for step, complete in ((4, True), (8, False)):
        checkpoint = tmp_path / f"checkpoint-{step}"
        shards = checkpoint / folder_name.replace("STEP", str(step))
        shards.mkdir(parents=True)
        (shards / first_file).write_bytes(b"shard")
        if complete:
            (shards / last_file).write_bytes(b"done")
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert f"has no {missing} (the sharded save was interrupted)" in checkpoint_problem(tmp_path / "checkpoint-8")


def test_a_checkpoint_cut_short_by_a_kill_is_not_resumed_from(tiny_bert_dir, tmp_path, uninterrupted):
    """The folder of a run killed while writing its second checkpoint: resume from the first one."""
    reference, straight_dir = uninterrupted
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    for step in (SAVE_STEPS, 2 * SAVE_STEPS):  # what the run had written when it was killed
        shutil.copytree(straight_dir / f"checkpoint-{step}", output_dir / f"checkpoint-{step}")
    cut_short(output_dir / f"checkpoint-{2 * SAVE_STEPS}")
    assert last_complete_checkpoint(output_dir) == str(output_dir / f"checkpoint-{SAVE_STEPS}")
    assert_same_metrics(run_in_process(tiny_bert_dir, output_dir), reference)


def test_training_truncation_is_counted_and_reported(uninterrupted):
    """Sentences cut by --max_seq_length are counted per split in the returned and saved metrics."""
    results, output_dir = uninterrupted
    for split in ("train", "eval", "predict"):
        assert results[f"{split}_truncated_sentences"] > 0, split
    saved = json.loads((output_dir / "train_results.json").read_text())
    assert saved["train_truncated_sentences"] == results["train_truncated_sentences"]
    evaluated = json.loads((output_dir / "eval_results.json").read_text())
    assert evaluated["eval_samples"] == results["eval_samples"] == 24  # --max_eval_samples
    assert evaluated["eval_truncated_sentences"] == results["eval_truncated_sentences"]
