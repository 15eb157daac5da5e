"""run_classification end to end on the bundled MiniLM: learning, saving, data files, labels and errors.

The learning test classifies held-out sentences as movie review (Pang-Lee) or news (Lee corpus): a real
task on bundled text that a short run learns reliably, where 150-sentence polarity needs more steps
than a unit test can afford (about 0.6-0.7 accuracy after 30 steps).
"""

import csv
import json
import re

import pytest
import torch
from conftest import parse_run_args
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from dwatt.data.corpora import load_lee_corpus, load_pang_lee_polarity
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.classification import (
    ClassificationDataArguments,
    load_bundled_polarity,
    load_classification_data,
    resolve_labels,
    run_classification,
)


def parse(*args):
    """The three argument dataclasses, as the script builds them; quiet, on the CPU, seeded."""
    common = ["--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--use_cpu", "--seed", "0"]
    return parse_run_args((ModelArguments, ClassificationDataArguments, TrainingArguments), [*args, *common])


def write_csv(path, rows, columns=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return str(path)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def read_tsv(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines]


def movie_and_news_sentences():
    """Movie-review sentences (Pang-Lee) and news sentences (Lee corpus) of similar length."""
    movie = list(load_pang_lee_polarity()["text"])
    news = [
        sentence
        for document in load_lee_corpus()["train"]["text"]
        for sentence in re.split(r"(?<=[.!?])\s+", document)
        if 8 <= len(sentence.split()) <= 30
    ]
    return movie, news


@pytest.mark.slow
def test_training_beats_the_untrained_model_on_held_out_sentences(tmp_path):
    movie, news = movie_and_news_sentences()
    # 48 + 48 training sentences, 48 + 48 held out; interleaved so every batch sees both classes.
    train = [row for pair in zip(movie[:48], news[:48]) for row in ((pair[0], "movie"), (pair[1], "news"))]
    held_out = [(text, "movie") for text in movie[48:96]] + [(text, "news") for text in news[48:96]]
    train_file = write_csv(tmp_path / "train.csv", train)
    test_file = write_csv(tmp_path / "test.csv", held_out)
    data = ["--train_file", train_file, "--test_file", test_file, "--max_seq_length", "64"]
    model = ["--fusion", "dwatt", "--dwatt_scale", "sqrt_d"]
    batches = ["--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64"]

    untrained = run_classification(*parse(*model, *data, *batches, "--output_dir", str(tmp_path / "untrained"),
                                          "--do_predict"))  # fmt: skip
    output_dir = tmp_path / "trained"
    trained = run_classification(*parse(*model, *data, *batches, "--output_dir", str(output_dir), "--do_train",
                                        "--do_predict", "--max_steps", "12", "--learning_rate", "1e-4",
                                        "--fusion_learning_rate", "1e-3", "--warmup_steps", "2"))  # fmt: skip

    assert untrained["predict_samples"] == trained["predict_samples"] == 96
    assert trained["train_samples"] == 96
    # Chance is 0.5 and the untrained head predicts one class; 12 steps gave 0.93 (seed 0), 0.88 and 0.95 (seeds 1, 2).
    assert trained["predict_accuracy"] >= 0.8, trained
    assert trained["predict_accuracy"] >= untrained["predict_accuracy"] + 0.25, (untrained, trained)
    assert trained["predict_macro_f1"] >= 0.8

    rows = read_tsv(output_dir / "predictions.tsv")
    assert rows[0] == ["text", "gold", "predicted"]
    assert [row[1] for row in rows[1:]] == [label for _, label in held_out]
    accuracy = sum(row[1] == row[2] for row in rows[1:]) / len(held_out)
    assert accuracy == pytest.approx(trained["predict_accuracy"])
    for name in ("train_results.json", "predict_results.json", "all_results.json", "trainer_state.json"):
        assert (output_dir / name).is_file(), name

    # The saved folder is a self-contained Hub model: remote code, labels and tokenizer included.
    loaded = AutoModelForSequenceClassification.from_pretrained(output_dir, trust_remote_code=True).eval()
    assert loaded.config.id2label == {0: "movie", 1: "news"}
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    texts = [row[0] for row in rows[1:9]]
    with torch.no_grad():
        logits = loaded(**tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits
    assert [loaded.config.id2label[int(index)] for index in logits.argmax(-1)] == [row[2] for row in rows[1:9]]


def test_bundled_polarity_split_is_fixed_stratified_and_disjoint():
    first, second = load_bundled_polarity(), load_bundled_polarity()
    assert {split: len(first[split]) for split in first} == {"train": 150, "validation": 25, "test": 25}
    texts = {split: set(first[split]["text"]) for split in first}
    assert not (
        texts["train"] & texts["validation"] or texts["train"] & texts["test"] or texts["validation"] & texts["test"]
    )
    assert list(second["test"]["text"]) == list(first["test"]["text"])
    for split in first:
        negatives = list(first[split]["label"]).count(0)
        assert abs(2 * negatives - len(first[split])) <= 1, split  # stratified: as balanced as the size allows


def test_bundled_default_few_shot_run_writes_predictions(tiny_bert_dir, tmp_path):
    output_dir = tmp_path / "out"
    few_shot = ["--do_train", "--few_shot_k", "8", "--max_steps", "1", "--per_device_train_batch_size", "4"]
    results = run_classification(*parse("--model_name_or_path", tiny_bert_dir, "--output_dir", output_dir, *few_shot,
                                        "--do_predict", "--max_predict_samples", "4"))  # fmt: skip
    assert results["train_samples"] == 8
    assert results["predict_samples"] == 4
    rows = read_tsv(output_dir / "predictions.tsv")
    assert rows[0] == ["text", "gold", "predicted"]
    assert len(rows) == 5
    assert all(row[1] in {"neg", "pos"} and row[2] in {"neg", "pos"} for row in rows[1:])
    assert list(load_bundled_polarity()["test"]["text"][:4]) == [row[0] for row in rows[1:]]


def test_string_labels_are_sorted_from_the_train_file_and_an_unseen_label_raises(tmp_path):
    train_file = write_csv(tmp_path / "train.csv", [("rain again", "weather"), ("a late goal", "sports"),
                                                    ("fresh bread", "food"), ("sunny spells", "weather")])  # fmt: skip
    validation_file = write_csv(tmp_path / "dev.csv", [("a close match", "sports"), ("tax cuts", "politics")])
    model_args, data_args, _ = parse("--output_dir", str(tmp_path), "--train_file", train_file)
    raw, sources = load_classification_data(data_args)
    encoded, label_list = resolve_labels(raw, data_args, model_args, sources)
    assert label_list == ["food", "sports", "weather"]
    assert list(encoded["train"]["label"]) == [2, 1, 0, 2]

    with pytest.raises(ValueError, match=r"dev\.csv.*row 2.*'politics'"):
        run_classification(*parse("--output_dir", str(tmp_path / "out"), "--train_file", train_file,
                                  "--validation_file", validation_file, "--do_train", "--do_eval"))  # fmt: skip


def test_bad_inputs_fail_early_with_the_file_named(tmp_path):
    no_text = write_csv(tmp_path / "no_text.csv", [("rain", "weather")], columns=("sentence", "label"))
    with pytest.raises(ValueError, match=r"no_text\.csv.*no 'text' column"):
        run_classification(*parse("--output_dir", str(tmp_path / "a"), "--train_file", no_text, "--do_train"))
    train_file = write_csv(tmp_path / "train.csv", [("rain", "weather")])
    with pytest.raises(ValueError, match="--do_eval needs a validation split"):
        run_classification(*parse("--output_dir", str(tmp_path / "b"), "--train_file", train_file, "--do_eval"))
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        run_classification(*parse("--output_dir", str(tmp_path / "c"), "--train_file", str(tmp_path / "x.txt"),
                                  "--do_train"))  # fmt: skip


def test_json_lines_with_pairs_numeric_labels_and_an_unlabelled_test_file(tiny_bert_dir, tmp_path):
    train_file = write_jsonl(tmp_path / "train.jsonl", [
        {"text": "a man plays guitar", "text_pair": "someone makes music", "label": 10},
        {"text": "a dog sleeps", "text_pair": "a cat is running", "label": 2},
        {"text": "two kids swim", "text_pair": "children are in water", "label": 10},
        {"text": "the shop is closed", "text_pair": "the shop is open", "label": 2},
    ])  # fmt: skip
    test_file = write_jsonl(tmp_path / "test.jsonl", [{"text": "a boy\treads", "text_pair": "a child\nreads"}])
    output_dir = tmp_path / "out"
    files = ["--train_file", train_file, "--test_file", test_file]
    results = run_classification(*parse("--model_name_or_path", tiny_bert_dir, "--output_dir", output_dir, *files,
                                        "--do_train", "--do_predict", "--max_steps", "1",
                                        "--per_device_train_batch_size", "4"))  # fmt: skip
    assert "predict_accuracy" not in results  # nothing to score against
    rows = read_tsv(output_dir / "predictions.tsv")
    assert rows[0] == ["text", "text_pair", "gold", "predicted"]
    # Tabs and newlines in the text must not break the one-example-per-line format.
    assert rows[1][:3] == ["a boy reads", "a child reads", ""]
    assert rows[1][3] in {"2", "10"}
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "2", "1": "10"}  # numbers sort as numbers, not as strings


PAIRS = [
    {"text": "a man plays guitar", "text_pair": "someone makes music", "label": "yes"},
    {"text": "a dog sleeps", "text_pair": "a cat is running", "label": "no"},
]


def test_a_pair_column_missing_from_a_split_or_misspelt_is_refused(tmp_path):
    """A misspelt --text_pair_column, or a test file without the train file's second text, classified every
    example from its first text alone (`examples.get(...)` found nothing)."""
    train_file = write_jsonl(tmp_path / "train.jsonl", PAIRS)
    test_file = write_jsonl(tmp_path / "test.jsonl", [{"text": "a boy reads", "label": "yes"}])
    message = (r"train\.jsonl: no 'hypothsis' column \(columns: \['text', 'text_pair', 'label'\]\); expected one, "
               r"as --text_pair_column 'hypothsis' names it \(without it each example would be read from 'text' "
               r"alone\): set --text_pair_column to the column of the second text")  # fmt: skip
    with pytest.raises(ValueError, match=message):
        load_classification_data(parse("--output_dir", tmp_path, "--train_file", train_file,
                                       "--text_pair_column", "hypothsis")[1])  # fmt: skip
    message = (
        r"test\.jsonl: no 'text_pair' column \(columns: \['text', 'label'\]\); expected one, as .*train\.jsonl has one"
    )
    with pytest.raises(ValueError, match=message):
        load_classification_data(parse("--output_dir", tmp_path, "--train_file", train_file,
                                       "--test_file", test_file)[1])  # fmt: skip
    single = write_jsonl(tmp_path / "single.jsonl", [{"text": "a boy reads", "label": "yes"}])
    assert load_classification_data(parse("--output_dir", tmp_path, "--train_file", single)[1])  # no pairs: fine


def test_truncated_examples_are_counted_per_phase_and_logged(tiny_bert_dir, tmp_path, caplog):
    """--max_seq_length 8 cut the long texts with no count anywhere (NER counts its truncated sentences)."""
    long, short = "the film runs far too long and says far too little", "a fine film"
    train_file = write_csv(tmp_path / "train.csv", [(long, "neg"), (short, "pos"), (long, "neg"), (short, "pos")])
    dev_file = write_csv(tmp_path / "dev.csv", [(long, "neg"), (short, "pos")])
    test_file = write_csv(tmp_path / "test.csv", [(short, "pos"), (short, "pos"), (long, "neg")])
    files = ["--train_file", train_file, "--validation_file", dev_file, "--test_file", test_file]
    with caplog.at_level("WARNING", logger="dwatt.tasks.runner"):
        results = run_classification(*parse("--model_name_or_path", tiny_bert_dir, "--output_dir", tmp_path / "out",
                                            *files, "--max_seq_length", "8", "--do_train", "--do_eval",
                                            "--do_predict", "--max_steps", "1"))  # fmt: skip
    assert (results["train_truncated_examples"], results["eval_truncated_examples"]) == (2, 1)
    assert results["predict_truncated_examples"] == 1
    for phase, count in (("train", 2), ("eval", 1), ("predict", 1)):
        saved = json.loads((tmp_path / "out" / f"{phase}_results.json").read_text())
        assert saved[f"{phase}_truncated_examples"] == count
    assert ("2 of 4 train examples were cut to --max_seq_length 8 (the model reads only their first sub-words)"
            in caplog.text)  # fmt: skip
    assert "1 of 3 test examples were cut" in caplog.text and "1 of 2 validation examples were cut" in caplog.text
