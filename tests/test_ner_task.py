"""`run_ner`'s own decisions, checked without training: which data it reads, how its limits cut the splits, the
exact bounds of its length, stride, split and label checks (past them a run fails late or silently drops words),
the label list it builds the model with, and which splits it hands the Trainer."""

import re
from types import SimpleNamespace

import pytest
from conftest import parse_run_args
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
from transformers import AutoTokenizer, TrainingArguments

from dwatt.data.corpora import load_wnut16
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.ner import NerDataArguments, check_max_seq_length, load_ner_data, run_ner

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


class ModelLoading(Exception):
    """Raised where run_ner starts loading the model."""


@pytest.fixture
def stopped_at_the_model(monkeypatch):
    """run_ner stops with `ModelLoading` where it would load the tokenizer and the model."""
    import dwatt.tasks.ner as ner

    def load_word_tokenizer(*args, **kwargs):
        raise ModelLoading

    monkeypatch.setattr(ner, "load_word_tokenizer", load_word_tokenizer)
    return ner


def run_before_the_model(tmp_path, *flags):
    """run_ner's checks before the model, on a model folder that is never read."""
    model = tmp_path / "never-read"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    args = parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", model, "--output_dir", tmp_path / "out", "--report_to", "none", "--use_cpu", *flags],
    )  # fmt: skip
    run_ner(*args)


@pytest.mark.parametrize(("given", "flag", "split"), [("--train_file", "--do_eval", "validation"),
                                                      ("--train_file", "--do_predict", "test"),
                                                      ("--test_file", "--do_train", "train")])  # fmt: skip
def test_a_phase_without_its_split_is_refused_before_any_model_is_loaded(
    tmp_path, stopped_at_the_model, given, flag, split
):
    has = given.removeprefix("--").removesuffix("_file")
    with pytest.raises(ValueError, match=re.escape(f"{flag} needs a {split} split; the data has ['{has}']")):
        run_before_the_model(tmp_path, given, conll(tmp_path, "data.txt"), flag)


def test_training_data_with_no_entity_tag_is_refused(tmp_path, stopped_at_the_model):
    train = conll(tmp_path, "train.txt", "Paris\tO\nis\tO\n")
    expected = (
        f"{train}: every training tag is 'O'; expected entity tags (B-<type>/I-<type>) as well, or the model can "
        "only ever predict 'O'"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        run_before_the_model(tmp_path, "--train_file", train, "--do_train")
    with pytest.raises(ModelLoading):  # only training needs entity tags
        run_before_the_model(tmp_path, "--validation_file", train, "--do_eval")
    with pytest.raises(ModelLoading):  # one entity tag besides O is enough
        run_before_the_model(tmp_path, "--train_file", conll(tmp_path, "two.txt", "Paris\tB-LOC\nis\tO\n"),
                             "--do_train")  # fmt: skip


@pytest.mark.parametrize(("names", "refused_as"), [([], "'missing'"), (["O"], "'O'"), (["O", "B-PER"], None)])
def test_a_datasets_tag_names_need_one_besides_o(tmp_path, monkeypatch, stopped_at_the_model, names, refused_as):
    """A Hub dataset's ClassLabel names, as given (not completed like a file's tags): two are enough."""
    ner = stopped_at_the_model
    data = Dataset.from_dict({"tokens": [], "ner_tags": []}, features=Features(
        {"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))}))  # fmt: skip
    monkeypatch.setattr(ner, "load_ner_data", lambda data_args: DatasetDict(train=data))
    if refused_as is None:
        with pytest.raises(ModelLoading):
            run_before_the_model(tmp_path, "--do_train")
        return
    with pytest.raises(ValueError, match=re.escape(f"{ner.BUNDLED_DATASET}: every training tag is {refused_as}")):
        run_before_the_model(tmp_path, "--do_train")


def test_without_training_data_the_labels_come_from_the_data_there_is(tmp_path, monkeypatch):
    """An evaluation-only run reads its label names from its first split (the model's are checked against them
    when it loads)."""
    import dwatt.tasks.ner as ner

    seen = {}

    def load_model(model_args, model_class, **config):
        seen.update(config)
        raise ModelLoading

    monkeypatch.setattr(ner, "load_word_tokenizer", lambda *args, **kwargs: None)
    monkeypatch.setattr(ner, "load_model", load_model)
    with pytest.raises(ModelLoading):
        run_before_the_model(tmp_path, "--validation_file", conll(tmp_path, "dev.txt"), "--do_eval")
    assert seen["id2label"] == {0: "O", 1: "B-LOC", 2: "I-LOC", 3: "B-PER", 4: "I-PER"} and seen["num_labels"] == 5


@pytest.mark.parametrize("phase", ["--do_train", "--do_eval"])
def test_the_trainer_gets_only_the_splits_its_phases_use(tmp_path, monkeypatch, tiny_bert_dir, phase):
    """A split the run does not train or evaluate on is not handed to the Trainer (its `evaluate()` would score
    the wrong data); evaluation keeps label ids, not whole logits, between batches."""
    import dwatt.tasks.ner as ner
    from dwatt.metrics import logits_to_label_ids

    built = {}

    def trainer(**kwargs):
        built.update(kwargs)
        raise ModelLoading

    monkeypatch.setattr(ner, "Trainer", trainer)
    args = parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", tiny_bert_dir, "--output_dir", tmp_path / "out", "--report_to", "none", "--use_cpu",
         "--few_shot_k", "4", "--max_eval_samples", "4", phase],
    )  # fmt: skip
    with pytest.raises(ModelLoading):
        run_ner(*args)
    assert (built["train_dataset"] is None) == (phase != "--do_train")
    assert (built["eval_dataset"] is None) == (phase != "--do_eval")
    assert built["preprocess_logits_for_metrics"] is logits_to_label_ids
