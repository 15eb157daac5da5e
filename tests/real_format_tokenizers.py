"""Tokenizers in the real formats of the encoder families, built offline with the `tokenizers` library and saved
as each family saves its own: WordPiece (BERT, ELECTRA, DistilBERT, MPNet: the bundled MiniLM's vocabulary),
byte-level BPE (RoBERTa, ModernBERT) and SentencePiece Unigram (XLM-R, DeBERTa-v3), trained on WNUT-16 tweets.
Each builder saves the tokenizer and a tiny random model of the family (2 layers, hidden 32) into a folder."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModel

from dwatt.assets import bundled_minilm_path
from dwatt.data.corpora import load_wnut16

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
ROBERTA_ROLES = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                 "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}  # fmt: skip
BERT_ROLES = {"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "pad_token": "[PAD]",
              "mask_token": "[MASK]"}  # fmt: skip


def corpus() -> list[str]:
    return [" ".join(tokens) for tokens in load_wnut16()["train"]["tokens"][:800]] + ["Obama went to Paris"] * 5


def _with_template(backend: Tokenizer, cls: str, sep: str) -> Tokenizer:
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, backend.token_to_id(cls)), (sep, backend.token_to_id(sep))],
    )  # fmt: skip
    return backend


def byte_level_bpe(roles: dict) -> Tokenizer:
    specials = list(dict.fromkeys(roles.values()))
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    return _with_template(backend, roles["cls_token"], roles["sep_token"])


def sentencepiece_unigram(roles: dict) -> Tokenizer:
    specials = list(dict.fromkeys(roles.values()))
    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(corpus(), trainers.UnigramTrainer(vocab_size=600, special_tokens=specials,
                                                                  unk_token=roles["unk_token"]))  # fmt: skip
    return _with_template(backend, roles["cls_token"], roles["sep_token"])


def wordpiece(roles: dict) -> Tokenizer:
    return Tokenizer.from_file(str(bundled_minilm_path() / "tokenizer.json"))


#: family -> (transformers' fast tokenizer class, backend builder, special-token roles, the kind, config extras)
FAMILIES = {
    "bert": ("BertTokenizerFast", wordpiece, BERT_ROLES, "WordPiece", {}),
    "electra": ("ElectraTokenizerFast", wordpiece, BERT_ROLES, "WordPiece", {"embedding_size": 32}),
    "distilbert": ("DistilBertTokenizerFast", wordpiece, BERT_ROLES, "WordPiece", {}),
    "mpnet": (
        "MPNetTokenizerFast",
        wordpiece,
        {**BERT_ROLES, "bos_token": "[CLS]", "eos_token": "[SEP]"},
        "WordPiece",
        {},
    ),  # fmt: skip
    "roberta": ("RobertaTokenizerFast", byte_level_bpe, ROBERTA_ROLES, "byte-level BPE", {}),
    "modernbert": (
        "PreTrainedTokenizerFast",
        byte_level_bpe,
        BERT_ROLES,
        "byte-level BPE",
        {"global_attn_every_n_layers": 1},
    ),  # fmt: skip
    "xlm-roberta": ("XLMRobertaTokenizerFast", sentencepiece_unigram, ROBERTA_ROLES, "SentencePiece Unigram", {}),
    "deberta-v2": (
        "DebertaV2TokenizerFast",
        sentencepiece_unigram,
        BERT_ROLES,
        "SentencePiece Unigram",
        {"relative_attention": True, "position_buckets": 8, "pos_att_type": ["p2c", "c2p"]},
    ),  # fmt: skip
}


def build_family(family: str, folder: Path) -> Path:
    """Save a real-format tokenizer and a tiny random model of `family` into `folder`."""
    import transformers

    class_name, build, roles, _, extras = FAMILIES[family]
    tokenizer = getattr(transformers, class_name)(tokenizer_object=build(roles), **roles)
    if family == "distilbert":
        tokenizer.model_input_names = ["input_ids", "attention_mask"]  # DistilBERT takes no token types
    tokenizer.save_pretrained(folder)
    sizes = {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37} if family == "distilbert" else dict(TINY)
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if family == "modernbert":
        ids |= {"bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id,
                "cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id}  # fmt: skip
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), max_position_embeddings=130, **sizes, **ids,
                                  **extras)  # fmt: skip
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    return folder
