"""Reliability: bad input gets a clear error (file, line, what was expected), long input loses no word,
bad checkpoints and configs say what is wrong. docs/RELIABILITY.md maps every case to its test here.

Data cases already covered in tests/test_data.py (malformed tags, wrong column counts, empty files,
non-UTF-8 column files, BOM/CRLF column files, unseen dev/test tags) are not repeated.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, parse_run_args, tiny_backbone_config
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel, TrainingArguments
from transformers.modeling_outputs import TokenClassifierOutput

from dwatt import DWAttConfig, DWAttForTokenClassification, DWAttModel
from dwatt.data.ner_files import NO_BOUNDARY_WARNING_TOKENS, load_ner_files, read_column_file
from dwatt.data.tables import check_table_file
from dwatt.data.tokenization import LABEL_PAD_ID, tokenize_and_align_labels, tokenize_ner_dataset
from dwatt.inference import plan_windows, predict_word_labels
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.ner import NerDataArguments, run_ner

FIXTURES = Path(__file__).parent / "fixtures" / "reliability"
ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def tag_names(dataset) -> list[list[str]]:
    names = dataset.features["ner_tags"].feature.names
    return [[names[i] for i in row] for row in dataset["ner_tags"]]


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


# --- NER files: what is repaired is counted and reported; what cannot be is an error at file:line ----------


def test_i_tag_after_o_in_iob2_is_repaired_counted_and_reported(caplog):
    path = FIXTURES / "ner_iob2_i_after_o.conll"
    with caplog.at_level(logging.INFO, logger="dwatt.data"):
        data = load_ner_files(train_file=path)
    assert tag_names(data["train"]) == [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], ["O", "O", "B-PER"]]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{path}: 2 'I-' tag(s) started a chunk" in warnings[0] and "(lines 4, 9)" in warnings[0]


def test_i_tag_after_o_is_rejected_when_iob2_is_promised():
    path = FIXTURES / "ner_iob2_i_after_o.conll"
    with pytest.raises(ValueError, match=f"{path}:4: 'I-LOC' starts a chunk \\(after 'O'\\); expected 'B-LOC'"):
        read_column_file(path, scheme="iob2")


def test_iob1_file_is_converted_without_a_warning(caplog):
    with caplog.at_level(logging.INFO, logger="dwatt.data"):
        read_column_file(Path(__file__).parent / "fixtures" / "conll2003_iob1_sample.txt")
    assert [record.levelno for record in caplog.records] == [logging.INFO]
    assert "read as IOB1" in caplog.records[0].getMessage()


@pytest.mark.parametrize("tag", ["S-PER", "E-LOC", "b-per", "B-", "PER"])
def test_tags_of_other_schemes_name_file_and_line(tmp_path, tag):
    path = write(tmp_path, "bioes.txt", f"Ann B-PER\nLee {tag}\n")
    with pytest.raises(ValueError, match=f"{path}:2: malformed tag {tag!r}; expected 'O', 'B-<type>' or 'I-<type>'"):
        load_ner_files(train_file=path)


def test_file_without_sentence_boundaries_is_one_sentence_with_a_warning(tmp_path, caplog):
    count = NO_BOUNDARY_WARNING_TOKENS + 72
    path = write(tmp_path, "one_block.txt", "".join(f"w{i}\tO\n" for i in range(count)))
    with caplog.at_level(logging.WARNING, logger="dwatt.data"):
        sentences = read_column_file(path)
    assert [len(sentence.tokens) for sentence in sentences] == [count]  # no word dropped
    (message,) = [record.getMessage() for record in caplog.records]
    assert f"{path}: no blank line between lines 1 and {count}" in message and "expected a blank line" in message

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dwatt.data"):
        read_column_file(write(tmp_path, "short.txt", "Ann\tB-PER\nsmiles\tO"))  # one short sentence: fine
    assert not caplog.records


def test_bom_and_crlf_in_a_tab_file_are_accepted():
    data = load_ner_files(train_file=FIXTURES / "ner_bom_crlf.tsv")
    assert data["train"]["tokens"] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert tag_names(data["train"]) == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]


def test_bom_and_crlf_in_json_lines_are_accepted(tmp_path):
    record = json.dumps({"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]})
    path = write(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + record.encode() + b"\r\n\r\n" + record.encode() + b"\r\n")
    assert load_ner_files(train_file=path)["train"]["tokens"] == [["EU", "rejects"]] * 2


def test_non_utf8_names_file_and_line():
    path = FIXTURES / "ner_latin1.conll"
    with pytest.raises(ValueError, match=f"{path}:5: not valid UTF-8 \\(byte 0xe7\\); expected a UTF-8 text file"):
        load_ner_files(train_file=path)


@pytest.mark.parametrize("content", ["", "\n \n"])
def test_empty_json_lines_file_is_an_error(tmp_path, content):
    path = write(tmp_path, "empty.jsonl", content)
    with pytest.raises(ValueError, match=f"{path}: no sentences found"):
        load_ner_files(train_file=path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt: no such file"):
        load_ner_files(train_file=tmp_path / "nowhere.txt")


@pytest.mark.parametrize("tokens", [["Bob", " "], ["", "x"], ["\t", "\u00a0"]])
def test_whitespace_only_tokens_in_json_lines_name_file_and_line(tmp_path, tokens):
    good = json.dumps({"tokens": ["a"], "ner_tags": ["O"]})
    bad = json.dumps({"tokens": tokens, "ner_tags": ["O"] * len(tokens)})
    path = write(tmp_path, "blank.jsonl", f"{good}\n{bad}\n")
    with pytest.raises(ValueError, match=f"{path}:2: token \\d is .*empty or only whitespace; expected a word"):
        load_ner_files(train_file=path)


def test_whitespace_only_token_in_a_column_file_names_file_and_line(tmp_path):
    path = write(tmp_path, "nbsp.txt", "Ann\tB-PER\n\u00a0\tO\n")
    with pytest.raises(ValueError, match=f"{path}:2: empty token"):
        load_ner_files(train_file=path)


def test_words_without_subwords_keep_their_label_and_are_counted(tokenizer, caplog):
    """A zero-width space alone gives no sub-word: it is fed as [UNK], labelled, scored, and reported."""
    data = load_ner_files(train_file=FIXTURES / "ner_zero_width_tokens.jsonl")
    batch = {"tokens": list(data["train"]["tokens"]), "ner_tags": list(data["train"]["ner_tags"])}
    encoded = tokenize_and_align_labels(batch, tokenizer, max_seq_length=32)
    assert encoded["num_words_as_unk"] == [1, 1]
    for labels, tags in zip(encoded["labels"], batch["ner_tags"], strict=True):
        assert [label for label in labels if label != LABEL_PAD_ID] == tags  # every word has its label
    with caplog.at_level(logging.WARNING, logger="dwatt.data"):
        tokenized, truncated = tokenize_ner_dataset(data["train"], tokenizer, max_seq_length=32)
    assert "2 word(s) in 2 sentence(s) gave no sub-word" in caplog.text
    assert truncated == {"data": 0} and "num_words_as_unk" not in tokenized.column_names


def test_truncated_words_are_not_mistaken_for_words_without_subwords(tokenizer):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    encoded = tokenize_and_align_labels({"tokens": [words], "ner_tags": [[0] * 6]}, tokenizer, max_seq_length=5)
    assert encoded["num_words_truncated"] == [3] and encoded["num_words_as_unk"] == [0]


# --- classification files (CSV, TSV, JSON lines) ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        ("cls_bad_row.csv", 4, "found 3 field\\(s\\); expected 2 as in the header \\['text', 'label'\\]"),
        (
            "cls_unclosed_quote.csv",
            3,
            "unexpected end of data; expected ','-separated fields \\(an unclosed quote\\?\\)",
        ),
        ("cls_whitespace_text.tsv", 3, "'text' is '   '; expected text"),
    ],
)
def test_bad_classification_files_name_file_and_line(name, line, expected):
    path = FIXTURES / name
    with pytest.raises(ValueError, match=expected) as error:
        check_table_file(path, text_column="text", label_column="label")
    assert str(error.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "no rows found"),
        ("header_only.tsv", b"text\tlabel\n", "no rows found"),
        ("latin1.csv", b"text,label\nok,pos\nFran\xe7ois,neg\n", ":3: not valid UTF-8"),
        ("bad.jsonl", b'{"text": "a", "label": "pos"}\n{"text": \n', ":2: invalid JSON"),
        ("list.jsonl", b'["a", "pos"]\n', ":1: found list; expected one JSON object per line"),
        ("nolabel.jsonl", b'{"text": "a", "label": "pos"}\n{"text": "b", "label": ""}\n', ":2: 'label' is ''"),
        ("notext.csv", b"sentence,label\na,pos\n", "no 'text' column; found \\['label', 'sentence'\\]"),
        ("data.xlsx", b"PK", "unsupported file type '.xlsx'"),
    ],
)
def test_more_bad_classification_files(tmp_path, name, content, expected):
    with pytest.raises(ValueError, match=expected):
        check_table_file(write(tmp_path, name, content), text_column="text", label_column="label")


def test_good_classification_files_pass(tmp_path):
    # BOM, CRLF and a quoted field spanning two lines: two rows.
    assert check_table_file(FIXTURES / "cls_bom_crlf_multiline.csv", "text", "label") == 2
    unlabelled = write(tmp_path, "test.jsonl", '{"text": "a"}\n\n{"text": "b"}\n')  # a test file to predict
    assert check_table_file(unlabelled, "text", "label") == 2


# --- long input: every word gets a label ----------------------------------------------------------------


class EchoTagger(nn.Module):
    """A stand-in token classifier whose label at each position is known in advance.

    `mode="token"`: label = input id mod num_labels (tests which sub-word labels a word);
    `mode="position"`: label = position in the window (tests how much context the chosen window gives).
    """

    def __init__(self, num_labels: int, mode: str):
        super().__init__()
        self.mode = mode
        self.config = BertConfig(num_labels=num_labels)
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        num_labels = self.config.num_labels
        if self.mode == "token":
            ids = input_ids % num_labels
        else:
            ids = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        return TokenClassifierOutput(logits=nn.functional.one_hot(ids, num_labels).float())


def long_sentence(length: int) -> list[str]:
    """Words of one to four sub-words each (MiniLM vocabulary), plus a zero-width space."""
    pieces = ["Kathmandu", "visited", "Obama", "unbelievably", "the", "Microsoft", "long-winded", "\u200b", "!"]
    return [pieces[index % len(pieces)] for index in range(length)]


@pytest.mark.parametrize("stride", [0, 3, 8])
def test_every_word_of_a_10x_long_input_is_labelled_by_its_own_first_subword(tokenizer, stride):
    max_seq_length = 16
    words = long_sentence(10 * max_seq_length)
    assert len(tokenizer(words, is_split_into_words=True)["input_ids"]) > 10 * max_seq_length
    model = EchoTagger(num_labels=997, mode="token")
    labels = predict_word_labels(model, tokenizer, [words, ["short"]], max_seq_length=max_seq_length, stride=stride)
    assert [len(row) for row in labels] == [len(words), 1]
    encoding = tokenizer(words, is_split_into_words=True)
    unk_id = tokenizer.unk_token_id
    for index, label in enumerate(labels[0]):
        first = encoding.word_to_tokens(index)
        expected = (unk_id if first is None else encoding["input_ids"][first.start]) % 997  # no sub-word: [UNK]
        assert label == f"LABEL_{expected}", (index, words[index])


@pytest.mark.parametrize("stride", [4, 7, 10])
def test_each_word_is_scored_in_the_window_that_gives_it_most_context(tokenizer, stride):
    max_seq_length = 14  # 12 content sub-words per window, all full: the input is 10x longer
    words = [f"w{index}" for index in range(60)]  # each "w<n>" is two or more sub-words
    model = EchoTagger(num_labels=max_seq_length, mode="position")
    (positions,) = predict_word_labels(model, tokenizer, [words], max_seq_length=max_seq_length, stride=stride)
    encoding = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    total = len(encoding["input_ids"])
    needed = (stride - 1) // 2
    for index, label in enumerate(positions):
        in_window = int(label.removeprefix("LABEL_")) - 1  # minus [CLS]
        before, after = in_window, max_seq_length - 2 - 1 - in_window
        start = encoding.word_to_tokens(index).start
        assert before >= min(needed, start), (index, label)
        assert after >= min(needed, total - 1 - start), (index, label)


def test_windowed_prediction_equals_one_pass_when_the_input_fits(tokenizer):
    torch.manual_seed(0)
    config = DWAttConfig(
        backbone_config=BertConfig(vocab_size=30522, max_position_embeddings=128, **TINY), num_labels=5
    )
    model = DWAttForTokenClassification(config).eval()
    words = ["Barack", "Obama", "visited", "Kathmandu", "with", "Microsoft", "people"]
    windowed = predict_word_labels(model, tokenizer, [words], max_seq_length=64, stride=8)[0]
    encoding = tokenizer([words], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        ids = model(**encoding).logits[0].argmax(-1)
    first = [encoding.word_to_tokens(0, index).start for index in range(len(words))]
    assert windowed == [model.config.id2label[int(ids[position])] for position in first]
    # A document 10x the window on the real model: a label per word, texts split on whitespace.
    document = " ".join(long_sentence(200))
    assert [len(row) for row in predict_word_labels(model, tokenizer, [document, ""], max_seq_length=20)] == [200, 0]


def test_window_plan_covers_everything_with_the_requested_overlap():
    for total in (1, 11, 12, 13, 50, 121):
        windows = plan_windows(total, window_size=12, stride=5)
        assert windows[0].start == 0 and windows[-1].end == total
        assert all(window.end - window.start <= 12 for window in windows)
        assert all(later.start <= earlier.end - 5 for earlier, later in zip(windows, windows[1:]))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"stride": 14}, "stride=14; expected 0 <= stride < 14"),
        ({"stride": -1}, "stride=-1"),
        ({"max_seq_length": 2}, "leaves no room next to 2 special tokens"),
        ({"batch_size": 0}, "batch_size=0"),
    ],
)
def test_bad_window_arguments_are_refused(tokenizer, kwargs, expected):
    arguments = {"max_seq_length": 16, "stride": 4, **kwargs}
    with pytest.raises(ValueError, match=expected):
        predict_word_labels(EchoTagger(3, "token"), tokenizer, [["a", "b"]], **arguments)


# --- configs and checkpoints ------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A saved 3-label DWAtt token classifier on a tiny random BERT."""
    torch.manual_seed(0)
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    return folder


