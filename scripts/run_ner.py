#!/usr/bin/env python
"""Fine-tune a DWAtt model (or a fusion baseline) for NER with the stock Trainer.

    python scripts/run_ner.py                       # the embedded default: MiniLM + WNUT-16, few-shot
    python scripts/run_ner.py --model_name_or_path bert-base-cased --train_file eng.train \
        --validation_file eng.testa --test_file eng.testb --fusion dwatt --output_dir out --do_train --do_eval
    accelerate launch scripts/run_ner.py args.json  # same code under Accelerate / torchrun

Model, data and training arguments: `python scripts/run_ner.py --help`.
"""

from transformers import TrainingArguments

from dwatt.ner import NerDataArguments, run_ner
from dwatt.training import ModelArguments, parse_arguments, setup_logging

# With no arguments: fine-tune DWAtt on the bundled MiniLM and 200 WNUT-16 tweets, score the
# held-out test split. Learning rate 1e-4 was the best of {5e-5, 1e-4, 2e-4} for `last` on dev; it is
# used for every parameter (a separate 1e-3 for fusion and head made no difference to `last` on dev and
# made DWAtt overfit: results/wnut16-fusion-lr-1e-3/).
DEFAULT_JOB = [
    "--output_dir", "outputs/run_ner-dwatt-minilm-wnut16",
    "--fusion", "dwatt", "--dwatt_scale", "sqrt_d",
    "--few_shot_k", "200", "--few_shot_seed", "0",
    "--do_train", "--do_eval", "--do_predict",
    "--max_steps", "300", "--learning_rate", "1e-4",
    "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64",
    "--warmup_steps", "30", "--lr_scheduler_type", "linear",
    "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "25",
    "--report_to", "none", "--seed", "0",
]  # fmt: skip


def main():
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, NerDataArguments, TrainingArguments), default_job=DEFAULT_JOB
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
