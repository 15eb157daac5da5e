"""The stock Trainer: gradient accumulation gives the same update as one big batch."""

import pytest
import torch
from conftest import tiny_backbone_config
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from dwatt import DWAttConfig, DWAttForTokenClassification


def four_examples():
    """Equal-length examples with very different numbers of labelled tokens, so a per-batch mean is wrong."""
    generator = torch.Generator().manual_seed(1)
    rows = []
    for labelled in (1, 6, 2, 5):
        labels = torch.full((6,), -100)
        labels[:labelled] = torch.randint(0, 3, (labelled,), generator=generator)
        rows.append({
            "input_ids": torch.randint(4, 99, (6,), generator=generator).tolist(),
            "attention_mask": [1] * 6,
            "labels": labels.tolist(),
        })  # fmt: skip
    return Dataset.from_list(rows)


def one_update(tmp_path, batch_size, accumulation, fusion):
    backbone = tiny_backbone_config()
    backbone.hidden_dropout_prob = backbone.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    model = DWAttForTokenClassification(
        DWAttConfig(backbone_config=backbone, fusion=fusion, num_labels=3, classifier_dropout=0.0)
    )
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path / f"bs{batch_size}"), per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=1.0, optim="sgd",
        lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, report_to=[], save_strategy="no",
        use_cpu=True, seed=0, disable_tqdm=True,
    )  # fmt: skip
    Trainer(model=model, args=args, train_dataset=four_examples()).train()
    return {name: p.detach() - before[name] for name, p in model.named_parameters()}


@pytest.mark.parametrize("fusion", ["dwatt", "last"])
def test_gradient_accumulation_equals_one_big_batch(tmp_path, fusion):
    single = one_update(tmp_path, batch_size=4, accumulation=1, fusion=fusion)
    accumulated = one_update(tmp_path, batch_size=2, accumulation=2, fusion=fusion)
    assert any(update.abs().sum() > 0 for update in single.values())
    for name, update in single.items():
        # float32 sums in another order (two half batches): tolerance scaled to the update's size
        scale = float(update.abs().max())
        torch.testing.assert_close(accumulated[name], update, rtol=1e-4, atol=1e-5 * scale + 1e-8, msg=name)