def edit_weights(folder: Path, edit) -> None:
    weights = load_file(folder / "model.safetensors")
    edit(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"fusion": "attention"}, "DWAttConfig.fusion='attention' is not valid; allowed values: 'dwatt'"),
        ({"fusion_layers": [0, 7]}, "fusion_layers contains 7; expected integers in \\[-3, 2\\]"),
    ],
)
def test_bad_config_json_names_the_field(checkpoint, changes, expected):
    edit_config(checkpoint, **changes)
    with pytest.raises(ValueError, match=expected):
        DWAttForTokenClassification.from_pretrained(checkpoint)


def test_missing_fusion_weights_are_initialised_with_a_warning(checkpoint, caplog):
    edit_weights(checkpoint, lambda weights: [weights.pop(key) for key in list(weights) if ".fusion." in key])
    with caplog.at_level(logging.WARNING, logger="dwatt.modeling_dwatt"):
        model, info = DWAttForTokenClassification.from_pretrained(checkpoint, output_loading_info=True)
    assert "the checkpoint has no weights for 16 fusion tensor(s) of fusion='dwatt'" in caplog.text
    assert "dwatt.fusion.depth_embedding" in caplog.text and "newly initialised" in caplog.text
    assert "dwatt.fusion.key_weight" in info["missing_keys"]
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())


