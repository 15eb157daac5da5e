"""The sweep's results file: rows written under a lock, never twice, read back typed."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from .fingerprints import is_tokenizer_file

CSV_COLUMNS = (
    "regime", "learning_rate", "method", "k", "seed", "step", "split", "f1", "precision", "recall",
    "fusion_parameters", "trainable_parameters", "wall_seconds",
)  # fmt: skip
_INT_COLUMNS = {"k", "seed", "step", "fusion_parameters", "trainable_parameters"}
_FLOAT_COLUMNS = {"f1", "precision", "recall", "wall_seconds", "learning_rate"}
RUNS_FILE = "runs.csv"
COUNTS_FILE = "sentence_counts.jsonl"
SETTINGS_FILE = "sweep.json"
logger = logging.getLogger(__name__)


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
        return {RunKey.of(row) for row in self.read()}

    def add_run(self, key: RunKey, rows: Sequence[dict], counts: dict | None = None) -> bool:
        """Append one run's rows (and its per-sentence test counts, a `SentenceCounts` record) in one locked
        step; False (nothing written) when the run is already there. The counts go first: a run is finished
        only once its rows are in, and counts of an unfinished run are replaced when it is run again."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.locked():
            if key in self.finished():
                return False
            if counts is not None:
                SentenceCounts(self.path.with_name(COUNTS_FILE)).replace_run(key, counts)
            previous = self.path.read_text() if self.path.is_file() else ""
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
            if not previous:
                writer.writeheader()
            writer.writerows(rows)
            _atomic_write(self.path, previous + buffer.getvalue())
            return True

    def remove_stale_temporaries(self) -> None:
        """Temp files left by a process killed while writing; any present while we hold the lock are stale."""
        with self.locked():
            for name in (self.path.name, COUNTS_FILE):
                for temporary in self.path.parent.glob(f"{name}.tmp.*"):
                    temporary.unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A hidden, empty file next to the CSV: every process sharing the sweep locks the same one.
        with FileLock(self.path.with_name(f".{self.path.name}.lock")):
            yield


@contextlib.contextmanager
def claimed(lock_path: str | Path) -> Iterator[bool]:
    """Hold the run whose lock file this is while the block runs, so no other process sharing the sweep starts
    it too; yields False (and holds nothing) when another process holds it. The operating system releases the
    lock of a killed process, so a killed run can be taken up again."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _typed_row(row: dict) -> dict:
    typed = dict(row)
    for name in _INT_COLUMNS:
        typed[name] = int(row[name])
    for name in _FLOAT_COLUMNS:
        if name in row:  # files of the first sweeps have no regime and learning-rate columns
            typed[name] = float(row[name])
    return typed


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    with temporary.open("w", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class SentenceCounts:
    """`sentence_counts.jsonl`: per run, the test split's per-sentence [true positive, predicted, gold] entity
    counts at its last eval point and at its best dev point, so summaries can resample test sentences
    (bootstrap) as well as seeds. One JSON line per run; counts are stored as base64 of zlib-compressed
    uint16 (about 1 KB a run). Written only under `RunsFile.locked`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict[RunKey, dict[int, np.ndarray]]:
        """RunKey -> {step: counts [sentences, 3]}."""
        if not self.path.is_file():
            return {}
        records = {}
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                records[RunKey.of(record)] = {
                    int(step): decode_counts(text, record["sentences"]) for step, text in record["points"].items()
                }
            except (ValueError, KeyError, zlib.error) as error:
                raise ValueError(f"{self.path}:{number}: unreadable counts line ({error})") from None
        return records

    def replace_run(self, key: RunKey, record: dict) -> None:
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        kept = [line for line in lines if line.strip() and RunKey.of(json.loads(line)) != key]
        line = json.dumps({**key.fields(), **record}, sort_keys=True)
        _atomic_write(self.path, "\n".join([*kept, line]) + "\n")


def encode_counts(counts: np.ndarray) -> str:
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != 3 or counts.min(initial=0) < 0 or counts.max(initial=0) > 65535:
        raise ValueError(f"expected [sentences, 3] counts in 0..65535, got shape {counts.shape}")
    return base64.b64encode(zlib.compress(counts.astype("<u2").tobytes(), 9)).decode("ascii")


def decode_counts(text: str, sentences: int) -> np.ndarray:
    values = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<u2").astype(np.int64)
    if values.size != 3 * sentences:
        raise ValueError(f"{values.size} counts for {sentences} sentences; expected {3 * sentences}")
    return values.reshape(sentences, 3)


