"""IOB tags: scheme detection, IOB1 -> IOB2 conversion and label lists."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Literal

from .lines import PathLike

Scheme = Literal["auto", "iob1", "iob2"]
_TAG_PATTERN = re.compile(r"^(?:O|[BI]-\S+)$")


def _split_tag(tag: str) -> tuple[str, str | None]:
    """Return (prefix, type) for an already validated tag; ("O", None) for outside."""
    return tag[0], tag[2:] or None


def detect_iob1(tag_sequences: Iterable[Sequence[str]]) -> bool:
    """True when some ``I-X`` starts a chunk (after ``O``, another type, or at sentence start).

    That never happens in valid IOB2, while IOB1 (the original CoNLL-2003 release) starts
    every chunk that way unless it touches a chunk of the same type.
    """
    return any(_i_tags_starting_chunks(tags) for tags in tag_sequences)


def _i_tags_starting_chunks(tags: Sequence[str]) -> list[int]:
    """Positions of ``I-X`` tags that start a chunk (after ``O``, another type, or at sentence start)."""
    starts, previous_type = [], None
    for index, tag in enumerate(tags):
        prefix, entity_type = _split_tag(tag)
        if prefix == "I" and entity_type != previous_type:
            starts.append(index)
        previous_type = entity_type
    return starts


def convert_iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert one sentence from IOB1 to IOB2.

    An ``I-X`` that starts a chunk becomes ``B-X``; an IOB1 ``B-X`` already marks a new chunk
    next to one of the same type and stays. Valid IOB2 input comes back unchanged.
    """
    converted: list[str] = []
    previous_type: str | None = None
    for tag in tags:
        prefix, entity_type = _split_tag(tag)
        if prefix == "I" and entity_type != previous_type:
            converted.append(f"B-{entity_type}")
        else:
            converted.append(tag)
        previous_type = entity_type
    return converted


def make_label_list(tag_sequences: Iterable[Sequence[str]]) -> list[str]:
    """Label list of a tag set: ``O`` first, then ``B-type``, ``I-type`` for each sorted type.

    Both prefixes are listed for every type even if one never occurs, so a model can predict
    (and `label_all_tokens` can map to) ``I-X`` for a type seen only as single-token chunks.
    """
    entity_types = {tag[2:] for tags in tag_sequences for tag in tags if tag != "O"}
    labels = ["O"]
    for entity_type in sorted(entity_types):
        labels += [f"B-{entity_type}", f"I-{entity_type}"]
    return labels


def checked_tag(tag: str, path: PathLike, line_number: int) -> str:
    """The tag in Unicode NFC (so 'B-PÉR' typed with a combining accent is the same label as the precomposed
    one); a malformed tag raises, naming the file and the line."""
    if not _TAG_PATTERN.match(tag):
        raise ValueError(
            f"{path}:{line_number}: malformed tag {tag!r}; expected 'O', 'B-<type>' or 'I-<type>' (IOB1/IOB2)"
        )
    return unicodedata.normalize("NFC", tag)


def _check_scheme(scheme: str) -> None:
    if scheme not in ("auto", "iob1", "iob2"):
        raise ValueError(f"scheme must be 'auto', 'iob1' or 'iob2', got {scheme!r}")


def _has_iob2_style_b_tag(tags: Sequence[str]) -> bool:
    """True when a ``B-X`` follows ``O``, another type or the sentence start: IOB1 only uses ``B-`` between
    two chunks of the same type, so such a tag shows the file was meant as IOB2."""
    previous_type = None
    for tag in tags:
        prefix, entity_type = _split_tag(tag)
        if prefix == "B" and entity_type != previous_type:
            return True
        previous_type = entity_type
    return False
