#!/usr/bin/env python
"""`dwatt bench-cache` from a clone of the repository; the command lives in `dwatt.commands.bench_frozen_cache`.

python scripts/bench_frozen_cache.py --help
"""

from dwatt.commands.bench_frozen_cache import main

if __name__ == "__main__":
    main()
