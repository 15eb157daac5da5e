"""Runs the layer analysis of a checkpoint (`scripts/analyze_layers.py`): arguments, data, report."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoModelForTokenClassification

from ...assets import BUNDLED_WNUT16
from ...data.corpora import load_wnut16
from ...data.ner_files import read_ner_file, sentences_to_dataset
from ...data.tokenization import load_word_tokenizer
from ...metrics import overall_score
from ...modeling_dwatt import DWAttForTokenClassification
from ...validation import ArgumentError
from ..sweep.fingerprints import backbone_fingerprint
from .probes import FULL, LayerAnalysis, analyze_layers, encode_batches
from .report import write_report
from .timing import time_first_k

DEFAULT_CHECKPOINT = "outputs/dwatt-minilm-wnut16-k200"
#: Beside report.md: which checkpoint the report folder holds (`checkpoint_record`).
RECORD_FILE = "analysed_checkpoint.json"


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


def _read_predictions(path: Path) -> list[tuple[list[str], list[str]]]:
    """The words and gold tags of each sentence of a `predictions.conll` (`token gold predicted` lines)."""
    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip():
            columns = line.split(" ")
            words.append(columns[0])
            tags.append(columns[1] if len(columns) > 1 else "")
        elif words:
            sentences.append((words, tags))
            words, tags = [], []
    return sentences


def predict_data_match(args: AnalysisArguments, dataset) -> tuple[bool | None, str]:
    """Whether the checkpoint folder's `predict_results.json` scored the sentences analysed here: True, False
    (other data) or None (the folder does not say), and why.

    The evidence is what the folder records: `predictions.conll` (written by the same `--do_predict` as
    `predict_results.json`: its words and gold tags), or else `predict_samples` and `run_arguments.json`, which
    is the training run's and so says nothing of a later predict-only run into the folder."""
    folder = Path(args.model_name_or_path)
    count = len(dataset)
    predictions = folder / "predictions.conll"
    if predictions.is_file():
        recorded = _read_predictions(predictions)
        if len(recorded) != count:
            return False, f"its `predictions.conll` holds {len(recorded)} sentences, against {count} here"
        names = dataset.features["ner_tags"].feature.names
        for index, ((words, tags), sentence) in enumerate(zip(recorded, dataset, strict=True)):
            # predictions.conll writes a space inside a word as "_" (see write_conll_predictions)
            if words != [re.sub(r"\s", "_", word) for word in sentence["tokens"]] or tags != [
                names[tag] for tag in sentence["ner_tags"]
            ]:
                return False, f"its `predictions.conll` differs from them at sentence {index + 1}"
        return True, "its `predictions.conll` holds the same sentences and gold tags"
    if args.data_file is None and args.split != "test":
        return False, f"this is the `{args.split}` split"
    results = json.loads((folder / "predict_results.json").read_text())
    samples = results.get("predict_samples")
    if samples is not None and samples != count:
        return False, f"it scored {samples} sentences, against {count} here"
    # What the predict phase recorded of its own data (dwatt.hub.record.phase_data; folders since stop 41).
    if results.get("predict_max_samples") is not None:
        return False, f"its `predict_results.json` records --max_predict_samples {results['predict_max_samples']}"
    analysed = Path(args.data_file).name if args.data_file is not None else BUNDLED_WNUT16
    if results.get("predict_data") not in (None, analysed):
        return False, f"its `predict_results.json` scored {results['predict_data']}"
    arguments_file = folder / "run_arguments.json"
    if not arguments_file.is_file():
        return None, "no `predictions.conll` and no `run_arguments.json`"
    arguments = json.loads(arguments_file.read_text())
    test_file = arguments.get("test_file")
    if args.data_file is not None:
        if test_file != Path(args.data_file).name:
            return False, f"its `run_arguments.json` records --test_file {test_file}" if test_file else (
                "its `run_arguments.json` records no --test_file"
            )
    elif test_file:
        return False, f"its `run_arguments.json` records --test_file {test_file}"
    elif arguments.get("dataset_name") != BUNDLED_WNUT16 or arguments.get("train_file"):
        return None, "its `run_arguments.json` does not record the bundled WNUT-16"
    if samples is None:
        return None, "its `predict_results.json` does not say how many sentences it scored"
    return True, "its `run_arguments.json` and `predict_samples` record the same data"


