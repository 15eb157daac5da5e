#!/usr/bin/env python
"""Train the reference checkpoints (bundled MiniLM + WNUT-16) and render their model cards.

    python scripts/make_reference_models.py                  # train each reference run, then render its card
    python scripts/make_reference_models.py --skip_training  # re-render the cards from existing run folders
    python scripts/make_reference_models.py --only dwatt     # one reference run

Each run is the default NER job (`dwatt.protocol.DEFAULT_NER_JOB`: 200 tweets, seed 0, 300 steps) with its
own fusion and output folder under `outputs/` (gitignored: weights are never committed), run in this process
through `dwatt.tasks.ner.run_ner`. The rendered cards and figures go to `model_cards/<name>/`; the
push-ready folders to `outputs/<name>-hub/`.
"""

import argparse
import logging
from pathlib import Path

from dwatt.cli import command
from dwatt.experiments.reference_models import (
    DEFAULT_REPO_NAMESPACE,
    REFERENCE_RUNS,
    render_reference,
    train_reference,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=[name.split("-")[0] for name in REFERENCE_RUNS], help="one run only")
    parser.add_argument("--skip_training", action="store_true", help="render cards from existing run folders")
    parser.add_argument("--skip_render", action="store_true", help="train only")
    parser.add_argument("--repo_namespace", default=DEFAULT_REPO_NAMESPACE, help="namespace in the cards' repo ids")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    outputs, cards, analyses = REPO_ROOT / "outputs", REPO_ROOT / "model_cards", REPO_ROOT / "results" / "analysis"
    for name in REFERENCE_RUNS:
        if args.only is not None and not name.startswith(args.only + "-"):
            continue
        if not args.skip_training:
            train_reference(name, outputs)
        if not args.skip_render:
            print(f"card: {render_reference(name, outputs, cards, analyses, args.repo_namespace)}")


if __name__ == "__main__":
    main()
