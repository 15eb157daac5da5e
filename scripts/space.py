#!/usr/bin/env python
"""`dwatt space` from a clone of the repository; the command lives in `dwatt.commands.space`.

python scripts/space.py --help
"""

from dwatt.commands.space import main

if __name__ == "__main__":
    main()
