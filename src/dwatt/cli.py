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


#: `dwatt <name>` -> the module whose `main(argv)` runs it, and a line of help.
COMMANDS: dict[str, tuple[str, str]] = {
    "ner": ("dwatt.commands.run_ner", "fine-tune for NER (token classification) with the stock Trainer"),
    "classification": ("dwatt.commands.run_classification", "fine-tune for sentence (pair) classification"),
    "mlm": ("dwatt.commands.run_mlm", "train with masked-language modelling"),
    "sweep": ("dwatt.commands.fewshot_sweep", "run or summarise a few-shot sweep from a config file"),
    "analyze": ("dwatt.commands.analyze_layers", "layer analysis of a trained NER checkpoint"),
    "push": ("dwatt.commands.push_to_hub", "push a run folder to the Hub with its model card (or --dry_run)"),
    "tag": ("dwatt.commands.tag", "tag the words of a file of any size (resumable; PyTorch or ONNX)"),
    "export-onnx": ("dwatt.commands.export_onnx", "export a checkpoint to one ONNX file (and int8)"),
    "space": ("dwatt.commands.space", "write a Gradio Space: entities and a per-word heatmap of the depth attention"),
    "assets": ("dwatt.assets", "install or locate large assets (all-mpnet-base-v2)"),
    "budget": ("dwatt.experiments.budget", "parameters each fusion adds to a backbone"),
    "bench-overhead": ("dwatt.commands.bench_overhead", "time, memory and FLOP overhead of each fusion"),
    "bench-cache": ("dwatt.commands.bench_frozen_cache", "speed of cached frozen-backbone features"),
    "bench-onnx": ("dwatt.commands.bench_onnx", "PyTorch against ONNX Runtime fp32 and int8: test F1 and speed"),
}


def main(argv: list[str] | None = None) -> None:
    """`dwatt <command> [arguments]` (also `python -m dwatt ...`)."""
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
        print("usage: dwatt <command> [arguments]   (dwatt <command> --help for its arguments)\n\ncommands:")
        print("\n".join(lines))
        raise SystemExit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [f"dwatt {name}", *rest]  # what argparse shows as the program name
    entry = importlib.import_module(COMMANDS[name][0]).main
    entry(rest)
