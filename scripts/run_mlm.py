#!/usr/bin/env python
"""Train a DWAtt model (or a fusion baseline) with masked-language modelling on the stock Trainer.

    python scripts/run_mlm.py                       # the embedded default: MiniLM + the Lee news corpus
    python scripts/run_mlm.py --model_name_or_path bert-base-uncased --train_file train.txt \
        --validation_file valid.txt --fusion dwatt --output_dir out --do_train --do_eval
    accelerate launch scripts/run_mlm.py args.json  # same code under Accelerate / torchrun

Text files hold one document per line. The bundled MiniLM has no MLM head: its LM head starts random.
Model, data and training arguments: `python scripts/run_mlm.py --help`.
"""

from transformers import TrainingArguments

from dwatt.protocol import DEFAULT_MLM_JOB
from dwatt.tasks.arguments import ModelArguments, parse_arguments, setup_logging
from dwatt.tasks.mlm import MlmDataArguments, run_mlm


def main():
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, MlmDataArguments, TrainingArguments), default_job=DEFAULT_MLM_JOB
    )
    setup_logging(training_args)
    results = run_mlm(model_args, data_args, training_args)
    if training_args.do_eval and training_args.process_index == 0:
        print(
            f"\nEval loss {results['eval_loss']:.4f}, perplexity {results['perplexity']:.1f} "
            f"({results['eval_samples']} blocks). Model saved in {training_args.output_dir}"
        )


if __name__ == "__main__":
    main()
