"""Runs a sweep config's runs through `run_ner`, resumably and in shards: per regime, the tuning runs (every
rate of the grid on the tuning seeds), then the other seeds at the rate chosen on dev."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ...assets import resolve_model_path
from ...fusions import CATALOGUE
from ...protocol import METHODS
from ...tasks.ner import parse_run_values, run_ner
from ...tasks.runner import is_dwatt_checkpoint
from .config import SweepConfig, SweepConfigError, check_methods, load_sweep_config, with_lists
from .evaluator import TestSplitEvaluator, tokenized_test_split
from .selection import choose_rates
from .store import RUNS_FILE, RunKey, RunsFile, check_settings, claimed
from .summary import write_summary

#: Files of a finished run's folder that are kept (small JSON and the log); weights and tokenizer go.
_KEPT_RUN_FILE_MAX_BYTES = 200_000
#: How long a process waits before looking again for tuning runs it needs that train in another process.
_WAIT_SECONDS = 30
logger = logging.getLogger(__name__)


def parse_list(text: str | Sequence, convert=str) -> list:
    """A comma-separated CLI value (or an already split sequence) as a list."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [convert(part.strip() if isinstance(part, str) else part) for part in parts if str(part).strip()]


def parse_whole_numbers(flag: str, text: str, minimum: int) -> list[int]:
    """A comma-separated list of whole numbers >= `minimum` from the command line, or an error naming the flag."""
    try:
        values = parse_list(text, int)
    except ValueError:
        values = []
    if not values or min(values) < minimum:
        raise SweepConfigError(f"{flag} {text!r}: expected whole numbers >= {minimum}, comma-separated")
    return values


def parse_seeds(text: str) -> list[int]:
    """`"5"` means seed indices 0..4; `"0,3,7"` lists them (`"0,"`: seed 0 alone)."""
    if "," in text:
        return parse_whole_numbers("--seeds", text, 0)
    if not text.strip().isdigit() or int(text) < 1:
        raise SweepConfigError(f"--seeds {text!r}: expected a count N >= 1 (seeds 0..N-1) or a list such as 0,3,7 "
                               "(seed 0 alone: 0,)")  # fmt: skip
    return list(range(int(text)))


def parse_methods(text: str) -> list[str]:
    def fail(flag: str, message: str):
        raise SweepConfigError(f"{flag} {text!r}: {message}")

    return check_methods(parse_list(text), "--methods", fail)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.split("/")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts) or not 0 <= int(parts[0]) < int(parts[1]):
        raise SweepConfigError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/2 and 1/2 for two processes")
    return int(parts[0]), int(parts[1])


@dataclass
class SweepArguments:
    """Which sweep to run and where (`scripts/fewshot_sweep.py`); what it runs is in its config file."""

    config: str = field(metadata={"help": "A sweep config (configs/sweeps/*.yaml)."})
    set: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Overrides of config values, key.path=value (e.g. settings.max_steps=50 backbone=bert-base-cased); "
            "given again, it adds more.",
            "action": "extend",
        },
    )
    # --methods/--ks/--seeds/--regimes choose what this sitting trains; the summary is always of the config's own
    # lists (after --set), so a sitting of a part never rewrites it as if the rest were missing.
    methods: str | None = field(
        default=None,
        metadata={
            "help": f"Train only these methods (comma-separated, from: {', '.join(METHODS)}); the summary "
            "stays the whole config's (change its lists with --set)."
        },
    )
    ks: str | None = field(default=None, metadata={"help": "Only these few-shot sizes K (comma-separated)."})
    seeds: str | None = field(
        default=None, metadata={"help": "A count N (seed indices 0..N-1) or a list '0,3,7' (seed 0 alone: '0,')."}
    )
    regimes: str | None = field(default=None, metadata={"help": "Only these regimes of the config (comma-separated)."})
    output_root: str = field(default="results", metadata={"help": "Where results/<name>/ is written."})
    work_dir: str = field(default="outputs/sweeps", metadata={"help": "Run folders (pruned to small files)."})
    shard: str | None = field(
        default=None,
        metadata={
            "help": "'i/n': start with every n-th run from the i-th, then help the other processes (n "
            "processes, i = 0..n-1, share the cores and --work_dir)."
        },
    )
    summary_only: bool = field(default=False, metadata={"help": "Only re-write summary.md and the plots."})
    no_progress: bool = field(default=False, metadata={"help": "No progress bar."})

    def load(self) -> SweepConfig:
        """The config file with the overrides and list restrictions applied."""
        config = load_sweep_config(self.config, self.set)
        return with_lists(
            config,
            methods=parse_methods(self.methods) if self.methods else None,
            ks=parse_whole_numbers("--ks", self.ks, 1) if self.ks else None,
            seeds=parse_seeds(self.seeds) if self.seeds else None,
            regimes=parse_list(self.regimes) if self.regimes else None,
        )


