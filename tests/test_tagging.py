"""Bulk tagging: every format, one label per word, resumable after a kill with byte-identical output, several
processes, and ONNX Runtime as the engine."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoTokenizer

from dwatt import DWAttForSequenceClassification, DWAttForTokenClassification
from dwatt.commands.tag import main as tag_command
from dwatt.data.corpora import load_wnut16
from dwatt.tagging import join_parts, read_records, resume_point, tag_file


@pytest.fixture(scope="module")
def checkpoint(tiny_bert_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tagger")
    labels = load_wnut16()["train"].features["ner_tags"].feature.names
    torch.manual_seed(0)
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=len(labels),
                                                      id2label=dict(enumerate(labels)))  # fmt: skip
    with torch.no_grad():  # a head that predicts more than one label
        model.classifier.weight.normal_(0, 1.0)
    model.save_pretrained(folder)
    return folder


def tweets(count: int) -> list[list[str]]:
    words = load_wnut16()["test"]["tokens"]
    return [words[i % len(words)] for i in range(count)]


def write_inputs(folder, count):
    sentences = tweets(count)
    (folder / "in.jsonl").write_text(
        "".join(json.dumps({"id": i, "tokens": s}) + "\n" for i, s in enumerate(sentences))
    )
    (folder / "in.conll").write_text("".join("".join(f"{w}\tX\n" for w in s) + "\n" for s in sentences))
    (folder / "in.text").write_text("".join(" ".join(s) + "\n" for s in sentences))
    return sentences


def load(checkpoint):
    return DWAttForTokenClassification.from_pretrained(checkpoint).eval(), AutoTokenizer.from_pretrained(checkpoint)


@pytest.mark.parametrize("fmt", ["jsonl", "conll", "text"])
def test_every_word_of_every_record_gets_a_label_in_every_format(checkpoint, tmp_path, fmt):
    sentences = write_inputs(tmp_path, 30)
    model, tokenizer = load(checkpoint)
    written = "conll" if fmt == "conll" else "jsonl"  # plain text is written as JSON lines
    out = tag_file(model, tokenizer, tmp_path / f"in.{fmt}", tmp_path / f"out.{written}", chunk_size=7,
                   progress=False)  # fmt: skip
    text = out.read_text()
    if fmt == "conll":
        blocks = [block.splitlines() for block in text.strip("\n").split("\n\n")]
        assert [[line.split("\t")[0] for line in block] for block in blocks] == sentences
        tags = [[line.split("\t")[1] for line in block] for block in blocks]
    else:
        rows = [json.loads(line) for line in text.splitlines()]
        assert [row.get("tokens") or row["words"] for row in rows] == sentences
        assert fmt != "jsonl" or [row["id"] for row in rows] == list(range(30))  # the input's fields are kept
        tags = [row["tags"] for row in rows]
    labels = set(model.config.id2label.values())
    assert all(len(t) == len(s) and set(t) <= labels for t, s in zip(tags, sentences))
    assert len({tag for row in tags for tag in row}) > 1


def test_a_run_cut_at_any_point_resumes_to_the_same_bytes(checkpoint, tmp_path):
    write_inputs(tmp_path, 40)
    model, tokenizer = load(checkpoint)
    whole = tag_file(model, tokenizer, tmp_path / "in.jsonl", tmp_path / "whole.jsonl", chunk_size=6,
                     progress=False).read_bytes()  # fmt: skip
    for cut in (0, 1, len(whole) // 3, len(whole) // 2 + 5, len(whole) - 1):  # mid-record cuts included
        (tmp_path / "cut.jsonl").write_bytes(whole[:cut])  # what a kill leaves: the output cut, and its manifest
        shutil.copy(tmp_path / "whole.jsonl.tagging.json", tmp_path / "cut.jsonl.tagging.json")
        tag_file(model, tokenizer, tmp_path / "in.jsonl", tmp_path / "cut.jsonl", chunk_size=6, progress=False)
        assert (tmp_path / "cut.jsonl").read_bytes() == whole, cut
    assert resume_point(tmp_path / "cut.jsonl", "jsonl", 6) == 36  # complete chunks only: 6 x 6 of 40


def test_several_processes_join_into_the_bytes_of_one(checkpoint, tmp_path):
    write_inputs(tmp_path, 25)
    model, tokenizer = load(checkpoint)
    one = tag_file(model, tokenizer, tmp_path / "in.conll", tmp_path / "one.conll", chunk_size=4,
                   progress=False).read_bytes()  # fmt: skip
    for rank in range(3):
        tag_file(model, tokenizer, tmp_path / "in.conll", tmp_path / "many.conll", chunk_size=4, process=(rank, 3),
                 progress=False)  # fmt: skip
    assert join_parts(tmp_path / "many.conll", 3, "conll", 4).read_bytes() == one
    assert not list(tmp_path.glob("many.conll.part-*"))


def test_bad_input_lines_are_named(checkpoint, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"tokens": ["a"]}\n{"words": ["b"]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected an object with 'tokens'"):
        list(read_records(tmp_path / "bad.jsonl", "jsonl"))
    (tmp_path / "bad.csv").write_text("x")
    with pytest.raises(ValueError, match="cannot tell the format"):
        tag_file(*load(checkpoint), tmp_path / "bad.csv", tmp_path / "o", progress=False)


def test_onnx_runtime_tags_as_pytorch_does(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from dwatt.export import export_onnx
    from dwatt.tagging import OnnxTokenClassifier

    write_inputs(tmp_path, 20)
    model, tokenizer = load(checkpoint)
    export_onnx(model, tokenizer, tmp_path / "model.onnx")
    torch_out = tag_file(model, tokenizer, tmp_path / "in.text", tmp_path / "torch.jsonl", "text", progress=False)
    onnx_out = tag_file(OnnxTokenClassifier(tmp_path / "model.onnx"), tokenizer, tmp_path / "in.text",
                        tmp_path / "onnx.jsonl", "text", progress=False)  # fmt: skip
    assert onnx_out.read_text() == torch_out.read_text()


@pytest.mark.slow
def test_the_command_killed_halfway_and_run_again_writes_the_same_bytes(checkpoint, tmp_path):
    write_inputs(tmp_path, 3000)
    command = [sys.executable, "-m", "dwatt", "tag", str(checkpoint), "--input", str(tmp_path / "in.jsonl"),
               "--chunk_size", "50", "--no_progress"]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    subprocess.run([*command, "--output", str(tmp_path / "whole.jsonl")], check=True, env=env, timeout=900,
                   capture_output=True)  # fmt: skip
    process = subprocess.Popen([*command, "--output", str(tmp_path / "killed.jsonl")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    whole = (tmp_path / "whole.jsonl").read_bytes()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        killed = tmp_path / "killed.jsonl"
        if killed.is_file() and killed.stat().st_size > len(whole) // 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < (tmp_path / "killed.jsonl").stat().st_size < len(whole)  # killed halfway
    subprocess.run([*command, "--output", str(tmp_path / "killed.jsonl")], check=True, env=env, timeout=900,
                   capture_output=True)  # fmt: skip
    assert (tmp_path / "killed.jsonl").read_bytes() == whole


def run_tag_command(capsys, *argv) -> tuple[int, str]:
    """`dwatt tag ...` in this process: (exit status, stderr)."""
    try:
        tag_command([*map(str, argv), "--no_progress"])
        status = 0
    except SystemExit as end:
        status = end.code
    return status, capsys.readouterr().err


def test_an_output_that_is_the_input_is_refused_before_anything_is_touched(checkpoint, tmp_path, capsys):
    write_inputs(tmp_path, 5)
    before = (tmp_path / "in.jsonl").read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "in.jsonl")
    for same in (tmp_path / "in.jsonl", tmp_path / "sub" / ".." / "in.jsonl", tmp_path / "link.jsonl"):
        with pytest.raises(ValueError, match=r"--output .*(in|link)\.jsonl is the input file .*in\.jsonl"):
            tag_file(*load(checkpoint), tmp_path / "in.jsonl", same, chunk_size=2, progress=False)
        assert (tmp_path / "in.jsonl").read_bytes() == before
    status, err = run_tag_command(capsys, checkpoint, "--input", tmp_path / "in.jsonl", "--output",
                                  tmp_path / "link.jsonl")  # fmt: skip
    assert status == 2 and "link.jsonl is the input file" in err and str(tmp_path / "in.jsonl") in err
    assert (tmp_path / "in.jsonl").read_bytes() == before


def test_resuming_into_the_output_of_another_run_is_refused(checkpoint, tmp_path):
    write_inputs(tmp_path, 12)
    (tmp_path / "other.jsonl").write_text("".join(json.dumps({"tokens": s}) + "\n" for s in tweets(20)[8:]))
    model, tokenizer = load(checkpoint)
    out = tmp_path / "out.jsonl"
    first = tag_file(model, tokenizer, tmp_path / "in.jsonl", out, chunk_size=5, progress=False).read_bytes()
    assert json.loads((tmp_path / "out.jsonl.tagging.json").read_text())["chunk_size"] == 5
    tag_file(model, tokenizer, tmp_path / "in.jsonl", out, chunk_size=5, progress=False)  # the same run: resumes
    assert out.read_bytes() == first
    with pytest.raises(ValueError, match=r"out.jsonl: was tagged by another run \(input: was .*in.jsonl \(\d+ bytes"
                                         r".*now .*other.jsonl.*remove .*out.jsonl.* to start afresh"):  # fmt: skip
        tag_file(model, tokenizer, tmp_path / "other.jsonl", out, chunk_size=5, progress=False)
    with pytest.raises(ValueError, match=r"chunk_size: was 5, now 4"):
        tag_file(model, tokenizer, tmp_path / "in.jsonl", out, chunk_size=4, progress=False)
    cased = AutoTokenizer.from_pretrained(checkpoint, do_lower_case=False)  # the same vocabulary, cut otherwise
    with pytest.raises(ValueError, match=r"\(tokenizer: was .*sha256 \w+.*, now "):
        tag_file(model, cased, tmp_path / "in.jsonl", out, chunk_size=5, progress=False)
    with torch.no_grad():
        model.classifier.bias[0] += 1.0  # another model
    with pytest.raises(ValueError, match=r"\(model: was .*tagger.*sha256 \w+.*, now "):
        tag_file(model, tokenizer, tmp_path / "in.jsonl", out, chunk_size=5, progress=False)
    assert out.read_bytes() == first
    (tmp_path / "out.jsonl.tagging.json").unlink()  # an output written before manifests, or by something else
    with pytest.raises(ValueError, match=r"out.jsonl: exists without out.jsonl.tagging.json.*start afresh"):
        tag_file(*load(checkpoint), tmp_path / "in.jsonl", out, chunk_size=5, progress=False)
    assert out.read_bytes() == first


def test_plain_text_read_as_columns_is_refused_and_ignored_columns_are_reported(checkpoint, tmp_path, caplog):
    (tmp_path / "plain.txt").write_text("Ada Lovelace lived in London\nshe wrote notes\n\nBabbage built engines too\n")
    with pytest.raises(ValueError, match=r"plain.txt:2: found 3 columns; expected 5 as on line 1 .*\.text"):
        tag_file(*load(checkpoint), tmp_path / "plain.txt", tmp_path / "out.txt", progress=False)
    assert not (tmp_path / "out.txt").exists()
    (tmp_path / "gold.txt").write_text("Ada\tB-PER\tx\nLovelace\tI-PER\tx\n\nParis\tB-LOC\tx\n")  # gold columns
    with caplog.at_level(logging.INFO, logger="dwatt.tagging"):
        out = tag_file(*load(checkpoint), tmp_path / "gold.txt", tmp_path / "out.txt", progress=False)
    assert [line.split("\t")[0] for line in out.read_text().split()[::2]] == ["Ada", "Lovelace", "Paris"]
    assert "gold.txt: 3 word line(s) of 3 columns; the first is the word, the 2 after it were ignored" in caplog.text


def test_a_checkpoint_that_is_not_a_token_classifier_is_refused(checkpoint, tiny_bert_dir, tmp_path, capsys):
    write_inputs(tmp_path, 3)
    torch.manual_seed(0)
    classifier = DWAttForSequenceClassification.from_backbone(str(tiny_bert_dir), num_labels=2)
    classifier.save_pretrained(tmp_path / "cls")
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path / "cls")
    for model, expected in ((tmp_path / "cls", r"architectures \['DWAttForSequenceClassification'\]"),
                            (tiny_bert_dir, r"architectures \['BertModel'\]")):  # fmt: skip
        status, err = run_tag_command(capsys, model, "--input", tmp_path / "in.jsonl", "--output", tmp_path / "o.jsonl")
        assert status == 1 and re.search(rf"config.json: {expected}; expected a token classifier", err), err
        assert not (tmp_path / "o.jsonl").exists()
    pytest.importorskip("onnxruntime")
    from dwatt.export import export_onnx
    from dwatt.tagging import OnnxTokenClassifier

    export_onnx(classifier, AutoTokenizer.from_pretrained(tiny_bert_dir), tmp_path / "cls.onnx")
    with pytest.raises(ValueError, match=r"cls.onnx: exported as 'text-classification'.*expected a token classifier"):
        OnnxTokenClassifier(tmp_path / "cls.onnx")


def test_an_output_suffix_of_another_format_is_refused(checkpoint, tmp_path, capsys):
    write_inputs(tmp_path, 3)
    for source, output, written in (("in.jsonl", "o.conll", "JSON lines"), ("in.text", "o.text", "JSON lines"),
                                    ("in.conll", "o.jsonl", "CoNLL columns")):  # fmt: skip
        status, err = run_tag_command(capsys, checkpoint, "--input", tmp_path / source, "--output", tmp_path / output)
        assert status == 2 and f"is written as {written}" in err, err
        assert not (tmp_path / output).exists()
    tag_file(*load(checkpoint), tmp_path / "in.conll", tmp_path / "o.txt", progress=False)  # .txt is CoNLL too


def test_plain_text_or_a_table_of_texts_with_even_columns_is_refused(checkpoint, tmp_path, capsys):
    inputs = {  # every line the same column count: what the check of differing counts cannot see
        "texts.tsv": ("Paris is nice today\t17\nJohn lives in London\t18\n", 1, "first column 'Paris is nice today'"),
        "note.txt": ("John Smith flew from Paris to London on Monday with Mary\n", 1, "1 line(s) of 11 columns"),
        "names.txt": ("Angela Merkel\nBarack Obama\nLionel Messi\n", 1, "3 line(s) of 2 columns"),
    }
    for name, (text, line, what) in inputs.items():
        (tmp_path / name).write_text(text)
        output = tmp_path / f"out-{name}"
        status, err = run_tag_command(capsys, checkpoint, "--input", tmp_path / name, "--output", output)
        assert status == 1 and f"{name}:{line}: " in err and what in err, err
        assert "name the file .text or pass --format text" in err and "--format conll" in err, err
        assert not output.exists() and not (tmp_path / f"out-{name}.tagging.json").exists()
        assert (tmp_path / name).read_text() == text  # the input untouched
    model, tokenizer = load(checkpoint)
    real = {  # real column files keep working as before, under the suffixes that are checked for text too
        "gold.txt": "John B-PER\nlives O\nin O\nParis B-LOC\n",  # one sentence, no blank line: a tag column
        "words.txt": "John\nlives\nin\nParis\n\nMary\nleft\n",  # word-only columns, a word a line
        "docs.txt": "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\n",
        "one.tsv": "Paris\tB-LOC\n",
        "pos.tsv": "John\tNNP\nlives\tVBZ\n\nMary\tNNP\n",  # several sentences: no tag column needed
    }
    for name, text in real.items():
        (tmp_path / name).write_text(text)
        out = tag_file(model, tokenizer, tmp_path / name, tmp_path / f"out-{name}.conll", progress=False)
        words = [line.split("\t")[0] for line in out.read_text().splitlines() if line]
        assert words == [line.split()[0] for line in text.splitlines() if line], name
    # --format conll or a .conll suffix, told and not guessed: read as columns, as the user asked
    shutil.copy(tmp_path / "names.txt", tmp_path / "names.conll")
    for source, fmt in (("names.txt", "conll"), ("names.conll", None)):
        out = tag_file(model, tokenizer, tmp_path / source, tmp_path / f"forced-{source}.conll", fmt, progress=False)
        assert [line.split("\t")[0] for line in out.read_text().splitlines() if line] == ["Angela", "Barack", "Lionel"]


def test_a_json_lines_input_that_already_has_tags_is_refused(checkpoint, tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    records = [
        {"tokens": ["Mary", "left"]},
        {"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]},
    ]
    text = "".join(json.dumps(record) + "\n" for record in records)
    gold.write_text(text)
    status, err = run_tag_command(capsys, checkpoint, "--input", gold, "--output", tmp_path / "out.jsonl")
    assert status == 1 and "gold.jsonl:2: the record already has 'tags'" in err and "remove" in err, err
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.tagging.json").exists()
    assert gold.read_text() == text  # the gold tags untouched
