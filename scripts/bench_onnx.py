#!/usr/bin/env python
"""`dwatt bench-onnx` from a clone of the repository; the command lives in `dwatt.commands.bench_onnx`.

python scripts/bench_onnx.py --help
"""

from dwatt.commands.bench_onnx import main

if __name__ == "__main__":
    main()
