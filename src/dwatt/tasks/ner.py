"""Token classification (NER) with a DWAtt model and the stock Trainer: the body of `scripts/run_ner.py`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_dataset
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from ..assets import BUNDLED_WNUT16
from ..data.corpora import load_wnut16, sample_few_shot
from ..data.ner_files import load_ner_files, write_conll_predictions
from ..data.tokenization import load_word_tokenizer, make_token_collator, tokenize_ner_dataset
from ..hub.push import push_trained_run
from ..hub.record import phase_data
from ..inference import predict_word_labels
from ..metrics import align_predictions, logits_to_label_ids, make_ner_compute_metrics, score_tag_sequences
from ..modeling_dwatt import DWAttForTokenClassification
from .arguments import ModelArguments, uses_data_files
from .runner import (
    backbone_features,
    check_run_arguments,
    fusion_optimizer,
    load_model,
    record_metrics,
    record_run,
    train_and_save,
    warn_truncated,
)

logger = logging.getLogger(__name__)

BUNDLED_DATASET = BUNDLED_WNUT16


@dataclass
class NerDataArguments:
    """Which data to train and evaluate on."""

    dataset_name: str = field(
        default=BUNDLED_DATASET,
        metadata={"help": f"A Hub dataset with tokens/ner_tags (online), or '{BUNDLED_DATASET}' (offline default)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Config of the Hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "CoNLL, token<TAB>tag or JSON lines file."})
    validation_file: str | None = field(default=None, metadata={"help": "Evaluated with --do_eval."})
    test_file: str | None = field(default=None, metadata={"help": "Predicted with --do_predict."})
    few_shot_k: int | None = field(default=None, metadata={"help": "Train on K sentences sampled from train."})
    few_shot_seed: int = field(default=0, metadata={"help": "Seed of the few-shot sample."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N sentences."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Predict the first N sentences."})
    max_seq_length: int = field(default=128, metadata={"help": "Sub-word length after truncation."})
    label_all_tokens: bool = field(default=False, metadata={"help": "Label every sub-word, not only the first."})
    stride: int | None = field(
        default=None,
        metadata={"help": "Sub-words shared by neighbouring windows when test sentences exceed --max_seq_length."},
    )


def parse_run_values(values: dict[str, Any]) -> tuple[ModelArguments, NerDataArguments, TrainingArguments]:
    """`run_ner`'s arguments from values by name (the default job, a sweep run), as the script parses them."""
    return HfArgumentParser((ModelArguments, NerDataArguments, TrainingArguments)).parse_dict(values)


def load_ner_data(data_args: NerDataArguments) -> DatasetDict:
    """Raw splits with `tokens`/`ner_tags`; the label list is the training file's, before any sampling."""
    if uses_data_files(data_args, BUNDLED_DATASET):
        raw = load_ner_files(data_args.train_file, data_args.validation_file, data_args.test_file)
    elif data_args.dataset_name == BUNDLED_DATASET:
        raw = load_wnut16()
    else:
        raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name)
    if data_args.few_shot_k is not None:
        raw["train"] = sample_few_shot(raw["train"], data_args.few_shot_k, data_args.few_shot_seed)
    for split, limit in (("validation", data_args.max_eval_samples), ("test", data_args.max_predict_samples)):
        if limit is not None and split in raw:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
    return raw


def _require_split(raw: DatasetDict, split: str, flag: str) -> None:
    if split not in raw:
        raise ValueError(f"{flag} needs a {split} split; the data has {sorted(raw)}")


