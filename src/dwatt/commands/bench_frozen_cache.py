"""Speed of a frozen-backbone run with cached backbone features against without (ratios, one process).

dwatt bench-cache                                # bundled MiniLM + installed MPNet, 1 thread
dwatt bench-cache --backbones minilm --threads 2
"""

import argparse
from pathlib import Path

from ..assets import bundled_minilm_path, resolve_model_path
from ..cli import command
from ..experiments.cache_speed import cache_speed_report
from ..validation import ArgumentError

SHORT_NAMES = {
    "minilm": lambda: str(bundled_minilm_path()),
    "mpnet": lambda: resolve_model_path("asset:all-mpnet-base-v2"),
}


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dwatt bench-cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--backbones", default="minilm,mpnet", help="comma-separated: minilm, mpnet, or folders")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the sweep runs one per shard)")
    parser.add_argument("--output", default="results/frozen-cache-speed.md")
    args = parser.parse_args(argv)
    if args.threads < 1:
        raise ArgumentError(f"--threads {args.threads}; expected at least 1")
    names = [name.strip() for name in args.backbones.split(",") if name.strip()]
    backbones = {name: SHORT_NAMES[name]() if name in SHORT_NAMES else name for name in names}
    report = cache_speed_report(backbones, args.threads, "dwatt bench-cache " + " ".join(argv))
    Path(args.output).write_text(report)
    print(f"written: {args.output}")