def test_mis_shaped_fusion_weights_are_named(checkpoint):
    edit_weights(checkpoint, lambda weights: weights.update({"dwatt.fusion.key_weight": torch.zeros(5, 7)}))
    with pytest.raises(ValueError, match="(?s)dwatt.fusion.key_weight: checkpoint 5x7, model 24x32.*fusion weights"):
        DWAttForTokenClassification.from_pretrained(checkpoint)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(checkpoint, bad_value):
    def poison(weights):
        weights["classifier.weight"][1, 2] = bad_value

    edit_weights(checkpoint, poison)
    with pytest.raises(
        ValueError, match="non-finite \\(NaN or inf\\) weights in classifier.weight \\(1 of 96 values\\)"
    ):
        DWAttForTokenClassification.from_pretrained(checkpoint)


def test_plain_bert_checkpoint_points_to_from_backbone(tmp_path):
    BertModel(tiny_backbone_config(), add_pooling_layer=False).save_pretrained(tmp_path)
    for cls in (DWAttForTokenClassification, DWAttModel):
        with pytest.raises(ValueError, match=f"holds a 'bert' config, not a DWAtt .*{cls.__name__}.from_backbone"):
            cls.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'bert' config"):
        DWAttForTokenClassification.from_pretrained(tmp_path, config=tiny_backbone_config())


