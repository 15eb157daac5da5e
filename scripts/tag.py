#!/usr/bin/env python
"""`dwatt tag` from a clone of the repository; the command lives in `dwatt.commands.tag`.

python scripts/tag.py --help
"""

from dwatt.commands.tag import main

if __name__ == "__main__":
    main()