def check_settings(results_dir: Path, wanted: dict[str, Any], has_runs: bool = True, read_only: bool = False) -> None:
    """Write `sweep.json` on the first run; afterwards refuse settings that differ from it (mixing them
    would break the identical-hyper-parameters rule). Methods, K, seeds and rates may change between
    sittings, and so may the set of regimes (`--regimes frozen` runs one of them first), but a regime
    already stored must keep its values. A data file whose content changed (`data_sha256`), or a local backbone
    folder whose config or weights changed (`backbone_sha256`), is refused by name. While no run has finished
    (`has_runs` False) nothing is fixed yet: the file is written anew. Call it under the results file's lock
    (`RunsFile.locked`): shards started together race here.

    `read_only` (a summary-only call): the same checks, but `sweep.json` is never written; without one there is
    nothing to check against."""
    path = results_dir / SETTINGS_FILE
    wanted = json.loads(json.dumps(wanted))  # compared as stored: tuples become lists
    if path.is_file() and (has_runs or read_only):
        stored = json.loads(path.read_text())
        stored_regimes, wanted_regimes = stored.get("regimes", {}), wanted.get("regimes", {})
        differing = {
            name: (stored.get(name), value)
            for name, value in wanted.items()
            if name not in ("regimes", *_FINGERPRINTS) and stored.get(name) != value
        }
        differing.update(
            {
                f"regimes.{name}": (stored_regimes[name], values)
                for name, values in wanted_regimes.items()
                if name in stored_regimes and stored_regimes[name] != values
            }
        )
        if differing:
            raise ValueError(
                f"{path} was made with other settings {differing} (stored, asked); "
                + ("a summary shows the settings its runs were trained with: drop the --set overrides that differ"
                   if read_only else "give a sweep with different settings another name")
            )  # fmt: skip
        _check_data_unchanged(path, stored.get("data_sha256"), wanted.get("data_sha256", {}))
        backbone_recorded = _check_backbone_unchanged(path, stored, wanted, read_only)
        if read_only:
            return
        if set(wanted_regimes) <= set(stored_regimes) and "data_sha256" in stored and backbone_recorded:
            return
        # a new regime, or a sweep.json from before data or backbone fingerprints: record them from now on
        wanted = {**stored, "regimes": {**stored_regimes, **wanted_regimes}, "data_sha256": wanted.get("data_sha256"),
                  "backbone_sha256": wanted.get("backbone_sha256")}  # fmt: skip
    if read_only:
        return
    results_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    temporary.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


_FINGERPRINTS = ("data_sha256", "backbone_sha256")


def _check_backbone_unchanged(path: Path, stored: dict, wanted: dict, read_only: bool) -> bool:
    """Refuse a local backbone folder whose config.json or weights differ from the ones the finished runs were
    trained with. True when `sweep.json` already holds the backbone's fingerprint (a Hub id's is null: known by
    its name, compared with the settings)."""
    backbone = wanted.get("settings", {}).get("model_name_or_path") or "the bundled MiniLM"
    current = wanted.get("backbone_sha256")
    if "backbone_sha256" not in stored:
        if current is None:  # a Hub id: its name is what is compared
            return False
        logger.warning(
            "%s is from before backbone fingerprints: the earlier sittings' backbone (%s) could not be checked "
            "against this one%s", path, backbone,
            "" if read_only else "; its config and weight files' SHA-256 are recorded now and checked from here on",
        )  # fmt: skip
        return False
    recorded = stored["backbone_sha256"]
    if recorded == current:
        return True
    if recorded and current and not any(map(is_tokenizer_file, recorded)):
        # Recorded before the tokenizer's files were fingerprinted: compare what was recorded, record the rest now.
        if recorded == {name: digest for name, digest in current.items() if name in recorded}:
            logger.warning(
                "%s is from before tokenizer fingerprints: the earlier sittings' tokenizer files could not be "
                "checked against these%s", path,
                "" if read_only else "; their SHA-256 are recorded now and checked from here on",
            )  # fmt: skip
            return False
    if current is None and read_only:
        logger.warning("%s: the backbone %s is not on this machine, so it could not be checked", path, backbone)
        return True
    recorded, current = recorded or {}, current or {}
    changed = sorted(name for name in {*recorded, *current} if recorded.get(name) != current.get(name))
    shown = "; ".join(f"{name}: {_short(recorded.get(name))} then, {_short(current.get(name))} now" for name in changed)
    raise ValueError(
        f"{path}: the backbone {backbone} changed since the sweep's finished runs were trained ({shown}; SHA-256). "
        "Resuming or summarising would mix runs of two models: restore the folder, or give the sweep on the new "
        "backbone another name"
    )


def _short(digest: str | None) -> str:
    return f"{digest[:12]}..." if digest else "no file"


def _check_data_unchanged(path: Path, stored: dict | None, current: dict) -> None:
    changed = {name: (old, current.get(name)) for name, old in (stored or {}).items() if current.get(name) != old}
    if changed:
        shown = "; ".join(f"{name}: SHA-256 {old[:12]}... then, {f'{new[:12]}...' if new else 'no file'} now"
                          for name, (old, new) in changed.items())  # fmt: skip
        raise ValueError(
            f"{path}: the sweep's data changed since its finished runs were trained ({shown}). Resuming would put "
            "runs on two datasets into one summary: restore the file, or give the sweep on the new data another name"
        )


@dataclass(frozen=True, order=True)
class RunKey:
    """One run: a method trained in one regime at one learning rate on the K-sentence sample of one seed
    index."""

    method: str
    k: int
    seed: int
    regime: str
    learning_rate: float

    @property
    def label(self) -> str:
        return f"{self.regime}-lr{self.learning_rate:g}-{self.method}-k{self.k}-s{self.seed}"

    @classmethod
    def of(cls, row: dict) -> RunKey:
        return cls(row["method"], int(row["k"]), int(row["seed"]), row["regime"], float(row["learning_rate"]))

    def fields(self) -> dict:
        return asdict(self)