def test_label_map_that_disagrees_with_the_head_is_named(checkpoint):
    with pytest.raises(ValueError, match="(?s)classifier.weight: checkpoint 3x32, model 5x32.*num_labels=5"):
        DWAttForTokenClassification.from_pretrained(checkpoint, num_labels=5)
    edit_config(checkpoint, id2label={str(i): f"L{i}" for i in range(4)}, label2id={f"L{i}": i for i in range(4)})
    with pytest.raises(ValueError, match="The head does not match the label map: the config asks for num_labels=4"):
        DWAttForTokenClassification.from_pretrained(checkpoint)
    # A new label set on purpose: the head starts fresh, the rest is kept.
    model = DWAttForTokenClassification.from_pretrained(checkpoint, ignore_mismatched_sizes=True)
    assert model.classifier.out_features == 4


def test_label_map_of_the_same_size_with_other_names_warns(checkpoint, caplog):
    """Same size, other names: the trained head is kept (renaming is legitimate), but the user is told."""
    names = ["O", "B-LOC", "I-LOC"]
    with caplog.at_level(logging.WARNING, logger="dwatt.modeling_dwatt"):
        DWAttForTokenClassification.from_pretrained(checkpoint, num_labels=3)  # the saved map: no warning
        assert not caplog.records
        DWAttForTokenClassification.from_pretrained(
            checkpoint, id2label=dict(enumerate(names)), label2id={name: i for i, name in enumerate(names)}
        )
    assert "renames 3 of the 3 outputs of the trained head (0: 'LABEL_0' -> 'O'" in caplog.text
    assert "for different labels it must be retrained" in caplog.text


LOAD_UNDER_457 = r"""
import importlib.abc, json, sys

class BlockDwatt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "dwatt" or name.startswith("dwatt."):
            raise ImportError(name)

sys.meta_path.insert(0, BlockDwatt())
import transformers

outcomes = {}
for name, checkpoint, kwargs in json.load(open(sys.argv[1])):
    try:
        transformers.AutoModelForTokenClassification.from_pretrained(checkpoint, trust_remote_code=True, **kwargs)
        outcomes[name] = "loaded"
    except Exception as error:
        outcomes[name] = f"{type(error).__name__}: {error}"
outcomes["version"] = transformers.__version__
json.dump(outcomes, open(sys.argv[2], "w"))
"""


