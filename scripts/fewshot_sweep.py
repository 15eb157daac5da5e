#!/usr/bin/env python
r"""Few-shot NER sweep: fusion methods x K x seeds on the bundled MiniLM + WNUT-16 (DESIGN.md section 3).

    python scripts/fewshot_sweep.py --name wnut16                       # 6 methods x K 50..1000 x 5 seeds
    python scripts/fewshot_sweep.py --name wnut16 --seeds 10 --ks 100 \
        --methods last,deeper,dwatt_sqrt_d                              # 5 more seeds where it matters
    python scripts/fewshot_sweep.py --name wnut16-frozen --freeze_backbone --ks 100,500
    python scripts/fewshot_sweep.py --name wnut16 --summary_only        # re-render summary.md and plots
    for i in 0 1; do OMP_NUM_THREADS=1 python scripts/fewshot_sweep.py --name wnut16 --shard $i/2 & done

Every run goes through `dwatt.ner.run_ner` (the code of run_ner.py) with run_ner's default-job
hyper-parameters, the same for every method. Finished runs are kept in results/<name>/runs.csv and skipped
when the command is run again, so stop it at any time (Ctrl-C) and re-run the same command to go on; a
second command with more seeds, methods or K under the same --name adds only the missing runs. Settings
that change results (steps, learning rates, freezing, ...) are fixed per --name: use a new name to vary
them. Several processes may share a --name (rows are written under a lock, never twice); give each its
own --shard so they do not train the same runs (e.g. one shard per core, each with OMP_NUM_THREADS=1;
whether that beats one two-thread process on a given machine is worth timing first).
"""

import argparse
import logging
import warnings

from dwatt.sweep import (
    DEFAULT_KS,
    DEFAULT_METHODS,
    DEFAULT_SEED_COUNT,
    METHODS,
    SweepSettings,
    check_methods,
    parse_list,
    parse_seeds,
    run_sweep,
    write_summary,
)

DEFAULTS = SweepSettings()


def optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def parse_shard(text: str) -> tuple[int, int]:
    index, count = (int(part) for part in text.split("/"))
    return index, count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="Sweep name: results go to <output_root>/<name>/.")
    parser.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help=f"Comma-separated, from: {', '.join(METHODS)}."
    )
    parser.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)), help="Comma-separated few-shot sizes K.")
    parser.add_argument(
        "--seeds", default=str(DEFAULT_SEED_COUNT), help="A count N (seed indices 0..N-1) or a list '0,3,7'."
    )
    parser.add_argument("--max_steps", type=int, default=DEFAULTS.max_steps, help="Training steps of every run.")
    parser.add_argument("--eval_every", type=int, default=DEFAULTS.eval_every, help="Score dev and test every N steps.")
    parser.add_argument("--learning_rate", type=float, default=DEFAULTS.learning_rate, help="Backbone learning rate.")
    parser.add_argument(
        "--fusion_learning_rate", type=optional_float, default=DEFAULTS.fusion_learning_rate,
        help="Learning rate of fusion and head parameters ('none': the backbone's rate for everything).",
    )  # fmt: skip
    parser.add_argument("--train_batch_size", type=int, default=DEFAULTS.train_batch_size)
    parser.add_argument("--eval_batch_size", type=int, default=DEFAULTS.eval_batch_size)
    parser.add_argument("--max_seq_length", type=int, default=DEFAULTS.max_seq_length)
    parser.add_argument("--freeze_backbone", action="store_true", help="Train only the fusion and the head.")
    parser.add_argument(
        "--fusion_init", choices=("paper", "identity"), default=DEFAULTS.fusion_init,
        help="'identity' where the fusion defines it (dwatt, concat, last); other methods keep their init.",
    )  # fmt: skip
    parser.add_argument("--model_name_or_path", default=None, help="Backbone (default: the bundled MiniLM).")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Score only the first N dev tweets.")
    parser.add_argument("--max_predict_samples", type=int, default=None, help="Score only the first N test tweets.")
    parser.add_argument("--output_root", default="results", help="Where results/<name>/ is written.")
    parser.add_argument("--work_dir", default="outputs/sweeps", help="Run folders (pruned to small files).")
    parser.add_argument("--curve_k", type=int, default=None, help="K of the step-efficiency table (default 100).")
    parser.add_argument(
        "--shard", type=parse_shard, default=None,
        help="'i/n': run only every n-th run from the i-th (start n processes, i = 0..n-1, to share the cores).",
    )  # fmt: skip
    parser.add_argument("--summary_only", action="store_true", help="Only re-write summary.md and the plots.")
    parser.add_argument("--no_progress", action="store_true", help="No progress bar.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.summary_only:
        print(write_summary(f"{args.output_root}/{args.name}", curve_k=args.curve_k) or "no finished runs yet")
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

    settings = SweepSettings(
        model_name_or_path=args.model_name_or_path,
        max_steps=args.max_steps,
        eval_every=args.eval_every,
        learning_rate=args.learning_rate,
        fusion_learning_rate=args.fusion_learning_rate,
        train_batch_size=args.train_batch_size,
        eval_batch_size=args.eval_batch_size,
        max_seq_length=args.max_seq_length,
        freeze_backbone=args.freeze_backbone,
        fusion_init=args.fusion_init,
        max_eval_samples=args.max_eval_samples,
        max_predict_samples=args.max_predict_samples,
    )
    results_dir = run_sweep(
        args.name,
        methods=check_methods(parse_list(args.methods)),
        ks=parse_list(args.ks, int),
        seeds=parse_seeds(args.seeds),
        settings=settings,
        output_root=args.output_root,
        work_dir=args.work_dir,
        progress=not args.no_progress,
        curve_k=args.curve_k,
        shard=args.shard,
    )
    print(f"Summary: {results_dir / 'summary.md'}")


if __name__ == "__main__":
    main()
