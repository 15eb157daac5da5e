"""LoRA on the backbone (peft), with the fusion and the head trained in full.

The adapters live inside the backbone only while training; `merge_lora` folds them into the backbone's
weights before the model is saved, so the saved folder is a plain DWAtt checkpoint that loads through
`trust_remote_code` without peft, with the same logits. Intermediate checkpoints (`checkpoint-N/`) get the same
treatment (`MergedLoraCheckpoints`): their `model.safetensors` holds merged weights, and the adapters alone are
kept beside it (`lora_adapters.safetensors`) for resuming.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from transformers import PreTrainedModel, TrainerCallback

logger = logging.getLogger(__name__)

#: Where peft has no default for the backbone's type: adapt every linear layer of the backbone.
FALLBACK_TARGET_MODULES = "all-linear"
#: Beside an intermediate checkpoint's merged weights: the adapter tensors, what resuming needs.
ADAPTER_STATE_FILE = "lora_adapters.safetensors"


def lora_target_modules(backbone_model_type: str, requested: str | None) -> list[str] | str:
    """The requested comma-separated module names, else peft's default for the backbone type (query/value
    projections for BERT-likes), else every linear layer."""
    if requested:
        names = [name.strip() for name in requested.split(",") if name.strip()]
        if not names:
            raise ValueError(f"--lora_target_modules {requested!r}; expected comma-separated module names")
        return names
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(backbone_model_type, FALLBACK_TARGET_MODULES)


def add_lora(model: PreTrainedModel, rank: int, alpha: float, dropout: float, target_modules: str | None) -> int:
    """Add trainable rank-`rank` adapters to the backbone's target modules, in place, with the backbone's own
    weights frozen (peft leaves only the adapters of the module it injects into trainable); the fusion and the
    head stay trainable. Returns the number of adapter parameters."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"--lora_r {rank}; expected a positive rank (or leave it unset: no LoRA)")
    backbone = model.base_model.backbone
    targets = lora_target_modules(backbone.config.model_type, target_modules)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    try:
        inject_adapter_in_model(config, backbone)
    except ValueError as error:  # peft's message lists what it looked for
        raise ValueError(f"--lora_target_modules: {error}") from None
    adapted = sum(p.numel() for name, p in backbone.named_parameters() if "lora_" in name)
    logger.info("LoRA rank %d on %s of the backbone: %d trainable adapter parameters", rank, targets, adapted)
    return adapted


def has_lora(model: PreTrainedModel) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(module, BaseTunerLayer) for module in model.modules())


def merge_lora(model: PreTrainedModel) -> int:
    """Fold every adapter into its base layer and put the base layer back; returns how many were merged.
    The model computes the same function afterwards, with the backbone's original module names."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapted = [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, module in adapted:
        module.merge()
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, module.get_base_layer())
    return len(adapted)


class MergedLoraCheckpoints(TrainerCallback):
    """Rewrites each checkpoint the Trainer saves during LoRA training as a plain DWAtt checkpoint (adapters
    merged, so `from_pretrained` gives the model as trained so far) plus the adapter tensors for resuming."""

    def on_save(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None and has_lora(model):
            write_merged_checkpoint(model, Path(args.output_dir) / f"checkpoint-{state.global_step}")


def write_merged_checkpoint(model: PreTrainedModel, folder: Path) -> None:
    """Replace `folder`'s weights by the merged model's (the final save's code path, on a copy), and keep the
    adapters in `ADAPTER_STATE_FILE`."""
    from safetensors.torch import save_file

    adapters = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
                if "lora_" in name}  # fmt: skip
    merged = copy.deepcopy(model)
    merge_lora(merged)
    merged.save_pretrained(folder)
    save_file(adapters, folder / ADAPTER_STATE_FILE)


def load_adapters(model: PreTrainedModel, checkpoint: str | Path) -> bool:
    """Put a checkpoint's saved adapters back into a LoRA model being resumed; False when it has none (a
    checkpoint saved with the adapters in its weights, which the Trainer loads itself)."""
    from safetensors.torch import load_file

    path = Path(checkpoint) / ADAPTER_STATE_FILE
    if not path.is_file():
        return False
    adapters = load_file(path)
    current = model.state_dict()
    resized = [name for name, tensor in adapters.items() if name in current and current[name].shape != tensor.shape]
    if resized:
        raise ValueError(f"{path}: {len(resized)} adapter tensors have another shape than this model's, such as "
                         f"{resized[0]} {tuple(adapters[resized[0]].shape)} against "
                         f"{tuple(current[resized[0]].shape)} (another --lora_r?)")  # fmt: skip
    result = model.load_state_dict(adapters, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{path}: {len(result.unexpected_keys)} adapter tensors do not fit this model's LoRA "
                         f"layers, such as {result.unexpected_keys[0]} (another --lora_target_modules?)")  # fmt: skip
    return True
