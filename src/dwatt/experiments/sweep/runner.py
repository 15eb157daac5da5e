"""Runs the sweep's (method, K, seed) grid through `run_ner`, resumably and in shards."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ...fusions import CATALOGUE
from ...protocol import DEFAULT_KS, DEFAULT_METHODS, DEFAULT_SEED_COUNT, METHODS, SweepSettings
from ...tasks.ner import parse_run_values, run_ner
from ...tasks.runner import is_dwatt_checkpoint
from .evaluator import TestSplitEvaluator, tokenized_test_split
from .store import RUNS_FILE, RunKey, RunsFile, check_settings
from .summary import write_summary

#: Files of a finished run's folder that are kept (small JSON and the log); weights and tokenizer go.
_KEPT_RUN_FILE_MAX_BYTES = 200_000


def parse_seeds(text: str) -> list[int]:
    """`"5"` means seed indices 0..4; `"0,3,7"` lists them."""
    text = text.strip()
    if "," not in text:
        count = int(text)
        if count < 1:
            raise ValueError(f"--seeds needs a positive count or a comma-separated list, got {text!r}")
        return list(range(count))
    return [int(part) for part in text.split(",") if part.strip()]


def parse_list(text: str | Sequence, convert=str) -> list:
    """A comma-separated CLI value (or an already split sequence) as a list."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [convert(part.strip() if isinstance(part, str) else part) for part in parts if str(part).strip()]


def check_methods(methods: Iterable[str]) -> list[str]:
    methods = list(methods)
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return methods


@dataclass
class SweepArguments:
    """What to run and where (`scripts/fewshot_sweep.py`); the shared hyper-parameters are `SweepSettings`."""

    name: str = field(metadata={"help": "Sweep name: results go to <output_root>/<name>/."})
    methods: str = field(
        default=",".join(DEFAULT_METHODS), metadata={"help": f"Comma-separated, from: {', '.join(METHODS)}."}
    )
    ks: str = field(default=",".join(map(str, DEFAULT_KS)), metadata={"help": "Comma-separated few-shot sizes K."})
    seeds: str = field(
        default=str(DEFAULT_SEED_COUNT), metadata={"help": "A count N (seed indices 0..N-1) or a list '0,3,7'."}
    )
    output_root: str = field(default="results", metadata={"help": "Where results/<name>/ is written."})
    work_dir: str = field(default="outputs/sweeps", metadata={"help": "Run folders (pruned to small files)."})
    curve_k: int | None = field(default=None, metadata={"help": "K of the step-efficiency table (default 100)."})
    shard: str | None = field(
        default=None,
        metadata={"help": "'i/n': run only every n-th run from the i-th (n processes, i = 0..n-1, share the cores)."},
    )
    summary_only: bool = field(default=False, metadata={"help": "Only re-write summary.md and the plots."})
    no_progress: bool = field(default=False, metadata={"help": "No progress bar."})

    def plan(self) -> dict[str, Any]:
        """`run_sweep`'s keyword arguments (methods, K, seeds, folders, shard) parsed from these strings."""
        shard = None
        if self.shard is not None:
            parts = self.shard.split("/")
            if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
                raise ValueError(f"--shard {self.shard!r}: expected i/n, e.g. 0/2 and 1/2 for two processes")
            shard = (int(parts[0]), int(parts[1]))
        return {
            "methods": check_methods(parse_list(self.methods)),
            "ks": parse_list(self.ks, int),
            "seeds": parse_seeds(self.seeds),
            "output_root": self.output_root,
            "work_dir": self.work_dir,
            "progress": not self.no_progress,
            "curve_k": self.curve_k,
            "shard": shard,
        }


def method_values(method: str, settings: SweepSettings) -> dict[str, Any]:
    """The model arguments of one method. `fusion_init="identity"` only applies where the fusion defines it
    (dwatt, concat, last); the others keep their plain init rather than fail."""
    values = dict(METHODS[method])
    if settings.fusion_init != "paper" and CATALOGUE[values["fusion"]].identity_init:
        values["fusion_init"] = settings.fusion_init
    return values


def run_values(settings: SweepSettings, key: RunKey, output_dir: str | Path) -> dict[str, Any]:
    """The `run_ner` arguments of one run: the settings' shared values, the method's, K and the seeds.
    Seed index s gives few-shot sample s and training seed s for every method, so methods are paired:
    same sentences, same batch order."""
    return {
        **settings.run_values(),
        **method_values(key.method, settings),
        "output_dir": str(output_dir),
        "few_shot_k": key.k,
        "few_shot_seed": key.seed,
        "seed": key.seed,
        "do_train": True,
        "do_eval": True,
        # Dev is scored by the Trainer every eval_every steps (and once more at the end, by run_ner's
        # do_eval); test is scored at the same points by TestSplitEvaluator, so no do_predict.
        "eval_strategy": "steps",
        "eval_steps": settings.eval_every,
        "save_strategy": "no",
        "disable_tqdm": True,
    }


def fusion_parameter_counts(settings: SweepSettings, methods: Iterable[str]) -> dict[str, int]:
    """Parameters each method adds to the backbone (heads excluded), from `dwatt.experiments.budget`."""
    from transformers import AutoConfig

    from ..budget import fusion_budget

    counts = {}
    for method in methods:
        model_args = parse_run_values(run_values(settings, RunKey(method, 1, 0), "unused"))[0]
        config_kwargs = model_args.fusion_config_kwargs()
        fusion = config_kwargs.pop("fusion")
        backbone_config = AutoConfig.from_pretrained(model_args.model_name_or_path)
        counts[method] = fusion_budget(backbone_config, fusion, **config_kwargs).fusion_parameters
    return counts


