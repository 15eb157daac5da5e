#!/usr/bin/env python
"""`dwatt analyze` from a clone of the repository; the command lives in `dwatt.commands.analyze_layers`.

python scripts/analyze_layers.py --help
"""

from dwatt.commands.analyze_layers import main

if __name__ == "__main__":
    main()
