"""NER files: CoNLL / `token<TAB>tag` columns and JSON lines, read into datasets; the CoNLL
prediction writer beside its reader.

Not `datasets`' packaged `conll` builder (datasets 5.2): it needs the column names up front (4 for CoNLL-2003, 2
for token<TAB>tag), pads or cuts a line with another column count silently, and neither converts IOB1 to IOB2
nor checks a tag, so a malformed file trains on wrong labels without a word; this reader names the file and
line of each of those.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets import Sequence as SequenceFeature

from .lines import PathLike, decode_lines, json_lines, line_list
from .tags import (
    Scheme,
    _check_scheme,
    _has_iob2_style_b_tag,
    _i_tags_starting_chunks,
    checked_tag,
    convert_iob1_to_iob2,
    make_label_list,
)

logger = logging.getLogger(__name__)

#: A column file with no sentence boundary and more tokens than this gets a warning.
NO_BOUNDARY_WARNING_TOKENS = 128
_DOCSTART = "-DOCSTART-"
_JSON_SUFFIXES = {".json", ".jsonl"}


def ner_features(label_list: Sequence[str]) -> Features:
    """`datasets.Features` for NER: ``id``, ``tokens`` and ``ner_tags`` as ClassLabel ids."""
    return Features(
        {
            "id": Value("string"),
            "tokens": SequenceFeature(Value("string")),
            "ner_tags": SequenceFeature(ClassLabel(names=list(label_list))),
        }
    )


@dataclass
class NerSentence:
    """One sentence read from a file, with the line of every tag kept for error messages."""

    tokens: list[str]
    tags: list[str]
    path: str
    tag_lines: list[int] = field(default_factory=list)


def _apply_scheme(sentences: list[NerSentence], scheme: Scheme, path: PathLike) -> list[NerSentence]:
    """Bring the tags to IOB2: convert (``iob1``), repair and report (``auto``) or reject (``iob2``).

    An ``I-X`` that starts a chunk is how IOB1 starts chunks, and an error in IOB2. ``auto`` turns it
    into ``B-X`` either way, which is also how seqeval/conlleval read such a tag, so no entity changes
    meaning; it logs how many tags changed (a warning when the file otherwise looks like IOB2).
    ``iob2`` promises a clean IOB2 file, so the first such tag is an error naming file and line.
    """
    starts = [(sentence, index) for sentence in sentences for index in _i_tags_starting_chunks(sentence.tags)]
    if not starts:
        return sentences
    lines = [sentence.tag_lines[index] for sentence, index in starts]
    if scheme == "iob2":
        sentence, index = starts[0]
        tag = sentence.tags[index]
        before = f"after {sentence.tags[index - 1]!r}" if index else "at the start of a sentence"
        raise ValueError(
            f"{path}:{lines[0]}: {tag!r} starts a chunk ({before}); expected 'B-{tag[2:]}' (IOB2 starts every "
            f"chunk with 'B-'). {len(starts)} such tag(s) in the file; pass scheme='auto' to repair them to 'B-' "
            "(counted and logged) or scheme='iob1' for an IOB1 file"
        )
    looks_like_iob2 = scheme == "auto" and any(_has_iob2_style_b_tag(sentence.tags) for sentence in sentences)
    for sentence in sentences:
        sentence.tags = convert_iob1_to_iob2(sentence.tags)
    if looks_like_iob2:
        logger.warning(
            "%s: %d 'I-' tag(s) started a chunk, which IOB2 does not allow; repaired to 'B-' (lines %s). "
            "Pass scheme='iob2' to reject such files instead.",
            path, len(starts), line_list(lines),
        )  # fmt: skip
    else:
        logger.info("%s: read as IOB1; %d chunk start(s) converted from 'I-' to 'B-' (IOB2)", path, len(starts))
    return sentences


def read_column_file(path: PathLike, scheme: Scheme = "auto") -> list[NerSentence]:
    """Read a CoNLL-style column file: one token per line, token first, NER tag last.

    Covers the original CoNLL-2003 release (``word POS chunk NER``, space separated,
    ``-DOCSTART-`` lines, IOB1) and ``token<TAB>tag`` files such as the bundled WNUT-16.
    A line containing a tab is split on tabs only (tokens may then hold spaces), otherwise
    on whitespace. Blank or whitespace-only lines end a sentence; ``-DOCSTART-`` lines are
    document boundaries and are skipped. Every line must have the column count of the first.

    ``scheme``: ``"iob1"`` converts to IOB2; ``"iob2"`` rejects an ``I-`` tag that starts a chunk
    (file and line in the error); ``"auto"`` turns every such tag into ``B-`` and logs how many.

    A file with no sentence boundary at all is read as one sentence, with a warning when it is
    longer than ``NO_BOUNDARY_WARNING_TOKENS`` tokens (a missing blank line between sentences?).
    """
    _check_scheme(scheme)
    sentences: list[NerSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    tag_lines: list[int] = []
    expected_columns: int | None = None
    first_column_line = 0

    def end_sentence() -> None:
        nonlocal tokens, tags, tag_lines
        if tokens:
            sentences.append(NerSentence(tokens, tags, str(path), tag_lines))
            tokens, tags, tag_lines = [], [], []

    for line_number, line in enumerate(decode_lines(path), start=1):
        if line.strip() == "":
            end_sentence()
            continue
        # rstrip: a trailing tab or space must not pass for an empty last column.
        columns = line.rstrip().split("\t") if "\t" in line else line.split()
        if columns[0].strip() == _DOCSTART:
            end_sentence()
            continue
        if len(columns) < 2:
            raise ValueError(
                f"{path}:{line_number}: found 1 column ({line.strip()!r}); "
                "expected a token and an NER tag (the tag is the last column)"
            )
        if expected_columns is None:
            expected_columns, first_column_line = len(columns), line_number
        elif len(columns) != expected_columns:
            raise ValueError(
                f"{path}:{line_number}: found {len(columns)} columns; expected "
                f"{expected_columns} as on line {first_column_line} (token ... NER tag)"
            )
        token, tag = columns[0], columns[-1].strip()
        if token.strip() == "":
            raise ValueError(f"{path}:{line_number}: empty token; expected a token before the tag")
        tokens.append(token)
        tags.append(checked_tag(tag, path, line_number))
        tag_lines.append(line_number)
    end_sentence()

    if not sentences:
        raise ValueError(f"{path}: no sentences found; expected token/tag lines (empty file?)")
    if len(sentences) == 1 and len(sentences[0].tokens) > NO_BOUNDARY_WARNING_TOKENS:
        only = sentences[0]
        logger.warning(
            "%s: no blank line between lines %d and %d, so the whole file is one sentence of %d tokens; "
            "expected a blank line after each sentence. Training truncates it (and reports that); "
            "dwatt.inference labels every word of it.",
            path, only.tag_lines[0], only.tag_lines[-1], len(only.tokens),
        )  # fmt: skip
    return _apply_scheme(sentences, scheme, path)


def read_jsonl_file(
    path: PathLike, label_list: Sequence[str] | None = None, scheme: Scheme = "auto"
) -> list[NerSentence]:
    """Read JSON lines with ``tokens`` and ``ner_tags`` per line (blank lines are skipped).

    ``ner_tags`` may be strings, or integer ids into ``label_list`` (required then).
    """
    _check_scheme(scheme)
    sentences: list[NerSentence] = []
    for line_number, record in json_lines(path, decode_lines(path)):
        if not isinstance(record, dict) or "tokens" not in record or "ner_tags" not in record:
            raise ValueError(f"{path}:{line_number}: expected an object with 'tokens' and 'ner_tags' keys")
        tokens, raw_tags = record["tokens"], record["ner_tags"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{path}:{line_number}: 'tokens' must be a list of strings")
        if not isinstance(raw_tags, list) or len(raw_tags) != len(tokens):
            raise ValueError(
                f"{path}:{line_number}: 'ner_tags' must be a list as long as 'tokens' "
                f"({len(tokens)}), got {raw_tags!r:.80}"
            )
        if not tokens:
            raise ValueError(f"{path}:{line_number}: empty sentence; expected at least one token")
        blank = next((index for index, token in enumerate(tokens) if not token.strip()), None)
        if blank is not None:
            raise ValueError(
                f"{path}:{line_number}: token {blank} is {tokens[blank]!r}, empty or only whitespace; "
                "expected a word (a tokenizer gives it no sub-word to label)"
            )
        tags: list[str] = []
        for raw_tag in raw_tags:
            if isinstance(raw_tag, bool) or not isinstance(raw_tag, int | str):
                raise ValueError(f"{path}:{line_number}: tag {raw_tag!r} must be a string or an integer id")
            if isinstance(raw_tag, int):
                if label_list is None:
                    raise ValueError(f"{path}:{line_number}: integer tag {raw_tag} needs label_list to map it")
                if not 0 <= raw_tag < len(label_list):
                    raise ValueError(
                        f"{path}:{line_number}: tag id {raw_tag} is out of range for {len(label_list)} labels"
                    )
                raw_tag = label_list[raw_tag]
            tags.append(checked_tag(raw_tag, path, line_number))
        sentences.append(NerSentence(tokens, tags, str(path), [line_number] * len(tokens)))

    if not sentences:
        raise ValueError(f"{path}: no sentences found; expected JSON lines (empty file?)")
    return _apply_scheme(sentences, scheme, path)


def read_ner_file(
    path: PathLike, label_list: Sequence[str] | None = None, scheme: Scheme = "auto"
) -> list[NerSentence]:
    """Read one NER file, choosing the reader by extension: ``.json``/``.jsonl`` are JSON
    lines, anything else a column file (CoNLL or ``token<TAB>tag``)."""
    if Path(path).suffix.lower() in _JSON_SUFFIXES:
        return read_jsonl_file(path, label_list=label_list, scheme=scheme)
    return read_column_file(path, scheme=scheme)


def sentences_to_dataset(sentences: Sequence[NerSentence], label_list: Sequence[str]) -> Dataset:
    """Build a Dataset (``id``, ``tokens``, ``ner_tags``); every tag must be in ``label_list``."""
    label_to_id = {label: index for index, label in enumerate(label_list)}
    tag_ids: list[list[int]] = []
    for sentence in sentences:
        ids = []
        for tag, line_number in zip(sentence.tags, sentence.tag_lines, strict=True):
            if tag not in label_to_id:
                raise ValueError(
                    f"{sentence.path}:{line_number}: tag {tag!r} is not in the label list "
                    f"(taken from the training file): {list(label_list)}"
                )
            ids.append(label_to_id[tag])
        tag_ids.append(ids)
    return Dataset.from_dict(
        {
            "id": [str(index) for index in range(len(sentences))],
            "tokens": [sentence.tokens for sentence in sentences],
            "ner_tags": tag_ids,
        },
        features=ner_features(label_list),
    )


def load_ner_files(
    train_file: PathLike | None = None,
    validation_file: PathLike | None = None,
    test_file: PathLike | None = None,
    label_list: Sequence[str] | None = None,
    scheme: Scheme = "auto",
) -> DatasetDict:
    """Load the user's NER files into a DatasetDict with splits train/validation/test.

    The format follows the extension (see `read_ner_file`). The label list is, in order of
    preference: ``label_list`` as given, the tags of the whole training file, or (with no
    training file, e.g. evaluation only) the tags of all given files. A validation/test tag
    missing from it raises ValueError naming file, line and tag.
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    files = {split: path for split, path in files.items() if path is not None}
    if not files:
        raise ValueError("load_ner_files needs at least one of train_file, validation_file, test_file")
    sentences = {split: read_ner_file(path, label_list=label_list, scheme=scheme) for split, path in files.items()}
    if label_list is None:
        source = [sentences["train"]] if "train" in sentences else list(sentences.values())
        label_list = make_label_list(s.tags for split in source for s in split)
    return DatasetDict(
        {split: sentences_to_dataset(split_sentences, label_list) for split, split_sentences in sentences.items()}
    )


