#!/usr/bin/env python
"""`dwatt bench-overhead` from a clone of the repository; the command lives in `dwatt.commands.bench_overhead`.

python scripts/bench_overhead.py --help
"""

from dwatt.commands.bench_overhead import main

if __name__ == "__main__":
    main()
