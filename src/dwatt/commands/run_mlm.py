"""Train a DWAtt model (or a fusion baseline) with masked-language modelling on the stock Trainer.

    dwatt mlm                        # the embedded default: bundled MiniLM + the Lee news corpus
    dwatt mlm --model_name_or_path bert-base-uncased --train_file train.txt --validation_file valid.txt \\
        --fusion dwatt --output_dir out --do_train --do_eval

Text files hold one document per line. The bundled MiniLM has no MLM head: its LM head starts random.
Model, data and training arguments: `dwatt mlm --help`.
"""

from transformers import TrainingArguments

from ..cli import command
from ..protocol import DEFAULT_MLM_JOB
from ..tasks.arguments import ModelArguments, parse_arguments, setup_logging
from ..tasks.mlm import MlmDataArguments, run_mlm


@command
def main(argv: list[str]) -> None:
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, MlmDataArguments, TrainingArguments), default_job=DEFAULT_MLM_JOB, argv=argv
    )
    setup_logging(training_args)
    results = run_mlm(model_args, data_args, training_args)
    if training_args.do_eval and training_args.process_index == 0:
        print(
            f"\nEval loss {results['eval_loss']:.4f}, perplexity {results['perplexity']:.1f} "
            f"({results['eval_samples']} blocks). Outputs in {training_args.output_dir}"
        )
