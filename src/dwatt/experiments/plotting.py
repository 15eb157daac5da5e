"""One way to draw every figure of the package (sweep, analysis, model card); atomic writes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; it replaces `path` in one step when the block succeeds."""
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def new_figure(width: float, height: float):
    """A figure of `width` x `height` inches with constrained layout, drawn by the Agg backend: no pyplot
    state and no display, so plotting works on headless training machines and in threads."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: Path, dpi: int = 90) -> Path:
    """Write the figure as PNG."""
    figure.savefig(path, dpi=dpi, format="png")
    return path
