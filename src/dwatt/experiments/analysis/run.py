"""Runs the layer analysis of a checkpoint (`scripts/analyze_layers.py`): arguments, data, report."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoModelForTokenClassification

from ...data.corpora import load_wnut16
from ...data.ner_files import read_ner_file, sentences_to_dataset
from ...data.tokenization import load_word_tokenizer
from ...metrics import overall_score
from ...modeling_dwatt import DWAttForTokenClassification
from .probes import FULL, LayerAnalysis, analyze_layers, encode_batches
from .report import write_report
from .timing import time_first_k

DEFAULT_CHECKPOINT = "outputs/dwatt-minilm-wnut16-k200"


@dataclass
class AnalysisArguments:
    """What to analyse, on which data, and where the report goes."""

    model_name_or_path: str = field(
        default=DEFAULT_CHECKPOINT, metadata={"help": "A trained DWAttForTokenClassification folder (or Hub id)."}
    )
    data_file: str | None = field(
        default=None,
        metadata={"help": "A labelled NER file (CoNLL columns, token<TAB>tag, or JSON lines). Default: WNUT-16."},
    )
    split: str = field(
        default="test", metadata={"help": "Split of the bundled WNUT-16 (load_wnut16) when no --data_file is given."}
    )
    max_sentences: int | None = field(default=None, metadata={"help": "Analyse only the first N sentences."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where report.md and the PNGs go. Default: results/analysis/<name>."}
    )
    name: str | None = field(default=None, metadata={"help": "Report title. Default: the checkpoint folder's name."})
    batch_size: int = field(default=32, metadata={"help": "Sentences per forward pass."})
    max_seq_length: int = field(default=128, metadata={"help": "Sub-word tokens per sentence (longer: truncated)."})
    num_heatmaps: int = field(default=4, metadata={"help": "Sentences shown as words x layers heatmaps."})
    timing_sentences: int = field(
        default=32, metadata={"help": "Sentences timed for first-k inference (the first N); 0: no timing."}
    )
    timing_repeats: int = field(default=10, metadata={"help": "Timed passes per k (medians are reported)."})
    bootstrap_samples: int = field(default=1000, metadata={"help": "Resamples for the 95%% intervals of F1 changes."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap resampling."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the checkpoint's own modeling code."})


def shown_path(path: str) -> str:
    """A path as the report shows it: relative to the working directory when inside it (no machine paths)."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return path if not Path(path).exists() else resolved.name


def load_data(args: AnalysisArguments, label_list: list[str]):
    """The sentences to analyse and a phrase that says what they are."""
    if args.data_file is not None:
        dataset = sentences_to_dataset(read_ner_file(args.data_file, label_list=label_list), label_list)
        described = f"`{shown_path(args.data_file)}`"
    else:
        dataset = load_wnut16()[args.split]
        described = f"the bundled WNUT-16 `{args.split}` split (`dwatt.data.corpora.load_wnut16()`)"
    if args.max_sentences is not None and args.max_sentences < len(dataset):
        dataset = dataset.select(range(args.max_sentences))
        described += f", first {args.max_sentences} sentences"
    return dataset, described


def describe(args: AnalysisArguments, model, data_described: str, num_sentences: int, command: str) -> list[str]:
    """The report's opening lines: checkpoint, data, command and machine."""
    config = model.config
    backbone = config.backbone_config
    layers = model.dwatt.fusion.layer_indices if model.dwatt.fusion is not None else []
    scale = f", dwatt_scale `{config.dwatt_scale}`" if config.fusion == "dwatt" else ""
    return [
        f"Checkpoint `{shown_path(args.model_name_or_path)}`: fusion `{config.fusion}`{scale}, "
        f"{backbone.model_type} backbone with {backbone.num_hidden_layers} layers x {backbone.hidden_size}, "
        f"fused hidden states {', '.join(map(str, layers)) or 'none'} (0 = embedding output).",
        f"Data: {data_described}, {num_sentences} sentences.",
        f"Produced by `{command}` on {platform.machine()} with torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) and transformers {transformers.__version__}.",
    ]


def reported_f1_note(args: AnalysisArguments, f1: float) -> list[str]:
    """Compare with the checkpoint's own predict_results.json when this run scores the same test tweets."""
    results_file = Path(args.model_name_or_path) / "predict_results.json"
    same_data = args.data_file is None and args.split == "test" and args.max_sentences is None
    if not (same_data and results_file.is_file()):
        return []
    reported = overall_score(json.loads(results_file.read_text()), "predict", "f1")
    if reported is None:
        return []
    if abs(reported - f1) < 5e-5:
        return [f"The checkpoint's own `predict_results.json` reports the same test F1 ({reported:.4f})."]
    return [
        f"Note: the checkpoint's own `predict_results.json` reports test F1 {reported:.4f}, while its saved weights "
        f"score {f1:.4f} here (same test tweets and labels, the model's plain forward pass)."
    ]


def run_analysis(args: AnalysisArguments, command: str) -> tuple[LayerAnalysis, Path]:
    """Analyse the checkpoint on the data, time first-k inference and write the report; returns the result
    and the report's path. `command` is the command line the report says produced it."""
    checkpoint = Path(args.model_name_or_path)
    if args.model_name_or_path != DEFAULT_CHECKPOINT and not checkpoint.exists() and checkpoint.is_absolute():
        raise SystemExit(f"{checkpoint}: no such folder; expected a trained DWAttForTokenClassification folder")
    if args.model_name_or_path == DEFAULT_CHECKPOINT and not checkpoint.exists():
        raise SystemExit(
            f"{DEFAULT_CHECKPOINT} does not exist: it is made by `python scripts/make_reference_models.py` "
            "(or pass --model_name_or_path a trained DWAttForTokenClassification folder)"
        )
    model = AutoModelForTokenClassification.from_pretrained(
        args.model_name_or_path, trust_remote_code=args.trust_remote_code
    )
    if not isinstance(model, DWAttForTokenClassification) and not hasattr(model, "dwatt"):
        raise SystemExit(f"{args.model_name_or_path}: a {type(model).__name__}, not a DWAtt token classifier")
    model.eval()
    tokenizer = load_word_tokenizer(args.model_name_or_path, trust_remote_code=args.trust_remote_code)
    label_list = [model.config.id2label[index] for index in range(model.config.num_labels)]
    dataset, data_described = load_data(args, label_list)
    name = args.name or Path(args.model_name_or_path.rstrip("/")).name
    output_dir = Path(args.output_dir or Path("results") / "analysis" / name)

    num_batches = -(-len(dataset) // args.batch_size)
    with tqdm(total=num_batches, desc="analysis") as bar:
        result = analyze_layers(
            model,
            tokenizer,
            dataset,
            batch_size=args.batch_size,
            max_seq_length=args.max_seq_length,
            bootstrap_samples=args.bootstrap_samples,
            seed=args.seed,
            progress=lambda _: bar.update(),
        )
    ks = [k for k in result.first_ks if k < result.num_layers]
    if args.timing_sentences > 0 and ks:
        timed = dataset.select(range(min(args.timing_sentences, len(dataset))))
        batches = encode_batches(timed, tokenizer, label_list, args.batch_size, args.max_seq_length)
        with tqdm(total=args.timing_repeats, desc="timing first-k") as bar:
            result.timing = time_first_k(model, batches, ks, args.timing_repeats, progress=lambda _: bar.update())

    description = describe(args, model, data_described, len(dataset), command)
    description += reported_f1_note(args, result.f1(FULL))
    return result, write_report(result, output_dir, name, description, num_heatmaps=args.num_heatmaps)
