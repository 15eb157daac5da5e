"""`run_ner`'s own decisions, checked without training: which data it reads, how its limits cut the splits, and
the exact bounds of its length and stride checks (a run would fail late, or silently drop words, past them)."""

import re
from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from dwatt.data.corpora import load_wnut16
from dwatt.tasks.ner import NerDataArguments, check_max_seq_length, load_ner_data

CONLL = "Paris\tB-LOC\nis\tO\n\nBob\tB-PER\nran\tO\n\nAnn\tB-PER\nsat\tO\n"


def conll(tmp_path, name, text=CONLL):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("given", ["train_file", "validation_file", "test_file"])
def test_any_one_data_file_replaces_the_bundled_dataset(tmp_path, given):
    raw = load_ner_data(NerDataArguments(**{given: conll(tmp_path, "data.txt")}))
    split = given.removesuffix("_file")
    assert list(raw) == [split] and raw[split]["tokens"] == [["Paris", "is"], ["Bob", "ran"], ["Ann", "sat"]]


def test_limits_cut_validation_and_test_only_and_never_past_their_end():
    bundled = load_wnut16()
    raw = load_ner_data(NerDataArguments(max_eval_samples=3, max_predict_samples=10**6, few_shot_k=5, few_shot_seed=1))
    assert raw["validation"]["tokens"] == bundled["validation"]["tokens"][:3]
    assert raw["test"]["tokens"] == bundled["test"]["tokens"]  # a limit past the end keeps the whole split
    assert len(raw["train"]) == 5
    unlimited = load_ner_data(NerDataArguments())
    assert [len(unlimited[split]) for split in unlimited] == [len(bundled[split]) for split in bundled]


def test_a_limit_on_a_split_the_data_lacks_is_ignored(tmp_path):
    raw = load_ner_data(NerDataArguments(train_file=conll(tmp_path, "train.txt"), max_eval_samples=1,
                                         max_predict_samples=1))  # fmt: skip
    assert list(raw) == ["train"] and len(raw["train"]) == 3


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)  # [CLS] ... [SEP]: 2 special tokens


def test_max_seq_length_may_use_every_position_and_no_more(tokenizer):
    backbone = SimpleNamespace(max_position_embeddings=16)
    check_max_seq_length(16, tokenizer, backbone)
    expected = (
        "--max_seq_length 17 is longer than the backbone's 16 positions; expected at most 16 (longer test "
        "sentences are still labelled in full, with overlapping windows)"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_max_seq_length(17, tokenizer, backbone)
    check_max_seq_length(10**6, tokenizer, SimpleNamespace())  # a backbone without absolute positions


def test_max_seq_length_must_leave_room_for_one_word(tokenizer):
    backbone = SimpleNamespace(max_position_embeddings=16)
    check_max_seq_length(3, tokenizer, backbone)
    expected = (
        "--max_seq_length 2 leaves no room for a word after the tokenizer's 2 special tokens; expected more (128 is "
        "the default)"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_max_seq_length(2, tokenizer, backbone)


def test_the_stride_is_checked_against_the_room_a_window_has(tokenizer):
    backbone = SimpleNamespace(max_position_embeddings=16)
    for stride in (0, 7):  # 10 positions less 2 special tokens: 8 for words
        check_max_seq_length(10, tokenizer, backbone, stride)
    for stride in (-1, 8):
        expected = (
            f"--stride {stride}; expected 0 <= stride < 8 (--max_seq_length 10 minus 2 special tokens), checked "
            "before training rather than at prediction"
        )
        with pytest.raises(ValueError, match=re.escape(expected)):
            check_max_seq_length(10, tokenizer, backbone, stride)


@pytest.mark.parametrize(("flag", "split"), [("--do_eval", "validation"), ("--do_predict", "test")])
def test_a_phase_without_its_split_is_refused_before_any_model_is_loaded(tmp_path, flag, split):
    from conftest import parse_run_args
    from transformers import TrainingArguments

    from dwatt.tasks.arguments import ModelArguments
    from dwatt.tasks.ner import run_ner

    args = parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", str(tmp_path / "never-read"), "--output_dir", tmp_path / "out", "--train_file",
         conll(tmp_path, "train.txt"), "--do_train", flag, "--report_to", "none", "--use_cpu"],
    )  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{flag} needs a {split} split; the data has ['train']")):
        run_ner(*args)
