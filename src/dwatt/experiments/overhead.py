"""Time and memory overhead of each fusion against the stock token classifier."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForTokenClassification, PretrainedConfig

from ..configuration_dwatt import FUSIONS, DWAttConfig
from ..modeling_dwatt import DWAttForTokenClassification, count_parameters

STOCK = "stock"


@dataclass
class OverheadRow:
    """Measurements of one model; times in seconds, one entry per repeat."""

    name: str
    parameters: int
    activation_bytes: int
    train_step_seconds: list[float] = field(default_factory=list)
    inference_seconds: list[float] = field(default_factory=list)

    @property
    def train_step(self) -> float:
        return statistics.median(self.train_step_seconds)

    @property
    def inference(self) -> float:
        return statistics.median(self.inference_seconds)


def build_models(
    backbone_config: PretrainedConfig,
    fusions=FUSIONS,
    num_labels: int = 9,
    backbone_state: dict | None = None,
    **fusion_kwargs,
) -> dict[str, torch.nn.Module]:
    """The stock token classifier and one DWAtt model per fusion, all with the same backbone weights."""
    torch.manual_seed(0)
    config = copy.deepcopy(backbone_config)
    config.num_labels = num_labels  # the setter also rebuilds id2label
    stock = AutoModelForTokenClassification.from_config(config)
    if backbone_state is not None:
        stock.base_model.load_state_dict(backbone_state, strict=False)
    models = {STOCK: stock}
    for fusion in fusions:
        model = DWAttForTokenClassification(
            DWAttConfig(backbone_config=backbone_config, fusion=fusion, num_labels=num_labels, **fusion_kwargs)
        )
        model.base_model.backbone.load_state_dict(stock.base_model.state_dict(), strict=False)
        models[fusion] = model
    return models


def random_batch(vocab_size: int, batch_size: int, sequence_length: int, num_labels: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(5, vocab_size, (batch_size, sequence_length), generator=generator),
        "attention_mask": torch.ones(batch_size, sequence_length, dtype=torch.long),
        "labels": torch.randint(0, num_labels, (batch_size, sequence_length), generator=generator),
    }


def saved_activation_bytes(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """Bytes of tensors autograd keeps for the backward pass of one training forward.

    On CPU there is no allocator peak to read (CUDA has one); what a fusion adds to training memory is
    what it saves for backward, which this counts exactly (parameters are excluded).
    """
    parameters = {p.data_ptr() for p in model.parameters()}
    seen, total = set(), 0

    def pack(tensor):
        nonlocal total
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape))
        if tensor.data_ptr() not in parameters and key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return total


def _timed(function: Callable[[], None]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure(
    models: dict[str, torch.nn.Module],
    batch: dict[str, torch.Tensor],
    repeats: int = 5,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[OverheadRow]:
    """Interleaved timing of a full training step (forward, backward, AdamW step) and of inference."""
    # fused=True: the stock Trainer's default optimizer (`adamw_torch_fused`), so the step is the one users run.
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True) for name, model in models.items()}
    rows = {
        name: OverheadRow(name, count_parameters(model), saved_activation_bytes(model, batch))
        for name, model in models.items()
    }
    inputs = {key: value for key, value in batch.items() if key != "labels"}

    def train_step(name):
        model, optimizer = models[name].train(), optimizers[name]
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def inference(name):
        with torch.inference_mode():
            models[name].eval()(**inputs)

    names = list(models)
    for repeat in range(warmup + repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            train_seconds = _timed(lambda name=name: train_step(name))
            inference_seconds = _timed(lambda name=name: inference(name))
            if repeat >= warmup:
                rows[name].train_step_seconds.append(train_seconds)
                rows[name].inference_seconds.append(inference_seconds)
        if progress is not None:
            progress(f"repeat {repeat + 1}/{warmup + repeats} done" + (" (warm-up)" if repeat < warmup else ""))
    return list(rows.values())


def overhead_table(rows: list[OverheadRow]) -> str:
    """Markdown table: medians and ratios to the stock model."""
    stock = next(row for row in rows if row.name == STOCK)
    lines = [
        "| model | parameters | params ratio | train step (s) | train ratio | inference (s) | inference ratio "
        "| activations (MB) | activations ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.parameters:,} | {row.parameters / stock.parameters:.3f} "
            f"| {row.train_step:.3f} | {row.train_step / stock.train_step:.3f} "
            f"| {row.inference:.3f} | {row.inference / stock.inference:.3f} "
            f"| {row.activation_bytes / 2**20:.1f} | {row.activation_bytes / stock.activation_bytes:.3f} |"
        )
    return "\n".join(lines)