def run_ner(
    model_args: ModelArguments,
    data_args: NerDataArguments,
    training_args: TrainingArguments,
    callbacks: list | None = None,
) -> dict:
    """Train / evaluate / predict as the flags say; return every metric, also written as JSON files."""
    check_run_arguments(training_args)
    set_seed(training_args.seed)
    raw = load_ner_data(data_args)
    label_split = "train" if "train" in raw else next(iter(raw))
    label_list = raw[label_split].features["ner_tags"].feature.names
    if training_args.do_train and len(label_list) < 2:
        source = data_args.train_file or data_args.dataset_name
        raise ValueError(
            f"{source}: every training tag is {label_list[0] if label_list else 'missing'!r}; expected entity tags "
            "(B-<type>/I-<type>) as well, or the model can only ever predict 'O'"
        )
    for flag, split, wanted in (
        ("--do_train", "train", training_args.do_train),
        ("--do_eval", "validation", training_args.do_eval),
        ("--do_predict", "test", training_args.do_predict),
    ):
        if wanted:
            _require_split(raw, split, flag)

    tokenizer = load_word_tokenizer(
        model_args.model_name_or_path, revision=model_args.revision, trust_remote_code=model_args.trust_remote_code
    )
    model = load_model(
        model_args,
        DWAttForTokenClassification,
        num_labels=len(label_list),
        id2label=dict(enumerate(label_list)),
        label2id={label: index for index, label in enumerate(label_list)},
    )
    check_max_seq_length(data_args.max_seq_length, tokenizer, model.config.backbone_config, data_args.stride)
    with training_args.main_process_first(desc="tokenising"):
        tokenized, truncated = tokenize_ner_dataset(
            raw, tokenizer, data_args.max_seq_length, label_all_tokens=data_args.label_all_tokens
        )
    warn_truncated(truncated, {split: len(raw[split]) for split in truncated}, data_args.max_seq_length,
                   "sentences lost words", "those words are not trained or scored")  # fmt: skip

    # Trainer.save_model would push its own stub card and training_args.bin: we push our card at the end.
    push_requested, training_args.push_to_hub = training_args.push_to_hub, False
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized.get("train") if training_args.do_train else None,
        eval_dataset=tokenized.get("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=make_token_collator(tokenizer),
        compute_metrics=make_ner_compute_metrics(label_list),
        preprocess_logits_for_metrics=logits_to_label_ids,
        optimizer_cls_and_kwargs=fusion_optimizer(model, training_args, model_args.fusion_learning_rate),
        callbacks=callbacks,
    )

    with backbone_features(model_args, model):
        results = _train_evaluate_predict(trainer, model_args, data_args, raw, tokenized, truncated, label_list)
    if push_requested:
        if not training_args.do_train:  # a trained run was saved and recorded by train_and_save
            trainer.save_model()
            record_run(trainer, model_args, data_args)
        training_args.push_to_hub = True
        push_trained_run(training_args)
    return results


def _train_evaluate_predict(trainer, model_args, data_args, raw, tokenized, truncated, label_list) -> dict:
    """The phases `--do_train`, `--do_eval` and `--do_predict` ask for; their metrics."""
    training_args, tokenizer = trainer.args, trainer.processing_class
    results = {}
    if training_args.do_train:
        results.update(
            train_and_save(trainer, model_args, data_args, {"train_truncated_sentences": truncated["train"]})
        )

    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(tokenized["validation"])
        metrics["eval_truncated_sentences"] = truncated["validation"]
        metrics.update(phase_data(data_args, "eval"))
        results.update(record_metrics(trainer, "eval", metrics))

    if training_args.do_predict:
        prediction = trainer.predict(tokenized["test"], metric_key_prefix="predict")
        metrics = {**prediction.metrics, "predict_samples": len(tokenized["test"])}
        metrics["predict_truncated_sentences"] = truncated["test"]
        metrics.update(phase_data(data_args, "predict"))
        if trainer.is_world_process_zero():
            predicted, _ = align_predictions(prediction.predictions, prediction.label_ids, label_list)
            gold, words = gold_tags(raw), raw["test"]["tokens"]
            if truncated["test"]:
                # The Trainer saw only what fit in --max_seq_length: label and score every word with windows.
                predicted = predict_word_labels(
                    trainer.model, tokenizer, words, data_args.max_seq_length, data_args.stride
                )
                scored = score_tag_sequences(predicted, gold, label_list)
                metrics.update({f"predict_{name}": value for name, value in scored.items()})
                metrics["predict_scored_with_windows"] = True
            write_conll_predictions(Path(training_args.output_dir) / "predictions.conll", words, gold, predicted)
        results.update(record_metrics(trainer, "predict", metrics))
    return results


def check_max_seq_length(max_seq_length: int, tokenizer, backbone_config, stride: int | None = None) -> None:
    """Refuse a length the backbone cannot embed (a crash mid-training) or one with no room for a word."""
    positions = getattr(backbone_config, "max_position_embeddings", None)
    if positions is not None and max_seq_length > positions:
        raise ValueError(
            f"--max_seq_length {max_seq_length} is longer than the backbone's {positions} positions; expected at "
            f"most {positions} (longer test sentences are still labelled in full, with overlapping windows)"
        )
    special = tokenizer.num_special_tokens_to_add(pair=False)
    if max_seq_length <= special:
        raise ValueError(
            f"--max_seq_length {max_seq_length} leaves no room for a word after the tokenizer's {special} special "
            "tokens; expected more (128 is the default)"
        )
    if stride is not None and not 0 <= stride < max_seq_length - special:  # checked again by the windows
        raise ValueError(
            f"--stride {stride}; expected 0 <= stride < {max_seq_length - special} (--max_seq_length {max_seq_length} "
            f"minus {special} special tokens), checked before training rather than at prediction"
        )


def gold_tags(raw: DatasetDict, split: str = "test") -> list[list[str]]:
    """The split's tags as strings."""
    names = raw[split].features["ner_tags"].feature.names
    return [[names[tag] for tag in tags] for tags in raw[split]["ner_tags"]]
