"""run_mlm end to end on the bundled MiniLM: the loss falls, the saved model reloads tied, text files and blocks."""

import json
import logging
import math

import pytest
import torch
from conftest import parse_run_args
from transformers import AutoModelForMaskedLM, AutoTokenizer, TrainingArguments

from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.mlm import MlmDataArguments, group_texts, load_mlm_data, run_mlm


def parse(*args):
    """The three argument dataclasses, as the script builds them; quiet, on the CPU, seeded."""
    common = ["--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--use_cpu", "--seed", "0"]
    return parse_run_args((ModelArguments, MlmDataArguments, TrainingArguments), [*args, *common])


def test_group_texts_cuts_the_concatenation_into_full_blocks():
    examples = {
        "input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9]],
        "special_tokens_mask": [[1, 0, 1], [1, 1], [1, 0, 0, 1]],
    }
    blocks = group_texts(examples, block_size=4)
    assert blocks["input_ids"] == [[1, 2, 3, 4], [5, 6, 7, 8]]  # the 9 left over is dropped
    assert blocks["special_tokens_mask"] == [[1, 0, 1, 1], [1, 1, 0, 0]]


@pytest.mark.slow
def test_training_lowers_the_eval_loss_and_the_saved_model_reloads_tied(tmp_path):
    # Small blocks and few of them: the random LM head (MiniLM ships none) learns the unigram
    # distribution within a few steps, which is the drop this test looks for.
    shared = ["--fusion", "dwatt", "--dwatt_scale", "sqrt_d", "--max_seq_length", "64", "--max_eval_samples", "16",
              "--per_device_eval_batch_size", "16"]  # fmt: skip
    untrained = run_mlm(*parse(*shared, "--output_dir", str(tmp_path / "untrained"), "--do_eval"))
    output_dir = tmp_path / "trained"
    trained = run_mlm(*parse(*shared, "--output_dir", str(output_dir), "--do_train", "--do_eval", "--max_steps", "6",
                             "--per_device_train_batch_size", "8", "--learning_rate", "1e-4",
                             "--fusion_learning_rate", "1e-3"))  # fmt: skip

    assert untrained["eval_samples"] == trained["eval_samples"] == 16
    assert untrained["perplexity"] == pytest.approx(math.exp(untrained["eval_loss"]))
    assert trained["perplexity"] == pytest.approx(math.exp(trained["eval_loss"]))
    # The untrained head is worse than uniform over the vocabulary (ln 30522 = 10.3).
    assert untrained["eval_loss"] > 10.0
    assert trained["eval_loss"] < untrained["eval_loss"] - 1.5, (untrained, trained)
    for name in ("train_results.json", "eval_results.json", "all_results.json", "trainer_state.json"):
        assert (output_dir / name).is_file(), name

    loaded = AutoModelForMaskedLM.from_pretrained(output_dir, trust_remote_code=True)
    assert loaded.lm_head.decoder.weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    inputs = tokenizer(["the prime minister said on [MASK] that"], return_tensors="pt")
    with torch.no_grad():
        assert loaded(**inputs).logits.shape == (*inputs["input_ids"].shape, tokenizer.vocab_size)

    # Continuing from the saved DWAtt checkpoint keeps the trained head: its loss stays low.
    continued = run_mlm(*parse(*shared, "--model_name_or_path", str(output_dir),
                               "--output_dir", str(tmp_path / "continued"), "--do_eval"))  # fmt: skip
    assert continued["eval_loss"] < untrained["eval_loss"] - 1.5, (untrained, continued)


def test_text_files_give_one_document_per_line_and_short_text_fails(tiny_bert_dir, tmp_path):
    documents = ["The river rose overnight and flooded the lower town.", "", "Officials said the bridge would reopen."]
    train_file = tmp_path / "train.txt"
    train_file.write_text("\n".join(documents * 4) + "\n", encoding="utf-8")
    validation_file = tmp_path / "valid.txt"
    validation_file.write_text("Too short.\n", encoding="utf-8")

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    # Blank lines are skipped; every document keeps its [CLS] ... [SEP]; nothing is held out for validation.
    total_tokens = sum(len(tokenizer(text)["input_ids"]) for text in documents * 4 if text)
    tiny = ["--model_name_or_path", tiny_bert_dir, "--train_file", train_file, "--max_seq_length", "16"]
    results = run_mlm(*parse(*tiny, "--output_dir", tmp_path / "out", "--validation_split_percentage", "0",
                             "--do_train", "--max_steps", "1", "--per_device_train_batch_size", "4"))  # fmt: skip
    assert results["train_samples"] == total_tokens // 16

    short = len(tokenizer("Too short.")["input_ids"])
    with pytest.raises(ValueError, match=f"validation text is shorter than one block of 16 tokens: it has {short} "):
        run_mlm(*parse(*tiny, "--output_dir", tmp_path / "short", "--validation_file", validation_file, "--do_eval"))
    with pytest.raises(ValueError, match="--max_train_samples 0 leaves no train block; expected at least 1"):
        run_mlm(*parse(*tiny, "--output_dir", tmp_path / "none", "--validation_split_percentage", "0",
                       "--do_train", "--max_train_samples", "0"))  # fmt: skip


