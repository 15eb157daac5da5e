"""Sequence classification with a DWAtt model: the body of `scripts/run_classification.py`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, load_dataset
from transformers import AutoConfig, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from ..data.corpora import load_pang_lee_polarity, sample_few_shot, split_train_test
from ..data.tables import check_table_file
from ..metrics import compute_classification_metrics
from ..modeling_dwatt import DWAttForSequenceClassification
from .arguments import ModelArguments, uses_data_files
from .runner import (
    backbone_features,
    check_run_arguments,
    fusion_optimizer,
    is_dwatt_checkpoint,
    load_model,
    record_metrics,
    train_and_save,
    warn_truncated,
)

BUNDLED_DATASET = "pang-lee-polarity-bundled"
#: Seed of the fixed train/validation/test split of the bundled data; independent of --seed and few-shot seeds.
BUNDLED_SPLIT_SEED = 42
#: Sentences held out of the bundled 200: half for validation, half for test.
BUNDLED_HELD_OUT = 50
# File suffix -> (`datasets` builder, builder keyword arguments).
_FILE_BUILDERS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
}
#: The file suffixes `load_table_file` reads.
TABLE_SUFFIXES = tuple(_FILE_BUILDERS)
_SPLIT_FLAGS = {"train": "--do_train", "validation": "--do_eval", "test": "--do_predict"}


@dataclass
class ClassificationDataArguments:
    """Which data to train and evaluate on."""

    dataset_name: str = field(
        default=BUNDLED_DATASET,
        metadata={"help": f"A Hub dataset (online), or '{BUNDLED_DATASET}' (offline default)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Config of the Hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "CSV, TSV or JSON lines with text/label columns."})
    validation_file: str | None = field(default=None, metadata={"help": "Evaluated with --do_eval."})
    test_file: str | None = field(
        default=None, metadata={"help": "Predicted with --do_predict (scored when it has a label column)."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the sentence."})
    text_pair_column: str = field(
        default="text_pair", metadata={"help": "Column of the second sentence, used when the data has it."}
    )
    label_column: str = field(default="label", metadata={"help": "Column holding the class (string or number)."})
    few_shot_k: int | None = field(default=None, metadata={"help": "Train on K examples sampled from train."})
    few_shot_seed: int = field(default=0, metadata={"help": "Seed of the few-shot sample."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Predict the first N examples."})
    max_seq_length: int = field(default=128, metadata={"help": "Sub-word length after truncation."})


def load_bundled_polarity() -> DatasetDict:
    """The bundled Pang-Lee sentences as fixed, stratified train (150) / validation (25) / test (25) splits."""
    train_and_held_out = split_train_test(load_pang_lee_polarity(), test_size=BUNDLED_HELD_OUT, seed=BUNDLED_SPLIT_SEED)
    validation_and_test = split_train_test(
        train_and_held_out["test"], test_size=BUNDLED_HELD_OUT // 2, seed=BUNDLED_SPLIT_SEED
    )
    return DatasetDict(
        {
            "train": train_and_held_out["train"],
            "validation": validation_and_test["train"],
            "test": validation_and_test["test"],
        }
    )


def load_table_file(path: str, split: str) -> Dataset:
    """One CSV / TSV / JSON lines file as a Dataset (the builder is chosen by the file's suffix)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _FILE_BUILDERS:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {sorted(_FILE_BUILDERS)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    builder, builder_kwargs = _FILE_BUILDERS[suffix]
    # One call per file: a label-less test file must not have to share the train file's columns.
    return load_dataset(builder, data_files={split: str(path)}, split=split, **builder_kwargs)


def load_classification_data(data_args: ClassificationDataArguments) -> tuple[DatasetDict, dict[str, str]]:
    """Raw splits and, for error messages, where each split came from (a file path or a description)."""
    if uses_data_files(data_args, BUNDLED_DATASET):
        files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
        files = {split: path for split, path in files.items() if path}
        for split, path in files.items():  # named file:line errors before `datasets` gives a bare builder error
            check_table_file(path, data_args.text_column, None if split == "test" else data_args.label_column)
        raw = DatasetDict({split: load_table_file(path, split) for split, path in files.items()})
        sources = dict(files)
    elif data_args.dataset_name == BUNDLED_DATASET:
        raw = load_bundled_polarity()
        sources = {split: f"the bundled Pang-Lee polarity data ({split} split)" for split in raw}
    else:
        raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name)
        sources = {split: f"{data_args.dataset_name} ({split} split)" for split in raw}

    for split, dataset in raw.items():
        if data_args.text_column not in dataset.column_names:
            raise ValueError(
                f"{sources[split]}: no {data_args.text_column!r} column (columns: {dataset.column_names}); "
                "set --text_column"
            )
        missing = [row for row, text in enumerate(dataset[data_args.text_column], start=1) if text is None]
        if missing:
            raise ValueError(f"{sources[split]}: rows {missing[:5]} have no {data_args.text_column!r}")
        if split != "test" and data_args.label_column not in dataset.column_names:
            raise ValueError(
                f"{sources[split]}: no {data_args.label_column!r} column (columns: {dataset.column_names}); "
                "set --label_column"
            )
    check_pair_column(raw, sources, data_args)
    return raw, sources


