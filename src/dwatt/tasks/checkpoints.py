"""Which checkpoint folders of an output directory are complete enough to resume from."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


# Written by `Trainer._save_checkpoint` after everything else in the folder.
_TRAINER_STATE = "trainer_state.json"


_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def checkpoint_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why `folder` is not a checkpoint a run can resume from, or None when it is complete."""
    folder = Path(folder)
    match = _CHECKPOINT_NAME.match(folder.name)
    if match is None:
        return f"{folder.name!r} is not named checkpoint-<step>"
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        return f"no weights ({' or '.join(_WEIGHT_FILES)})"
    state_path = folder / _TRAINER_STATE
    if not state_path.is_file():
        return f"no {_TRAINER_STATE} (Trainer writes it last, so the save was interrupted)"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"{_TRAINER_STATE} is cut short or corrupt ({error})"
    if not isinstance(state, dict) or state.get("global_step") != int(match.group(1)):
        step = state.get("global_step") if isinstance(state, dict) else None
        return f"{_TRAINER_STATE} records global_step={step!r}, not the folder's step {match.group(1)}"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike[str]) -> str | None:
    """The highest-step complete `checkpoint-N` folder in `output_dir` (as a string), or None.

    Incomplete folders above it (a run killed while saving) are skipped with a warning naming what is
    missing; they are left on disk for the user to inspect or delete.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    candidates = [
        (int(match.group(1)), path)
        for path in output_dir.iterdir()
        if path.is_dir() and (match := _CHECKPOINT_NAME.match(path.name))
    ]
    for _, path in sorted(candidates, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("Not resuming from %s: %s. Looking at the previous checkpoint.", path, problem)
    return None
