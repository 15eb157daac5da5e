"""The bundled corpora as datasets: the WNUT-16 split, Pang-Lee polarity, the Lee news corpus; few-shot
sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from ..assets import bundled_wnut16_path, gensim_test_file
from .lines import PathLike
from .ner_files import read_column_file, sentences_to_dataset
from .tags import make_label_list

#: Seed of the fixed WNUT-16 test/validation/pool split; independent of few-shot seeds.
WNUT16_SPLIT_SEED = 42


def load_wnut16(
    split_seed: int = WNUT16_SPLIT_SEED,
    test_size: int = 500,
    validation_size: int = 200,
    path: PathLike | None = None,
) -> DatasetDict:
    """WNUT-16 (bundled train file, 2,394 tweets) split into test/validation/train.

    A fixed seeded permutation puts ``test_size`` tweets in ``test``, the next
    ``validation_size`` in ``validation`` and the rest (the few-shot pool, 1,694 tweets by
    default) in ``train``; each split keeps file order. ``split_seed`` is deliberately separate
    from few-shot seeds so every run is scored on the same test tweets. The label list (21
    labels, 10 types) comes from the whole file.
    """
    path = bundled_wnut16_path() if path is None else Path(path)
    sentences = read_column_file(path, scheme="iob2")
    label_list = make_label_list(s.tags for s in sentences)
    full = sentences_to_dataset(sentences, label_list)
    if test_size + validation_size >= len(full):
        raise ValueError(
            f"test_size + validation_size = {test_size + validation_size} leaves no training tweets out of {len(full)}"
        )
    order = np.random.default_rng(split_seed).permutation(len(full))
    boundaries = {
        "train": order[test_size + validation_size :],
        "validation": order[test_size : test_size + validation_size],
        "test": order[:test_size],
    }
    return DatasetDict({split: full.select(np.sort(indices)) for split, indices in boundaries.items()})


def load_pang_lee_polarity() -> Dataset:
    """Pang-Lee sentence polarity (gensim test data): 200 sentences, 100 ``neg`` / 100 ``pos``.

    Columns ``text`` and ``label`` (ClassLabel ``["neg", "pos"]``). The file is cp1252.
    """
    path = gensim_test_file("pang_lee_polarity.cor")
    label_names = ["neg", "pos"]
    texts: list[str] = []
    labels: list[int] = []
    with open(path, encoding="cp1252") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            marker, _, text = line.strip().partition(" ")
            name = marker.removeprefix("__label__")
            if not marker.startswith("__label__") or name not in label_names:
                raise ValueError(f"{path}:{line_number}: expected '__label__neg <text>' or '__label__pos <text>'")
            texts.append(text)
            labels.append(label_names.index(name))
    features = Features({"text": Value("string"), "label": ClassLabel(names=label_names)})
    return Dataset.from_dict({"text": texts, "label": labels}, features=features)


def split_train_test(
    dataset: Dataset,
    test_size: int | float = 50,
    seed: int = 42,
    stratify_by_column: str | None = "label",
) -> DatasetDict:
    """Fixed seeded train/test split (stratified on a ClassLabel column by default)."""
    return dataset.train_test_split(test_size=test_size, seed=seed, stratify_by_column=stratify_by_column)


def load_lee_corpus() -> DatasetDict:
    """Lee news corpus (gensim test data) as raw text for MLM, one document per row.

    ``train``: lee_background.cor (300 documents, UTF-8); ``validation``: lee.cor (50 documents,
    cp1252, held out).
    """

    def read_documents(name: str, encoding: str) -> Dataset:
        text = gensim_test_file(name).read_text(encoding=encoding)
        documents = [line.strip() for line in text.split("\n") if line.strip()]
        return Dataset.from_dict({"text": documents}, features=Features({"text": Value("string")}))

    return DatasetDict(
        {
            "train": read_documents("lee_background.cor", "utf-8"),
            # lee.cor holds a cp1252 pound sign (byte 0xa3), so it is not UTF-8.
            "validation": read_documents("lee.cor", "cp1252"),
        }
    )


def sample_few_shot(dataset: Dataset, k: int, seed: int) -> Dataset:
    """Draw ``k`` sentences from the pool without replacement, seeded.

    One permutation per seed, of which the first ``k`` are taken: for a fixed seed the K=50
    sample is a prefix of the K=100 sample, so few-shot sizes stay comparable. The features
    (the full ClassLabel list) are kept even when the sample lacks some types.
    """
    if k < 1:
        raise ValueError(f"k must be a positive number of sentences, got {k}")
    if k > len(dataset):
        raise ValueError(f"k={k} is larger than the pool ({len(dataset)} sentences)")
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.select(order[:k])
