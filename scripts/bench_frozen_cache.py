#!/usr/bin/env python
"""Speed of a frozen-backbone run with cached backbone features against without (ratios, one process).

python scripts/bench_frozen_cache.py                                   # bundled MiniLM + installed MPNet, 1 thread
python scripts/bench_frozen_cache.py --backbones minilm --threads 2
"""

import argparse
import sys
from pathlib import Path

from dwatt.assets import bundled_minilm_path, resolve_model_path
from dwatt.experiments.cache_speed import cache_speed_report

SHORT_NAMES = {
    "minilm": lambda: str(bundled_minilm_path()),
    "mpnet": lambda: resolve_model_path("asset:all-mpnet-base-v2"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="minilm,mpnet", help="comma-separated: minilm, mpnet, or folders")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the sweep runs one per shard)")
    parser.add_argument("--output", default="results/frozen-cache-speed.md")
    args = parser.parse_args()
    names = [name.strip() for name in args.backbones.split(",") if name.strip()]
    backbones = {name: SHORT_NAMES[name]() if name in SHORT_NAMES else name for name in names}
    command = "python scripts/bench_frozen_cache.py " + " ".join(sys.argv[1:])
    report = cache_speed_report(backbones, args.threads, command)
    Path(args.output).write_text(report)
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