def reported_f1_note(args: AnalysisArguments, f1: float, dataset) -> list[str]:
    """Compare with the checkpoint's own predict_results.json when its folder shows that it scored the same
    sentences (`predict_data_match`); otherwise say that its F1 is of other (or unknown) data."""
    results_file = Path(args.model_name_or_path) / "predict_results.json"
    if not results_file.is_file():
        return []
    reported = overall_score(json.loads(results_file.read_text()), "predict", "f1")
    if reported is None:
        return []
    same, reason = predict_data_match(args, dataset)
    own = f"The checkpoint's own `predict_results.json` reports test F1 {reported:.4f}"
    if same is None:
        return [f"{own} on data its folder does not identify ({reason}), so it is not compared with the F1 here."]
    if not same:
        return [
            f"{own} on other data than the {len(dataset)} sentences analysed here ({reason}), so it is not "
            "compared with the F1 here."
        ]
    if abs(reported - f1) < 5e-5:
        return [f"The checkpoint's own `predict_results.json` reports the same test F1 ({reported:.4f})."]
    what = "test tweets" if args.data_file is None else "sentences"
    return [
        f"Note: the checkpoint's own `predict_results.json` reports test F1 {reported:.4f}, while its saved weights "
        f"score {f1:.4f} here (same {what} and labels, the model's plain forward pass)."
    ]


def checkpoint_fingerprint(folder: Path) -> str:
    """One SHA-256 of the folder's config, weight and tokenizer files (the sweep's backbone fingerprint): the same
    for a copy of the checkpoint, another for other weights."""
    files = backbone_fingerprint(str(folder))
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def checkpoint_record(model_name_or_path: str) -> dict:
    """Which checkpoint a report is of: its path as the report shows it, its resolved path (hashed: a report
    folder may be committed, and a machine's folders are its own) and its content fingerprint. A Hub id has
    neither; it is its own name."""
    folder = Path(model_name_or_path)
    if not folder.is_dir():
        return {"checkpoint": model_name_or_path, "resolved_path_sha256": None, "fingerprint": None}
    return {
        "checkpoint": shown_path(model_name_or_path),
        "resolved_path_sha256": hashlib.sha256(str(folder.resolve()).encode()).hexdigest(),
        "fingerprint": checkpoint_fingerprint(folder),
    }


def held_checkpoint(output_dir: Path, record: dict) -> tuple[str, str] | None:
    """None when `output_dir` holds no report or one of the checkpoint `record` describes (the same folder,
    retrained or not, or the same weights elsewhere); else the other checkpoint's name and how it differs."""
    record_file, report = output_dir / RECORD_FILE, output_dir / "report.md"
    if record_file.is_file():
        held = json.loads(record_file.read_text())
        if held.get("fingerprint") and held["fingerprint"] == record["fingerprint"]:
            return None
        if held.get("resolved_path_sha256") and held["resolved_path_sha256"] == record["resolved_path_sha256"]:
            return None
        if not held.get("resolved_path_sha256") and not record["resolved_path_sha256"]:  # Hub ids
            if held.get("checkpoint") == record["checkpoint"]:
                return None
        if held.get("fingerprint"):
            return str(
                held.get("checkpoint")
            ), f"another folder with other weights, fingerprint {held['fingerprint'][:12]}"
        return str(held.get("checkpoint")), f"its `{RECORD_FILE}` names it"
    if report.is_file():  # written before reports recorded their checkpoint: its opening line names it
        named = re.search(r"^Checkpoint `([^`]*)`", report.read_text(), re.MULTILINE)
        if named is None:
            return "unknown", "its report.md names none"
        if record["resolved_path_sha256"] is None:  # a Hub id
            same = named[1] == record["checkpoint"]
        else:  # the report shows a path relative to the working directory (or only a folder's name)
            same = hashlib.sha256(str(Path(named[1]).resolve()).encode()).hexdigest() == record["resolved_path_sha256"]
        if same:
            return None
        return named[1], f"its report.md names it; there is no `{RECORD_FILE}`"
    return None


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
    name = args.name or Path(args.model_name_or_path.rstrip("/")).name
    output_dir = Path(args.output_dir or Path("results") / "analysis" / name)
    record = checkpoint_record(args.model_name_or_path)
    held = held_checkpoint(output_dir, record)
    if held is not None:
        default = "" if args.output_dir else " (the default, results/analysis/<name>)"
        raise ArgumentError(
            f"--output_dir {output_dir}{default} holds the report of checkpoint {held[0]}, not of "
            f"{record['checkpoint']} ({held[1]}); pass another --output_dir for {record['checkpoint']}, or delete "
            f"{output_dir} to replace that report"
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
    description += reported_f1_note(args, result.f1(FULL), dataset)
    (output_dir / RECORD_FILE).unlink(missing_ok=True)  # the folder holds no whole report until it is rewritten
    report = write_report(result, output_dir, name, description, num_heatmaps=args.num_heatmaps)
    (output_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return result, report
