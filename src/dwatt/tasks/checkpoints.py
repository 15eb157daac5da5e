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
# The weight layouts `Trainer._save_checkpoint` writes: full weights (one file, or shards with an index;
# PEFT adapters), FSDP with SHARDED_STATE_DICT (a torch.distributed.checkpoint folder, whose `.metadata`
# is written when every rank has finished), DeepSpeed (a global_step<N> folder of per-rank model states).
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
_FSDP_SHARDED = ("pytorch_model_fsdp_*", ".metadata")
_DEEPSPEED = ("global_step*", "*model_states.pt")


def _weights_problem(folder: Path) -> str | None:
    """Why `folder` holds no complete weights in any layout the Trainer writes, or None."""
    if any((folder / name).is_file() for name in _WEIGHT_FILES):
        return None
    for pattern, complete in (_FSDP_SHARDED, _DEEPSPEED):
        parts = [path for path in folder.glob(pattern) if path.is_dir()]
        if parts and all(any(part.glob(complete)) for part in parts):
            return None
        if parts:
            return f"{parts[0].name}/ has no {complete} (the sharded save was interrupted)"
    layouts = ", ".join([*_WEIGHT_FILES, f"{_FSDP_SHARDED[0]}/ (FSDP)", f"{_DEEPSPEED[0]}/ (DeepSpeed)"])
    return f"no weights (one of {layouts})"


def checkpoint_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why `folder` is not a checkpoint a run can resume from, or None when it is complete."""
    folder = Path(folder)
    match = _CHECKPOINT_NAME.match(folder.name)
    if match is None:
        return f"{folder.name!r} is not named checkpoint-<step>"
    weights_problem = _weights_problem(folder)
    if weights_problem is not None:
        return weights_problem
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