def method_values(method: str, fusion_init: str) -> dict[str, Any]:
    """The model arguments of one method. `fusion_init="identity"` only applies where the fusion defines it
    (dwatt, concat, last); the others keep their plain init rather than fail."""
    values = dict(METHODS[method])
    if fusion_init != "paper" and CATALOGUE[values["fusion"]].identity_init:
        values["fusion_init"] = fusion_init
    return values


def run_values(config: SweepConfig, key: RunKey, output_dir: str | Path) -> dict[str, Any]:
    """The `run_ner` arguments of one run: the config's shared settings and data, the regime's, the rate, the
    method's, K and the seeds. Seed index s gives few-shot sample s and training seed s for every method,
    regime and rate, so runs are paired: same sentences, same batch order."""
    regime = config.regimes[key.regime]
    settings = replace(config.settings, learning_rate=key.learning_rate)
    return {
        **settings.run_values(),
        **config.data,
        **regime.model_values,
        **method_values(key.method, settings.fusion_init),
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


@dataclass(frozen=True)
class Slot:
    """A place in the plan: a run whose rate is fixed (`learning_rate`), or, after a regime's tuning runs,
    one whose rate is the one chosen for its cell (None until chosen)."""

    regime: str
    method: str
    k: int
    seed: int
    learning_rate: float | None

    def key(self, chosen: dict) -> RunKey | None:
        rate = self.learning_rate
        if rate is None:
            choice = chosen.get((self.regime, self.method, self.k))
            rate = choice.learning_rate if choice else None
        return None if rate is None else RunKey(self.method, self.k, self.seed, self.regime, rate)


def plan_slots(config: SweepConfig) -> list[Slot]:
    """Regime by regime: the tuning runs (every rate on the tuning seeds), then the other seeds at the chosen
    rate. Seed index is outermost within a stage, so paired comparisons fill up evenly."""
    slots = []
    for regime in config.regimes.values():
        tuning = config.selection.tuning_seeds if regime.tuned else config.seeds
        slots += [Slot(regime.name, method, k, seed, rate)
                  for seed in tuning for k in config.ks for method in config.methods
                  for rate in regime.learning_rates]  # fmt: skip
        if regime.tuned:
            slots += [Slot(regime.name, method, k, seed, None)
                      for seed in config.seeds if seed not in tuning
                      for k in config.ks for method in config.methods]  # fmt: skip
    return slots


def shard_of(plan: Sequence, shard: tuple[int, int] | None) -> list:
    """Every n-th item of the plan from index i, for `shard=(i, n)`: n processes (one thread each) can share
    a sweep without running the same run twice. None: the whole plan."""
    if shard is None:
        return list(plan)
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}), got {index}")
    return [item for position, item in enumerate(plan) if position % count == index]


def fusion_parameter_counts(config: SweepConfig, methods: Iterable[str]) -> dict[str, int]:
    """Parameters each method adds to the backbone (heads excluded), from `dwatt.experiments.budget`."""
    from transformers import AutoConfig

    from ..budget import fusion_budget

    counts = {}
    regime = next(iter(config.regimes.values()))
    for method in methods:
        key = RunKey(method, 1, 0, regime.name, regime.learning_rates[0])
        model_args = parse_run_values(run_values(config, key, "unused"))[0]
        config_kwargs = model_args.fusion_config_kwargs()
        fusion = config_kwargs.pop("fusion")
        backbone_config = AutoConfig.from_pretrained(model_args.model_name_or_path)
        counts[method] = fusion_budget(backbone_config, fusion, **config_kwargs).fusion_parameters
    return counts


