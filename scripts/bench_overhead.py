#!/usr/bin/env python
"""Overhead of every fusion against the stock AutoModelForTokenClassification (ratios of medians).

python scripts/bench_overhead.py                       # bundled MiniLM and a BERT-base-sized random config
python scripts/bench_overhead.py --backbones minilm --repeats 3 --output /tmp/overhead.md
"""

import argparse
import platform
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, BertConfig

from dwatt.assets import bundled_minilm_path
from dwatt.experiments.overhead import build_models, measure, overhead_table, random_batch


def backbone(name: str):
    """(config, pretrained state or None) of a named backbone."""
    if name == "minilm":
        path = bundled_minilm_path()
        return AutoConfig.from_pretrained(path), AutoModel.from_pretrained(path).state_dict()
    if name == "bert-base":
        return BertConfig(), None  # 12 x 768, random weights: timing does not depend on their values
    if not Path(name).is_dir():
        raise SystemExit(f"--backbones: unknown backbone {name!r}; expected minilm, bert-base or a local model folder")
    return AutoConfig.from_pretrained(name), None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="minilm,bert-base", help="comma-separated: minilm, bert-base, or paths")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dwatt_scale", default="sqrt_d")
    parser.add_argument("--output", default="results/overhead.md")
    args = parser.parse_args()

    sections = [
        "# Fusion overhead vs the stock token classifier",
        "",
        f"Produced by `python scripts/bench_overhead.py --backbones {args.backbones} --repeats {args.repeats}` "
        f"on {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}. "
        f"Batch {args.batch_size} x {args.sequence_length} tokens. Train step = forward + backward + AdamW step; "
        "times are medians of interleaved repeats (model order rotated each repeat), ratios are to `stock`. "
        "Activations = bytes autograd saves for backward (the training-memory a fusion adds on CPU, where "
        "there is no allocator peak to read).",
    ]
    for name in args.backbones.split(","):
        config, state = backbone(name)
        models = build_models(config, backbone_state=state, dwatt_scale=args.dwatt_scale)
        batch = random_batch(config.vocab_size, args.batch_size, args.sequence_length, num_labels=9)
        with tqdm(total=args.warmup + args.repeats, desc=f"{name}: repeats") as bar:
            rows = measure(models, batch, repeats=args.repeats, warmup=args.warmup, progress=lambda _: bar.update())
        table = overhead_table(rows)
        print(f"\n{name} ({config.num_hidden_layers} x {config.hidden_size})\n{table}")
        sections += ["", f"## {name} ({config.num_hidden_layers} layers x {config.hidden_size})", "", table]
        del models
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(sections) + "\n")
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
