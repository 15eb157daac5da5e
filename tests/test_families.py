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


def test_no_family_returns_only_the_requested_hidden_states_yet(backbone_type):
    """transformers 5.25 takes `output_hidden_states=[...]` as True and returns every state, for every family
    (only TimmWrapper honours a list), so DWAttModel asks for all and fuses the ones it needs. When this fails,
    a family returns a subset: request only the fused layers from it (less memory at inference and frozen)."""
    import torch
    from conftest import tiny_backbone_config
    from transformers import AutoModel

    config = tiny_backbone_config(backbone_type)
    model = AutoModel.from_config(config).eval()
    with torch.no_grad():
        states = model(input_ids=torch.randint(4, 90, (1, 6)), output_hidden_states=[0, 2]).hidden_states
    assert len(states) == config.num_hidden_layers + 1
