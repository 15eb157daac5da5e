#!/usr/bin/env python
"""`dwatt sweep` from a clone of the repository; the command lives in `dwatt.commands.fewshot_sweep`.

python scripts/fewshot_sweep.py --help
"""

from dwatt.commands.fewshot_sweep import main

if __name__ == "__main__":
    main()
