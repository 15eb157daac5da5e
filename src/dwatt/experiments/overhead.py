"""Time, memory and FLOP overhead of each fusion against the stock token classifier, on CPU or CUDA."""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForTokenClassification, PretrainedConfig

from ..configuration_dwatt import FUSIONS, DWAttConfig
from ..inference import learned_positions
from ..modeling_dwatt import DWAttForTokenClassification, count_parameters
from ..validation import ArgumentError

STOCK = "stock"
#: DWAtt with `dwatt_recompute_values=False` (the default recomputes the value MLPs in backward): what
#: recomputing costs in time and saves in memory.
STORING_DWATT = "dwatt (stored activations)"
#: `last` does the stock model's work; its time ratio outside 1 +- this says the timing is not to be trusted.
STABILITY_TOLERANCE = 0.03


@dataclass
class OverheadRow:
    """Measurements of one model: FLOPs counted once, times (seconds) one entry per repeat."""

    name: str
    parameters: int
    forward_flops: int
    train_flops: int
    memory_bytes: int | None  # None: not measurable for this model (a compiled graph hides its saved tensors)
    train_step_seconds: list[float] = field(default_factory=list)
    inference_seconds: list[float] = field(default_factory=list)


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


def random_batch(
    vocab_size: int, batch_size: int, sequence_length: int, num_labels: int, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, vocab_size, (batch_size, sequence_length), generator=generator),
        "attention_mask": torch.ones(batch_size, sequence_length, dtype=torch.long),
        "labels": torch.randint(0, num_labels, (batch_size, sequence_length), generator=generator),
    }
    return {name: tensor.to(device) for name, tensor in batch.items()}