def check_pair_column(raw: DatasetDict, sources: dict[str, str], data_args: ClassificationDataArguments) -> None:
    """The second-text column is in every split or in none, and in every split when `--text_pair_column` names
    another column than the default: a split without it would be classified from its first text alone."""
    pair = data_args.text_pair_column
    default = next(f.default for f in fields(ClassificationDataArguments) if f.name == "text_pair_column")
    having = [split for split, dataset in raw.items() if pair in dataset.column_names]
    if pair == default and not having:
        return  # single texts
    for split, dataset in raw.items():
        if pair in dataset.column_names:
            continue
        reason = f"{sources[having[0]]} has one" if having else f"--text_pair_column {pair!r} names it"
        raise ValueError(
            f"{sources[split]}: no {pair!r} column (columns: {dataset.column_names}); expected one, as {reason} "
            f"(without it each example would be read from {data_args.text_column!r} alone): set --text_pair_column "
            "to the column of the second text"
        )


def label_strings(dataset: Dataset, label_column: str) -> list[str | None]:
    """A split's labels as strings (ClassLabel ids become their names; a missing label becomes None)."""
    feature = dataset.features[label_column]
    values = dataset[label_column]
    if isinstance(feature, ClassLabel):
        # Hub test splits often mark "no label" as -1.
        return [feature.int2str(value) if value is not None and value >= 0 else None for value in values]
    return [None if value is None else str(value) for value in values]


def make_label_list(dataset: Dataset, label_column: str, source: str) -> list[str]:
    """The label list of the training data: a ClassLabel's own names, else the sorted distinct labels."""
    feature = dataset.features[label_column]
    labels = list(feature.names) if isinstance(feature, ClassLabel) else _distinct_labels(dataset, label_column, source)
    if len(labels) < 2:
        raise ValueError(
            f"{source}: every {label_column!r} is {labels[0]!r}; expected at least two classes (with one, the model "
            "would be built as a regression head and report a meaningless accuracy of 1.0)"
        )
    return labels


def _distinct_labels(dataset: Dataset, label_column: str, source: str) -> list[str]:
    values = dataset[label_column]
    missing = [row for row, value in enumerate(values, start=1) if value is None]
    if missing:
        raise ValueError(f"{source}: rows {missing[:5]} have no {label_column!r}")
    kinds = {"number" if isinstance(value, int | float) and not isinstance(value, bool) else "text" for value in values}
    if len(kinds) > 1:
        number = next(value for value in values if isinstance(value, int | float))
        text = next(value for value in values if not isinstance(value, int | float))
        raise ValueError(
            f"{source}: {label_column!r} mixes numbers and text (e.g. {number!r} and {text!r}); expected one kind of "
            "label (quote the numbers, or map the text to numbers)"
        )
    fractional = sorted({value for value in values if isinstance(value, float) and not value.is_integer()})
    if fractional:
        raise ValueError(
            f"{source}: {label_column!r} holds non-integer numbers ({', '.join(map(str, fractional[:4]))}"
            f"{', ...' if len(fractional) > 4 else ''}), which look like regression targets; run_classification "
            "trains classifiers: expected class labels (text, or whole numbers)"
        )
    # Sort the values themselves so numeric labels order as numbers (2 before 10), then name them.
    return [str(value) for value in sorted(set(values))]


