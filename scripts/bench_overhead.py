#!/usr/bin/env python
"""Overhead of every fusion against the stock AutoModelForTokenClassification: FLOP, time and memory ratios.

python scripts/bench_overhead.py                                   # bundled MiniLM + BERT-base-sized, 16x128
python scripts/bench_overhead.py --backbones minilm --shapes 16x128,16x512,4x128 --compile
python scripts/bench_overhead.py --backbones bert-base --device cuda --bf16 --repeats 20   # on a GPU
"""

import argparse
import sys
from pathlib import Path

import torch

from dwatt.configuration_dwatt import FUSIONS
from dwatt.experiments.overhead import overhead_report, parse_shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="minilm,bert-base", help="comma-separated: minilm, bert-base, or paths")
    parser.add_argument("--shapes", default="16x128", help="comma-separated batch x sequence length, e.g. 16x128,4x512")
    parser.add_argument("--fusions", default=",".join(FUSIONS), help="comma-separated fusions to compare with stock")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (on a GPU)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd stock and dwatt")
    parser.add_argument("--output", default="results/overhead.md")
    args = parser.parse_args()
    report = overhead_report(
        args.backbones.split(","), parse_shapes(args.shapes), args.fusions.split(","), args.repeats, args.warmup,
        torch.device(args.device), torch.bfloat16 if args.bf16 else None, args.compile,
        command="python scripts/bench_overhead.py " + " ".join(sys.argv[1:]),
    )  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report)
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
