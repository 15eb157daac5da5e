"""Tokenisation: word/label alignment for token classification, truncation counts, the collator."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)

#: Label id ignored by the PyTorch cross-entropy loss and by the metrics.
LABEL_PAD_ID = -100
#: Column added by `tokenize_and_align_labels`: words of the sentence lost to truncation.
NUM_WORDS_TRUNCATED_COLUMN = "num_words_truncated"
#: Column added by `tokenize_and_align_labels`: words with no sub-word, fed as the unknown token.
NUM_WORDS_AS_UNK_COLUMN = "num_words_as_unk"


def tokenize_and_align_labels(
    examples: Mapping[str, Any],
    tokenizer: Any,
    max_seq_length: int | None,
    label_all_tokens: bool = False,
    label_list: Sequence[str] | None = None,
    text_column: str = "tokens",
    label_column: str = "ner_tags",
) -> dict[str, list[Any]]:
    """Tokenise pre-split words and align word labels to sub-words, for batched ``Dataset.map``.

    The first sub-word of each word gets the word's label; the other sub-words get -100, or
    with ``label_all_tokens`` the word's label with ``B-`` turned into ``I-`` (needs
    ``label_list``). Special tokens get -100. No padding: batch with `make_token_collator`.

    Adds ``num_words_truncated``: words lost at the end of the sentence to ``max_seq_length``
    (`count_truncated` sums it), and ``num_words_as_unk``: words that gave no sub-word at all and
    were fed as the tokenizer's unknown token instead, so that they keep a label. Trainer drops
    those columns because the model does not take them; remove them yourself before feeding
    batches to a model in a custom loop.
    """
    if label_all_tokens and label_list is None:
        raise ValueError("label_all_tokens=True needs label_list to turn B- labels into I-")
    b_to_i = _b_to_i_ids(label_list) if label_all_tokens and label_list is not None else None

    def encode(words_batch):
        return tokenizer(words_batch, truncation=True, max_length=max_seq_length, is_split_into_words=True)

    words_batch = examples[text_column]
    encoding = encode(words_batch)
    missing = [
        words_without_subwords(encoding.word_ids(batch_index=index), len(words), max_seq_length)
        for index, words in enumerate(words_batch)
    ]
    if any(missing):  # rare: re-encode the batch with those words replaced by the unknown token
        words_batch = [
            replace_words_without_subwords(words, lost, tokenizer) for words, lost in zip(words_batch, missing)
        ]
        encoding = encode(words_batch)
    all_labels: list[list[int]] = []
    words_truncated: list[int] = []
    for batch_index, word_labels in enumerate(examples[label_column]):
        word_ids = encoding.word_ids(batch_index=batch_index)
        labels: list[int] = []
        previous_word = None
        for word in word_ids:
            if word is None:
                labels.append(LABEL_PAD_ID)
            elif word != previous_word:
                labels.append(int(word_labels[word]))
            elif label_all_tokens and b_to_i is not None:
                labels.append(b_to_i[int(word_labels[word])])
            else:
                labels.append(LABEL_PAD_ID)
            previous_word = word
        all_labels.append(labels)
        words_truncated.append(_count_words_truncated(word_ids, len(words_batch[batch_index]), max_seq_length))
    encoding["labels"] = all_labels
    encoding[NUM_WORDS_TRUNCATED_COLUMN] = words_truncated
    encoding[NUM_WORDS_AS_UNK_COLUMN] = [len(lost) for lost in missing]
    return encoding


def words_without_subwords(
    word_ids: Sequence[int | None], num_words: int, max_seq_length: int | None = None
) -> list[int]:
    """Indices of words that got no sub-word in an encoding (``word_ids`` of a fast tokenizer).

    A zero-width space or a control character alone is such a word: BERT-like tokenizers strip it.
    Words after the last encoded one are not counted when the encoding is full (``max_seq_length``
    tokens), because truncation, not the tokenizer, dropped them.
    """
    kept = {word for word in word_ids if word is not None}
    full = max_seq_length is not None and len(word_ids) >= max_seq_length
    end = (max(kept) + 1 if kept else 0) if full else num_words
    return [word for word in range(end) if word not in kept]


def replace_words_without_subwords(words: Sequence[str], indices: Sequence[int], tokenizer: Any) -> list[str]:
    """``words`` with the words at ``indices`` replaced by the tokenizer's unknown token."""
    if not indices:
        return list(words)
    if tokenizer.unk_token is None:
        raise ValueError(
            f"words {[words[index] for index in indices][:5]!r} give no sub-word with this tokenizer, which has no "
            "unknown token to stand in for them; remove or replace them"
        )
    replaced = list(words)
    for index in indices:
        replaced[index] = tokenizer.unk_token
    return replaced


