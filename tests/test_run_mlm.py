"""run_mlm end to end on the bundled MiniLM: the loss falls, the saved model reloads tied, text files and blocks."""

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

    with pytest.raises(ValueError, match="validation text is shorter than one block of 16 tokens"):
        run_mlm(*parse(*tiny, "--output_dir", tmp_path / "short", "--validation_file", validation_file, "--do_eval"))


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