def encode_labels(
    raw: DatasetDict, label_list: list[str], label_column: str, sources: dict[str, str], label_source: str
) -> DatasetDict:
    """Replace each split's label column by ClassLabel ids of `label_list`; unknown labels raise ValueError.

    A test split without any label is kept unlabelled (predicted, not scored); a missing label elsewhere raises.
    """
    label_to_id = {label: index for index, label in enumerate(label_list)}
    encoded = {}
    for split, dataset in raw.items():
        if label_column not in dataset.column_names:
            encoded[split] = dataset  # an unlabelled test file: predicted, not scored
            continue
        labels = label_strings(dataset, label_column)
        if split == "test" and all(label is None for label in labels):
            # Hub test splits without gold labels (GLUE's -1): predicted, not scored.
            encoded[split] = dataset.remove_columns(label_column)
            continue
        ids = []
        for row, label in enumerate(labels, start=1):
            if label is None:
                raise ValueError(f"{sources[split]}: row {row} has no {label_column!r}")
            if label not in label_to_id:
                raise ValueError(
                    f"{sources[split]}: row {row} has label {label!r}, which is not among the labels of "
                    f"{label_source}: {label_list}"
                )
            ids.append(label_to_id[label])
        encoded[split] = dataset.remove_columns(label_column).add_column(
            label_column, ids, feature=ClassLabel(names=label_list)
        )
    return DatasetDict(encoded)


def resolve_labels(
    raw: DatasetDict, data_args: ClassificationDataArguments, model_args: ModelArguments, sources: dict[str, str]
) -> tuple[DatasetDict, list[str]]:
    """Pick the label list (train data, else a DWAtt checkpoint's, else the first split's) and encode every split."""
    label_column = data_args.label_column
    hub_kwargs = {"revision": model_args.revision, "trust_remote_code": model_args.trust_remote_code}
    if "train" in raw:
        label_list, label_source = make_label_list(raw["train"], label_column, sources["train"]), sources["train"]
    elif is_dwatt_checkpoint(model_args.model_name_or_path, **hub_kwargs):
        # Evaluating a fine-tuned model: its label ids are fixed by its config.
        id2label = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs).id2label
        label_list = [id2label[index] for index in sorted(id2label)]
        label_source = f"the checkpoint {model_args.model_name_or_path}"
    else:
        split = next(split for split in raw if label_column in raw[split].column_names)
        label_list, label_source = make_label_list(raw[split], label_column, sources[split]), sources[split]
    return encode_labels(raw, label_list, label_column, sources, label_source), label_list


def _require_split(raw: DatasetDict, split: str) -> None:
    if split not in raw:
        raise ValueError(f"{_SPLIT_FLAGS[split]} needs a {split} split; the data has {sorted(raw)}")


def _first_n(dataset: Dataset, limit: int | None) -> Dataset:
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def tokenize_classification_dataset(
    raw: DatasetDict, tokenizer, data_args: ClassificationDataArguments
) -> tuple[DatasetDict, dict[str, int]]:
    """Each split tokenised to at most `--max_seq_length` sub-words (labels as `labels`), and per split the number
    of examples (text, or text pair) that were longer and so cut."""
    pair_column, max_length = data_args.text_pair_column, data_args.max_seq_length

    def tokenize(examples):
        texts, pairs = examples[data_args.text_column], examples.get(pair_column)  # checked in every split or none
        full = tokenizer(texts, pairs, truncation=False, verbose=False)["input_ids"]
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
        encoded["_truncated"] = [len(ids) > max_length for ids in full]
        if data_args.label_column in examples:
            encoded["labels"] = examples[data_args.label_column]
        return encoded

    tokenized, truncated = DatasetDict(), {}
    for split, dataset in raw.items():  # per split: an unlabelled test split has other columns to remove
        mapped = dataset.map(tokenize, batched=True, remove_columns=dataset.column_names, desc=split)
        truncated[split] = sum(mapped["_truncated"])
        tokenized[split] = mapped.remove_columns("_truncated")
    return tokenized, truncated


