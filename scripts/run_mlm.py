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

from dwatt.mlm import MlmDataArguments, run_mlm
from dwatt.training import ModelArguments, parse_arguments, setup_logging

# With no arguments: train DWAtt and the (random) LM head on the bundled MiniLM for 40 steps of
# 8 blocks of 64 tokens (320 of the 1,152 blocks of the 300 Lee training documents); evaluate on the
# 78 blocks of the 50 held-out documents. The high fusion rate is for the LM head, which starts from
# scratch. Every position is scored against the 30,522-word vocabulary: short blocks keep a step cheap.
DEFAULT_JOB = [
    "--output_dir", "outputs/run_mlm-dwatt-minilm-lee",
    "--fusion", "dwatt", "--dwatt_scale", "sqrt_d",
    "--do_train", "--do_eval",
    "--max_seq_length", "64", "--mlm_probability", "0.15",
    "--max_steps", "40", "--learning_rate", "1e-4", "--fusion_learning_rate", "1e-3",
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
    "--warmup_steps", "4", "--lr_scheduler_type", "linear",
    "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "10",
    "--report_to", "none", "--seed", "0",
]  # fmt: skip


def main():
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, MlmDataArguments, TrainingArguments), default_job=DEFAULT_JOB
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
