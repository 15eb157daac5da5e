"""Export a trained DWAtt checkpoint (backbone, fusion and head) to one ONNX file, optionally also int8.

    dwatt export-onnx outputs/my-ner --output outputs/my-ner/model.onnx
    dwatt export-onnx outputs/my-ner --output model.onnx --fusion_weights   # the per-token layer weights too
    dwatt export-onnx outputs/my-ner --output model.onnx --int8             # and model.int8.onnx beside it
    dwatt export-onnx outputs/my-ner --output model.onnx --int8 --keep_fusion_float32   # model.int8-fusion-fp32.onnx

The file runs with onnxruntime and numpy alone: inputs are the tokenizer's (int64 [batch, sequence]), outputs the
logits (and the fusion weights); its metadata holds id2label. The tokenizer stays in the checkpoint folder.
"""

import argparse
from pathlib import Path

from ..cli import command
from ..export import export_onnx, quantize_int8


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dwatt export-onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("checkpoint", help="a folder written by `dwatt ner` / `dwatt classification` (or a Hub id)")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument("--fusion_weights", action="store_true", help="also output the per-token fusion weights")
    parser.add_argument("--int8", action="store_true", help="also write a dynamically quantised int8 copy")
    parser.add_argument(
        "--keep_fusion_float32",
        action="store_true",
        help="with --int8: quantise the backbone and head only, the fusion stays in float32",
    )
    parser.add_argument("--opset", type=int, default=18)
    args = parser.parse_args(argv)
    if args.keep_fusion_float32 and not args.int8:
        parser.error("--keep_fusion_float32 changes the int8 copy; add --int8")
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    from ..export import check_exportable
    from ..modeling_dwatt import DWAttPreTrainedModel

    # The head the checkpoint was trained with, before loading: an Auto class would give a masked LM's or a bare
    # backbone's checkpoint a new, random head and export that.
    config_path = Path(args.checkpoint) / "config.json"
    where = str(config_path) if config_path.is_file() else f"{args.checkpoint} (its config.json)"
    task = check_exportable(AutoConfig.from_pretrained(args.checkpoint).architectures, where)
    auto = AutoModelForSequenceClassification if task == "text-classification" else AutoModelForTokenClassification
    model = auto.from_pretrained(args.checkpoint)
    if not isinstance(model, DWAttPreTrainedModel):
        raise ValueError(f"{args.checkpoint} is not a DWAtt checkpoint ({type(model).__name__})")
    exported = export_onnx(model, AutoTokenizer.from_pretrained(args.checkpoint), args.output, args.fusion_weights,
                           args.opset)  # fmt: skip
    print(f"written: {exported.path} (inputs {', '.join(exported.inputs)}; outputs {', '.join(exported.outputs)})")
    if args.int8:
        print(f"written: {quantize_int8(exported.path, keep_fusion_float32=args.keep_fusion_float32)}")