def write_conll_predictions(
    path: PathLike,
    tokens_list: Sequence[Sequence[str]],
    gold_tags_list: Sequence[Sequence[str]],
    pred_tags_list: Sequence[Sequence[str]],
) -> None:
    """Write ``token gold pred`` lines (conlleval input), a blank line between sentences.

    Predictions may be shorter than the sentence (words cut by truncation were never scored);
    the missing words are written with prediction ``O``, as conlleval would count them.
    """
    if not len(tokens_list) == len(gold_tags_list) == len(pred_tags_list):
        raise ValueError(
            f"got {len(tokens_list)} token lists, {len(gold_tags_list)} gold and "
            f"{len(pred_tags_list)} predicted tag lists; expected the same number"
        )
    lines: list[str] = []
    for index, (tokens, gold, pred) in enumerate(zip(tokens_list, gold_tags_list, pred_tags_list, strict=True)):
        if len(gold) != len(tokens) or len(pred) > len(tokens):
            raise ValueError(
                f"sentence {index}: {len(tokens)} tokens, {len(gold)} gold and {len(pred)} "
                "predicted tags; expected one gold tag per token and at most as many predictions"
            )
        padded_pred = list(pred) + ["O"] * (len(tokens) - len(pred))
        for token, gold_tag, pred_tag in zip(tokens, gold, padded_pred, strict=True):
            if any(character.isspace() for character in token):
                token = re.sub(r"\s", "_", token)  # a space would shift conlleval's columns
            lines.append(f"{token} {gold_tag} {pred_tag}")
        lines.append("")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")


def read_conll_sentences(path: str | Path, limit: int | None = None) -> list[list[str]]:
    """The words of a `token gold pred` file (what run_ner writes as predictions.conll)."""
    sentences, words = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split(" ")[0])
        elif words:
            sentences.append(words)
            words = []
    if words:
        sentences.append(words)
    return sentences[:limit]
