#!/usr/bin/env python
"""`dwatt ner` from a clone of the repository; the command lives in `dwatt.commands.run_ner`.

python scripts/run_ner.py --help
"""

from dwatt.commands.run_ner import main

if __name__ == "__main__":
    main()
