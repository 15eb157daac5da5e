#!/usr/bin/env python
"""Train the reference checkpoints (bundled MiniLM + WNUT-16) and render their model cards.

    python scripts/make_reference_models.py                  # train each reference run, then render its card
    python scripts/make_reference_models.py --skip_training  # re-render the cards from existing run folders
    python scripts/make_reference_models.py --only dwatt     # one reference run

Each run is `scripts/run_ner.py`'s embedded default job (`DEFAULT_JOB`: 200 tweets, seed 0, 300 steps)
with its own `--fusion` and `--output_dir` under `outputs/` (gitignored: weights are never committed).
The runs go one after the other, in this process, through the same code path as `run_ner.py`
(`dwatt.ner.run_ner`). The rendered cards and figures go to `model_cards/<name>/`; the push-ready
folders to `outputs/<name>-hub/`.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path

from transformers import TrainingArguments

from dwatt.hub import export_push_ready
from dwatt.modelcard import save_run_arguments
from dwatt.ner import NerDataArguments, run_ner
from dwatt.training import ModelArguments, parse_arguments, setup_logging

REPO_ROOT = Path(__file__).resolve().parent.parent
CARDS_DIR = REPO_ROOT / "model_cards"

# Name -> the arguments that differ from run_ner.py's DEFAULT_JOB. Same data, seed, steps and
# hyper-parameters for every method, as the benchmark protocol asks.
REFERENCE_RUNS = {
    "dwatt-minilm-wnut16-k200": ["--fusion", "dwatt"],
    "last-minilm-wnut16-k200": ["--fusion", "last"],
}
# The Hub namespace the cards' usage snippets name (--repo_namespace); pushing is scripts/push_to_hub.py's job.
DEFAULT_REPO_NAMESPACE = "dwatt"


def default_job() -> list[str]:
    """`DEFAULT_JOB` of scripts/run_ner.py (scripts/ is not a package, so load the file by path)."""
    spec = importlib.util.spec_from_file_location("run_ner_script", REPO_ROOT / "scripts" / "run_ner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.DEFAULT_JOB)


def override(job: list[str], overrides: list[str]) -> list[str]:
    """`job` with each `--flag value` of `overrides` replacing the flag's value there (or appended)."""
    job = list(job)
    for flag, value in zip(overrides[::2], overrides[1::2]):
        if flag in job:
            job[job.index(flag) + 1] = value
        else:
            job += [flag, value]
    return job


def reference_job(name: str) -> list[str]:
    """The full argument list of one reference run."""
    return override(default_job(), REFERENCE_RUNS[name] + ["--output_dir", str(REPO_ROOT / "outputs" / name)])


def train(name: str) -> Path:
    """Run one reference job through `run_ner`; keep its arguments next to its metrics for the card."""
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, NerDataArguments, TrainingArguments), argv=reference_job(name)
    )
    setup_logging(training_args)
    run_ner(model_args, data_args, training_args)
    save_run_arguments(training_args.output_dir, model_args, data_args, training_args)
    return Path(training_args.output_dir)


def render(name: str, repo_namespace: str = DEFAULT_REPO_NAMESPACE) -> Path:
    """Export the run's push-ready folder, then copy its card and figures into model_cards/<name>/."""
    run_dir = REPO_ROOT / "outputs" / name
    analysis_dir = REPO_ROOT / "results" / "analysis" / name  # scripts/analyze_layers.py, where it was run
    exported = export_push_ready(
        run_dir,
        REPO_ROOT / "outputs" / f"{name}-hub",
        repo_id=f"{repo_namespace}/{name}",
        analysis_dir=analysis_dir if (analysis_dir / "report.md").is_file() else None,
    )
    hub_dir = exported.folder
    card_dir = CARDS_DIR / name
    card_dir.mkdir(parents=True, exist_ok=True)
    for path in [hub_dir / "README.md", *sorted(hub_dir.glob("*.png"))]:
        (card_dir / path.name).write_bytes(path.read_bytes())
    return card_dir / "README.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=[name.split("-")[0] for name in REFERENCE_RUNS], help="one run only")
    parser.add_argument("--skip_training", action="store_true", help="render cards from existing run folders")
    parser.add_argument("--skip_render", action="store_true", help="train only")
    parser.add_argument("--repo_namespace", default=DEFAULT_REPO_NAMESPACE, help="namespace in the cards' repo ids")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    names = [name for name in REFERENCE_RUNS if args.only is None or name.startswith(args.only + "-")]
    for name in names:
        if not args.skip_training:
            train(name)
        if not args.skip_render:
            print(f"card: {render(name, args.repo_namespace)}")


if __name__ == "__main__":
    main()