def run_one(
    settings: SweepSettings,
    key: RunKey,
    run_dir: Path,
    test_split,
    fusion_parameters: int,
    callbacks: Sequence[TrainerCallback] = (),
) -> list[dict]:
    """Train one run, score dev and test at every eval point, and return its CSV rows.

    The run folder is emptied first (a killed run may have left files) and pruned afterwards to its small
    JSON files and log; the Trainer's printed logs go to `run.log` there, not to the console.
    """
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    model_args, data_args, training_args = parse_run_values(run_values(settings, key, run_dir))
    test_dataset, label_list, collator = test_split
    evaluator = TestSplitEvaluator(test_dataset, label_list, collator, training_args.per_device_eval_batch_size)
    started = time.perf_counter()
    with open(run_dir / "run.log", "w") as log, contextlib.redirect_stdout(log):
        run_ner(model_args, data_args, training_args, callbacks=[evaluator, *callbacks])
    wall_seconds = round(time.perf_counter() - started, 1)
    if not evaluator.points:  # a run without rows would never count as finished
        raise RuntimeError(f"{key.label} finished without any evaluation; see {run_dir / 'run.log'}")
    (run_dir / "sweep_timing.json").write_text(
        json.dumps({"wall_seconds": wall_seconds, "test_eval_seconds": round(evaluator.test_seconds, 1)}) + "\n"
    )
    prune_run_folder(run_dir)
    return [
        {
            "method": key.method,
            "k": key.k,
            "seed": key.seed,
            "step": step,
            "split": split,
            "f1": scores["f1"],
            "precision": scores["precision"],
            "recall": scores["recall"],
            "fusion_parameters": fusion_parameters,
            "trainable_parameters": evaluator.trainable_parameters,
            "wall_seconds": wall_seconds,
        }
        for step, point in sorted(evaluator.points.items())
        for split, scores in point.items()
    ]


def prune_run_folder(run_dir: Path) -> None:
    """Delete weights, tokenizer and other large files of a finished run; keep the small JSON and the log."""
    for path in run_dir.rglob("*"):
        if path.is_file():
            small = path.stat().st_size <= _KEPT_RUN_FILE_MAX_BYTES
            if not (small and (path.suffix == ".json" or path.name == "run.log")) or path.name == "tokenizer.json":
                path.unlink()
    for folder in sorted((p for p in run_dir.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def plan_runs(methods: Sequence[str], ks: Sequence[int], seeds: Sequence[int]) -> list[RunKey]:
    """Seed index outermost: after each round every method has the same seeds, so paired comparisons
    are complete at any point of a long sweep."""
    return [RunKey(method, k, seed) for seed in seeds for k in ks for method in methods]


def shard_of(plan: Sequence[RunKey], shard: tuple[int, int] | None) -> list[RunKey]:
    """Every n-th run of the plan from index i, for `shard=(i, n)`: n processes (one thread each) can share
    a sweep without running the same run twice. None: the whole plan."""
    if shard is None:
        return list(plan)
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}), got {index}")
    return [key for position, key in enumerate(plan) if position % count == index]


def run_sweep(
    name: str,
    methods: Sequence[str] = DEFAULT_METHODS,
    ks: Sequence[int] = DEFAULT_KS,
    seeds: Sequence[int] = tuple(range(DEFAULT_SEED_COUNT)),
    settings: SweepSettings | None = None,
    output_root: str | Path = "results",
    work_dir: str | Path = "outputs/sweeps",
    callbacks: Sequence[TrainerCallback] = (),
    progress: bool = True,
    curve_k: int | None = None,
    shard: tuple[int, int] | None = None,
) -> Path:
    """Run every (method, K, seed) not yet in `runs.csv` (of this `shard` only, if given), then write the
    summary and plots.

    Returns the results folder. `callbacks` are added to every run's Trainer (tests use them to interrupt
    a run). Exceptions (a crash, Ctrl-C) propagate; the runs finished before are kept.
    """
    from tqdm.auto import tqdm

    settings = settings or SweepSettings()
    methods = check_methods(methods)
    if settings.model_name_or_path and is_dwatt_checkpoint(settings.model_name_or_path):
        raise ValueError("a sweep starts from a plain backbone; a DWAtt checkpoint would ignore the method flags")
    results_dir = Path(output_root) / name
    results_dir.mkdir(parents=True, exist_ok=True)
    runs_file = RunsFile(results_dir / RUNS_FILE)
    with runs_file.locked():  # shards started at once on a new name both find no sweep.json
        check_settings(results_dir, settings)
    runs_file.remove_stale_temporaries()

    plan = shard_of(plan_runs(methods, ks, seeds), shard)
    finished = runs_file.finished()
    pending = [key for key in plan if key not in finished]
    if pending:
        first_args = parse_run_values(run_values(settings, pending[0], "unused"))
        test_split = tokenized_test_split(first_args[0], first_args[1])
        parameters = fusion_parameter_counts(settings, sorted({key.method for key in pending}))
        # smoothing=0: the ETA uses this sitting's mean run time (runs have the same step budget).
        bar = tqdm(total=len(plan), initial=len(plan) - len(pending), unit="run", smoothing=0, disable=not progress)
        with bar:
            for key in pending:
                bar.set_postfix_str(key.label)
                if key not in runs_file.finished():  # another process on this sweep may have done it since
                    run_dir = Path(work_dir) / name / key.label
                    rows = run_one(settings, key, run_dir, test_split, parameters[key.method], callbacks)
                    runs_file.add_run(key, rows)
                bar.update()
    write_summary(results_dir, curve_k=curve_k)
    return results_dir
