"""How every dwatt command ends when something is wrong: one clear message, no traceback, a meaningful exit status.

Bad arguments (a wrong type or range, a bad config file, a flag the command does not take) exit with status 2,
like argparse; any other failure with status 1. `--traceback` (or `DWATT_TRACEBACK=1`) shows the Python traceback
instead, for a bug report. (`--debug` is taken: it is a `TrainingArguments` flag.)
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from .validation import ArgumentError

TRACEBACK_FLAG = "--traceback"


def bad_argument_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user's arguments or config cannot be run (exit status 2)."""
    from .experiments.sweep.config import SweepConfigError

    return ArgumentError, SweepConfigError


def command(main: Callable[[list[str]], object]) -> Callable[[list[str] | None], object]:
    """Wrap a command's `main(argv)`: its errors become one line on stderr and an exit status."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None):
        argv = list(sys.argv[1:] if argv is None else argv)
        show_traceback = TRACEBACK_FLAG in argv or os.environ.get("DWATT_TRACEBACK", "") not in ("", "0")
        argv = [argument for argument in argv if argument != TRACEBACK_FLAG]
        try:
            return main(argv)
        except KeyboardInterrupt:
            if show_traceback:
                raise
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except Exception as error:  # noqa: BLE001 - every failure gets the same one-line treatment
            if show_traceback:
                raise
            bad_arguments = isinstance(error, bad_argument_errors())
            kind = "" if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: "
            hint = "" if bad_arguments else f" (run again with {TRACEBACK_FLAG} for the Python traceback)"
            print(f"error: {kind}{error}{hint}", file=sys.stderr)
            raise SystemExit(2 if bad_arguments else 1) from None

    return run
