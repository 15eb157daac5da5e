"""Bulk tagging: every format, one label per word, resumable after a kill with byte-identical output, several
processes, and ONNX Runtime as the engine."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoTokenizer

from dwatt import DWAttForTokenClassification
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
    out = tag_file(model, tokenizer, tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}", chunk_size=7, progress=False)
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
        (tmp_path / "cut.jsonl").write_bytes(whole[:cut])
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