def test_checkpoint_checks_hold_under_transformers_4_57(tmp_path):
    """The same checks through remote code in transformers 4.57.6, whose loading reports differ."""
    python = ROOT / ".venv-tf457" / "bin" / "python"
    if not python.exists():
        if os.environ.get("DWATT_REQUIRE_COMPAT") == "1":
            pytest.fail(f"{python} is missing: run tests/compat/setup_tf457.sh")
        pytest.skip("no transformers 4.57.6 venv (tests/compat/setup_tf457.sh makes one)")
    torch.manual_seed(0)
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    cases = {"good": ({}, None), "labels": ({"num_labels": 5}, None), "nan": ({}, "nan"), "missing": ({}, "missing")}
    loads = []
    for name, (kwargs, damage) in cases.items():
        folder = tmp_path / name
        model.save_pretrained(folder)
        if damage == "nan":
            edit_weights(folder, lambda weights: weights["classifier.bias"].fill_(float("nan")))
        elif damage == "missing":
            edit_weights(folder, lambda weights: [weights.pop(key) for key in list(weights) if ".fusion." in key])
        loads.append((name, str(folder), kwargs))
    (tmp_path / "loads.json").write_text(json.dumps(loads))
    (tmp_path / "load.py").write_text(LOAD_UNDER_457)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HOME=str(tmp_path / "hf"))
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [str(python), "-I", str(tmp_path / "load.py"), str(tmp_path / "loads.json"), str(tmp_path / "out.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcomes = json.loads((tmp_path / "out.json").read_text())
    assert outcomes["version"] == "4.57.6"
    assert outcomes["good"] == "loaded" and outcomes["missing"] == "loaded"
    assert "no weights for 16 fusion tensor(s)" in completed.stderr
    assert outcomes["labels"].startswith("ValueError") and "num_labels=5" in outcomes["labels"]
    assert outcomes["nan"].startswith("ValueError: ") and "classifier.bias (3 of 3 values)" in outcomes["nan"]


def test_run_ner_reports_a_bad_file_from_the_reader_not_from_deep_inside(tiny_bert_dir, tmp_path):
    """Through run_ner: the error names file, line and expectation, and is raised by our reader before any
    tokenisation or `datasets` code runs (so the script's last line is this message)."""
    bad = write(tmp_path, "train.txt", "EU\tB-ORG\nrejects\tB_VERB\n")
    args = parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", tiny_bert_dir, "--train_file", bad, "--output_dir", tmp_path / "out",
         "--do_train", "--use_cpu", "--report_to", "none"],
    )  # fmt: skip
    with pytest.raises(ValueError) as error:
        run_ner(*args)
    assert str(error.value) == f"{bad}:2: malformed tag 'B_VERB'; expected 'O', 'B-<type>' or 'I-<type>' (IOB1/IOB2)"
    assert Path(str(error.traceback[-1].path)).name in {"tags.py", "ner_files.py"}  # the readers


# ----------------------------------------------------------------------------------------------------
# Silently wrong before (issue: off the happy path)
# ----------------------------------------------------------------------------------------------------


def test_cr_only_line_endings_read_as_lines(tmp_path):
    """Old Mac line endings: read as one token with the wrong tag before, exit 0."""
    sentences = read_column_file(write(tmp_path, "cr.txt", b"Obama\tB-person\rwent\tO\r\rParis\tB-geo-loc\r"))
    assert [(s.tokens, s.tags) for s in sentences] == [
        (["Obama", "went"], ["B-person", "O"]),
        (["Paris"], ["B-geo-loc"]),
    ]


def test_non_utf8_byte_after_cr_lines_names_the_right_line(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.txt:3: not valid UTF-8"):
        read_column_file(write(tmp_path, "bad.txt", b"a\tO\rb\tO\r\xffc\tO\r"))


@pytest.mark.parametrize("rate", ["-1e-3", "0"])
def test_a_fusion_learning_rate_that_is_not_positive_is_refused(rate):
    """torch checks the optimizer's default rate, not a group's own: -1e-3 was gradient ascent, exit 0."""
    with pytest.raises(ValueError, match="--fusion_learning_rate=.*expected a positive learning rate"):
        parse_run_args((ModelArguments,), [f"--fusion_learning_rate={rate}"])


def test_run_ner_without_a_phase_flag_is_refused_before_loading(tiny_bert_dir, tmp_path):
    """`run_ner.py --max_steps 20` loaded the model, wrote an empty folder and exited 0."""
    args = parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", tiny_bert_dir, "--output_dir", tmp_path / "out", "--max_steps", "20"],
    )
    with pytest.raises(ValueError, match="none of --do_train, --do_eval, --do_predict"):
        run_ner(*args)
    assert not (tmp_path / "out").exists()


def test_two_shards_started_at_once_on_a_new_sweep_both_go_on(tmp_path):
    """sweep.json was written outside the lock: one of two shards died on the shared temp file."""
    import threading

    from dwatt.experiments.sweep.config import load_sweep_config
    from dwatt.experiments.sweep.store import RUNS_FILE, RunsFile, check_settings

    fixed = load_sweep_config(ROOT / "configs" / "sweeps" / "wnut16-tuned.yaml").fixed_part()

    results_dir = tmp_path / "new-sweep"
    results_dir.mkdir()
    errors, barrier = [], threading.Barrier(8)

    def shard():
        try:
            barrier.wait()
            with RunsFile(results_dir / RUNS_FILE).locked():
                check_settings(results_dir, fixed)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=shard) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and json.loads((results_dir / "sweep.json").read_text())["settings"]["max_steps"] == 200
    assert sorted(path.name for path in results_dir.iterdir()) == [".runs.csv.lock", "sweep.json"]


