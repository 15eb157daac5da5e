"""LoRA on the backbone (peft), with the fusion and the head trained in full.

The adapters live inside the backbone only while training; `merge_lora` folds them into the backbone's
weights before the model is saved, so the saved folder is a plain DWAtt checkpoint that loads through
`trust_remote_code` without peft, with the same logits.
"""

from __future__ import annotations

import logging

from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

#: Where peft has no default for the backbone's type: adapt every linear layer of the backbone.
FALLBACK_TARGET_MODULES = "all-linear"


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


def add_lora(model: PreTrainedModel, rank: int, alpha: float, dropout: float, target_modules: str | None) -> None:
    """Freeze the backbone and add trainable rank-`rank` adapters to its target modules, in place."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"--lora_r {rank}; expected a positive rank (or leave it unset: no LoRA)")
    backbone = model.base_model.backbone
    targets = lora_target_modules(backbone.config.model_type, target_modules)
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    try:
        inject_adapter_in_model(config, backbone)
    except ValueError as error:  # peft's message lists what it looked for
        raise ValueError(f"--lora_target_modules: {error}") from None
    adapted = sum(p.numel() for name, p in backbone.named_parameters() if "lora_" in name and p.requires_grad)
    logger.info("LoRA rank %d on %s of the backbone: %d trainable adapter parameters", rank, targets, adapted)


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
