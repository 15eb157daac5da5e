#!/usr/bin/env python
"""`dwatt push` from a clone of the repository; the command lives in `dwatt.commands.push_to_hub`.

python scripts/push_to_hub.py --help
"""

from dwatt.commands.push_to_hub import main

if __name__ == "__main__":
    main()
