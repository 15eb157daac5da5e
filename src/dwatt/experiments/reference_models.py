"""The reference checkpoints (bundled MiniLM + WNUT-16): trained with the default NER job and one fusion
each, and their model cards rendered into `model_cards/<name>/`."""

from __future__ import annotations

from pathlib import Path

from ..hub.push import export_push_ready
from ..protocol import DEFAULT_NER_JOB
from ..tasks.arguments import setup_logging
from ..tasks.ner import parse_run_values, run_ner

# Name -> the arguments that differ from the default NER job. Same data, seed, steps and hyper-parameters
# for every method, as the benchmark protocol asks.
REFERENCE_RUNS = {
    "dwatt-minilm-wnut16-k200": {"fusion": "dwatt"},
    "last-minilm-wnut16-k200": {"fusion": "last"},
}
# The Hub namespace the cards' usage snippets name; pushing is scripts/push_to_hub.py's job.
DEFAULT_REPO_NAMESPACE = "dwatt"


def train_reference(name: str, outputs_dir: Path) -> Path:
    """Run one reference job through `run_ner` (which records its arguments for the card)."""
    values = {**DEFAULT_NER_JOB, **REFERENCE_RUNS[name], "output_dir": str(outputs_dir / name)}
    model_args, data_args, training_args = parse_run_values(values)
    setup_logging(training_args)
    run_ner(model_args, data_args, training_args)
    return Path(training_args.output_dir)


def render_reference(
    name: str, outputs_dir: Path, cards_dir: Path, analysis_root: Path, repo_namespace: str = DEFAULT_REPO_NAMESPACE
) -> Path:
    """Export the run's push-ready folder, then copy its card and figures into `cards_dir/<name>/`."""
    analysis_dir = analysis_root / name  # scripts/analyze_layers.py, where it was run
    exported = export_push_ready(
        outputs_dir / name,
        outputs_dir / f"{name}-hub",
        repo_id=f"{repo_namespace}/{name}",
        analysis_dir=analysis_dir if (analysis_dir / "report.md").is_file() else None,
    )
    card_dir = cards_dir / name
    card_dir.mkdir(parents=True, exist_ok=True)
    for path in [exported.folder / "README.md", *sorted(exported.folder.glob("*.png"))]:
        (card_dir / path.name).write_bytes(path.read_bytes())
    return card_dir / "README.md"
