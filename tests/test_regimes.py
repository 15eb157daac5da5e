"""Which parameters train in each training regime, and in which optimizer group: the frozen and LoRA comparisons
are only what they claim if exactly these sets train (full fine-tuning, a frozen backbone, LoRA adapters; with
and without `--fusion_learning_rate`), for every fusion."""

import pytest
from transformers import Trainer, TrainingArguments

from dwatt.configuration_dwatt import FUSIONS
from dwatt.modeling_dwatt import DWAttForTokenClassification
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.runner import fusion_optimizer, load_model

REGIMES = {
    "full": {},
    "frozen": {"freeze_backbone": True},
    "lora": {"lora_r": 2},
}
BACKBONE = "dwatt.backbone."


def trainable(model) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def expected_trainable(model, regime: str) -> set[str]:
    """Full: everything. Frozen: everything outside the backbone. LoRA: that, plus the adapters' A and B of the
    query and value projections (peft's BERT default)."""
    names = {name for name, _ in model.named_parameters()}
    outside_backbone = {name for name in names if not name.startswith(BACKBONE)}
    if regime == "full":
        return names
    if regime == "frozen":
        return outside_backbone
    adapters = {name for name in names if name.startswith(BACKBONE) and (".lora_A." in name or ".lora_B." in name)}
    assert adapters and all((".query." in name or ".value." in name) for name in adapters)
    return outside_backbone | adapters


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("regime", REGIMES)
def test_exactly_the_regimes_parameters_train(tiny_bert_dir, fusion, regime):
    model_args = ModelArguments(model_name_or_path=str(tiny_bert_dir), fusion=fusion, **REGIMES[regime])
    model = load_model(model_args, DWAttForTokenClassification, num_labels=3)
    outside = {name for name in trainable(model) if not name.startswith(BACKBONE)}
    assert outside, "the fusion and the head must train in every regime"
    if fusion not in ("last", "mean"):  # no parameters of their own: only the head sits outside the backbone
        assert any(name.startswith(("dwatt.fusion.", "dwatt.deeper.")) for name in outside), fusion
    assert trainable(model) == expected_trainable(model, regime)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("fusion_learning_rate", [None, 1e-2])
def test_each_trainable_parameter_is_in_the_right_optimizer_group(tiny_bert_dir, tmp_path, fusion, regime,
                                                                  fusion_learning_rate):  # fmt: skip
    model_args = ModelArguments(model_name_or_path=str(tiny_bert_dir), fusion=fusion, **REGIMES[regime])
    model = load_model(model_args, DWAttForTokenClassification, num_labels=3)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, weight_decay=0.01, use_cpu=True,
                             report_to="none")  # fmt: skip
    trainer = Trainer(model=model, args=args,
                      optimizer_cls_and_kwargs=fusion_optimizer(model, args, fusion_learning_rate))  # fmt: skip
    optimizer = trainer.create_optimizer()
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    grouped = [(group["lr"], group["weight_decay"], {names[id(p)] for p in group["params"]})
               for group in optimizer.param_groups]  # fmt: skip
    in_groups = [name for *_, members in grouped for name in members]
    assert sorted(in_groups) == sorted(trainable(model)), "every trainable parameter once, nothing frozen"
    decayed = set(Trainer.get_decay_parameter_names(None, model))
    for rate, decay, members in grouped:
        for name in members:
            if fusion_learning_rate is not None and not name.startswith(BACKBONE):
                assert (rate, decay) == (fusion_learning_rate, 0.0), name  # fusion and head: their own group
            else:
                assert (rate, decay) == (1e-4, 0.01 if name in decayed else 0.0), name