def run_classification(
    model_args: ModelArguments,
    data_args: ClassificationDataArguments,
    training_args: TrainingArguments,
    callbacks: list | None = None,
) -> dict:
    """Train / evaluate / predict as the flags say; return every metric, also written as JSON files."""
    check_run_arguments(training_args)
    set_seed(training_args.seed)
    raw, sources = load_classification_data(data_args)
    for split, wanted in (
        ("train", training_args.do_train),
        ("validation", training_args.do_eval),
        ("test", training_args.do_predict),
    ):
        if wanted:
            _require_split(raw, split)
    # Labels first (from the whole training data), then sampling: a K-shot sample may miss a class.
    raw, label_list = resolve_labels(raw, data_args, model_args, sources)
    if data_args.few_shot_k is not None and "train" in raw:
        raw["train"] = sample_few_shot(raw["train"], data_args.few_shot_k, data_args.few_shot_seed)
    for split, limit in (("validation", data_args.max_eval_samples), ("test", data_args.max_predict_samples)):
        if split in raw:
            raw[split] = _first_n(raw[split], limit)

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, revision=model_args.revision, trust_remote_code=model_args.trust_remote_code
    )
    model = load_model(
        model_args,
        DWAttForSequenceClassification,
        num_labels=len(label_list),
        id2label=dict(enumerate(label_list)),
        label2id={label: index for index, label in enumerate(label_list)},
    )

    with training_args.main_process_first(desc="tokenising"):
        tokenized, truncated = tokenize_classification_dataset(raw, tokenizer, data_args)
    warn_truncated(truncated, {split: len(raw[split]) for split in truncated}, data_args.max_seq_length,
                   "examples were cut", "the model reads only their first sub-words")  # fmt: skip

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized.get("train") if training_args.do_train else None,
        eval_dataset=tokenized.get("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_classification_metrics,
        optimizer_cls_and_kwargs=fusion_optimizer(model, training_args, model_args.fusion_learning_rate),
        callbacks=callbacks,
    )

    with backbone_features(model_args, model):
        return _train_evaluate_predict(trainer, model_args, data_args, raw, tokenized, truncated, label_list)


def _train_evaluate_predict(trainer, model_args, data_args, raw, tokenized, truncated, label_list) -> dict:
    """The phases `--do_train`, `--do_eval` and `--do_predict` ask for; their metrics."""
    training_args = trainer.args
    results = {}
    if training_args.do_train:
        results.update(train_and_save(trainer, model_args, data_args, {"train_truncated_examples": truncated["train"]}))

    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(tokenized["validation"])
        metrics["eval_truncated_examples"] = truncated["validation"]
        results.update(record_metrics(trainer, "eval", metrics))

    if training_args.do_predict:
        prediction = trainer.predict(tokenized["test"], metric_key_prefix="predict")
        metrics = {**prediction.metrics, "predict_samples": len(tokenized["test"])}
        metrics["predict_truncated_examples"] = truncated["test"]
        results.update(record_metrics(trainer, "predict", metrics))
        if trainer.is_world_process_zero():
            logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
            predicted = [label_list[index] for index in np.asarray(logits).argmax(axis=-1)]
            write_classification_predictions(
                Path(training_args.output_dir) / "predictions.tsv", raw["test"], predicted, data_args
            )
    return results


def write_classification_predictions(
    path: str | Path, test: Dataset, predicted: list[str], data_args: ClassificationDataArguments
) -> None:
    """Write `text<TAB>[text_pair<TAB>]gold<TAB>predicted` with a header; gold is empty for unlabelled data.

    Tabs and line breaks inside a text become spaces so that every example stays on one line.
    """

    def one_line(value) -> str:
        return " ".join(str(value).split())

    has_pair = data_args.text_pair_column in test.column_names
    has_gold = data_args.label_column in test.column_names
    gold = label_strings(test, data_args.label_column) if has_gold else [""] * len(test)
    header = ["text", "text_pair", "gold", "predicted"] if has_pair else ["text", "gold", "predicted"]
    columns = [test[data_args.text_column]]
    if has_pair:
        columns.append(test[data_args.text_pair_column])
    columns += [gold, predicted]
    lines = ["\t".join(header)] + ["\t".join(one_line(value) for value in row) for row in zip(*columns)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
