"""The whole model (backbone, fusion, head) as one ONNX file that runs with onnxruntime and numpy alone.

`torch.onnx.export(..., dynamo=True)` traces the model through `torch.export`, so the fusion's Python (the loop over
layers, the layer-dropout branch that is off in eval mode) becomes plain graph operations; batch and sequence
axes stay dynamic. Chosen over optimum's exporter, which would need an `OnnxConfig` written for a remote-code
architecture it does not know and adds no operation this model needs. The label names, the fusion and the
tokenizer's input names go into the file's metadata, so the file alone says what its outputs mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

#: The heads that can be exported, by the name of their output.
TASKS = {"DWAttForTokenClassification": "token-classification",
         "DWAttForSequenceClassification": "text-classification"}  # fmt: skip


class _ExportedHead(nn.Module):
    """The model as a function of tensors: (input ids, attention mask[, token types]) -> logits[, fusion weights]."""

    def __init__(self, model: nn.Module, fusion_weights: bool, token_type_ids: bool):
        super().__init__()
        self.model, self.fusion_weights, self.token_type_ids = model, fusion_weights, token_type_ids

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {"token_type_ids": token_type_ids} if self.token_type_ids else {}
        output = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            output_fusion_weights=self.fusion_weights, **extra)  # fmt: skip
        return (output.logits, output.fusion_weights) if self.fusion_weights else output.logits


@dataclass
class ExportedModel:
    path: Path
    inputs: list[str]
    outputs: list[str]
    metadata: dict[str, str]


def export_onnx(model, tokenizer, output: str | Path, fusion_weights: bool = False, opset: int = 18) -> ExportedModel:
    """Write `model` (a DWAtt token or sequence classifier, put in eval mode) to `output` as ONNX.

    Inputs are the tokenizer's (`input_ids`, `attention_mask` and `token_type_ids` where it makes them), int64,
    `[batch, sequence]`; outputs `logits` and, with `fusion_weights` (for fusions that have them), the per-token
    weights over the fused layers. The file's metadata holds `id2label`, the fusion and the input names.
    """
    import onnx

    task = TASKS.get(type(model).__name__)
    if task is None:
        raise ValueError(f"{type(model).__name__} cannot be exported; expected one of {', '.join(TASKS)}")
    if fusion_weights and model.config.fusion not in ("dwatt", "scalar_mix", "mean"):
        raise ValueError(f"fusion={model.config.fusion!r} has no fusion weights; export without fusion_weights")
    model = model.eval()
    sample = tokenizer(["Ada Lovelace lived in London", "hello"], padding=True, return_tensors="pt")
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    outputs = ["logits", "fusion_weights"] if fusion_weights else ["logits"]
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    wrapper = _ExportedHead(model, fusion_weights, "token_type_ids" in inputs)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapper, tuple(sample[name] for name in inputs), str(output), dynamo=True, opset_version=opset,
            input_names=inputs, output_names=outputs, dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs},
            external_data=False,
        )  # fmt: skip
    metadata = {
        "id2label": json.dumps({int(index): label for index, label in model.config.id2label.items()}),
        "task": task,
        "fusion": model.config.fusion,
        "inputs": json.dumps(inputs),
        "exported_by": "dwatt.export.export_onnx",
    }
    proto = onnx.load(str(output))
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(output))
    return ExportedModel(output, inputs, outputs, metadata)


def quantize_int8(path: str | Path, output: str | Path | None = None) -> Path:
    """onnxruntime's dynamic quantisation: weights of the matrix products in int8, activations quantised on the
    fly; written beside the file (`model.int8.onnx`) unless `output` is given. Metadata is kept."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    output = Path(output) if output is not None else path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(output), weight_type=QuantType.QInt8)
    source, quantised = onnx.load(str(path)), onnx.load(str(output))
    onnx.helper.set_model_props(quantised, {prop.key: prop.value for prop in source.metadata_props})
    onnx.save(quantised, str(output))
    return output
