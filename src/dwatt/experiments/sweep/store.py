"""The sweep's results file: rows written under a lock, never twice, read back typed."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ...protocol import SweepSettings

CSV_COLUMNS = (
    "method", "k", "seed", "step", "split", "f1", "precision", "recall",
    "fusion_parameters", "trainable_parameters", "wall_seconds",
)  # fmt: skip
_INT_COLUMNS = {"k", "seed", "step", "fusion_parameters", "trainable_parameters"}
_FLOAT_COLUMNS = {"f1", "precision", "recall", "wall_seconds"}
RUNS_FILE = "runs.csv"
SETTINGS_FILE = "sweep.json"


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
        with self.locked():
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
        with self.locked():
            for temporary in self.path.parent.glob(f"{self.path.name}.tmp.*"):
                temporary.unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
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


def check_settings(results_dir: Path, settings: SweepSettings) -> None:
    """Write `sweep.json` on the first run; afterwards refuse settings that differ from it (mixing them
    would break the identical-hyper-parameters rule). Methods, K and seeds may change between sittings.
    Call it under the results file's lock (`RunsFile.locked`): shards started together race here."""
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
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    temporary.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


@dataclass(frozen=True, order=True)
class RunKey:
    """One run: a method trained on the K-sentence sample of one seed index."""

    method: str
    k: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.method}-k{self.k}-s{self.seed}"
