#!/usr/bin/env python
"""Fine-tune a DWAtt model (or a fusion baseline) for NER with the stock Trainer.

    python scripts/run_ner.py                       # the embedded default: MiniLM + WNUT-16, few-shot
    python scripts/run_ner.py --model_name_or_path bert-base-cased --train_file eng.train \
        --validation_file eng.testa --test_file eng.testb --fusion dwatt --output_dir out --do_train --do_eval
    accelerate launch scripts/run_ner.py args.json  # same code under Accelerate / torchrun

Model, data and training arguments: `python scripts/run_ner.py --help`.
"""

from transformers import TrainingArguments

from dwatt.protocol import DEFAULT_NER_JOB
from dwatt.tasks.arguments import ModelArguments, parse_arguments, setup_logging
from dwatt.tasks.ner import NerDataArguments, run_ner


def main():
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, NerDataArguments, TrainingArguments), default_job=DEFAULT_NER_JOB
    )
    setup_logging(training_args)
    results = run_ner(model_args, data_args, training_args)
    if training_args.do_predict and training_args.process_index == 0:
        print(
            f"\nTest entity F1: {results['predict_overall_f1']:.4f} "
            f"(P {results['predict_overall_precision']:.4f}, R {results['predict_overall_recall']:.4f}, "
            f"{results['predict_samples']} sentences). Model saved in {training_args.output_dir}"
        )


if __name__ == "__main__":
    main()
