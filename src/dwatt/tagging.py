"""Bulk tagging: a file of any size in, one label per word out, streamed, resumable after a kill.

Formats, by the input file's suffix: JSON lines (`.jsonl`: an object per line with `tokens`, a list of words, or
`text`, split on whitespace; written back with `tags` added), CoNLL columns (`.conll`/`.txt`/`.tsv`: the first
column is the word, sentences end at a blank line; written as word<TAB>tag) and plain text (`.text`: a line is a
text, split on whitespace; written as a JSON line of `text`, `words` and `tags`). Every word gets its label
however long the record (`dwatt.inference.predict_word_labels`, overlapping windows).

Records are tagged in chunks of `chunk_size`, each appended to the output and flushed whole. A rerun of the same
command finds the complete chunks already written (a chunk cut short by a kill is truncated away), skips them and
goes on: the result is byte for byte the output of an uninterrupted run, because the chunks, and so the batches
the model sees, are the same. Several processes (`accelerate launch -m dwatt tag ...`) take every n-th chunk each
into a part file of their own; the first process joins the parts in order at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".conll": "conll", ".txt": "conll", ".tsv": "conll", ".text": "text"}


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


def read_records(path: str | Path, fmt: str) -> Iterator[Record]:
    """The file's records, one at a time (the file is never read whole); bad lines name the file and line."""
    with open(path, encoding="utf-8") as handle:
        if fmt == "conll":
            words: list[str] = []
            for line in handle:
                if line.strip():
                    words.append(line.split()[0])
                elif words:
                    yield Record(words, None)
                    words = []
            if words:
                yield Record(words, None)
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
    """Tag every record of `source` into `output` (see the module's docstring); returns this process's file."""
    from tqdm.auto import tqdm

    from .inference import predict_word_labels

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file; expected records to tag")
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"chunk_size={chunk_size}, batch_size={batch_size}; expected both >= 1")
    fmt = format_of(source, fmt)
    rank, world = process
    target = output if world == 1 else output.with_name(f"{output.name}.part-{rank}-of-{world}")
    target.parent.mkdir(parents=True, exist_ok=True)
    done = resume_point(target, fmt, chunk_size)
    total = sum(1 for _ in read_records(source, fmt))
    mine = [start for start in range(0, total, chunk_size) if (start // chunk_size) % world == rank]
    records = read_records(source, fmt)
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
    return output


class OnnxTokenClassifier:
    """An exported model (`dwatt export-onnx`) behind the interface `predict_word_labels` uses: `config.id2label`,
    `parameters()` (for the device), and a call that returns `.logits`."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from types import SimpleNamespace

        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options)
        metadata = self.session.get_modelmeta().custom_metadata_map
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
