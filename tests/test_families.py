"""The eight encoder families end to end through `run_ner`, each with a tokenizer in its real format (WordPiece,
byte-level BPE, SentencePiece Unigram, built offline): training, scoring and a saved checkpoint that reloads with
its tokenizer, words tokenised as inside a text and one predicted label per word."""

import pytest
from conftest import parse_run_args
from real_format_tokenizers import FAMILIES, build_family
from transformers import AutoTokenizer, TrainingArguments

from dwatt import DWAttForTokenClassification
from dwatt.data.tokenization import words_tokenize_as_in_text
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.ner import NerDataArguments, run_ner


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_run_ner_on_every_family_with_its_real_tokenizer(family, tmp_path):
    backbone = build_family(family, tmp_path / family)
    args = parse_run_args((ModelArguments, NerDataArguments, TrainingArguments), [
        "--output_dir", tmp_path / "run", "--model_name_or_path", backbone, "--fusion", "dwatt", "--few_shot_k", "16",
        "--max_predict_samples", "12", "--do_train", "--do_predict", "--max_steps", "2",
        "--per_device_train_batch_size", "8", "--max_seq_length", "64", "--use_cpu", "--report_to", "none",
        "--disable_tqdm", "true",
    ])  # fmt: skip
    results = run_ner(*args)
    assert results["predict_samples"] == 12 and 0 <= results["predict_f1"] <= 1
    saved = AutoTokenizer.from_pretrained(tmp_path / "run")
    assert words_tokenize_as_in_text(saved), family
    lines = (tmp_path / "run" / "predictions.conll").read_text().strip().split("\n\n")
    assert len(lines) == 12 and all(len(row.split()) == 3 for sentence in lines for row in sentence.splitlines())
    model = DWAttForTokenClassification.from_pretrained(tmp_path / "run")
    assert model.config.backbone_config.model_type == family