# ----------------------------------------------------------------------------------------------------
# Misuse that gave a raw traceback or a silently wrong run (issue: off the happy path, continued)
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fusion_layer": [0]}, "unknown argument 'fusion_layer'; did you mean 'fusion_layers'"),
    ({"dwatt_scales": "sqrt_d"}, "unknown argument 'dwatt_scales'; did you mean 'dwatt_scale'"),
    ({"classifier_dropout": 5.0}, r"classifier_dropout=5.0 is not valid; expected None or a float in \[0, 1\)"),
    ({"initializer_range": -0.02}, "initializer_range=-0.02 is not valid; expected a positive std"),
    ({"num_labels": 0}, "num_labels=0 is not valid; expected at least 1 label"),
])  # fmt: skip
def test_bad_config_arguments_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DWAttConfig(backbone_config=tiny_backbone_config(), **kwargs)


def test_numpy_integer_layer_indices_are_plain_ints(tmp_path):
    import numpy as np

    config = DWAttConfig(backbone_config=tiny_backbone_config(), fusion_layers=[np.int64(0), np.int32(-1)])
    assert config.fusion_layers == [0, -1] and all(type(index) is int for index in config.fusion_layers)
    config.save_pretrained(tmp_path)  # JSON can store them
    assert DWAttConfig.from_pretrained(tmp_path).fused_layer_indices == [0, 2]


def test_a_saved_config_without_backbone_config_is_refused(tmp_path):
    DWAttConfig(backbone_config=tiny_backbone_config()).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["backbone_config"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="the saved config has no 'backbone_config'"):
        DWAttConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize(("length", "message"), [(0, "the input has 0 tokens"), (70, "more than the 64 positions")])
def test_empty_or_too_long_input_is_named_not_a_shape_error(length, message):
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3)).eval()
    with pytest.raises(ValueError, match=message):
        model(input_ids=torch.full((1, length), 5))


def tiny_ner(tiny_bert_dir, output_dir, *extra):
    return parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", tiny_bert_dir, "--output_dir", output_dir, "--few_shot_k", "16",
         "--max_eval_samples", "8", "--do_train", "--do_eval", "--max_steps", "2", "--report_to", "none",
         "--use_cpu", *extra],
    )  # fmt: skip


def test_a_fusion_flag_a_checkpoint_does_not_have_is_refused(tiny_bert_dir, tmp_path):
    run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "first"))  # a dwatt checkpoint
    with pytest.raises(ValueError, match=r"--fusion 'concat' \(the checkpoint has 'dwatt'\) would be ignored"):
        run_ner(*tiny_ner(tmp_path / "first", tmp_path / "second", "--fusion", "concat"))


def test_resuming_a_checkpoint_made_with_other_arguments_is_refused(tiny_bert_dir, tmp_path):
    """Another --train_file or learning rate into the same --output_dir resumed the old run, exit 0."""
    first = tiny_ner(tiny_bert_dir, tmp_path / "run", "--save_strategy", "steps", "--save_steps", "2")
    run_ner(*first)
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    other = tiny_ner(tiny_bert_dir, tmp_path / "run", "--save_strategy", "steps", "--save_steps", "2",
                     "--learning_rate", "1e-3", "--few_shot_k", "20")  # fmt: skip
    with pytest.raises(ValueError, match=r"other arguments \(.*few_shot_k: 16 then, 20 now.*learning_rate"):
        run_ner(*other)
    other_fusion = tiny_ner(tiny_bert_dir, tmp_path / "run", "--save_strategy", "steps", "--save_steps", "2",
                            "--fusion", "concat")  # fmt: skip
    with pytest.raises(ValueError, match=r"fusion: 'dwatt' then, 'concat' now"):  # was a raw optimizer-state error
        run_ner(*other_fusion)
    run_ner(*first)  # the same command resumes as before


def test_rerunning_a_finished_run_keeps_its_training_metrics(tiny_bert_dir, tmp_path, caplog):
    """The same command again (here with --do_predict added) resumed the last checkpoint with no step left and
    overwrote train_results.json with train_loss 0.0 and a runtime of ~0 s, which the model card then showed."""
    saving = ("--save_strategy", "steps", "--save_steps", "2")
    run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "run", *saving))
    files = ("train_results.json", "run_arguments.json", "trainer_state.json")
    before = {name: (tmp_path / "run" / name).read_text() for name in files}
    assert json.loads(before["train_results.json"])["train_loss"] > 0
    with caplog.at_level(logging.INFO, logger="dwatt.tasks.runner"):
        rerun = run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "run", *saving, "--do_predict",
                                  "--max_predict_samples", "4"))  # fmt: skip
    assert {name: (tmp_path / "run" / name).read_text() for name in files} == before
    assert rerun["train_loss"] == json.loads(before["train_results.json"])["train_loss"]
    assert json.loads((tmp_path / "run" / "all_results.json").read_text())["train_loss"] > 0
    assert "predict_samples" in rerun
    assert "Training was already complete" in caplog.text and "had reached step 2 of 2" in caplog.text