def run_one(
    config: SweepConfig,
    key: RunKey,
    run_dir: Path,
    test_split,
    fusion_parameters: int,
    callbacks: Sequence[TrainerCallback] = (),
) -> tuple[list[dict], dict]:
    """Train one run, score dev and test at every eval point; return its CSV rows and its per-sentence test
    counts (a `store.SentenceCounts` record).

    The run folder is emptied first (a killed run may have left files) and pruned afterwards to its small
    JSON files and log; the Trainer's printed logs go to `run.log` there, not to the console.
    """
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    model_args, data_args, training_args = parse_run_values(run_values(config, key, run_dir))
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
    rows = [
        {
            **key.fields(),
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
    return rows, evaluator.kept_counts()


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


def run_sweep(
    config: SweepConfig,
    output_root: str | Path = "results",
    work_dir: str | Path = "outputs/sweeps",
    callbacks: Sequence[TrainerCallback] = (),
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    wait_seconds: float = _WAIT_SECONDS,
) -> Path:
    """Run every run of the config not yet in `runs.csv`, then write the summary and plots. Returns the results
    folder.

    Processes sharing a sweep (one per `shard`, the same `output_root` and `work_dir`) each start with their
    own share of the plan, then take up any other ready run no process is running: every run is held under a
    lock file in `work_dir` while it trains, so none runs twice, a shard never idles while runs are left, and
    a killed process's run is taken up again. A run whose rate waits on tuning runs still training elsewhere
    is waited for (polling `runs.csv`). `callbacks` are added to every run's Trainer (tests use them to
    interrupt a run). Exceptions (a crash, Ctrl-C) propagate; finished runs stay.
    """
    from tqdm.auto import tqdm

    backbone = config.settings.model_name_or_path
    if backbone and is_dwatt_checkpoint(resolve_model_path(backbone)):  # an asset not installed fails here, named
        raise ValueError("a sweep starts from a plain backbone; a DWAtt checkpoint would ignore the method flags")
    results_dir = Path(output_root) / config.name
    results_dir.mkdir(parents=True, exist_ok=True)
    log_extra_tuning_seeds(config)
    runs_file = RunsFile(results_dir / RUNS_FILE)
    with runs_file.locked():  # shards started at once on a new name both find no sweep.json
        check_settings(results_dir, config.fixed_part(), has_runs=bool(runs_file.read()))
    runs_file.remove_stale_temporaries()

    plan = plan_slots(config)
    own = shard_of(plan, shard)
    in_share = frozenset(own)
    order = own + [slot for slot in plan if slot not in in_share]  # own share first, then the rest
    runs_dir = Path(work_dir) / config.name
    test_split = parameters = None
    # The bar counts the whole sweep's runs, whichever process finished them; `initial` keeps runs finished
    # before this sitting out of the rate, so the ETA is this sitting's (smoothing=0: its mean run time).
    rows = runs_file.read()
    chosen = choose_rates(rows, config)
    finished_before = {slot.key(chosen) for slot in plan} & {RunKey.of(row) for row in rows}
    label = f"shard {shard[0]}/{shard[1]}" if shard else None
    with tqdm(total=len(plan), initial=len(finished_before), unit="run", smoothing=0, desc=label,
              disable=not progress) as bar:  # fmt: skip
        while True:
            rows = runs_file.read()
            finished, chosen = {RunKey.of(row) for row in rows}, choose_rates(rows, config)
            keys = [slot.key(chosen) for slot in order]
            bar.n = sum(key in finished for key in keys)
            bar.refresh()
            ready = [key for key in keys if key is not None and key not in finished]
            started = False
            for key in ready:
                with claimed(runs_dir / f"{key.label}.lock") as mine:
                    if not mine or key in runs_file.finished():  # running elsewhere, or finished since the read
                        continue
                    if test_split is None:
                        first_args = parse_run_values(run_values(config, key, "unused"))
                        test_split = tokenized_test_split(first_args[0], first_args[1])
                        parameters = fusion_parameter_counts(config, config.methods)
                    bar.set_postfix_str(key.label)
                    run_rows, counts = run_one(config, key, runs_dir / key.label, test_split, parameters[key.method],
                                               callbacks)  # fmt: skip
                    runs_file.add_run(key, run_rows, counts)
                    started = True
                    break
            if started:
                continue
            if all(key is not None for key in keys):
                break  # every run left is running in another process, which will finish it
            bar.set_postfix_str("waiting for tuning runs of another process")
            time.sleep(wait_seconds)
    write_summary(results_dir, config.full)  # the whole config's plan, whatever this sitting was limited to
    return results_dir


def log_extra_tuning_seeds(config: SweepConfig) -> None:
    """Say so when a sitting's seeds leave out tuning seeds of a tuned regime: a rate is chosen on every tuning
    seed, so their tuning runs are trained too."""
    extra = [seed for seed in config.selection.tuning_seeds if seed not in config.seeds]
    tuned = [regime.name for regime in config.regimes.values() if regime.tuned]
    if extra and tuned:
        logger.warning(
            "seeds %s leave out tuning seeds %s; the tuning runs of those seeds are trained too in regime(s) %s: a "
            "rate is chosen on the mean dev F1 of every tuning seed %s", list(config.seeds), extra, ", ".join(tuned),
            list(config.selection.tuning_seeds),
        )  # fmt: skip