def _b_to_i_ids(label_list: Sequence[str]) -> list[int]:
    """Map each label id to the id of its ``I-`` twin (``B-X`` -> ``I-X``), others to themselves."""
    label_to_id = {label: index for index, label in enumerate(label_list)}
    mapping = []
    for index, label in enumerate(label_list):
        if label.startswith("B-"):
            twin = "I-" + label[2:]
            if twin not in label_to_id:
                raise ValueError(f"label_all_tokens needs {twin!r} in the label list for {label!r}")
            mapping.append(label_to_id[twin])
        else:
            mapping.append(index)
    return mapping


def _count_words_truncated(word_ids: Sequence[int | None], num_words: int, max_seq_length: int | None) -> int:
    # Words after the last kept one count as truncated only when the encoding is full; in a
    # shorter encoding they produced no sub-words at all (rare characters stripped by the
    # tokenizer), which is not truncation.
    if max_seq_length is None or len(word_ids) < max_seq_length:
        return 0
    kept = [word for word in word_ids if word is not None]
    return num_words - (max(kept) + 1 if kept else 0)


def count_truncated(tokenized: Dataset | Mapping[str, Sequence[int]]) -> int:
    """Number of sentences that lost at least one word to truncation."""
    return sum(1 for lost in tokenized[NUM_WORDS_TRUNCATED_COLUMN] if lost > 0)


def tokenize_ner_dataset(
    dataset: Dataset | DatasetDict,
    tokenizer: Any,
    max_seq_length: int | None = 128,
    label_all_tokens: bool = False,
) -> tuple[Dataset | DatasetDict, dict[str, int]]:
    """Tokenise a NER Dataset/DatasetDict for training; return it with truncation counts.

    The result keeps only model inputs and ``labels`` (the ``num_words_truncated`` and
    ``num_words_as_unk`` columns are counted, then removed). The counts are sentences that lost
    words, per split (``"data"`` for a single Dataset), for the caller to report; words fed as the
    unknown token are logged here as a warning.
    """

    def tokenize_split(split: Dataset) -> tuple[Dataset, int]:
        label_list = split.features["ner_tags"].feature.names
        tokenized = split.map(
            tokenize_and_align_labels,
            batched=True,
            remove_columns=split.column_names,
            fn_kwargs={
                "tokenizer": tokenizer,
                "max_seq_length": max_seq_length,
                "label_all_tokens": label_all_tokens,
                "label_list": label_list,
            },
            desc="Tokenising",
        )
        truncated = count_truncated(tokenized)
        as_unk = sum(tokenized[NUM_WORDS_AS_UNK_COLUMN])
        if as_unk:
            logger.warning(
                "%d word(s) in %d sentence(s) gave no sub-word (zero-width or control characters?) and were fed as %r, "
                "so they keep their label",
                as_unk, sum(1 for count in tokenized[NUM_WORDS_AS_UNK_COLUMN] if count), tokenizer.unk_token,
            )  # fmt: skip
        return tokenized.remove_columns([NUM_WORDS_TRUNCATED_COLUMN, NUM_WORDS_AS_UNK_COLUMN]), truncated

    if isinstance(dataset, Dataset):
        tokenized, truncated = tokenize_split(dataset)
        return tokenized, {"data": truncated}
    results = {name: tokenize_split(split) for name, split in dataset.items()}
    return (
        DatasetDict({name: tokenized for name, (tokenized, _) in results.items()}),
        {name: truncated for name, (_, truncated) in results.items()},
    )


