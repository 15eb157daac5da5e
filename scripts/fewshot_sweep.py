#!/usr/bin/env python
r"""Few-shot NER sweep: fusion methods x K x seeds on the bundled MiniLM + WNUT-16 (docs/DESIGN.md, section 3).

    python scripts/fewshot_sweep.py --name wnut16                       # 6 methods x K 50..1000 x 5 seeds
    python scripts/fewshot_sweep.py --name wnut16 --seeds 10 --ks 100 \
        --methods last,deeper,dwatt_sqrt_d                              # 5 more seeds where it matters
    python scripts/fewshot_sweep.py --name wnut16-frozen --freeze_backbone --ks 100,500
    python scripts/fewshot_sweep.py --name wnut16 --summary_only        # re-render summary.md and plots
    for i in 0 1; do OMP_NUM_THREADS=1 python scripts/fewshot_sweep.py --name wnut16 --shard $i/2 & done

Every run goes through `dwatt.tasks.ner.run_ner` (the code of run_ner.py) with run_ner's default-job
hyper-parameters, the same for every method. Finished runs are kept in results/<name>/runs.csv and skipped
when the command is run again, so stop it at any time (Ctrl-C) and re-run the same command to go on; a
second command with more seeds, methods or K under the same --name adds only the missing runs. Settings
that change results (steps, learning rates, freezing, ...) are fixed per --name: use a new name to vary
them. Several processes may share a --name (rows are written under a lock, never twice); give each its
own --shard so they do not train the same runs (e.g. one shard per core, each with OMP_NUM_THREADS=1;
whether that beats one two-thread process on a given machine is worth timing first).
"""

import logging
import warnings
from pathlib import Path

from transformers import HfArgumentParser

from dwatt.experiments.sweep.runner import SweepArguments, run_sweep
from dwatt.experiments.sweep.summary import write_summary
from dwatt.protocol import SweepSettings


def main(argv=None):
    parser = HfArgumentParser((SweepArguments, SweepSettings), description=__doc__)
    args, settings = parser.parse_args_into_dataclasses(args=argv)
    if args.summary_only:
        results_dir = f"{args.output_root}/{args.name}"
        if not Path(results_dir).is_dir():
            raise SystemExit(f"{results_dir} does not exist: no sweep named {args.name!r} under {args.output_root}")
        print(write_summary(results_dir, curve_k=args.curve_k) or "no finished runs yet")
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
    results_dir = run_sweep(args.name, settings=settings, **args.plan())
    print(f"Summary: {results_dir / 'summary.md'}")


if __name__ == "__main__":
    main()
