r"""Few-shot NER sweep from a config file: methods x K x seeds, per training regime (full, frozen, LoRA), with
the learning rate tuned per method on dev (docs/DESIGN.md, section 3).

    dwatt sweep --config configs/sweeps/wnut16-tuned.yaml
    dwatt sweep --config configs/sweeps/wnut16-tuned.yaml --regimes frozen --ks 100
    dwatt sweep --config configs/sweeps/conll03-bert-base.yaml \
        --set data.train_file=eng.train --set data.validation_file=eng.testa --set data.test_file=eng.testb
    dwatt sweep --config configs/sweeps/wnut16-tuned.yaml --summary_only
    for i in 0 1; do OMP_NUM_THREADS=1 dwatt sweep --config C.yaml --shard $i/2 & done

Every run goes through `dwatt.tasks.ner.run_ner` (the code of `dwatt ner`). Per regime, each method first runs
every rate of the regime's grid on the tuning seeds; the rate with the best mean dev F1 (the config's rule,
fixed before any run) then runs on the other seeds. Finished runs are kept in results/<name>/runs.csv (and
their per-sentence test counts in sentence_counts.jsonl) and skipped when the command is run again, so stop
it at any time (Ctrl-C) and re-run the same command to go on; more seeds, methods, K or rates under the same
name add only the missing runs. Other settings, and the data files' content, are fixed per name (sweep.json).
Several processes may share a sweep (same --output_root and --work_dir): give each its own --shard; each starts
with its share, then takes up any ready run no process is running (a lock per run, so none runs twice).
"""

import logging
import warnings
from pathlib import Path

from transformers import HfArgumentParser

from ..cli import command
from ..experiments.sweep.runner import SweepArguments, parse_shard, run_sweep
from ..experiments.sweep.store import check_settings
from ..experiments.sweep.summary import write_summary


@command
def main(argv: list[str]) -> None:
    (args,) = HfArgumentParser(SweepArguments, description=__doc__).parse_args_into_dataclasses(args=argv)
    config = args.load()
    shard = parse_shard(args.shard)
    if args.summary_only:
        results_dir = Path(args.output_root) / config.name
        if not results_dir.is_dir():
            raise FileNotFoundError(f"{results_dir} does not exist: the sweep {config.name!r} has no results yet")
        # The settings (with any --set) must be those the runs were trained with; sweep.json is only read here.
        check_settings(results_dir, config.full.fixed_part(), read_only=True)
        summary = write_summary(results_dir, config.full)
        if summary is None:
            raise FileNotFoundError(f"{results_dir}: no finished runs yet, so there is nothing to summarise")
        print(summary)
        return
    # Keep the console to the sweep's progress bar: per-run Trainer logs go to each run's run.log.
    import datasets
    import huggingface_hub
    import transformers

    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")  # CPU runs: the Trainer's default, harmless
    results_dir = run_sweep(config, args.output_root, args.work_dir, progress=not args.no_progress, shard=shard)
    print(f"Summary: {results_dir / 'summary.md'}")
