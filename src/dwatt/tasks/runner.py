"""The run skeleton around the stock `Trainer`: model loading, freezing, the fusion learning-rate group,
resume, training and saving."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import fields
from pathlib import Path

from transformers import AutoConfig, PreTrainedModel, Trainer, TrainingArguments

from ..configuration_dwatt import DWAttConfig
from ..data.fingerprints import data_fingerprints
from ..fusions import KNOBS
from ..hub.record import TRAINING_FIELDS, save_run_arguments
from .arguments import ModelArguments
from .checkpoints import last_complete_checkpoint
from .frozen_features import cached_backbone_features
from .lora import MergedLoraCheckpoints, add_lora, has_lora, load_adapters, merge_lora

logger = logging.getLogger(__name__)


def _is_dwatt_config(config) -> bool:
    return isinstance(config, DWAttConfig) or getattr(config, "model_type", None) == DWAttConfig.model_type


def is_dwatt_checkpoint(name_or_path: str, **hub_kwargs) -> bool:
    """True when `name_or_path` holds a DWAtt config (continue training it) rather than a plain encoder."""
    return _is_dwatt_config(AutoConfig.from_pretrained(name_or_path, **hub_kwargs))


def refuse_fusion_arguments_for_a_checkpoint(model_args: ModelArguments, config: DWAttConfig) -> None:
    """A fusion knob given away from its default that the checkpoint does not have would be ignored."""
    given = model_args.fusion_config_kwargs()
    defaults = {name: knob.default for name, knob in KNOBS.items()}
    clashing = {
        name: (value, getattr(config, name, None))
        for name, value in given.items()
        if value != defaults[name] and value != getattr(config, name, None)
    }
    if clashing:
        shown = ", ".join(
            f"--{name} {value!r} (the checkpoint has {saved!r})" for name, (value, saved) in clashing.items()
        )
        raise ValueError(
            f"{model_args.model_name_or_path} is a DWAtt checkpoint, whose own config decides its fusion; {shown} "
            "would be ignored. Drop the flag to continue training this checkpoint, or start from a plain "
            "encoder to build another fusion"
        )


def load_model(model_args: ModelArguments, model_class: type[PreTrainedModel], **head_kwargs) -> PreTrainedModel:
    """A DWAtt checkpoint as saved, or a new DWAtt model around a pretrained backbone.

    `head_kwargs` are config fields of the task (`num_labels`, `id2label`, `label2id`). An existing
    checkpoint keeps its own fusion: a fusion argument set to something else is refused, not ignored.
    """
    hub_kwargs = {"revision": model_args.revision, "trust_remote_code": model_args.trust_remote_code}
    saved_config = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    if _is_dwatt_config(saved_config):
        refuse_fusion_arguments_for_a_checkpoint(model_args, saved_config)
        logger.info("Continuing from the DWAtt checkpoint %s", model_args.model_name_or_path)
        model = model_class.from_pretrained(
            model_args.model_name_or_path,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
            **hub_kwargs,
            **head_kwargs,
        )
    else:
        model = model_class.from_backbone(
            model_args.model_name_or_path,
            backbone_kwargs=hub_kwargs,
            **model_args.fusion_config_kwargs(),
            **head_kwargs,
        )
    if model_args.freeze_backbone:
        freeze_backbone(model)
    if model_args.lora_r is not None:
        add_lora(model, model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                 model_args.lora_target_modules)  # fmt: skip
    return model


def freeze_backbone(model: PreTrainedModel) -> None:
    """Stop gradients into the pretrained encoder; the fusion and the head still train."""
    for parameter in model.base_model.backbone.parameters():
        parameter.requires_grad_(False)


def backbone_features(model_args: ModelArguments, model: PreTrainedModel) -> contextlib.AbstractContextManager:
    """The context every phase of a run (train, evaluate, predict) runs in: with `--cache_backbone_features`, the
    frozen backbone answers from its feature cache (`frozen_features`), else the model runs as it is."""
    return cached_backbone_features(model) if model_args.cache_backbone_features else contextlib.nullcontext()


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


RESUME_KEY_FILE = "resume_key.json"
# Arguments that only steer evaluation, logging or saving (or where a model is fetched from): a resumed run
# may change them.
_NOT_IN_RESUME_KEY = {
    "validation_file", "test_file", "max_eval_samples", "max_predict_samples", "stride", "revision",
    "per_device_eval_batch_size",
}  # fmt: skip
# The training arguments the run record reports, and the number of processes (it sets the global batch).
_TRAINING_KEY = tuple(name for name in TRAINING_FIELDS if name not in _NOT_IN_RESUME_KEY) + ("world_size",)


def resume_key(training_args: TrainingArguments, model_args, data_args) -> dict:
    """The arguments that decide what training computes; a checkpoint may only be resumed by the same."""

    def plain(value):  # JSON-comparable; an existing file or folder by its absolute path
        if isinstance(value, str) and value and Path(value).exists():
            return str(Path(value).resolve())
        return json.loads(json.dumps(value, default=str))

    key = {
        f"{group}.{f.name}": plain(getattr(arguments, f.name))
        for group, arguments in (("model", model_args), ("data", data_args))
        for f in fields(arguments)
        if f.name not in _NOT_IN_RESUME_KEY
    }
    # The training data by content too: a file edited in place under the same path is another run.
    training_data = {name: getattr(data_args, name, None) for name in ("train_file", "dataset_name")}
    key |= {f"data.{name}.sha256": digest for name, digest in data_fingerprints(training_data).items()}
    return key | {f"training.{name}": plain(getattr(training_args, name, None)) for name in _TRAINING_KEY}


def check_resume_key(training_args: TrainingArguments, key: dict, resuming: bool) -> None:
    """Refuse to resume a checkpoint made with other arguments (it would train nothing, or the wrong run),
    naming what differs. Every process checks, so all of them stop together."""
    path = Path(training_args.output_dir) / RESUME_KEY_FILE
    if resuming and training_args.resume_from_checkpoint is None and path.is_file():
        stored = json.loads(path.read_text())
        # Keys written before data fingerprints existed have none: nothing to compare there.
        names = sorted(set(stored) | {name for name in key if not name.endswith(".sha256") or name in stored})
        differing = {name: (stored.get(name), key.get(name)) for name in names
                     if stored.get(name) != key.get(name)}  # fmt: skip
        if differing:
            shown = "; ".join(
                f"{name.split('.', 1)[1]}: {old!r} then, {new!r} now" for name, (old, new) in differing.items()
            )
            raise ValueError(
                f"{training_args.output_dir} holds checkpoints of a run with other arguments ({shown}). "
                "Resuming would continue that run, not this one: use another --output_dir, or delete its "
                "checkpoint-* folders to start afresh (or pass --resume_from_checkpoint to resume on purpose)"
            )


def record_metrics(trainer: Trainer, split: str, metrics: dict) -> dict:
    """Log and save (`<split>_results.json`, `all_results.json`) a phase's metrics; returns them."""
    trainer.log_metrics(split, metrics)
    trainer.save_metrics(split, metrics)
    return metrics