def make_token_collator(tokenizer: Any) -> Any:
    """The stock `DataCollatorForTokenClassification`: dynamic padding to the longest sequence
    of each batch, labels padded with -100 (``pad_to_multiple_of=None``)."""
    from transformers import DataCollatorForTokenClassification

    return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=None, label_pad_token_id=LABEL_PAD_ID)


#: Sub-word markers of "this piece starts a word": byte-level BPE's space (RoBERTa, GPT-2, ModernBERT) and
#: SentencePiece's (XLM-R, DeBERTa-v3).
SPACE_MARKERS = ("Ġ", "▁")


def load_word_tokenizer(name_or_path: str, **hub_kwargs) -> Any:
    """The tokenizer of a model, set up for words given one by one (`is_split_into_words=True`, as NER data is).

    Byte-level BPE tokenizers encode a word differently at the start of a text and after a space ("Obama" at
    the start is `Ob am a`, after a space `ĠObama`). Given pre-split words they need `add_prefix_space=True`
    (transformers' own run_ner sets it for such models), or every word is tokenised as if it began the text
    and loses its space marker: nothing fails, the model just sees other sub-words than in pre-training. Here
    the tokenizer is checked on a probe: a word given alone must become the sub-words it has inside a text;
    if not, it is loaded again with `add_prefix_space=True`, and if that does not help either the load fails
    with what was seen. WordPiece (BERT) and SentencePiece tokenizers pass the probe as they are.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub_kwargs)
    if words_tokenize_as_in_text(tokenizer):
        return tokenizer
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, add_prefix_space=True, **hub_kwargs)
    if not words_tokenize_as_in_text(tokenizer):
        # A generic fast tokenizer (ModernBERT's PreTrainedTokenizerFast) ignores add_prefix_space: set it on
        # the byte-level pre-tokenizer itself, which saving keeps (tokenizer.json).
        _add_prefix_space_to_byte_level(tokenizer)
    if not words_tokenize_as_in_text(tokenizer):
        alone, in_text = _probe(tokenizer)
        raise ValueError(
            f"{name_or_path}: its tokenizer splits a word given alone ({alone}) otherwise than in a text ({in_text}), "
            "even with add_prefix_space=True; expected the same sub-words, or NER labels would be aligned to "
            "sub-words the model never saw in pre-training"
        )
    logger.info("%s: byte-level BPE tokenizer loaded with add_prefix_space=True for pre-split words", name_or_path)
    return tokenizer


def _add_prefix_space_to_byte_level(tokenizer) -> None:
    """Turn on `add_prefix_space` in the backend's byte-level pre-tokenizer (alone or in a sequence)."""
    import json

    from tokenizers import Tokenizer

    state = json.loads(tokenizer.backend_tokenizer.to_str())

    def turn_on(node):
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
                node["add_prefix_space"] = True
            for value in node.values():
                turn_on(value)
        elif isinstance(node, list):
            for value in node:
                turn_on(value)

    turn_on(state.get("pre_tokenizer"))
    tokenizer.backend_tokenizer.pre_tokenizer = Tokenizer.from_str(json.dumps(state)).pre_tokenizer


_PROBE_WORDS = ["Obama", "went", "to", "Paris"]


def _probe(tokenizer) -> tuple[list[str], list[str]]:
    """Sub-words of the probe's last three words, given as words and inside the text."""
    as_words = tokenizer(_PROBE_WORDS, is_split_into_words=True, add_special_tokens=False)
    in_text = tokenizer(" ".join(_PROBE_WORDS), add_special_tokens=False)
    first_of_second = as_words.word_ids().index(1)
    offset = len(tokenizer(_PROBE_WORDS[0], add_special_tokens=False)["input_ids"])
    return (tokenizer.convert_ids_to_tokens(as_words["input_ids"][first_of_second:]),
            tokenizer.convert_ids_to_tokens(in_text["input_ids"][offset:]))  # fmt: skip


def words_tokenize_as_in_text(tokenizer) -> bool:
    """True when words given one by one become the sub-words they have inside a text (after the first word)."""
    alone, in_text = _probe(tokenizer)
    return alone == in_text
