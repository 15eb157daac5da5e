"""Bulk tagging: a file of any size in, one label per word out, streamed, resumable after a kill.

Formats, by the input file's suffix: JSON lines (`.jsonl`: an object per line with `tokens`, a list of words, or
`text`, split on whitespace; written back with `tags` added), CoNLL columns (`.conll`/`.txt`/`.tsv`: the first
column is the word, sentences end at a blank line; written as word<TAB>tag) and plain text (`.text`: a line is a
text, split on whitespace; written as a JSON line of `text`, `words` and `tags`). Every word gets its label
however long the record (`dwatt.inference.predict_word_labels`, overlapping windows). A column file has as many
columns on every word line (split like `dwatt.data.ner_files`: on tabs where the line has one, else on
whitespace); a line with another count is refused, naming the file and line, because that is the mark of plain text
read as columns; the columns after the first (gold tags, say) are ignored, and their count is logged. A file whose
format is only guessed from an ambiguous suffix (`.txt`, `.tsv`: plain text and tables of texts have them too) is also
refused where it looks like text: a first column holding several words (a CoNLL word has no space: a table of texts),
or several columns in one sentence, no blank line in the whole file, and a last column that is not an NER tag (a line
of text, or a few); `.conll` or `--format conll` reads it as columns all the same. A JSON-lines record that already
has `tags` (gold tags, or an earlier run's) is refused: the output would hold the model's tags in their place and
pass for a gold file. An output whose suffix names another format than the one written (`.conll` for a JSON-lines
input, say) is refused, and so is an output that is the input (by any spelling or link).

Records are tagged in chunks of `chunk_size`, each appended to the output and flushed whole. A rerun of the same
command finds the complete chunks already written (a chunk cut short by a kill is truncated away), skips them and
goes on: the result is byte for byte the output of an uninterrupted run, because the chunks, and so the batches
the model sees, are the same. A manifest beside the output (`<output>.tagging.json`, written before the first
record) records what it is the output of: the input (path, size, SHA-256), the model (path and a SHA-256 of its
config and weights, or of the ONNX file), the tokenizer, the format, the chunk size and `max_seq_length`. A rerun
resumes only when all of these are the same (the paths excepted: a moved input or model of the same content is the
same); otherwise, and for a non-empty output without a manifest (written before manifests, or by something else),
it is refused, saying what differs, before the output is touched: removing the output starts afresh. Several
processes (`accelerate launch -m dwatt tag ...`) take every n-th chunk each
into a part file of their own; the first process joins the parts in order at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data.fingerprints import file_sha256
from .validation import ArgumentError

logger = logging.getLogger(__name__)

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".conll": "conll", ".txt": "conll", ".tsv": "conll", ".text": "text"}
#: What each input format is written as: CoNLL as word<TAB>tag columns, JSON lines and plain text as JSON lines.
WRITTEN_AS = {"conll": "conll", "jsonl": "jsonl", "text": "jsonl"}
FORMAT_NAMES = {"conll": "CoNLL columns", "jsonl": "JSON lines", "text": "plain text"}
#: Beside the output: what it is the output of (see the module's docstring).
MANIFEST_SUFFIX = ".tagging.json"
#: Suffixes read as CoNLL columns that plain text and tables of texts have too: a file told by one is checked for text.
AMBIGUOUS_SUFFIXES = (".txt", ".tsv")
#: An NER tag in a last column: O, or an IOB/IOBES prefix and a type.
_TAG_LIKE = re.compile(r"^(?:O|[BIESLU]-[^\W\d_]\S*)$")


@dataclass
class Record:
    words: list[str]
    source: Any  # the JSON object, or the text line, or None (CoNLL)


def format_of(path: str | Path, given: str | None = None) -> str:
    if given is not None:
        if given not in set(FORMATS.values()):
            raise ValueError(f"--format {given!r}; expected one of jsonl, conll, text")
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: cannot tell the format from {suffix!r}; pass --format jsonl, conll or text")
    return FORMATS[suffix]


def read_records(path: str | Path, fmt: str, columns: dict[str, int] | None = None,
                 text_checks: bool = True) -> Iterator[Record]:  # fmt: skip
    """The file's records, one at a time (the file is never read whole); bad lines name the file and line. For a
    column file, `columns` (if given) gets the number of word `lines` and of `columns` on each, and `text_checks`
    also refuses what looks like plain text or a table of texts (see the module's docstring)."""
    with open(path, encoding="utf-8") as handle:
        if fmt == "conll":
            words: list[str] = []
            expected, first_line, lines, sentences = 0, 0, 0, 0
            not_a_tag: tuple[int, str] | None = None  # the first line whose last column is not an NER tag
            anyway = "to read it as columns anyway, name the file .conll or pass --format conll"
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    if words:
                        sentences += 1
                        yield Record(words, None)
                        words = []
                    continue
                fields = line.rstrip().split("\t") if "\t" in line else line.split()  # as dwatt.data.ner_files
                if not expected:
                    expected, first_line = len(fields), number
                elif len(fields) != expected:
                    raise ValueError(
                        f"{path}:{number}: found {len(fields)} columns; expected {expected} as on line {first_line} "
                        "(a column file has as many on every line; a line of plain text read as columns would lose "
                        "all its words but the first); for plain text, a text per line, name the file .text or pass "
                        "--format text"
                    )
                word = fields[0].strip()
                if not word:
                    raise ValueError(f"{path}:{number}: empty first column; expected a word")
                if text_checks and len(word.split()) > 1:
                    raise ValueError(
                        f"{path}:{number}: the first column {word!r} is several words; expected a word (a CoNLL word "
                        "has no space): a table of texts read as columns would tag each text as one word; for plain "
                        "text, a text per line, cut the other columns, then name the file .text or pass --format text "
                        f"({anyway})"
                    )
                if not_a_tag is None and not _TAG_LIKE.match(fields[-1].strip()):
                    not_a_tag = (number, fields[-1].strip())
                words.append(word)
                lines += 1
            if text_checks and words and not sentences and expected > 1 and not_a_tag is not None:
                raise ValueError(
                    f"{path}:{first_line}: {lines} line(s) of {expected} columns and no blank line, the last column "
                    f"not an NER tag ({not_a_tag[1]!r} on line {not_a_tag[0]}); expected CoNLL columns (a word, "
                    "then tags; a blank line after each sentence): plain text read as columns would be one sentence "
                    f"of the first word of each line, the other {lines * (expected - 1)} words lost; for plain text, "
                    f"a text per line, name the file .text or pass --format text ({anyway})"
                )
            if words:
                yield Record(words, None)
            if columns is not None:
                columns.update(lines=lines, columns=expected)
            return
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if fmt == "text":
                yield Record(line.split(), line)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: invalid JSON ({error.msg}); expected one object per line") from None
            if not isinstance(record, dict) or not (isinstance(record.get("tokens"), list)
                                                    or isinstance(record.get("text"), str)):  # fmt: skip
                raise ValueError(f"{path}:{number}: expected an object with 'tokens' (a list of words) or 'text'")
            if "tags" in record:
                raise ValueError(
                    f"{path}:{number}: the record already has 'tags' (gold tags, or an earlier run's); the output "
                    "would hold the model's tags in their place and pass for a gold file; expected records without "
                    "'tags': remove the field, or keep it under another name (jq -c '.gold_tags = .tags | "
                    f"del(.tags)' {path} > renamed.jsonl) and tag that file"
                )
            words = record["tokens"] if isinstance(record.get("tokens"), list) else record["text"].split()
            yield Record([str(word) for word in words], record)


def format_record(record: Record, tags: list[str], fmt: str) -> str:
    if fmt == "conll":
        return "".join(f"{word}\t{tag}\n" for word, tag in zip(record.words, tags)) + "\n"
    if fmt == "text":
        return json.dumps({"text": record.source, "words": record.words, "tags": tags}, ensure_ascii=False) + "\n"
    return json.dumps({**record.source, "tags": tags}, ensure_ascii=False) + "\n"


def _record_ends(text: str, fmt: str) -> list[int]:
    """Offsets just past each complete record of an output text."""
    separator = "\n\n" if fmt == "conll" else "\n"
    ends, position = [], 0
    while (found := text.find(separator, position)) != -1:
        position = found + len(separator)
        ends.append(position)
    return ends


def count_records(path: str | Path, fmt: str, report: bool = True, text_checks: bool = True) -> int:
    """The records of `path`, every line checked; for a column file, the columns ignored are logged."""
    columns: dict[str, int] = {}
    total = sum(1 for _ in read_records(path, fmt, columns, text_checks))
    if report and columns.get("columns", 0) > 1:
        logger.info(
            "%s: %d word line(s) of %d columns; the first is the word, the %d after it were ignored (%d values)",
            path, columns["lines"], columns["columns"], columns["columns"] - 1,
            columns["lines"] * (columns["columns"] - 1),
        )  # fmt: skip
    return total


def _is_the_input(source: Path, path: Path) -> bool:
    return path.exists() and os.path.samefile(source, path)  # any spelling, a symbolic or a hard link


def check_paths(source: str | Path, output: str | Path, fmt: str) -> None:
    """Refuse, before anything is read or written, an output that is the input (by any spelling or link), and an
    output whose suffix names another format than the one `fmt` is written as."""
    source, output = Path(source), Path(output)
    for path in (output, output.with_name(output.name + MANIFEST_SUFFIX)):
        if source.exists() and _is_the_input(source, path):
            raise ArgumentError(
                f"--output {path} is the input file {source} (the same file by another name or a link); tagging "
                "into it would overwrite the input; expected another output file"
            )
    written = WRITTEN_AS[fmt]
    suffix = output.suffix.lower()
    if suffix in FORMATS and FORMATS[suffix] != written:
        suffixes = ", ".join(s for s, f in FORMATS.items() if f == written)
        raise ArgumentError(
            f"--output {output}: the suffix {suffix!r} means {FORMAT_NAMES[FORMATS[suffix]]}, but a "
            f"{FORMAT_NAMES[fmt]} input is written as {FORMAT_NAMES[written]}; expected an output ending in "
            f"{suffixes}"
        )


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    return {"path": str(Path(path).resolve()), "size": Path(path).stat().st_size, "sha256": file_sha256(path)}


def model_fingerprint(engine) -> dict[str, Any]:
    """The model's identity: an ONNX file's path and SHA-256, or a PyTorch model's path and a SHA-256 of its config
    (what the saved config.json holds) and weights, as loaded."""
    if isinstance(engine, OnnxTokenClassifier):
        fingerprint = file_fingerprint(engine.path)
        return {"path": fingerprint["path"], "sha256": fingerprint["sha256"]}
    import torch

    digest = hashlib.sha256()
    config = {key: value for key, value in engine.config.to_dict().items()
              if not key.startswith("_") and key != "transformers_version"}  # fmt: skip
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in engine.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    name = getattr(engine.config, "_name_or_path", "") or type(engine).__name__
    return {"path": str(Path(name).resolve()) if Path(name).exists() else name, "sha256": digest.hexdigest()}


def tokenizer_fingerprint(tokenizer) -> dict[str, Any]:
    """The tokenizer's identity: a fast tokenizer's pipeline (its normaliser, so lower-casing counts, its
    pre-tokeniser and vocabulary; not the truncation and padding each call sets), else its vocabulary; its path."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline = {key: value for key, value in json.loads(backend.to_str()).items()
                    if key not in ("truncation", "padding")}  # fmt: skip
    else:
        pipeline = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(f"{type(tokenizer).__name__} {json.dumps(pipeline, ensure_ascii=False)}".encode())
    name = str(getattr(tokenizer, "name_or_path", ""))
    return {"path": str(Path(name).resolve()) if name and Path(name).exists() else name, "sha256": digest.hexdigest()}


def _described(key: str, value: Any) -> str:
    if isinstance(value, dict):
        size = f"{value['size']} bytes, " if "size" in value else ""
        return f"{value.get('path')} ({size}sha256 {str(value.get('sha256'))[:12]})"
    return repr(value) if key == "format" else str(value)


def check_manifest(output: Path, manifest: dict[str, Any]) -> None:
    """Refuse to resume into `output` unless its manifest says it is the output of this very run (see the module's
    docstring); an absent or empty output is fine."""
    recorded_path = output.with_name(output.name + MANIFEST_SUFFIX)
    if not output.is_file() or output.stat().st_size == 0:
        return
    afresh = f"remove {output} (and {recorded_path.name}, if there) to start afresh, or pick another --output"
    if not recorded_path.is_file():
        raise ValueError(
            f"{output}: exists without {recorded_path.name}, the record of the input, model and chunk size it was "
            f"tagged with (an output written before dwatt tag kept one, or not by dwatt tag), so resuming into it "
            f"could mix the records of two runs; {afresh}"
        )
    try:
        recorded = json.loads(recorded_path.read_text(encoding="utf-8"))
        if not isinstance(recorded, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{recorded_path}: not a tagging manifest ({error}); {afresh}") from None
    differences = []
    for key, value in manifest.items():
        was = recorded.get(key)
        same = ({k: v for k, v in was.items() if k != "path"} == {k: v for k, v in value.items() if k != "path"}
                if isinstance(value, dict) and isinstance(was, dict) else was == value)  # fmt: skip
        if not same:
            was_text = _described(key, was) if was is not None else "not recorded"
            differences.append(f"{key}: was {was_text}, now {_described(key, value)}")
    if differences:
        raise ValueError(
            f"{output}: was tagged by another run ({'; '.join(differences)}); resuming into it would mix the "
            f"records of two runs; {afresh}"
        )


def write_manifest(output: Path, manifest: dict[str, Any]) -> None:
    path = output.with_name(output.name + MANIFEST_SUFFIX)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def resume_point(output: Path, fmt: str, chunk_size: int) -> int:
    """Records of complete chunks already in `output`; anything after them (a chunk cut short) is cut off."""
    if not output.is_file():
        return 0
    text = output.read_bytes().decode("utf-8", errors="replace")
    ends = _record_ends(text, fmt)
    done = (len(ends) // chunk_size) * chunk_size
    keep = ends[done - 1] if done else 0
    with output.open("r+b") as handle:
        handle.truncate(len(text[:keep].encode("utf-8")))
    return done


def tag_file(engine, tokenizer, source: str | Path, output: str | Path, fmt: str | None = None,
             chunk_size: int = 256, batch_size: int = 32, max_seq_length: int | None = None,
             process: tuple[int, int] = (0, 1), progress: bool = True) -> Path:  # fmt: skip
    """Tag every record of `source` into `output` (see the module's docstring); returns this process's file. `fmt`
    None: told by the suffix (a column file with an ambiguous suffix is also checked for plain text)."""
    from tqdm.auto import tqdm

    from .inference import predict_word_labels

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file; expected records to tag")
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"chunk_size={chunk_size}, batch_size={batch_size}; expected both >= 1")
    text_checks = fmt is None and source.suffix.lower() in AMBIGUOUS_SUFFIXES  # a format told is taken as told
    fmt = format_of(source, fmt)
    rank, world = process
    target = output if world == 1 else output.with_name(f"{output.name}.part-{rank}-of-{world}")
    check_paths(source, output, fmt)
    check_paths(source, target, fmt)
    total = count_records(source, fmt, rank == 0, text_checks)  # every line checked before the output is touched
    manifest = {"input": file_fingerprint(source), "model": model_fingerprint(engine),
                "tokenizer": tokenizer_fingerprint(tokenizer), "format": fmt, "chunk_size": chunk_size,
                "max_seq_length": max_seq_length}  # fmt: skip
    check_manifest(target, manifest)
    if world > 1:
        check_manifest(output, manifest)  # the joined output of an earlier run, which the join replaces
    target.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(target, manifest)
    done = resume_point(target, fmt, chunk_size)
    mine = [start for start in range(0, total, chunk_size) if (start // chunk_size) % world == rank]
    records = read_records(source, fmt, text_checks=text_checks)
    position, written = 0, 0
    bar = tqdm(total=sum(min(chunk_size, total - start) for start in mine), initial=done, unit="record",
               disable=not progress)  # fmt: skip
    with target.open("a", encoding="utf-8") as out, bar:
        for start in mine:
            while position < start:  # other processes' chunks
                next(records)
                position += 1
            chunk = [next(records) for _ in range(min(chunk_size, total - start))]
            position += len(chunk)
            if written + len(chunk) <= done:  # tagged by an earlier sitting
                written += len(chunk)
                continue
            tags = predict_word_labels(engine, tokenizer, [record.words for record in chunk], max_seq_length,
                                       batch_size=batch_size)  # fmt: skip
            out.write("".join(format_record(record, record_tags, fmt) for record, record_tags in zip(chunk, tags)))
            out.flush()
            os.fsync(out.fileno())
            written += len(chunk)
            bar.update(len(chunk))
    return target


def join_parts(output: str | Path, world: int, fmt: str, chunk_size: int) -> Path:
    """Interleave the processes' part files chunk by chunk into `output`, then remove them."""
    output = Path(output)
    parts = [output.with_name(f"{output.name}.part-{rank}-of-{world}") for rank in range(world)]
    texts = [part.read_text(encoding="utf-8") for part in parts]
    chunks = []
    for text in texts:
        ends = [0, *_record_ends(text, fmt)]
        chunks.append([text[ends[i]: ends[min(i + chunk_size, len(ends) - 1)]]
                       for i in range(0, len(ends) - 1, chunk_size)])  # fmt: skip
    with output.open("w", encoding="utf-8") as out:
        for index in range(max(map(len, chunks), default=0)):
            for rank in range(world):
                if index < len(chunks[rank]):
                    out.write(chunks[rank][index])
    for part in parts:
        part.unlink()
    manifests = [part.with_name(part.name + MANIFEST_SUFFIX) for part in parts]
    output_manifest = output.with_name(output.name + MANIFEST_SUFFIX)
    if manifests[0].is_file():  # the parts' manifests are the same: it becomes the joined output's
        os.replace(manifests[0], output_manifest)
    else:
        output_manifest.unlink(missing_ok=True)
    for manifest in manifests[1:]:
        manifest.unlink(missing_ok=True)
    return output


class OnnxTokenClassifier:
    """An exported model (`dwatt export-onnx`) behind the interface `predict_word_labels` uses: `config.id2label`,
    `parameters()` (for the device), and a call that returns `.logits`."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from types import SimpleNamespace

        import onnxruntime as ort
        import torch

        from .export import TASKS
        from .hub.space import check_architectures

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{path}: no such file; expected an ONNX file written by dwatt export-onnx")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options)
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "id2label" not in metadata or "task" not in metadata:
            raise ValueError(f"{path}: no 'id2label' and 'task' in its metadata; expected a file written by "
                             "dwatt export-onnx")  # fmt: skip
        architecture = {task: name for name, task in TASKS.items()}.get(metadata["task"], metadata["task"])
        check_architectures([architecture], f"{path}: exported as {metadata['task']!r} ({architecture})")
        self.config = SimpleNamespace(id2label={int(k): v for k, v in json.loads(metadata["id2label"]).items()})
        self.inputs = [item.name for item in self.session.get_inputs()]
        self.training = False
        self._device_marker = torch.zeros(0)

    def parameters(self):
        return iter([self._device_marker])

    def named_modules(self):
        return iter(())

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __call__(self, **inputs):
        from types import SimpleNamespace

        import numpy as np
        import torch

        feed = {name: inputs[name].numpy().astype(np.int64) for name in self.inputs if name in inputs}
        if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(None, feed)[0]))
