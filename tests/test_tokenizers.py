"""Pre-split words with the tokenizers modern encoders use, built offline with the `tokenizers` library in their
real formats: a byte-level BPE (RoBERTa, GPT-2, ModernBERT) and a SentencePiece Unigram (XLM-R, DeBERTa-v3).
Each word is tokenised as inside a text (with its space marker), the labels sit on each word's first sub-word,
and a run saves a tokenizer that keeps doing so."""

import json

import pytest
import torch
from conftest import parse_run_args
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    RobertaConfig,
    RobertaModel,
    RobertaTokenizerFast,
    TrainingArguments,
    XLMRobertaConfig,
    XLMRobertaModel,
    XLMRobertaTokenizerFast,
)

from dwatt.data.corpora import load_wnut16
from dwatt.data.tokenization import SPACE_MARKERS, load_word_tokenizer, tokenize_ner_dataset, words_tokenize_as_in_text
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.ner import NerDataArguments, run_ner

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
ROLES = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
         "pad_token": "<pad>", "mask_token": "<mask>"}  # fmt: skip


def corpus() -> list[str]:
    return [" ".join(tokens) for tokens in load_wnut16()["train"]["tokens"][:800]] + ["Obama went to Paris"] * 5


def byte_level_bpe(folder):
    """A RoBERTa-style tokenizer: byte-level BPE (`Ġ` marks a preceding space), saved as RoBERTa saves it."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    tokenizer = RobertaTokenizerFast(tokenizer_object=backend, **ROLES)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=130, pad_token_id=1, **TINY)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def sentencepiece_unigram(folder):
    """An XLM-R-style tokenizer: SentencePiece Unigram behind a Metaspace pre-tokenizer (`▁` marks a word start)."""
    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(corpus(), trainers.UnigramTrainer(vocab_size=600, special_tokens=SPECIALS,
                                                                  unk_token="<unk>"))  # fmt: skip
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=backend, **ROLES)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=130, pad_token_id=1, **TINY)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["byte-level-bpe", "sentencepiece-unigram"])
def modern_backbone(request, tmp_path_factory):
    build = {"byte-level-bpe": byte_level_bpe, "sentencepiece-unigram": sentencepiece_unigram}[request.param]
    return request.param, build(tmp_path_factory.mktemp(request.param))


def test_the_byte_level_bpe_as_saved_splits_pre_split_words_wrongly(tmp_path):
    """The bug this guards against: loaded as saved, each pre-split word loses its space marker."""
    folder = byte_level_bpe(tmp_path / "bpe")
    plain = AutoTokenizer.from_pretrained(folder)
    as_words = plain.convert_ids_to_tokens(plain(["Obama", "went"], is_split_into_words=True,
                                                 add_special_tokens=False)["input_ids"])  # fmt: skip
    assert not any(token.startswith("Ġ") for token in as_words) and not words_tokenize_as_in_text(plain)


def test_words_are_tokenised_as_in_text_with_the_space_marker(modern_backbone):
    kind, folder = modern_backbone
    tokenizer = load_word_tokenizer(str(folder))
    assert words_tokenize_as_in_text(tokenizer)
    encoding = tokenizer(["Obama", "went", "to", "Paris"], is_split_into_words=True, add_special_tokens=False)
    tokens, word_ids = tokenizer.convert_ids_to_tokens(encoding["input_ids"]), encoding.word_ids()
    firsts = [tokens[word_ids.index(word)] for word in range(4)]
    marker = "Ġ" if kind == "byte-level-bpe" else "▁"
    assert all(token.startswith(marker) for token in firsts[1:]), firsts  # every word after the first
    if kind == "sentencepiece-unigram":
        assert firsts[0].startswith("▁")  # SentencePiece marks the first word too
    assert marker in SPACE_MARKERS


def test_labels_sit_on_each_words_first_sub_word(modern_backbone):
    _, folder = modern_backbone
    tokenizer = load_word_tokenizer(str(folder))
    raw = load_wnut16()["validation"].select(range(40))
    tokenized, _ = tokenize_ner_dataset(raw, tokenizer, max_seq_length=128)
    for example, tokens, tags in zip(tokenized, raw["tokens"], raw["ner_tags"]):
        word_ids = tokenizer(tokens, is_split_into_words=True, truncation=True, max_length=128).word_ids()
        firsts = [position for position, word in enumerate(word_ids)
                  if word is not None and (position == 0 or word_ids[position - 1] != word)]  # fmt: skip
        assert [example["labels"][position] for position in firsts] == tags
        assert all(label == -100 for position, label in enumerate(example["labels"]) if position not in firsts)


def test_a_run_saves_a_tokenizer_that_keeps_the_space_marker(modern_backbone, tmp_path):
    kind, folder = modern_backbone
    args = parse_run_args((ModelArguments, NerDataArguments, TrainingArguments), [
        "--output_dir", tmp_path / "run", "--model_name_or_path", folder, "--few_shot_k", "16", "--do_train",
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--use_cpu", "--report_to", "none",
        "--disable_tqdm", "true",
    ])  # fmt: skip
    run_ner(*args)
    saved = AutoTokenizer.from_pretrained(tmp_path / "run")
    assert words_tokenize_as_in_text(saved), kind
    if kind == "byte-level-bpe":
        assert json.loads((tmp_path / "run" / "tokenizer_config.json").read_text())["add_prefix_space"] is True


def test_a_generic_fast_byte_level_tokenizer_gets_the_prefix_space_on_its_pre_tokenizer(tmp_path):
    """ModernBERT saves a plain PreTrainedTokenizerFast, which ignores `add_prefix_space=True` as an argument:
    the flag is set on the byte-level pre-tokenizer itself, and a save keeps it."""
    from real_format_tokenizers import build_family

    folder = build_family("modernbert", tmp_path / "modernbert")
    assert not words_tokenize_as_in_text(AutoTokenizer.from_pretrained(folder))
    assert not words_tokenize_as_in_text(AutoTokenizer.from_pretrained(folder, add_prefix_space=True))
    tokenizer = load_word_tokenizer(str(folder))
    assert words_tokenize_as_in_text(tokenizer)
    tokenizer.save_pretrained(tmp_path / "saved")
    assert words_tokenize_as_in_text(AutoTokenizer.from_pretrained(tmp_path / "saved"))
