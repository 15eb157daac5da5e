#!/usr/bin/env python
"""`dwatt classification` from a clone of the repository; the command lives in `dwatt.commands.run_classification`.

python scripts/run_classification.py --help
"""

from dwatt.commands.run_classification import main

if __name__ == "__main__":
    main()
