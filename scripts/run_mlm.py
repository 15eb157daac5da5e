#!/usr/bin/env python
"""`dwatt mlm` from a clone of the repository; the command lives in `dwatt.commands.run_mlm`.

python scripts/run_mlm.py --help
"""

from dwatt.commands.run_mlm import main

if __name__ == "__main__":
    main()
