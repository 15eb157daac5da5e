"""Reading text files line by line: encodings, BOMs, line endings, JSON lines."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]
# Universal newlines, as text-mode open() reads them: LF, CRLF and the old Mac CR. Only these:
# str.splitlines() would also split on U+0085, U+2028, ... which can occur inside tweets.
_NEWLINE = re.compile(r"\r\n|\r|\n")


def decode_lines(path: PathLike) -> list[str]:
    """Read a UTF-8 file (BOM, CRLF and CR tolerated) into lines; bad bytes name file and line."""
    if Path(path).is_dir():
        raise ValueError(f"{path}: is a folder; expected a data file (CoNLL columns, token<TAB>tag or JSON lines)")
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = len(_NEWLINE.findall(raw[: error.start].decode("latin-1"))) + 1
        bad_byte = raw[error.start : error.start + 1].hex()
        raise ValueError(
            f"{path}:{line_number}: not valid UTF-8 (byte 0x{bad_byte}); expected a UTF-8 text file"
        ) from None
    lines = _NEWLINE.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def line_list(lines: Sequence[int], shown: int = 5) -> str:
    text = ", ".join(map(str, lines[:shown]))
    return text + (f", ... ({len(lines)} in all)" if len(lines) > shown else "")


def json_lines(path: PathLike, lines: Iterable[str]) -> Iterable[tuple[int, Any]]:
    """(1-based line number, parsed value) of each non-blank JSON line; invalid JSON names the file and line."""
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield line_number, json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}:{line_number}: invalid JSON ({error.msg}); expected one JSON object per line (JSON lines)"
            ) from None