def test_tokens_after_the_last_whole_block_are_counted_logged_and_recorded(tiny_bert_dir, tmp_path, caplog):
    """The remainder after the last whole block (per map batch of 1000 documents, as transformers' run_mlm cuts
    it) was dropped without a count: 7 lines of 30 words at --max_seq_length 128 evaluated 1 block, 96 of 224
    tokens never seen. The blocking is kept; the dropped tokens are logged and recorded per split."""
    words = "the river rose overnight and flooded the lower town while officials said".split()
    validation = [" ".join(words[(i + j) % len(words)] for j in range(30)) for i in range(7)]
    # Over 1000 documents: group_texts runs on two map batches, each dropping its own remainder.
    train = [f"Line {i} says the river rose overnight." for i in range(1500)]
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("\n".join(validation) + "\n", encoding="utf-8")

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    eval_lengths = [len(tokenizer(text)["input_ids"]) for text in validation]
    eval_total = sum(eval_lengths)
    eval_dropped = eval_total % 128
    train_lengths = [len(tokenizer(text)["input_ids"]) for text in train]
    train_total = sum(train_lengths)
    train_blocks = sum(sum(train_lengths[start : start + 1000]) // 128 for start in range(0, 1500, 1000))
    train_dropped = train_total - 128 * train_blocks
    assert eval_dropped / eval_total > 0.10 and 0 < train_dropped / train_total <= 0.10
    assert train_blocks < train_total // 128  # two batches drop more than one concatenation would

    output_dir = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="dwatt.tasks.mlm"):
        results = run_mlm(*parse("--model_name_or_path", tiny_bert_dir, "--train_file", tmp_path / "train.txt",
                                 "--validation_file", tmp_path / "valid.txt", "--max_seq_length", "128",
                                 "--output_dir", output_dir, "--do_train", "--do_eval", "--max_steps", "1",
                                 "--per_device_train_batch_size", "4"))  # fmt: skip

    expected_eval = {"eval_samples": eval_total // 128, "eval_tokens": eval_total, "eval_dropped_tokens": eval_dropped}
    expected_train = {"train_samples": train_blocks, "train_tokens": train_total, "train_dropped_tokens": train_dropped}
    assert {key: results[key] for key in expected_eval} == expected_eval
    assert {key: results[key] for key in expected_train} == expected_train
    eval_file = json.loads((output_dir / "eval_results.json").read_text())
    train_file = json.loads((output_dir / "train_results.json").read_text())
    assert {key: eval_file[key] for key in expected_eval} == expected_eval
    assert {key: train_file[key] for key in expected_train} == expected_train

    logged = {record.getMessage().split(" (")[0]: record.levelno for record in caplog.records}
    eval_line = f"{eval_dropped} of {eval_total} validation tokens after the last whole block of 128 were dropped"
    train_line = f"{train_dropped} of {train_total} train tokens after the last whole block of 128 were dropped"
    assert logged.get(eval_line) == logging.WARNING, caplog.text  # a large share
    assert logged.get(train_line) == logging.INFO, caplog.text


def test_tables_are_read_by_their_text_column_and_non_text_files_are_refused(tmp_path):
    """`--train_file corp.tsv` was read as plain text: the header and the label column were trained on."""
    texts = ["The river rose overnight.", "Officials said the bridge would reopen."]
    tsv = tmp_path / "corp.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{text}\tnews\n" for text in texts), encoding="utf-8")
    raw = load_mlm_data(MlmDataArguments(train_file=str(tsv), validation_split_percentage=0), seed=0)
    assert list(raw["train"]["text"]) == texts
    with pytest.raises(
        ValueError, match=r"corp\.tsv: no 'body' column \(columns: \['text', 'label'\]\); set --text_column"
    ):
        load_mlm_data(MlmDataArguments(train_file=str(tsv), text_column="body"), seed=0)
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("text\tlabel\nonly one field\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ragged\.tsv:2: found 1 field\(s\); expected 2"):
        load_mlm_data(MlmDataArguments(train_file=str(ragged)), seed=0)
    parquet = tmp_path / "corp.parquet"
    parquet.write_bytes(b"PAR1")
    with pytest.raises(ValueError, match=r"corp\.parquet: a '\.parquet' file is not text; expected plain text"):
        load_mlm_data(MlmDataArguments(train_file=str(parquet)), seed=0)


def test_held_out_documents_are_counted_in_the_log_and_do_not_depend_on_do_eval(tiny_bert_dir, tmp_path, caplog):
    """--validation_split_percentage of the documents were held out, never trained on, without a word. They are
    held out with or without --do_eval (as transformers' run_mlm does): a resumed run that added --do_eval would
    otherwise train on other documents; --validation_split_percentage 0 trains on all of them."""
    documents = [f"Document {i} says the river rose overnight and flooded the lower town." for i in range(20)]
    train_file = tmp_path / "train.txt"
    train_file.write_text("\n".join(documents) + "\n", encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokens = [len(tokenizer(text)["input_ids"]) for text in documents]
    tiny = ["--model_name_or_path", tiny_bert_dir, "--train_file", train_file, "--max_seq_length", "16",
            "--do_train", "--max_steps", "1"]  # fmt: skip
    with caplog.at_level("INFO", logger="dwatt.tasks.mlm"):
        held = run_mlm(*parse(*tiny, "--output_dir", tmp_path / "a", "--validation_split_percentage", "10"))
    assert "Held out 2 of 20 training documents (--validation_split_percentage 10)" in caplog.text
    assert held["train_samples"] < sum(tokens) // 16
    evaluated = run_mlm(*parse(*tiny, "--output_dir", tmp_path / "b", "--validation_split_percentage", "10",
                               "--do_eval"))  # fmt: skip
    assert evaluated["train_samples"] == held["train_samples"]  # the same training data either way
    every = run_mlm(*parse(*tiny, "--output_dir", tmp_path / "c", "--validation_split_percentage", "0"))
    assert every["train_samples"] == sum(tokens) // 16
