"""Masked-language modelling with a DWAtt model: the body of `scripts/run_mlm.py`."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, load_dataset
from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

from ..data.corpora import load_lee_corpus
from ..data.tables import check_table_file
from ..modeling_dwatt import DWAttForMaskedLM
from ..validation import ArgumentError
from .arguments import ModelArguments, uses_data_files
from .classification import TABLE_SUFFIXES, load_table_file
from .runner import check_run_arguments, fusion_optimizer, load_model, record_metrics, train_and_save

logger = logging.getLogger(__name__)

BUNDLED_DATASET = "lee-corpus-bundled"
#: Suffixes of formats that are not text: refused rather than trained on as lines of bytes.
_NOT_TEXT_SUFFIXES = (".arrow", ".bz2", ".gz", ".parquet", ".pdf", ".xls", ".xlsx", ".xz", ".zip", ".zst")
#: Documents per `group_texts` call (`Dataset.map`'s default, as in transformers' `run_mlm.py`): each call
#: drops its own remainder, so a split loses up to a block less one token per this many documents.
GROUP_BATCH_SIZE = 1000
#: A split that loses more than this share of its tokens to the blocking gets a warning, not an info line.
DROPPED_SHARE_WARNING = 0.10
#: The results-file prefix of each split's counts (the Trainer's metric prefixes).
_PHASES = {"train": "train", "validation": "eval"}


@dataclass
class MlmDataArguments:
    """Which text to train and evaluate on, and how to cut it into blocks."""

    dataset_name: str = field(
        default=BUNDLED_DATASET,
        metadata={"help": f"A Hub dataset with a text column (online), or '{BUNDLED_DATASET}' (offline default)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Config of the Hub dataset."})
    train_file: str | None = field(
        default=None,
        metadata={"help": "Plain text, one document per line; or CSV, TSV, JSON lines with --text_column."},
    )
    validation_file: str | None = field(default=None, metadata={"help": "Evaluated with --do_eval."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text (CSV/TSV/JSON/Hub data)."})
    validation_split_percentage: int = field(
        default=5,
        metadata={"help": "Percent of train held out as validation when there is none (0: train on every document)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on the first N blocks."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N blocks."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per block (capped at the model's maximum)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens masked for the loss."})


def load_text_file(path: str, split: str) -> Dataset:
    """One text file as a Dataset. `.csv`, `.tsv`, `.json` and `.jsonl` are tables (checked, then read by
    classification's loader; `--text_column` picks the text); anything else is plain text, one document per
    line, except the suffixes of formats that are not text (`.parquet`, `.gz`, ...), which are refused."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = Path(path).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        check_table_file(path)  # bad rows named by file:line; the text column is checked by load_mlm_data
        return load_table_file(path, split)
    if suffix in _NOT_TEXT_SUFFIXES:
        raise ValueError(
            f"{path}: a {suffix!r} file is not text; expected plain text (one document per line) or a table "
            f"({', '.join(TABLE_SUFFIXES)}) with a --text_column"
        )
    return load_dataset("text", data_files={split: str(path)}, split=split)


def load_mlm_data(data_args: MlmDataArguments, seed: int) -> DatasetDict:
    """Raw documents per split.

    Without a validation split, `--validation_split_percentage` of the training documents are held out as one,
    as transformers' `run_mlm` does, whether or not this run evaluates: the training data must not depend on an
    evaluation flag (a resumed run that adds `--do_eval` would train on other documents). What is held out is
    logged with its count, since those documents are not trained on; `--validation_split_percentage 0` keeps all.
    """
    sources = {}
    if uses_data_files(data_args, BUNDLED_DATASET):
        files = {"train": data_args.train_file, "validation": data_args.validation_file}
        raw = DatasetDict({split: load_text_file(path, split) for split, path in files.items() if path})
        sources = {split: path for split, path in files.items() if path}
    elif data_args.dataset_name == BUNDLED_DATASET:
        raw = load_lee_corpus()
    else:
        raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name)
    for split, dataset in raw.items():
        if data_args.text_column not in dataset.column_names:
            raise ValueError(
                f"{sources.get(split, f'{split} data')}: no {data_args.text_column!r} column (columns: "
                f"{dataset.column_names}); set --text_column"
            )
    if "validation" not in raw and "train" in raw and data_args.validation_split_percentage > 0:
        held_out = raw["train"].train_test_split(test_size=data_args.validation_split_percentage / 100, seed=seed)
        logger.info(
            "Held out %d of %d training documents (--validation_split_percentage %d) as the validation split; "
            "they are not trained on",
            len(held_out["test"]), len(raw["train"]), data_args.validation_split_percentage,
        )  # fmt: skip
        raw = DatasetDict({"train": held_out["train"], "validation": held_out["test"]})
    return raw