def warn_truncated(
    truncated: dict[str, int], sizes: dict[str, int], max_seq_length: int, what: str, consequence: str
) -> None:
    """Log, per split, how many of its examples `--max_seq_length` cut (`what`: "sentences lost words"); the
    tasks record the same counts as `<phase>_truncated_*` in their results files."""
    for split, count in truncated.items():
        if count:
            logger.warning(
                "%d of %d %s %s to --max_seq_length %d (%s)", count, sizes[split], split, what, max_seq_length,
                consequence,
            )  # fmt: skip


def check_run_arguments(training_args: TrainingArguments) -> None:
    """Refuse, before any work, a run that would do nothing (the scripts' defaults apply only with no
    arguments at all) or could not save what it trains."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError(
            "none of --do_train, --do_eval, --do_predict was given, so the run would load the model and stop; "
            "pass at least one (run the script with no arguments at all for its default job)"
        )
    for flag in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        if getattr(training_args, flag) < 1:
            raise ValueError(f"--{flag} {getattr(training_args, flag)}; expected at least 1")
    output_dir = Path(training_args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file; expected a folder (new or existing)")
    try:  # a read-only disk would otherwise fail only at the first save, after the training time is spent
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"--output_dir {output_dir} is not writable ({error.strerror}); expected a folder "
                         "this user can write to") from None  # fmt: skip


def record_run(trainer: Trainer, model_args, data_args) -> None:
    """Write the run record (`run_arguments.json`, read by the model card) next to the saved model, once."""
    if trainer.is_world_process_zero():
        save_run_arguments(trainer.args.output_dir, model_args, data_args, trainer.args)


def _steps_in(checkpoint: str | None) -> int | None:
    """The optimizer steps a checkpoint had taken (its `trainer_state.json`), or None when unknown."""
    if checkpoint is None:
        return None
    try:
        return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


#: What a `Trainer.train` that resumed a finished checkpoint reports about a sitting that trained nothing.
_METRICS_OF_THIS_SITTING = ("train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second")


def train_and_save(trainer: Trainer, model_args, data_args, extra_metrics: dict | None = None) -> dict:
    """Train (resuming from the output folder's last complete checkpoint), then save the model, the run's
    arguments (for its model card), the metrics and the Trainer state. Shared by every run_* script.

    Rerunning a finished run (the same command with `--do_predict` added, or after a kill during evaluation)
    resumes a checkpoint that already reached the last step, and `Trainer.train` then reports a loss of 0.0
    in no time. Nothing trained this sitting: the earlier `train_results.json`, run record and Trainer state
    are kept (and returned), and the log says that training was already complete. A partial resume records
    its metrics as before."""
    training_args = trainer.args
    started = time.perf_counter()
    resume_from = checkpoint_to_resume(training_args)
    key = resume_key(training_args, model_args, data_args)
    check_resume_key(training_args, key, resuming=resume_from is not None)
    if trainer.is_world_process_zero():  # this run's key, for the next resume
        (Path(training_args.output_dir) / RESUME_KEY_FILE).write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    if has_lora(trainer.model):
        trainer.add_callback(MergedLoraCheckpoints())
        if resume_from is not None and load_adapters(trainer.model, resume_from):
            logger.info("Resuming the LoRA adapters saved in %s", resume_from)
    resumed_at = _steps_in(resume_from)
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    if has_lora(trainer.model):  # saved as a plain DWAtt checkpoint: no peft needed to load it
        logger.info("Merged %d LoRA adapters into the backbone", merge_lora(trainer.model))
    trainer.save_model()
    if resumed_at is not None and trainer.state.global_step == resumed_at:
        return _keep_earlier_training(trainer, model_args, data_args, resume_from, train_result, extra_metrics)
    record_run(trainer, model_args, data_args)
    metrics = {**train_result.metrics, "train_samples": len(trainer.train_dataset), **(extra_metrics or {})}
    metrics["train_wall_seconds"] = round(time.perf_counter() - started, 1)
    record_metrics(trainer, "train", metrics)
    trainer.save_state()
    return metrics


def _keep_earlier_training(trainer: Trainer, model_args, data_args, resume_from, train_result, extra_metrics) -> dict:
    """The training metrics of a run whose last checkpoint had already finished training: the earlier ones."""
    output_dir = Path(trainer.args.output_dir)
    earlier = output_dir / "train_results.json"
    logger.info(
        "Training was already complete: %s had reached step %d of %d, so nothing was trained now; keeping the "
        "earlier training metrics (%s) and run record",
        resume_from, trainer.state.global_step, trainer.state.max_steps, earlier,
    )  # fmt: skip
    if earlier.is_file():
        return json.loads(earlier.read_text())
    # Killed after the last checkpoint but before the metrics were saved: what this sitting knows, without
    # the loss and speed of a sitting that trained nothing.
    logger.warning(
        "%s is missing (the earlier run stopped before saving it), so its training loss and time are not recorded",
        earlier,
    )
    if not (output_dir / "run_arguments.json").is_file():
        record_run(trainer, model_args, data_args)
    metrics = {name: value for name, value in train_result.metrics.items() if name not in _METRICS_OF_THIS_SITTING}
    metrics = {**metrics, "train_samples": len(trainer.train_dataset), **(extra_metrics or {})}
    record_metrics(trainer, "train", metrics)
    if not (output_dir / "trainer_state.json").is_file():
        history = trainer.state.log_history
        if history and "train_loss" in history[-1]:  # this sitting's summary: a loss of 0.0 in no time
            history.pop()
        trainer.save_state()
    return metrics
