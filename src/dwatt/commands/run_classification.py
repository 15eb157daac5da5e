"""Fine-tune a DWAtt model (or a fusion baseline) for sentence (pair) classification with the stock Trainer.

    dwatt classification             # the embedded default: bundled MiniLM + Pang-Lee polarity
    dwatt classification --model_name_or_path bert-base-uncased --train_file train.csv \\
        --validation_file dev.csv --test_file test.csv --fusion dwatt --output_dir out --do_train --do_eval --do_predict

Files are CSV, TSV or JSON lines with `text` (and optional `text_pair`) and `label` columns.
Model, data and training arguments: `dwatt classification --help`.
"""

from transformers import TrainingArguments

from ..cli import command
from ..protocol import DEFAULT_CLASSIFICATION_JOB
from ..tasks.arguments import ModelArguments, parse_arguments, setup_logging
from ..tasks.classification import ClassificationDataArguments, run_classification


@command
def main(argv: list[str]) -> None:
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, ClassificationDataArguments, TrainingArguments), DEFAULT_CLASSIFICATION_JOB, argv
    )
    setup_logging(training_args)
    results = run_classification(model_args, data_args, training_args)
    if training_args.process_index == 0:
        for split in ("eval", "predict"):
            if f"{split}_accuracy" in results:
                accuracy, macro_f1, samples = (results[f"{split}_{key}"] for key in ("accuracy", "macro_f1", "samples"))
                print(f"\n{split} accuracy {accuracy:.4f}, macro F1 {macro_f1:.4f} ({samples} examples)")
        print(f"Outputs in {training_args.output_dir}")