def group_texts(examples: dict[str, list], block_size: int) -> dict[str, list]:
    """Concatenate tokenised documents and cut them into `block_size` blocks, dropping the short remainder.

    The `Dataset.map` step of transformers' `run_mlm.py`: no padding, no token wasted on short lines. The
    remainder of each map batch is dropped; `run_mlm` counts and logs it (`report_dropped_tokens`).
    """
    concatenated = {key: list(chain.from_iterable(values)) for key, values in examples.items()}
    total_length = len(next(iter(concatenated.values())))
    total_length = (total_length // block_size) * block_size
    return {
        key: [tokens[start : start + block_size] for start in range(0, total_length, block_size)]
        for key, tokens in concatenated.items()
    }


def count_tokens(dataset: Dataset) -> int:
    """Tokens in a tokenised split (the summed `input_ids` lengths), read from Arrow in slices, not as lists."""
    total = 0
    for batch in dataset.with_format("arrow").iter(batch_size=10_000):
        total += pc.sum(pc.list_value_length(batch["input_ids"])).as_py() or 0
    return total


def report_dropped_tokens(split: str, total: int, blocks: int, block_size: int) -> dict[str, int]:
    """Log how many of a split's tokens the blocking dropped; return them (and the total) as results counts.

    Counted from the sizes before and after `group_texts`, so the sum over its map batches (and any worker or
    cache that served them) is exact. Zero blocks is an error naming the split and the sizes.
    """
    dropped = total - blocks * block_size
    if blocks == 0:
        batches = (
            ""
            if total < block_size
            else f", but each map batch of {GROUP_BATCH_SIZE} documents holds fewer than {block_size} of them"
        )
        raise ValueError(
            f"the {split} text is shorter than one block of {block_size} tokens: it has {total} tokens{batches}; "
            f"give more text or a smaller --max_seq_length"
        )
    share = dropped / total
    logger.log(
        logging.WARNING if share > DROPPED_SHARE_WARNING else logging.INFO,
        "%d of %d %s tokens after the last whole block of %d were dropped (%.0f%%; blocks are cut as "
        "transformers' run_mlm cuts them, losing up to %d tokens per %d documents)",
        dropped, total, split, block_size, 100 * share, block_size - 1, GROUP_BATCH_SIZE,
    )  # fmt: skip
    phase = _PHASES[split]
    return {f"{phase}_tokens": total, f"{phase}_dropped_tokens": dropped}


def _block_size(data_args: MlmDataArguments, tokenizer, backbone_config) -> int:
    # A longer block would index past the backbone's position embeddings (the tokenizer may allow more).
    limit = min(tokenizer.model_max_length, getattr(backbone_config, "max_position_embeddings", None) or 10**9)
    if data_args.max_seq_length > limit:
        logger.warning(
            "--max_seq_length %d exceeds the model's maximum %d; using %d", data_args.max_seq_length, limit, limit
        )
        return limit
    return data_args.max_seq_length


def run_mlm(
    model_args: ModelArguments,
    data_args: MlmDataArguments,
    training_args: TrainingArguments,
    callbacks: list | None = None,
) -> dict:
    """Train / evaluate as the flags say; return every metric (eval adds `perplexity`), also written as JSON files."""
    if model_args.cache_backbone_features:
        raise ArgumentError(
            "--cache_backbone_features is not for dwatt mlm: the masking collator masks other tokens at every step, "
            "so no input comes back twice and the cache would only grow (every masked copy kept) without sparing a "
            "backbone pass; expected --freeze_backbone alone here (the cache serves dwatt ner and classification)"
        )
    check_run_arguments(training_args)
    set_seed(training_args.seed)
    raw = load_mlm_data(data_args, training_args.seed)
    for flag, split, wanted in (
        ("--do_train", "train", training_args.do_train),
        ("--do_eval", "validation", training_args.do_eval),
    ):
        if wanted and split not in raw:
            raise ValueError(f"{flag} needs a {split} split; the data has {sorted(raw)}")

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, revision=model_args.revision, trust_remote_code=model_args.trust_remote_code
    )
    model = load_model(model_args, DWAttForMaskedLM)
    block_size = _block_size(data_args, tokenizer, model.config.backbone_config)

    def tokenize(examples):
        # Blank lines are not documents. No truncation: long documents are cut into blocks below.
        texts = [text for text in examples[data_args.text_column] if text and text.strip()]
        return tokenizer(texts, return_special_tokens_mask=True)

    wanted = {"train": training_args.do_train, "validation": training_args.do_eval}
    counts = {}  # per used split: its tokens and those the blocking dropped, for the results files
    with training_args.main_process_first(desc="tokenising and grouping"):
        blocks = DatasetDict()
        for split, dataset in raw.items():
            tokenized = dataset.map(tokenize, batched=True, remove_columns=dataset.column_names, desc=f"{split}")
            blocks[split] = tokenized.map(
                group_texts,
                batched=True,
                batch_size=GROUP_BATCH_SIZE,
                fn_kwargs={"block_size": block_size},
                desc=f"{split} blocks",
            )
            if wanted.get(split):
                counts[split] = report_dropped_tokens(split, count_tokens(tokenized), len(blocks[split]), block_size)
    for split, flag, limit in (
        ("train", "--max_train_samples", data_args.max_train_samples),
        ("validation", "--max_eval_samples", data_args.max_eval_samples),
    ):
        if limit is not None and split in blocks:
            if limit < 1 and wanted[split]:
                raise ValueError(f"{flag} {limit} leaves no {split} block; expected at least 1")
            blocks[split] = blocks[split].select(range(min(limit, len(blocks[split]))))

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=blocks.get("train") if training_args.do_train else None,
        eval_dataset=blocks.get("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=data_args.mlm_probability),
        optimizer_cls_and_kwargs=fusion_optimizer(model, training_args, model_args.fusion_learning_rate),
        callbacks=callbacks,
    )

    results = {}
    if training_args.do_train:
        results.update(train_and_save(trainer, model_args, data_args, extra_metrics=counts["train"]))

    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(blocks["validation"])
        metrics.update(counts["validation"])
        metrics["perplexity"] = perplexity(metrics["eval_loss"])
        results.update(record_metrics(trainer, "eval", metrics))

    return results


def perplexity(loss: float) -> float:
    """exp(loss), or inf when that overflows (a random LM head can start there)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")