def test_an_all_o_training_file_is_refused(tiny_bert_dir, tmp_path):
    train = write(tmp_path, "train.txt", "a\tO\nb\tO\n\nc\tO\n")
    args = tiny_ner(
        tiny_bert_dir, tmp_path / "out", "--train_file", train, "--validation_file", train, "--few_shot_k", "2"
    )
    with pytest.raises(ValueError, match="every training tag is 'O'"):
        run_ner(*args)


def test_a_folder_as_train_file_and_a_file_as_output_dir_are_named(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match=r"is a folder; expected a data file"):
        run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "out", "--train_file", tmp_path))
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ValueError, match="is a file; expected a folder"):
        run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "taken"))


def test_an_unwritable_output_dir_is_refused_before_training(tiny_bert_dir, tmp_path, monkeypatch):
    """As root, chmod cannot make a folder read-only, so the write is made to fail as a read-only disk does."""
    import errno

    real_write_bytes = Path.write_bytes

    def read_only(self, data):
        if self.name.startswith(".write-test-"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(ValueError, match=r"is not writable \(Read-only file system\)"):
        run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "out"))


@pytest.mark.parametrize(("length", "message"), [("1024", "longer than the backbone's 128 positions"),
                                                  ("2", "leaves no room for a word")])  # fmt: skip
def test_max_seq_length_the_backbone_cannot_use_is_refused(tiny_bert_dir, tmp_path, length, message):
    with pytest.raises(ValueError, match=message):
        run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "out", "--max_seq_length", length))


def test_ignore_mismatched_sizes_continues_a_checkpoint_with_another_label_set(tiny_bert_dir, tmp_path):
    run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "first"))
    train = write(tmp_path, "train.txt", "Paris\tB-LOC\nis\tO\n\nBob\tB-PER\nran\tO\n")
    args = ["--train_file", train, "--validation_file", train, "--few_shot_k", "2"]
    with pytest.raises(Exception, match="ignore_mismatched_sizes"):
        run_ner(*tiny_ner(tmp_path / "first", tmp_path / "second", *args))
    results = run_ner(*tiny_ner(tmp_path / "first", tmp_path / "third", *args, "--ignore_mismatched_sizes"))
    assert "eval_f1" in results
    saved = json.loads((tmp_path / "third" / "config.json").read_text())  # the new label map, both ways round
    assert sorted(saved["id2label"].values()) == ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    assert saved["label2id"] == {label: int(index) for index, label in saved["id2label"].items()}


def test_an_invalid_repo_id_fails_the_dry_run(tmp_path):
    from test_hub import make_run

    from dwatt.hub.push import push_run

    make_run(tmp_path / "run")
    with pytest.raises(ValueError, match="is not a valid Hub repo id"):
        push_run(tmp_path / "run", "not a repo//id", dry_run=True)


def test_the_card_of_an_untrained_folder_says_so(tmp_path, minilm_path):
    from dwatt.hub.push import export_push_ready

    model = DWAttForTokenClassification.from_backbone(str(minilm_path), num_labels=3)
    model.save_pretrained(tmp_path / "untrained")
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(tmp_path / "untrained")
    card = (
        export_push_ready(tmp_path / "untrained", tmp_path / "hub", repo_id="you/x").folder / "README.md"
    ).read_text()
    assert "**Not fine-tuned**" in card and "fine-tuned for named-entity recognition" not in card


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda root: (root / "empty").mkdir() or root / "empty", ValueError, "has no config.json"),
    (lambda root: root / "missing" / "run", FileNotFoundError, "no such folder"),
    (lambda root: (root / "afile").write_text("x") and root / "afile", ValueError, "is a file; expected the folder"),
])  # fmt: skip
def test_from_pretrained_names_a_bad_local_path(tmp_path, make, error, message):
    """Before: an empty folder was called a plain encoder (use from_backbone), a missing one a bad Hub id."""
    with pytest.raises(error, match=message):
        DWAttForTokenClassification.from_pretrained(str(make(tmp_path)))


def test_a_truncated_weights_file_is_named(tmp_path):
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(OSError, match="the weights file could not be read .* cut short or corrupt"):
        DWAttForTokenClassification.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------------
