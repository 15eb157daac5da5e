"""The whole model (backbone, fusion, head) as one ONNX file that runs with onnxruntime and numpy alone.

`torch.onnx.export(..., dynamo=True)` traces the model through `torch.export`, so the fusion's Python (the loop over
layers, the layer-dropout branch that is off in eval mode) becomes plain graph operations; batch and sequence
axes stay dynamic. Chosen over optimum's exporter, which would need an `OnnxConfig` written for a remote-code
architecture it does not know and adds no operation this model needs. The label names, the fusion and the
tokenizer's input names go into the file's metadata, so the file alone says what its outputs mean.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

#: The heads that can be exported, by the name of their output.
TASKS = {"DWAttForTokenClassification": "token-classification",
         "DWAttForSequenceClassification": "text-classification"}  # fmt: skip


def check_exportable(architectures: list[str] | None, where: str) -> str:
    """The task of a checkpoint whose config names an exportable head (`TASKS`); any other head (a masked LM, a bare
    backbone, none recorded) is refused by name: loading it as a classifier would export a new, random head."""
    tasks = {TASKS[name] for name in architectures or [] if name in TASKS}
    if len(tasks) != 1:
        raise ValueError(
            f"{where}: architectures {architectures}; expected one of {', '.join(TASKS)} (the heads export-onnx "
            "exports, as saved by `dwatt ner` or `dwatt classification`)"
        )
    return tasks.pop()


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
    weights over the fused layers. The file's metadata holds `id2label`, the fusion, the input names and the
    fusion's name scope in the graph (what `quantize_int8(..., keep_fusion_float32=True)` leaves alone).
    """
    import onnx

    task = TASKS.get(type(model).__name__)
    if task is None:
        raise ValueError(f"{type(model).__name__} cannot be exported; expected one of {', '.join(TASKS)}")
    saved_as = getattr(model.config, "architectures", None) or []
    if any(name.startswith("DWAtt") for name in saved_as) and type(model).__name__ not in saved_as:
        # e.g. AutoModelForTokenClassification on a masked LM's checkpoint: the head is newly initialised
        raise ValueError(
            f"{type(model).__name__} loaded from a checkpoint saved as {saved_as}: its head was not trained; "
            f"expected a checkpoint saved as {type(model).__name__}"
        )
    if fusion_weights and model.config.fusion not in ("dwatt", "scalar_mix", "mean"):
        raise ValueError(f"fusion={model.config.fusion!r} has no fusion weights; export without fusion_weights")
    model = model.eval()
    sample = tokenizer(["Ada Lovelace lived in London", "hello"], padding=True, return_tensors="pt")
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    outputs = ["logits", "fusion_weights"] if fusion_weights else ["logits"]
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    wrapper = _ExportedHead(model, fusion_weights, "token_type_ids" in inputs).eval()
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
        # The exporter records each node's module path ("pkg.torch.onnx.name_scopes"); the wrapper holds the model
        # as `model`, so the fusion's nodes carry this scope.
        "fusion_scope": f"model.{model.base_model_prefix}.fusion",
        "exported_by": "dwatt.export.export_onnx",
    }
    proto = onnx.load(str(output))
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(output))
    return ExportedModel(output, inputs, outputs, metadata)


def quantize_int8(path: str | Path, output: str | Path | None = None, keep_fusion_float32: bool = False) -> Path:
    """onnxruntime's dynamic quantisation: weights of the matrix products in int8, activations quantised on the
    fly; written beside the file (`model.int8.onnx`, or `model.int8-fusion-fp32.onnx` with `keep_fusion_float32`)
    unless `output` is given. `keep_fusion_float32` quantises the backbone and head only: the fusion's nodes (found
    by the name scope `export_onnx` recorded) stay in float32. Metadata is kept, and says what was quantised."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    suffix = ".int8-fusion-fp32.onnx" if keep_fusion_float32 else ".int8.onnx"
    output = Path(output) if output is not None else path.with_suffix(suffix)
    source = onnx.load(str(path))
    metadata = {prop.key: prop.value for prop in source.metadata_props}
    kept = fusion_nodes(source, path) if keep_fusion_float32 else []
    quantize_dynamic(str(path), str(output), weight_type=QuantType.QInt8, nodes_to_exclude=kept)
    quantised = onnx.load(str(output))
    metadata["quantized"] = "int8 dynamic" + ("; fusion in float32" if keep_fusion_float32 else "")
    onnx.helper.set_model_props(quantised, metadata)
    onnx.save(quantised, str(output))
    return output


def fusion_nodes(proto, path: Path) -> list[str]:
    """The names of the nodes inside the fusion module of a file written by `export_onnx`."""
    scope = next((prop.value for prop in proto.metadata_props if prop.key == "fusion_scope"), None)
    if scope is None:
        raise ValueError(
            f"{path} has no 'fusion_scope' in its metadata: it was not written by dwatt.export.export_onnx (or by an "
            "older version); export it again to keep its fusion in float32"
        )
    nodes = [node for node in proto.graph.node if scope in _name_scopes(node)]
    if not nodes:
        raise ValueError(f"{path}: no node lies in the fusion's scope {scope!r}; expected the fusion's operations")
    # quantize_dynamic first rewrites each Gemm as MatMul + Add, naming the MatMul "<Gemm's name>_MatMul"
    # (onnxruntime/quantization/onnx_model.py, replace_gemm_with_matmul); exclusion is by name, after that step.
    return [node.name for node in nodes] + [f"{node.name}_MatMul" for node in nodes if node.op_type == "Gemm"]


def _name_scopes(node) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return ast.literal_eval(prop.value)  # written as a Python list literal by torch.onnx
    return []
