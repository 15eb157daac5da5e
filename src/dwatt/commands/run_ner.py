"""Fine-tune a DWAtt model (or a fusion baseline) for NER with the stock Trainer.

    dwatt ner                        # the embedded default: bundled MiniLM + 200 WNUT-16 tweets, few-shot
    dwatt ner --model_name_or_path bert-base-cased --train_file eng.train --validation_file eng.testa \\
        --test_file eng.testb --fusion dwatt --output_dir out --do_train --do_eval --do_predict
    accelerate launch -m dwatt ner configs/args/ner-minilm-wnut16.json   # the same under Accelerate / torchrun

Model, data and training arguments: `dwatt ner --help`.
"""

from transformers import TrainingArguments

from ..cli import command
from ..protocol import DEFAULT_NER_JOB
from ..tasks.arguments import ModelArguments, parse_arguments, setup_logging
from ..tasks.ner import NerDataArguments, run_ner


@command
def main(argv: list[str]) -> None:
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, NerDataArguments, TrainingArguments), default_job=DEFAULT_NER_JOB, argv=argv
    )
    setup_logging(training_args)
    results = run_ner(model_args, data_args, training_args)
    if training_args.process_index != 0:
        return
    if training_args.do_predict:
        print(
            f"\nTest entity F1: {results['predict_f1']:.4f} "
            f"(P {results['predict_precision']:.4f}, R {results['predict_recall']:.4f}, "
            f"{results['predict_samples']} sentences)."
        )
    saved = training_args.do_train or training_args.push_to_hub
    print(f"Model saved in {training_args.output_dir}" if saved else f"Metrics in {training_args.output_dir}")
