"""PyTorch eager against ONNX Runtime float32 and int8 on a trained NER checkpoint: test F1 and speed (ratios).

dwatt bench-onnx outputs/run_ner-dwatt-minilm-wnut16              # the make demo checkpoint, 1 thread
dwatt bench-onnx outputs/my-ner --threads 2 --output results/onnx-speed.md
"""

import argparse
from pathlib import Path

from ..cli import command
from ..experiments.onnx_speed import onnx_speed_report
from ..validation import ArgumentError


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dwatt bench-onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("checkpoint", help="a trained DWAtt token classifier with the WNUT-16 labels (any order)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="results/onnx-speed.md")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        raise ArgumentError(f"--repeats {args.repeats} --threads {args.threads}; expected both >= 1")
    report = onnx_speed_report(args.checkpoint, args.repeats, args.threads, "dwatt bench-onnx " + " ".join(argv))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report)
    print(report)
