"""Overhead of every fusion against the stock AutoModelForTokenClassification: FLOP, time and memory ratios.

dwatt bench-overhead                            # bundled MiniLM + BERT-base-sized, 16x128
dwatt bench-overhead --backbones minilm --shapes 16x128,16x512,4x128 --compile
dwatt bench-overhead --backbones bert-base --device cuda --bf16 --repeats 20   # on a GPU
"""

import argparse
from pathlib import Path

import torch

from ..cli import command
from ..configuration_dwatt import FUSIONS
from ..experiments.overhead import overhead_report, parse_shapes
from ..validation import ArgumentError


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dwatt bench-overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--backbones", default="minilm,bert-base", help="comma-separated: minilm, bert-base, or paths")
    parser.add_argument("--shapes", default="16x128", help="comma-separated batch x sequence length, e.g. 16x128,4x512")
    parser.add_argument("--fusions", default=",".join(FUSIONS), help="comma-separated fusions to compare with stock")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (on a GPU)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd stock and dwatt")
    parser.add_argument("--output", default="results/overhead.md")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        raise ArgumentError(f"--repeats {args.repeats} --warmup {args.warmup}; expected repeats >= 1, warmup >= 0")
    unknown = [name for name in args.fusions.split(",") if name not in FUSIONS]
    if unknown:
        raise ArgumentError(f"--fusions: unknown {unknown}; expected some of {', '.join(FUSIONS)}")
    report = overhead_report(
        args.backbones.split(","), parse_shapes(args.shapes), args.fusions.split(","), args.repeats, args.warmup,
        torch.device(args.device), torch.bfloat16 if args.bf16 else None, args.compile,
        command="dwatt bench-overhead " + " ".join(argv),
    )  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report)
    print(f"\nwritten: {args.output}")
