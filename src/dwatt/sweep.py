"""Few-shot benchmark sweep: methods x K x seeds through `dwatt.ner.run_ner`, resumable, with a summary.

The protocol is DESIGN.md section 3: the bundled WNUT-16 split (fixed test and dev sets, a pool to sample
from), K training sentences per seed, identical hyper-parameters and step budget for every method, entity
micro F1 on dev and test recorded every `eval_every` steps, paired seeds across methods and paired
differences with 95% confidence intervals.

Every run is one call of `run_ner` (the code behind `scripts/run_ner.py`) with an argument list built by
`run_arguments`, so a sweep run and a hand-run `run_ner.py` job with the same flags are the same run.
Test F1 along training comes from `TestSplitEvaluator`, a callback that scores the test split each time
the Trainer evaluates on dev.

Results live in `<output_root>/<name>/`: `sweep.json` (the fixed settings, checked on resume), `runs.csv`
(one row per run, eval point and split; a run's rows are written at once, atomically, when it finishes),
`summary.md` and two PNG plots. Re-running the same command skips finished runs, so a sweep can span many
sittings, and widening it later (more seeds for some methods, say) only runs what is missing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import TrainerCallback, TrainingArguments

from .configuration_dwatt import FUSIONS_WITH_IDENTITY_INIT
from .metrics import compute_ner_metrics
from .ner import NerDataArguments, load_ner_data, run_ner
from .training import ModelArguments, is_dwatt_checkpoint

# ----------------------------------------------------------------------------------------------------
# What is compared
# ----------------------------------------------------------------------------------------------------

#: Method name -> the `ModelArguments` fields it sets. `deeper` leaves `deeper_num_layers` unset, so the
#: model matches the deeper baseline to DWAtt's parameter budget by itself.
METHODS: dict[str, dict[str, str]] = {
    "last": {"fusion": "last"},
    "deeper": {"fusion": "deeper"},
    "concat": {"fusion": "concat"},
    "scalar_mix": {"fusion": "scalar_mix"},
    "mean": {"fusion": "mean"},
    "dwatt": {"fusion": "dwatt", "dwatt_scale": "none"},
    "dwatt_sqrt_d": {"fusion": "dwatt", "dwatt_scale": "sqrt_d"},
}
DEFAULT_METHODS = ("last", "deeper", "concat", "scalar_mix", "dwatt", "dwatt_sqrt_d")
#: Every other method is compared with these, seed by seed.
BASELINES = ("last", "deeper")
DEFAULT_KS = (50, 100, 200, 500, 1000)
DEFAULT_SEED_COUNT = 5

CSV_COLUMNS = (
    "method", "k", "seed", "step", "split", "f1", "precision", "recall",
    "fusion_parameters", "trainable_parameters", "wall_seconds",
)  # fmt: skip
_INT_COLUMNS = {"k", "seed", "step", "fusion_parameters", "trainable_parameters"}
_FLOAT_COLUMNS = {"f1", "precision", "recall", "wall_seconds"}
SPLITS = ("dev", "test")
#: Scores kept per eval point (the CSV holds the first three; token accuracy helps checks).
OVERALL_SCORES = ("f1", "precision", "recall", "accuracy")
RUNS_FILE = "runs.csv"
SETTINGS_FILE = "sweep.json"
SUMMARY_FILE = "summary.md"
SAMPLE_EFFICIENCY_PLOT = "f1_vs_k.png"
STEP_EFFICIENCY_PLOT = "f1_vs_step.png"
#: Files of a finished run's folder that are kept (small JSON and the log); weights and tokenizer go.
_KEPT_RUN_FILE_MAX_BYTES = 200_000


@dataclass(frozen=True)
class SweepSettings:
    """The hyper-parameters every run of a sweep shares; stored in `sweep.json` and checked on resume.

    The defaults equal `scripts/run_ner.py`'s DEFAULT_JOB (which cannot be imported from a script folder):
    batch 16, eval batch 64, 300 steps, AdamW with linear decay and 10% warm-up (30 of 300 steps), lr 1e-4
    (the best of {5e-5, 1e-4, 2e-4} for `last` on dev, DESIGN.md section 3, then fixed for every method)
    for every parameter: `fusion_learning_rate=None`. A separate 1e-3 for the fusion and head parameters
    was tried and dropped: `last` scored no better on dev with it (31.7 vs 32.3, K=100, 3 seeds), and it
    made the fusions overfit within 100 steps (results/wnut16-fusion-lr-1e-3/). Max length 128. The
    settings are the same for every method, so the step budget is too.
    """

    model_name_or_path: str | None = None  # None: the bundled MiniLM
    max_steps: int = 300
    eval_every: int = 50
    learning_rate: float = 1e-4
    fusion_learning_rate: float | None = None  # one rate for every parameter
    train_batch_size: int = 16
    eval_batch_size: int = 64
    warmup_fraction: float = 0.1
    max_seq_length: int = 128
    freeze_backbone: bool = False
    fusion_init: str = "paper"
    max_eval_samples: int | None = None  # None: the whole dev split (200 tweets)
    max_predict_samples: int | None = None  # None: the whole test split (500 tweets)

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_fraction * self.max_steps)


@dataclass(frozen=True, order=True)
class RunKey:
    """One run: a method trained on the K-sentence sample of one seed index."""

    method: str
    k: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.method}-k{self.k}-s{self.seed}"


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


def method_model_arguments(method: str, settings: SweepSettings) -> list[str]:
    """The model flags of one method. `--fusion_init identity` only applies where the fusion defines it
    (dwatt, concat, last); the others keep their plain init rather than fail."""
    fields = dict(METHODS[method])
    if settings.fusion_init != "paper" and fields["fusion"] in FUSIONS_WITH_IDENTITY_INIT:
        fields["fusion_init"] = settings.fusion_init
    return [item for name, value in fields.items() for item in (f"--{name}", value)]


def run_arguments(settings: SweepSettings, key: RunKey, output_dir: str | Path) -> list[str]:
    """The `run_ner.py` command line of one run (DEFAULT_JOB's form); only the method flags, K and the
    seeds differ between runs. Seed index s gives few-shot sample s and training seed s for every method,
    so methods are paired: same sentences, same batch order."""
    arguments = [
        "--output_dir", str(output_dir),
        *method_model_arguments(key.method, settings),
        "--few_shot_k", str(key.k), "--few_shot_seed", str(key.seed), "--seed", str(key.seed),
        "--do_train", "--do_eval",
        "--max_steps", str(settings.max_steps), "--learning_rate", str(settings.learning_rate),
        "--per_device_train_batch_size", str(settings.train_batch_size),
        "--per_device_eval_batch_size", str(settings.eval_batch_size),
        "--warmup_steps", str(settings.warmup_steps), "--lr_scheduler_type", "linear",
        "--max_seq_length", str(settings.max_seq_length),
        # Dev is scored by the Trainer every eval_every steps (and once more at the end, by run_ner's
        # --do_eval); test is scored at the same points by TestSplitEvaluator, so no --do_predict.
        "--eval_strategy", "steps", "--eval_steps", str(settings.eval_every),
        "--save_strategy", "no", "--logging_steps", "25", "--report_to", "none", "--disable_tqdm", "true",
    ]  # fmt: skip
    if settings.model_name_or_path is not None:
        arguments += ["--model_name_or_path", str(settings.model_name_or_path)]
    if settings.fusion_learning_rate is not None:
        arguments += ["--fusion_learning_rate", str(settings.fusion_learning_rate)]
    if settings.freeze_backbone:
        arguments.append("--freeze_backbone")
    for flag, value in (("--max_eval_samples", settings.max_eval_samples),
                        ("--max_predict_samples", settings.max_predict_samples)):  # fmt: skip
        if value is not None:
            arguments += [flag, str(value)]
    return arguments


def parse_run_arguments(arguments: Sequence[str]) -> tuple[ModelArguments, NerDataArguments, TrainingArguments]:
    """Parse a run's argument list exactly as `scripts/run_ner.py` does."""
    from transformers import HfArgumentParser

    return HfArgumentParser((ModelArguments, NerDataArguments, TrainingArguments)).parse_args_into_dataclasses(
        args=list(arguments)
    )


# ----------------------------------------------------------------------------------------------------
# Test F1 along training
# ----------------------------------------------------------------------------------------------------


class TestSplitEvaluator(TrainerCallback):
    """Records dev metrics at each evaluation and scores the test split with the same model there and then.

    `run_ner` gives the Trainer only the dev split to evaluate, so the test split is predicted here, in
    eval mode with no gradients. Batches hold tweets of similar length (sorted once), which pads about
    half as much as file order; entity F1 does not depend on the order of sentences. Batches are built
    without a DataLoader so no random number is drawn: training proceeds exactly as without this callback.
    An evaluation at a step already recorded (run_ner's final `--do_eval` after the Trainer's own
    end-of-training evaluation) is skipped.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, test_dataset, label_list: Sequence[str], collator, batch_size: int):
        self.test_dataset = test_dataset
        self.label_list = list(label_list)
        self.collator = collator
        self.batch_size = batch_size
        lengths = [len(example["input_ids"]) for example in test_dataset]
        self.order = sorted(range(len(test_dataset)), key=lengths.__getitem__)
        self.points: dict[int, dict[str, dict[str, float]]] = {}  # step -> split -> metrics
        self.trainable_parameters: int | None = None
        self.test_seconds = 0.0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.trainable_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if state.global_step in self.points:
            return
        dev = {name: metrics[f"eval_overall_{name}"] for name in OVERALL_SCORES}
        started = time.perf_counter()
        test = self.score_test_split(model)
        self.test_seconds += time.perf_counter() - started
        self.points[state.global_step] = {"dev": dev, "test": test}

    def score_test_split(self, model) -> dict[str, float]:
        import torch

        was_training = model.training
        model.eval()
        predictions, labels = [], []
        try:
            with torch.no_grad():
                for start in range(0, len(self.order), self.batch_size):
                    batch = self.collator([self.test_dataset[i] for i in self.order[start : start + self.batch_size]])
                    gold = batch.pop("labels")
                    logits = model(**{name: tensor.to(model.device) for name, tensor in batch.items()}).logits
                    predictions.extend(logits.argmax(dim=-1).cpu().numpy())
                    labels.extend(gold.numpy())
        finally:
            model.train(was_training)
        scores = compute_ner_metrics(predictions, labels, self.label_list, entity_level=False)
        return {name: scores[f"overall_{name}"] for name in OVERALL_SCORES}


def tokenized_test_split(model_args: ModelArguments, data_args: NerDataArguments):
    """The test split tokenised as `run_ner` tokenises it, its label list and the collator."""
    from datasets import DatasetDict
    from transformers import AutoTokenizer

    from .data import make_token_collator, tokenize_ner_dataset

    raw = load_ner_data(data_args)
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, revision=model_args.revision, trust_remote_code=model_args.trust_remote_code
    )
    tokenized, _ = tokenize_ner_dataset(
        DatasetDict({"test": raw["test"]}), tokenizer, data_args.max_seq_length, data_args.label_all_tokens
    )
    label_list = raw["train" if "train" in raw else "test"].features["ner_tags"].feature.names
    return tokenized["test"], label_list, make_token_collator(tokenizer)


# ----------------------------------------------------------------------------------------------------
# The results file
# ----------------------------------------------------------------------------------------------------


class RunsFile:
    """`runs.csv`: rows of finished runs only. A run's rows are added in one atomic replace of the file
    (temp file + `os.replace`) under an exclusive lock, so a killed run leaves no rows and two processes
    sharing a sweep cannot lose or duplicate each other's rows."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as handle:
            return [_typed_row(row) for row in csv.DictReader(handle)]

    def finished(self) -> set[RunKey]:
        return {RunKey(row["method"], row["k"], row["seed"]) for row in self.read()}

    def add_run(self, key: RunKey, rows: Sequence[dict]) -> bool:
        """Append one run's rows; False (nothing written) when the run is already there."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if key in self.finished():
                return False
            previous = self.path.read_text() if self.path.is_file() else ""
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
            if not previous:
                writer.writeheader()
            writer.writerows(rows)
            temporary = self.path.with_name(f"{self.path.name}.tmp.{os.getpid()}")
            with temporary.open("w", newline="") as handle:
                handle.write(previous + buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            return True

    def remove_stale_temporaries(self) -> None:
        """Temp files left by a process killed while writing; any present while we hold the lock are stale."""
        with self._locked():
            for temporary in self.path.parent.glob(f"{self.path.name}.tmp.*"):
                temporary.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A hidden, empty file next to the CSV: every process sharing the sweep locks the same one.
        with open(self.path.with_name(f".{self.path.name}.lock"), "w") as lock:
            try:
                import fcntl
            except ImportError:  # not POSIX: one process per sweep name, then
                yield
                return
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _typed_row(row: dict) -> dict:
    typed = dict(row)
    for name in _INT_COLUMNS:
        typed[name] = int(row[name])
    for name in _FLOAT_COLUMNS:
        typed[name] = float(row[name])
    return typed


# ----------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------


def fusion_parameter_counts(settings: SweepSettings, methods: Iterable[str]) -> dict[str, int]:
    """Parameters each method adds to the backbone (heads excluded), from `dwatt.budget`."""
    from transformers import AutoConfig

    from .budget import fusion_budget

    counts = {}
    for method in methods:
        model_args = parse_run_arguments(run_arguments(settings, RunKey(method, 1, 0), "unused"))[0]
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
    model_args, data_args, training_args = parse_run_arguments(run_arguments(settings, key, run_dir))
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


def check_settings(results_dir: Path, settings: SweepSettings) -> None:
    """Write `sweep.json` on the first run; afterwards refuse settings that differ from it (mixing them
    would break the identical-hyper-parameters rule). Methods, K and seeds may change between sittings."""
    path = results_dir / SETTINGS_FILE
    wanted = asdict(settings)
    if path.is_file():
        stored = json.loads(path.read_text())
        differing = {name: (stored.get(name), value) for name, value in wanted.items() if stored.get(name) != value}
        if differing:
            raise ValueError(
                f"{path} was made with other settings {differing} (stored, asked); "
                "use another --name for a sweep with different hyper-parameters"
            )
        return
    results_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def run_sweep(
    name: str,
    methods: Sequence[str] = DEFAULT_METHODS,
    ks: Sequence[int] = DEFAULT_KS,
    seeds: Sequence[int] = tuple(range(DEFAULT_SEED_COUNT)),
    settings: SweepSettings = SweepSettings(),
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

    methods = check_methods(methods)
    if settings.model_name_or_path and is_dwatt_checkpoint(settings.model_name_or_path):
        raise ValueError("a sweep starts from a plain backbone; a DWAtt checkpoint would ignore the method flags")
    results_dir = Path(output_root) / name
    check_settings(results_dir, settings)
    runs_file = RunsFile(results_dir / RUNS_FILE)
    runs_file.remove_stale_temporaries()

    plan = shard_of(plan_runs(methods, ks, seeds), shard)
    finished = runs_file.finished()
    pending = [key for key in plan if key not in finished]
    if pending:
        first_args = parse_run_arguments(run_arguments(settings, pending[0], "unused"))
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


# ----------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences (method minus baseline) and its confidence interval (None for n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def paired_difference(method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Student-t interval of the mean paired difference: mean +- t(1-a/2, n-1) * sd / sqrt(n)."""
    from scipy import stats  # installed with scikit-learn, which seqeval needs

    if len(method) != len(baseline) or not method:
        raise ValueError(f"need paired, non-empty scores; got {len(method)} and {len(baseline)}")
    differences = [a - b for a, b in zip(method, baseline)]
    mean = statistics.fmean(differences)
    n = len(differences)
    if n < 2:
        return PairedDifference(mean, None, None, n, confidence)
    half_width = stats.t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(differences) / math.sqrt(n)
    return PairedDifference(mean, mean - half_width, mean + half_width, n, confidence)


def final_scores(rows: Iterable[dict], split: str = "test") -> dict[tuple[str, int], dict[int, float]]:
    """(method, K) -> {seed: F1 at the run's last eval point} for one split."""
    last: dict[tuple[str, int, int], tuple[int, float]] = {}
    for row in rows:
        if row["split"] == split:
            key = (row["method"], row["k"], row["seed"])
            if key not in last or row["step"] > last[key][0]:
                last[key] = (row["step"], row["f1"])
    scores: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for (method, k, seed), (_, f1) in last.items():
        scores[(method, k)][seed] = f1
    return dict(scores)


def best_dev_scores(rows: Iterable[dict]) -> dict[tuple[str, int], dict[int, float]]:
    """(method, K) -> {seed: test F1 at the eval point where that run's dev F1 was highest}.

    Early stopping on dev, done afterwards from the recorded points (ties go to the earlier step). It
    costs no extra training and shows whether a method's early lead survives model selection.
    """
    points: dict[tuple[str, int, int], dict[int, dict[str, float]]] = defaultdict(dict)
    for row in rows:
        points[(row["method"], row["k"], row["seed"])].setdefault(row["step"], {})[row["split"]] = row["f1"]
    scores: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for (method, k, seed), by_step in points.items():
        scored = [(step, split_f1) for step, split_f1 in sorted(by_step.items()) if {"dev", "test"} <= set(split_f1)]
        if scored:
            _, best = max(scored, key=lambda item: (item[1]["dev"], -item[0]))
            scores[(method, k)][seed] = best["test"]
    return dict(scores)


def scores_at_step(rows: Iterable[dict], step: int, split: str = "test") -> dict[tuple[str, int], dict[int, float]]:
    """(method, K) -> {seed: F1 at `step`} for one split (runs without that eval point are left out)."""
    scores: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row["split"] == split and row["step"] == step:
            scores[(row["method"], row["k"])][row["seed"]] = row["f1"]
    return dict(scores)


def curve_scores(rows: Iterable[dict], split: str = "test") -> dict[tuple[str, int], dict[int, list[float]]]:
    """(method, K) -> {step: [F1 of each seed]} for one split."""
    curves: dict[tuple[str, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["split"] == split:
            curves[(row["method"], row["k"])][row["step"]].append(row["f1"])
    return {key: dict(value) for key, value in curves.items()}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# ----------------------------------------------------------------------------------------------------
# Summary and plots
# ----------------------------------------------------------------------------------------------------


def _ordered_methods(names: Iterable[str]) -> list[str]:
    order = list(METHODS)
    return sorted(set(names), key=lambda name: (order.index(name) if name in order else len(order), name))


def _score_table(scores: dict[tuple[str, int], dict[int, float]], methods: list[str], ks: list[int]) -> list[str]:
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        cells = []
        for k in ks:
            seeds = scores.get((method, k))
            if not seeds:
                cells.append("")
                continue
            mean, std = _mean_std(list(seeds.values()))
            spread = f" ± {100 * std:.1f}" if len(seeds) > 1 else ""  # one seed has no spread to show
            cells.append(f"{100 * mean:.1f}{spread} ({len(seeds)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _difference_cell(ours: dict[int, float], theirs: dict[int, float]) -> str:
    """Paired difference over the seeds both have, as 'mean [low, high] (n) **sig**'; '' when none."""
    common = sorted(set(ours) & set(theirs))
    if not common:
        return ""
    diff = paired_difference([ours[s] for s in common], [theirs[s] for s in common])
    interval = "n/a" if diff.low is None else f"{100 * diff.low:+.2f}, {100 * diff.high:+.2f}"
    marker = " **sig**" if diff.significant else ""
    return f"{100 * diff.mean:+.2f} [{interval}] ({diff.n}){marker}"


def _difference_table(
    scores: dict[tuple[str, int], dict[int, float]], methods: list[str], ks: list[int], baseline: str
) -> list[str]:
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        if method != baseline:
            cells = [_difference_cell(scores.get((method, k), {}), scores.get((baseline, k), {})) for k in ks]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _step_difference_table(rows: list[dict], methods: list[str], k: int, baseline: str) -> list[str]:
    """Paired test-F1 differences vs `baseline` at every eval point of K=k: step efficiency with CIs."""
    steps = sorted({row["step"] for row in rows if row["k"] == k})
    lines = ["| method | " + " | ".join(f"step {step}" for step in steps) + " |", "|---|" + "---:|" * len(steps)]
    at_step = {step: scores_at_step(rows, step) for step in steps}
    for method in methods:
        if method != baseline:
            cells = [
                _difference_cell(at_step[s].get((method, k), {}), at_step[s].get((baseline, k), {})) for s in steps
            ]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _parameter_table(rows: list[dict], methods: list[str]) -> list[str]:
    added = {row["method"]: row["fusion_parameters"] for row in rows}
    trainable = {row["method"]: row["trainable_parameters"] for row in rows}
    reference = added.get("dwatt") or added.get("dwatt_sqrt_d")
    lines = [
        "| method | added parameters | vs DWAtt | trainable parameters (with head) |",
        "|---|---:|---:|---:|",
    ]
    for method in methods:
        relative = f"{added[method] / reference:.2f}x" if reference else "-"
        lines.append(f"| {method} | {added[method]:,} | {relative} | {trainable[method]:,} |")
    return lines


def _curve_table(curves, methods: list[str], k: int) -> list[str]:
    steps = sorted({step for (method, kk), points in curves.items() if kk == k for step in points})
    lines = ["| method | " + " | ".join(f"step {step}" for step in steps) + " |", "|---|" + "---:|" * len(steps)]
    for method in methods:
        points = curves.get((method, k), {})
        cells = [f"{100 * statistics.fmean(points[step]):.1f}" if step in points else "" for step in steps]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def write_summary(results_dir: str | Path, curve_k: int | None = None) -> Path | None:
    """Write `summary.md` and the two plots from `runs.csv`; None when there are no runs yet."""
    results_dir = Path(results_dir)
    rows = RunsFile(results_dir / RUNS_FILE).read()
    if not rows:
        return None
    settings = json.loads((results_dir / SETTINGS_FILE).read_text()) if (results_dir / SETTINGS_FILE).is_file() else {}
    methods = _ordered_methods(row["method"] for row in rows)
    ks = sorted({row["k"] for row in rows})
    if curve_k is None or curve_k not in ks:
        curve_k = 100 if 100 in ks else ks[0]
    test, dev, selected = final_scores(rows, "test"), final_scores(rows, "dev"), best_dev_scores(rows)
    runs = {(row["method"], row["k"], row["seed"]) for row in rows}
    hours = sum({(r["method"], r["k"], r["seed"]): r["wall_seconds"] for r in rows}.values()) / 3600

    lines = [
        f"# Few-shot sweep `{results_dir.name}`",
        "",
        f"{len(runs)} finished runs ({hours:.1f} h of run time: each run's wall clock, summed; parallel shards "
        "take less). Entity micro F1 (seqeval) x 100 on the bundled "
        "WNUT-16 split; K training sentences sampled from the pool per seed; seed index s = few-shot sample s = "
        "training seed s for every method (paired). Cells: mean ± std (number of seeds; one seed shows its "
        "score alone), at the last eval point.",
        "",
        "Settings (identical for every method): "
        + ", ".join(f"{name}={value}" for name, value in sorted(settings.items())),
        "",
        "## Test F1",
        "",
        *_score_table(test, methods, ks),
        "",
        "## Dev F1 (for choosing settings; report test)",
        "",
        *_score_table(dev, methods, ks),
        "",
        "## Test F1 at each run's best dev point (early stopping on dev, chosen after the fact)",
        "",
        *_score_table(selected, methods, ks),
    ]
    for baseline in BASELINES:
        if baseline in methods:
            lines += [
                "",
                f"## Paired test-F1 differences vs `{baseline}`",
                "",
                "Mean per-seed difference [95% CI, Student t] (seeds). **sig**: the interval excludes 0.",
                "",
                "At the last eval point:",
                "",
                *_difference_table(test, methods, ks, baseline),
                "",
                "At each run's best dev point:",
                "",
                *_difference_table(selected, methods, ks, baseline),
            ]
    curves = curve_scores(rows, "test")
    lines += [
        "",
        "## Parameters (dwatt.budget: added to the backbone, heads excluded; trainable counted in the run)",
        "",
        *_parameter_table(rows, methods),
        "",
        f"## Test F1 along training, K={curve_k} (mean over seeds)",
        "",
        *_curve_table(curves, methods, curve_k),
        "",
    ]
    for baseline in BASELINES:
        if baseline in methods:
            lines += [
                f"Paired test-F1 differences vs `{baseline}` along training, K={curve_k}:",
                "",
                *_step_difference_table(rows, methods, curve_k, baseline),
                "",
            ]
    lines += [
        f"![test F1 vs K]({SAMPLE_EFFICIENCY_PLOT})",
        "",
        f"![test F1 vs step]({STEP_EFFICIENCY_PLOT})",
        "",
    ]
    path = results_dir / SUMMARY_FILE
    with _replaced_atomically(path) as temporary:  # shards may finish together
        temporary.write_text("\n".join(lines))
    plot_sample_efficiency(test, methods, ks, results_dir / SAMPLE_EFFICIENCY_PLOT)
    plot_step_efficiency(curves, methods, ks, results_dir / STEP_EFFICIENCY_PLOT)
    return path


@contextlib.contextmanager
def _replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; it replaces `path` in one step when the block succeeds."""
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_sample_efficiency(scores, methods: list[str], ks: list[int], path: Path) -> None:
    """Final test F1 against K (log axis), one line per method, error bars = std over seeds."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for method in methods:
        present = [k for k in ks if scores.get((method, k))]
        stats_ = [_mean_std(list(scores[(method, k)].values())) for k in present]
        axis.errorbar(present, [100 * m for m, _ in stats_], yerr=[100 * s for _, s in stats_], marker="o",
                      capsize=3, label=method)  # fmt: skip
    axis.set_xscale("log")
    axis.set_xticks(ks, [str(k) for k in ks])
    axis.set_xlabel("K (training sentences)")
    axis.set_ylabel("test entity F1")
    axis.set_title("Sample efficiency")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with _replaced_atomically(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)


def plot_step_efficiency(curves, methods: list[str], ks: list[int], path: Path) -> None:
    """Test F1 against training step, one panel per K, mean over seeds with a +-std band."""
    plt = _pyplot()
    columns = min(3, len(ks))
    rows = math.ceil(len(ks) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), sharey=True, squeeze=False)
    for axis in axes.flat[len(ks) :]:
        axis.set_visible(False)
    for axis, k in zip(axes.flat, ks):
        for method in methods:
            points = curves.get((method, k))
            if not points:
                continue
            steps = sorted(points)
            stats_ = [_mean_std(points[step]) for step in steps]
            means = [100 * m for m, _ in stats_]
            line = axis.plot(steps, means, marker=".", label=method)[0]
            lows = [m - 100 * s for m, (_, s) in zip(means, stats_)]
            highs = [m + 100 * s for m, (_, s) in zip(means, stats_)]
            axis.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.15)
        axis.set_title(f"K={k}")
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("test entity F1")
    axes.flat[len(ks) - 1].legend(fontsize="small")
    figure.tight_layout()
    with _replaced_atomically(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