def saved_activation_bytes(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """Bytes of tensors autograd keeps for the backward pass of one training forward.

    On CPU there is no allocator peak to read (CUDA has one: `peak_training_bytes`); what a fusion adds to
    training memory is what it saves for backward, counted here (parameters excluded; a tensor kept by
    `torch.utils.checkpoint` only as a function input is not seen, which is right when, as for DWAtt's
    recomputed values, the backbone keeps that input anyway).
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


def peak_training_bytes(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """CUDA: the allocator's peak during one forward + backward, less what was allocated before it."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model(**batch).loss.backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    model.zero_grad(set_to_none=True)
    return peak


def count_flops(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(forward FLOPs in eval mode, FLOPs of a training forward + backward), by `FlopCounterMode`, which
    counts matrix products and attention (not elementwise work). Recomputation in backward is counted."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = {key: value for key, value in batch.items() if key != "labels"}
    with torch.no_grad(), FlopCounterMode(display=False) as forward:
        model.eval()(**inputs)
    with FlopCounterMode(display=False) as train:
        model.train()(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return forward.get_total_flops(), train.get_total_flops()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    models: dict[str, torch.nn.Module],
    batch: dict[str, torch.Tensor],
    repeats: int = 5,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
    autocast_dtype: torch.dtype | None = None,
    eager_twins: dict[str, str] | None = None,
) -> list[OverheadRow]:
    """Interleaved timing of a full training step (forward, backward, AdamW step) and of inference.

    Each repeat times every model once, in an order rotated by one per repeat, so slow drifts of the machine
    fall on every model alike. On CUDA the device is synchronised around each timed call; memory is the
    allocator's peak there and the bytes saved for backward on CPU. `autocast_dtype` (e.g. bfloat16) runs
    forward passes under autocast on the batch's device. `eager_twins` maps a compiled model's name to its
    eager model's: FLOPs are counted on the eager one (the same computation); memory is left unmeasured.
    """
    eager_twins = eager_twins or {}
    device = batch["input_ids"].device
    # fused=True: the stock Trainer's default optimizer (`adamw_torch_fused`), so the step is the one users run.
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True) for name, model in models.items()}

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=autocast_dtype)

    rows = {}
    for name, model in models.items():
        if name in eager_twins:
            twin = rows[eager_twins[name]]
            rows[name] = OverheadRow(name, twin.parameters, twin.forward_flops, twin.train_flops, None)
            continue
        with autocast():
            forward_flops, train_flops = count_flops(model, batch)
            memory = (
                peak_training_bytes(model, batch) if device.type == "cuda" else saved_activation_bytes(model, batch)
            )
        rows[name] = OverheadRow(name, count_parameters(model), forward_flops, train_flops, memory)
    inputs = {key: value for key, value in batch.items() if key != "labels"}

    def train_step(name):
        model, optimizer = models[name].train(), optimizers[name]
        with autocast():
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def inference(name):
        with torch.inference_mode(), autocast():
            models[name].eval()(**inputs)

    def timed(function: Callable[[], None]) -> float:
        _synchronize(device)
        started = time.perf_counter()
        function()
        _synchronize(device)
        return time.perf_counter() - started

    names = list(models)
    for repeat in range(warmup + repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            train_seconds = timed(lambda name=name: train_step(name))
            inference_seconds = timed(lambda name=name: inference(name))
            if repeat >= warmup:
                rows[name].train_step_seconds.append(train_seconds)
                rows[name].inference_seconds.append(inference_seconds)
        if progress is not None:
            progress(f"repeat {repeat + 1}/{warmup + repeats} done" + (" (warm-up)" if repeat < warmup else ""))
    return list(rows.values())


def ratio_spread(times: list[float], stock_times: list[float]) -> tuple[float, float, float]:
    """(min, median, max) over repeats of the per-repeat ratio to the stock model's time in that repeat."""
    ratios = sorted(ours / theirs for ours, theirs in zip(times, stock_times, strict=True))
    return ratios[0], statistics.median(ratios), ratios[-1]


def _time_cell(times: list[float], stock_times: list[float]) -> str:
    """'median [min, max] / best': per-repeat ratios, then the ratio of the two fastest times, which
    interference from other work on the machine (it only ever adds time) disturbs least."""
    low, middle, high = ratio_spread(times, stock_times)
    return f"{middle:.3f} [{low:.3f}, {high:.3f}] / {min(times) / min(stock_times):.3f}"


def overhead_table(rows: list[OverheadRow], memory_label: str = "activations") -> str:
    """Markdown table: FLOP ratios next to time ratios (median [min, max] of per-repeat ratios / ratio of the
    fastest times) and memory."""
    stock = next(row for row in rows if row.name == STOCK)
    lines = [
        "| model | parameters | params ratio | train FLOPs ratio | train time ratio | forward FLOPs ratio "
        f"| inference time ratio | {memory_label} (MB) | {memory_label} ratio | train step (s, median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        memory = "n/a | n/a"
        if row.memory_bytes is not None:
            memory = f"{row.memory_bytes / 2**20:.1f} | {row.memory_bytes / stock.memory_bytes:.3f}"
        lines.append(
            f"| {row.name} | {row.parameters:,} | {row.parameters / stock.parameters:.3f} "
            f"| {row.train_flops / stock.train_flops:.3f} "
            f"| {_time_cell(row.train_step_seconds, stock.train_step_seconds)} "
            f"| {row.forward_flops / stock.forward_flops:.3f} "
            f"| {_time_cell(row.inference_seconds, stock.inference_seconds)} "
            f"| {memory} | {statistics.median(row.train_step_seconds):.3f} |"
        )
    return "\n".join(lines)


def stability_check(rows: list[OverheadRow], reference: str = "last") -> str:
    """One sentence: does `last` (the stock model's work) time at 1.00 +- the tolerance?"""
    by_name = {row.name: row for row in rows}
    if reference not in by_name:
        return f"No `{reference}` row: the timing's stability was not checked."
    stock = by_name[STOCK]
    parts = []
    for label, times, stock_times in (
        ("train", by_name[reference].train_step_seconds, stock.train_step_seconds),
        ("inference", by_name[reference].inference_seconds, stock.inference_seconds),
    ):
        _, median, _ = ratio_spread(times, stock_times)
        best = min(times) / min(stock_times)
        verdicts = ["within" if abs(value - 1.0) <= STABILITY_TOLERANCE else "OUTSIDE" for value in (median, best)]
        parts.append(f"{label} {median:.3f} median ({verdicts[0]}), {best:.3f} best ({verdicts[1]})")
    return (
        f"Stability: `{reference}` does the stock model's work and reads "
        + ", ".join(parts)
        + f" against 1.00 ± {STABILITY_TOLERANCE}."
    )


def benchmark_backbone(name: str) -> tuple[PretrainedConfig, dict | None]:
    """(config, pretrained state or None) of `minilm` (bundled), `bert-base` (random 12 x 768) or a folder."""
    from pathlib import Path

    from transformers import AutoConfig, AutoModel, BertConfig

    from ..assets import bundled_minilm_path

    if name == "minilm":
        path = bundled_minilm_path()
        return AutoConfig.from_pretrained(path), AutoModel.from_pretrained(path).state_dict()
    if name == "bert-base":
        return BertConfig(), None  # random weights: time and memory do not depend on their values
    if not Path(name).is_dir():
        raise SystemExit(f"--backbones: unknown backbone {name!r}; expected minilm, bert-base or a local model folder")
    return AutoConfig.from_pretrained(name), None


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """`"16x128,4x512"` -> [(16, 128), (4, 512)] (batch size, sequence length)."""
    try:
        shapes = [tuple(int(part) for part in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        shapes = []
    if not shapes or any(len(shape) != 2 or min(shape) < 1 for shape in shapes):
        raise ArgumentError(f"--shapes {text!r}: expected BATCHxLENGTH items, e.g. 16x128,4x512")
    return shapes


def overhead_report(
    backbones: list[str],
    shapes: list[tuple[int, int]],
    fusions: list[str],
    repeats: int,
    warmup: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    compile_models: bool = False,
    command: str = "",
) -> str:
    """The Markdown report: one table (and stability line) per backbone and shape."""
    import platform

    from tqdm.auto import tqdm

    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    memory_label = "peak memory" if device.type == "cuda" else "activations"
    memory_text = (
        "Peak memory: the CUDA allocator's peak over forward + backward, beyond what was allocated before."
        if device.type == "cuda"
        else "Activations: bytes autograd saves for backward (no allocator peak on CPU)."
    )
    sections = [
        "# Fusion overhead vs the stock token classifier",
        "",
        f"Produced by `{command}` on {hardware}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
        f"{f', {autocast_dtype} autocast' if autocast_dtype else ''}. Train step = forward + backward + AdamW "
        "step. Time ratios: median [min, max] over repeats of each repeat's ratio to `stock` (models "
        "interleaved, order rotated each repeat; synchronised on CUDA) / the ratio of the fastest times. FLOPs: "
        "`torch.utils.flop_counter.FlopCounterMode` (matrix products and attention); train = forward + backward, "
        f"recomputation included. {memory_text}",
    ]
    for name in backbones:
        config, state = benchmark_backbone(name)
        models = build_models(config, fusions=fusions, backbone_state=state)
        limit = learned_positions(models[STOCK])
        too_long = [f"{batch}x{length}" for batch, length in shapes if limit is not None and length > limit]
        if too_long:
            raise ArgumentError(f"--shapes {','.join(too_long)}: longer than the {limit} positions {name} has learned; "
                                f"expected lengths <= {limit}")  # fmt: skip
        if "dwatt" in models:  # what recomputing the value MLPs costs in time and saves in memory
            storing = build_models(config, fusions=["dwatt"], dwatt_recompute_values=False)["dwatt"]
            storing.load_state_dict(models["dwatt"].state_dict())
            models[STORING_DWATT] = storing
        models = {label: model.to(device) for label, model in models.items()}
        twins = {}
        if compile_models:
            for label in (STOCK, "dwatt"):
                models[f"{label} (compiled)"] = torch.compile(models[label])
                twins[f"{label} (compiled)"] = label
        for batch_size, length in shapes:
            batch = random_batch(config.vocab_size, batch_size, length, num_labels=9, device=device)
            with tqdm(total=warmup + repeats, desc=f"{name} {batch_size}x{length}") as bar:
                rows = measure(models, batch, repeats, warmup, lambda _: bar.update(), autocast_dtype, twins)
            title = f"{name} ({config.num_hidden_layers} layers x {config.hidden_size}), batch {batch_size} x {length}"
            sections += ["", f"## {title}", "", overhead_table(rows, memory_label), "", stability_check(rows)]
            print("\n".join(sections[-5:]), flush=True)
        del models
    return "\n".join(sections) + "\n"
