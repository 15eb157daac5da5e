"""Glue between the example scripts and the stock `Trainer`: model arguments, model loading,
backbone freezing, the fusion learning-rate group and argument parsing.

Every script (`run_ner.py`, `run_classification.py`, `run_mlm.py`) shares `ModelArguments`; the
task modules (`dwatt.ner`, ...) hold the rest of each run so the scripts stay thin.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import transformers
from transformers import AutoConfig, HfArgumentParser, PreTrainedModel, Trainer, TrainingArguments

from .checks import last_complete_checkpoint
from .configuration_dwatt import FUSIONS, DWAttConfig
from .data import bundled_minilm_path
from .modelcard import save_run_arguments

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which encoder to start from and how to fuse its layers."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A backbone (Hub id or folder) or a DWAtt checkpoint. Default: the bundled MiniLM."},
    )
    fusion: str = field(default="dwatt", metadata={"help": f"Layer fusion: one of {', '.join(FUSIONS)}."})
    fusion_layers: str = field(
        default="all", metadata={"help": "'all' or comma-separated hidden-state indices, e.g. '0,3,-1'."}
    )
    dwatt_scale: str = field(default="none", metadata={"help": "'none' (the paper's q.k) or 'sqrt_d' (q.k/sqrt(d))."})
    dwatt_pos_dim: int = field(default=24, metadata={"help": "Size of DWAtt's depth embeddings."})
    dwatt_query_ratio: float = field(default=0.5, metadata={"help": "Bottleneck ratio of DWAtt's query MLP."})
    dwatt_value_ratio: float = field(default=0.5, metadata={"help": "Bottleneck ratio of DWAtt's value MLPs."})
    fusion_dropout: float = field(default=0.0, metadata={"help": "Probability of dropping a fused layer per token."})
    fusion_init: str = field(default="paper", metadata={"help": "'paper' or 'identity' (start as the backbone)."})
    deeper_num_layers: int | None = field(
        default=None, metadata={"help": "Layers of the 'deeper' baseline (default: matched to DWAtt's budget)."}
    )
    classifier_dropout: float | None = field(default=None, metadata={"help": "Head dropout (default: backbone's)."})
    freeze_backbone: bool = field(default=False, metadata={"help": "Train only the fusion and the head."})
    fusion_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the fusion and head parameters, in their own group without weight decay."},
    )
    revision: str = field(default="main", metadata={"help": "Model revision (branch, tag or commit) on the Hub."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow remote code in Hub backbones."})

    def __post_init__(self):
        if self.model_name_or_path is None:
            self.model_name_or_path = str(bundled_minilm_path())

    def fusion_config_kwargs(self) -> dict:
        """The `DWAttConfig` fields these arguments set."""
        layers = self.fusion_layers.strip()
        return {
            "fusion": self.fusion,
            "fusion_layers": "all" if layers == "all" else [int(index) for index in layers.split(",")],
            "dwatt_scale": self.dwatt_scale,
            "dwatt_pos_dim": self.dwatt_pos_dim,
            "dwatt_query_ratio": self.dwatt_query_ratio,
            "dwatt_value_ratio": self.dwatt_value_ratio,
            "fusion_dropout": self.fusion_dropout,
            "fusion_init": self.fusion_init,
            "deeper_num_layers": self.deeper_num_layers,
            "classifier_dropout": self.classifier_dropout,
        }


def is_dwatt_checkpoint(name_or_path: str, **hub_kwargs) -> bool:
    """True when `name_or_path` holds a DWAtt config (continue training it) rather than a plain encoder."""
    config = AutoConfig.from_pretrained(name_or_path, **hub_kwargs)
    return isinstance(config, DWAttConfig) or getattr(config, "model_type", None) == DWAttConfig.model_type


def load_model(model_args: ModelArguments, model_class: type[PreTrainedModel], **head_kwargs) -> PreTrainedModel:
    """A DWAtt checkpoint as saved, or a new DWAtt model around a pretrained backbone.

    `head_kwargs` are config fields of the task (`num_labels`, `id2label`, `label2id`). For an existing
    checkpoint, the fusion arguments are ignored: the checkpoint's own config decides.
    """
    hub_kwargs = {"revision": model_args.revision, "trust_remote_code": model_args.trust_remote_code}
    if is_dwatt_checkpoint(model_args.model_name_or_path, **hub_kwargs):
        logger.info("Continuing from the DWAtt checkpoint %s", model_args.model_name_or_path)
        model = model_class.from_pretrained(model_args.model_name_or_path, **hub_kwargs, **head_kwargs)
    else:
        model = model_class.from_backbone(
            model_args.model_name_or_path,
            backbone_kwargs=hub_kwargs,
            **model_args.fusion_config_kwargs(),
            **head_kwargs,
        )
    if model_args.freeze_backbone:
        freeze_backbone(model)
    return model


def freeze_backbone(model: PreTrainedModel) -> None:
    """Stop gradients into the pretrained encoder; the fusion and the head still train."""
    for parameter in model.base_model.backbone.parameters():
        parameter.requires_grad_(False)


def fusion_optimizer(
    model: PreTrainedModel, args: TrainingArguments, fusion_learning_rate: float | None
) -> tuple[type, dict] | None:
    """`optimizer_cls_and_kwargs` for the stock Trainer with the fusion and head in their own group.

    The backbone keeps `args.learning_rate` and the Trainer's weight-decay rule; everything that is not
    the pretrained backbone (fusion, deeper layers, head) trains at `fusion_learning_rate` without weight
    decay. The optimizer class is still the one `--optim` picks. None when no fusion rate is set.
    """
    if fusion_learning_rate is None:
        return None
    backbone_prefix = f"{model.base_model_prefix}.backbone." if hasattr(model, model.base_model_prefix) else "backbone."
    # The Trainer's own decay rule (biases and norms excluded); the method does not use `self`.
    decay = set(Trainer.get_decay_parameter_names(None, model))
    groups = {"backbone_decay": [], "backbone_no_decay": [], "fusion_and_head": []}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if not name.startswith(backbone_prefix):
            groups["fusion_and_head"].append(parameter)
        elif name in decay:
            groups["backbone_decay"].append(parameter)
        else:
            groups["backbone_no_decay"].append(parameter)
    param_groups = [
        {"params": groups["backbone_decay"], "weight_decay": args.weight_decay},
        {"params": groups["backbone_no_decay"], "weight_decay": 0.0},
        {"params": groups["fusion_and_head"], "weight_decay": 0.0, "lr": fusion_learning_rate},
    ]
    optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return optimizer_class, {**optimizer_kwargs, "params": [group for group in param_groups if group["params"]]}


def parse_arguments(dataclass_types, default_job: list[str] | None = None, argv: list[str] | None = None):
    """Parse CLI arguments (or one JSON file, as the transformers examples do) into the dataclasses.

    With no arguments at all, `default_job` is used: the script's embedded default run.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = HfArgumentParser(dataclass_types)
    if not argv and default_job is not None:
        logger.warning("No arguments given: running the embedded default job %s", " ".join(default_job))
        argv = list(default_job)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def setup_logging(training_args: TrainingArguments) -> None:
    """Log like the transformers examples: INFO on the main process, warnings elsewhere."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    logging.getLogger("dwatt").setLevel(level)
    transformers.utils.logging.set_verbosity(level)


def checkpoint_to_resume(training_args: TrainingArguments) -> str | None:
    """The checkpoint to resume from: the one asked for, else the last one in a non-empty output_dir."""
    if training_args.resume_from_checkpoint is not None:
        return training_args.resume_from_checkpoint
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train or not output_dir.is_dir():
        return None
    last = last_complete_checkpoint(output_dir)  # not get_last_checkpoint: a kill mid-save leaves a partial folder
    if last is not None:
        logger.info("Resuming from %s (the last checkpoint in --output_dir)", last)
    return last


def record_metrics(trainer: Trainer, split: str, metrics: dict) -> dict:
    """Log and save (`<split>_results.json`, `all_results.json`) a phase's metrics; returns them."""
    trainer.log_metrics(split, metrics)
    trainer.save_metrics(split, metrics)
    return metrics


def train_and_save(trainer: Trainer, model_args, data_args, extra_metrics: dict | None = None) -> dict:
    """Train (resuming from the output folder's last complete checkpoint), then save the model, the run's
    arguments (for its model card), the metrics and the Trainer state. Shared by every run_* script."""
    training_args = trainer.args
    started = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=checkpoint_to_resume(training_args))
    trainer.save_model()
    if trainer.is_world_process_zero():
        save_run_arguments(training_args.output_dir, model_args, data_args, training_args)
    metrics = {**train_result.metrics, "train_samples": len(trainer.train_dataset), **(extra_metrics or {})}
    metrics["train_wall_seconds"] = round(time.perf_counter() - started, 1)
    record_metrics(trainer, "train", metrics)
    trainer.save_state()
    return metrics
