"""Timing of first-k-layer inference against the full model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .probes import EncodedBatch, TimingResult, first_k_forward


def time_first_k(
    model: nn.Module,
    batches: Sequence[EncodedBatch],
    ks: Sequence[int],
    repeats: int = 5,
    progress: Any = None,
) -> TimingResult:
    """Wall time of `first_k_forward` over `batches` for each k (and k = L), `repeats` times, interleaved.

    Each repeat runs every k once, in an order rotated by one per repeat, so slow phases of a shared
    machine spread over all k; one untimed warm-up pass per k comes first. `progress` is called per repeat.
    """
    import time

    model.eval()
    num_layers = model.dwatt.backbone.config.num_hidden_layers
    ks = sorted(set(ks) | {num_layers})
    device = next(model.parameters()).device
    inputs = [{name: tensor.to(device) for name, tensor in batch.inputs.items()} for batch in batches]
    seconds: dict[int, list[float]] = {k: [] for k in ks}
    with torch.inference_mode():
        for k in ks:
            first_k_forward(model, inputs[0], k)
        for repeat in range(repeats):
            shift = repeat % len(ks)
            for k in ks[shift:] + ks[:shift]:
                start = time.perf_counter()
                for batch in inputs:
                    first_k_forward(model, batch, k)
                seconds[k].append(time.perf_counter() - start)
            if progress is not None:
                progress(repeat)
    num_tokens = int(sum(batch.inputs["attention_mask"].sum() for batch in batches))
    num_sentences = sum(len(batch.sentences) for batch in batches)
    return TimingResult(seconds, num_sentences, num_tokens)
