"""Sentence-classification tables (CSV, TSV, JSON lines): checked before `datasets` reads them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .lines import PathLike, decode_lines, json_lines
from .ner_files import _JSON_SUFFIXES

_TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}


def check_table_file(path: PathLike, text_column: str | None = None, label_column: str | None = None) -> int:
    """Check a classification file (CSV, TSV or JSON lines) line by line; return its number of rows.

    `datasets` reports a bad row, a stray byte or an empty file as a bare ``DatasetGenerationError``
    from deep inside its builder, so this reads the file first and raises ``ValueError`` naming the
    file, the 1-based line and what was expected: a row with another field count than the header, an
    unclosed quote, invalid JSON, non-UTF-8 bytes, no rows, or (when the columns are named) a row
    whose text is empty or only whitespace, or whose label is missing while other rows have one.
    A BOM and CRLF line endings are accepted; blank lines hold no row and are ignored.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _TABLE_DELIMITERS and suffix not in _JSON_SUFFIXES:
        expected = sorted([*_TABLE_DELIMITERS, *_JSON_SUFFIXES])
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {expected}")
    lines = decode_lines(path)
    if suffix in _JSON_SUFFIXES:
        rows = _json_rows(path, lines)
    else:
        rows = _delimited_rows(path, lines, _TABLE_DELIMITERS[suffix])
    if not rows:
        raise ValueError(f"{path}: no rows found; expected a header and at least one row (empty file?)")
    for column, required in ((text_column, True), (label_column, False)):
        if column is None:
            continue
        present = [(line, row) for line, row in rows if column in row]
        if not present:
            if required:
                raise ValueError(f"{path}: no {column!r} column; found {sorted(rows[0][1])}")
            continue  # an unlabelled file (a test file to predict) is fine
        expected = "text (an empty or whitespace-only text gives the model nothing to read)"
        if not required:
            expected = "a label, as the other rows have"
        for line, row in rows:
            value = row.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ValueError(f"{path}:{line}: {column!r} is {value!r}; expected {expected}")
    return len(rows)


def _delimited_rows(path: PathLike, lines: list[str], delimiter: str) -> list[tuple[int, dict[str, str]]]:
    """(line, {column: value}) of a CSV/TSV file with a header; field counts are checked per row."""
    reader = csv.reader(io.StringIO("\n".join(lines) + "\n"), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    while True:
        first_line = reader.line_num + 1  # a quoted field may span lines: report where the row starts
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise ValueError(
                f"{path}:{first_line}: {error}; expected {delimiter!r}-separated fields (an unclosed quote?)"
            ) from None
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        if header is None:
            header = fields
            continue
        if len(fields) != len(header):
            raise ValueError(
                f"{path}:{first_line}: found {len(fields)} field(s); expected {len(header)} as in the header {header}"
            )
        rows.append((first_line, dict(zip(header, fields, strict=True))))
    return rows


def _json_rows(path: PathLike, lines: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line, object) of a JSON lines file; every non-blank line must be one JSON object."""
    rows = []
    for line_number, record in json_lines(path, lines):
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{line_number}: found {type(record).__name__}; expected one JSON object per line")
        rows.append((line_number, record))
    return rows