# Found by trying (beyond the review's list): each gave a raw traceback, a late failure or a misleading answer
# ----------------------------------------------------------------------------------------------------

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    command = [sys.executable, str(SCRIPTS / name), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize(("content", "message"), [
    (None, r"args\.json: no such file; expected a JSON file of arguments"),
    ("{not json", r"args\.json:1: invalid JSON"),
    ("[1, 2]", r"args\.json: expected one JSON object of arguments, found a list"),
])  # fmt: skip
def test_an_arguments_file_that_is_missing_or_not_json_is_named(tmp_path, content, message):
    """Before: a raw FileNotFoundError / JSONDecodeError from inside HfArgumentParser."""
    from dwatt.tasks.arguments import parse_arguments
    from dwatt.validation import ArgumentError

    if content is not None:
        (tmp_path / "args.json").write_text(content)
    with pytest.raises(ArgumentError, match=message):
        parse_arguments((ModelArguments,), argv=[str(tmp_path / "args.json")])


def test_a_zero_batch_size_is_refused_before_loading(tiny_bert_dir, tmp_path):
    """Before: torch's sampler raised after the model was loaded and the data tokenised."""
    with pytest.raises(ValueError, match="--per_device_train_batch_size 0; expected at least 1"):
        run_ner(*tiny_ner(tiny_bert_dir, tmp_path / "out", "--per_device_train_batch_size", "0"))


def test_a_stride_too_large_for_the_window_is_refused_before_training(tiny_bert_dir, tmp_path):
    """Before: the run trained, then failed at prediction."""
    args = tiny_ner(tiny_bert_dir, tmp_path / "out", "--do_predict", "--max_seq_length", "8", "--stride", "50")
    with pytest.raises(ValueError, match=r"--stride 50; expected 0 <= stride < 6 .* before training"):
        run_ner(*args)
    assert not (tmp_path / "out" / "train_results.json").exists()


def test_mlm_blocks_are_capped_by_the_backbones_positions(tiny_bert_dir):
    """The tokenizer allows 512, the tiny backbone has 128 positions: before, blocks of 512 crashed mid-training."""
    from dwatt.tasks.mlm import MlmDataArguments, _block_size

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    config = BertConfig.from_pretrained(tiny_bert_dir)
    assert _block_size(MlmDataArguments(max_seq_length=4096), tokenizer, config) == 128


def test_sweep_command_line_mistakes_are_named(tmp_path):
    from dwatt.experiments.sweep.config import SweepConfigError
    from dwatt.experiments.sweep.runner import SweepArguments, parse_seeds, parse_shard

    with pytest.raises(ValueError, match=r"--shard 'abc': expected i/n"):
        parse_shard("abc")  # before: int() of 'abc'
    with pytest.raises(ValueError, match=r"--shard '2/2': expected i/n with 0 <= i < n"):
        parse_shard("2/2")  # before: a traceback from the planner
    assert parse_seeds("0,") == [0] and parse_seeds("3") == [0, 1, 2] and parse_seeds("2, 5") == [2, 5]
    mistakes = [
        ("--seeds", "0", r"expected a count N >= 1 .*seed 0 alone: 0,"),
        ("--seeds", "x", "expected a count N"),
        ("--ks", "1o0", "expected whole numbers >= 1"),
        ("--methods", "last,dwat", r"unknown \['dwat'\]; expected some of last"),
    ]
    for flag, value, expected in mistakes:
        arguments = SweepArguments(config=str(ROOT / "configs" / "sweeps" / "wnut16-tuned.yaml"))
        setattr(arguments, flag.lstrip("-"), value)
        with pytest.raises(SweepConfigError, match=rf"{flag} '{value}': {expected}"):
            arguments.load()  # before: int()'s ValueError; an unknown method ran nothing, silently
    config = ROOT / "configs" / "sweeps" / "wnut16-tuned.yaml"
    completed = run_script("fewshot_sweep.py", "--config", config, "--summary_only", "--output_root", tmp_path,
                           cwd=tmp_path)  # fmt: skip
    assert (
        completed.returncode != 0 and "has no results yet" in completed.stderr
    )  # before: "no finished runs yet", exit 0
    completed = run_script("fewshot_sweep.py", "--config", tmp_path / "typo.yaml", "--summary_only", cwd=tmp_path)
    assert completed.returncode != 0 and "typo.yaml: no such file; expected a sweep config" in completed.stderr


def test_push_and_analysis_of_a_missing_folder_say_so(tmp_path):
    from dwatt.hub.push import push_run

    with pytest.raises(FileNotFoundError, match="no such folder; expected a run folder"):
        push_run(tmp_path / "nope", "you/x", dry_run=True)  # before: a raw [Errno 2]
    completed = run_script("analyze_layers.py", "--model_name_or_path", tmp_path / "nope", cwd=tmp_path)
    assert completed.returncode != 0 and "no such folder" in completed.stderr  # before: "Repo id must be in the form"


def test_bench_overhead_names_an_unknown_backbone(tmp_path):
    completed = run_script("bench_overhead.py", "--backbones", "gpt9", cwd=tmp_path)
    assert completed.returncode != 0 and "unknown backbone 'gpt9'" in completed.stderr  # before: "check your internet"


def test_the_card_of_a_folder_written_by_the_transformers_example(tmp_path):
    """No run_arguments.json and `eval_f1` rather than `eval_overall_f1`: the card said "fine-tuned on not
    recorded" with an empty results table."""
    from test_hub import make_run

    from dwatt.hub.push import export_push_ready

    run = tmp_path / "example-run"
    run.mkdir()
    make_run(run, record_arguments=False)
    for name in ("eval_results.json", "predict_results.json", "all_results.json"):
        results = json.loads((run / name).read_text())
        (run / name).write_text(json.dumps({key.replace("_overall_", "_"): value for key, value in results.items()}))
    f1 = json.loads((run / "predict_results.json").read_text())["predict_f1"]
    card = (export_push_ready(run, tmp_path / "hub", repo_id="you/x").folder / "README.md").read_text()
    assert "on not recorded" not in card and "data this folder does not record" in card
    assert f"| test | `predict_results.json` | 30 | {f1:.4f} |" in card  # the results table has the test row
