#!/usr/bin/env python
"""`dwatt export-onnx` from a clone of the repository; the command lives in `dwatt.commands.export_onnx`.

python scripts/export_onnx.py --help
"""

from dwatt.commands.export_onnx import main

if __name__ == "__main__":
    main()
