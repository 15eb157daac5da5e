"""Command-line arguments shared by every `run_*` script, and their parsing."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import field, make_dataclass
from typing import Any

import transformers
from transformers import HfArgumentParser, TrainingArguments

from ..assets import bundled_minilm_path, resolve_model_path
from ..fusions import KNOBS, Knob, knobs_used, parse_fusion_layers, unused_knobs
from ..modeling_dwatt import check_local_model_path
from ..validation import RANGES, ArgumentError, check_values, dataclass_choices, field_types, read_json_arguments

logger = logging.getLogger(__name__)


def _knob_field(knob: Knob) -> tuple[str, Any, Any]:
    """A dataclass field for `HfArgumentParser` with the config's default, help and choices."""
    annotation = knob.type | None if knob.optional else knob.type
    metadata = {"help": knob.help}
    if knob.choices:
        metadata["choices"] = list(knob.choices)
    default = knob.default if knob.name != "fusion_layers" else str(knob.default)
    return knob.name, annotation, field(default=default, metadata=metadata)


class _ModelArgumentsMethods:
    def __post_init__(self):
        # torch checks the optimizer's default rate, not a group's own: a negative one would climb the loss.
        if self.fusion_learning_rate is not None and not self.fusion_learning_rate > 0:
            raise ValueError(
                f"--fusion_learning_rate={self.fusion_learning_rate}; expected a positive learning rate "
                "(or leave it unset: one rate for every parameter)"
            )
        if self.lora_r is not None and self.freeze_backbone:
            raise ValueError(
                "--lora_r and --freeze_backbone both set; expected one: LoRA already freezes the "
                "backbone's own weights and trains its adapters"
            )
        if self.cache_backbone_features and not self.freeze_backbone:
            raise ValueError(
                "--cache_backbone_features without --freeze_backbone; expected both: only a frozen backbone's "
                "features stay the same from step to step"
            )
        if self.lora_r is not None and self.lora_r < 1:
            raise ValueError(f"--lora_r {self.lora_r}; expected a positive rank (or leave it unset: no LoRA)")
        refuse_lora_settings_without_rank({name: getattr(self, name) for name in ("lora_r", *LORA_SETTINGS)})
        unused = unused_knobs({name: getattr(self, name) for name in KNOBS})
        if unused:
            shown = ", ".join(f"--{name} {value}" for name, value in unused.items())
            raise ArgumentError(
                f"{shown}: not used by --fusion {self.fusion} (it would be saved in the config and ignored); "
                f"expected only the knobs of {self.fusion}: {', '.join(sorted(knobs_used(self.fusion)))}"
            )
        if self.model_name_or_path is None:
            self.model_name_or_path = str(bundled_minilm_path())
        self.model_name_or_path = resolve_model_path(self.model_name_or_path)
        check_model_folder(self.model_name_or_path)

    def fusion_config_kwargs(self) -> dict[str, Any]:
        """The `DWAttConfig` fields these arguments set: every knob of the fusion catalogue."""
        values = {name: getattr(self, name) for name in KNOBS}
        values["fusion_layers"] = parse_fusion_layers(values["fusion_layers"])
        return values


#: The LoRA flags that only `--lora_r` turns on, and their defaults (the fields' own, below).
LORA_SETTINGS: dict[str, Any] = {"lora_alpha": 16.0, "lora_dropout": 0.0, "lora_target_modules": None}


def lora_settings_without_rank(values: Mapping[str, Any], given: Iterable[str] = ()) -> dict[str, Any]:
    """The LoRA settings in `values` that would be ignored because `lora_r` is unset (None or absent): those set
    away from their default, and those named in `given` (flags typed on the command line, keys written in a file)
    with any value but None. Empty when `lora_r` is set. A sweep regime passes its own keys as `given`."""
    if values.get("lora_r") is not None:
        return {}
    given = set(given)
    return {
        name: values[name]
        for name, default in LORA_SETTINGS.items()
        if name in values and values[name] is not None and (name in given or values[name] != default)
    }


def refuse_lora_settings_without_rank(values: Mapping[str, Any], given: Iterable[str] = ()) -> None:
    """`ArgumentError` naming the LoRA flags that `lora_settings_without_rank` finds: without `--lora_r` the run
    fine-tunes the whole backbone and records the LoRA settings as if they had been used."""
    unused = lora_settings_without_rank(values, given)
    if unused:
        shown = ", ".join(f"--{name} {value}" for name, value in unused.items())
        raise ArgumentError(
            f"{shown}: LoRA settings without --lora_r, so no LoRA would be trained (the whole backbone would be "
            "fine-tuned and these values recorded as if used); expected --lora_r <rank> with them, or none of them"
        )


def uses_data_files(data_args, bundled_dataset: str) -> bool:
    """True when the run reads data files (`--train_file`, `--validation_file`, `--test_file`): they replace the
    dataset. A dataset named as well (`--dataset_name` other than the bundled default, or `--dataset_config_name`)
    is refused, since one of the two would be dropped without a word."""
    names = ("train_file", "validation_file", "test_file")
    files = {name: getattr(data_args, name) for name in names if getattr(data_args, name, None)}
    dataset = {name: value for name, value in (("dataset_name", data_args.dataset_name),
               ("dataset_config_name", data_args.dataset_config_name))
               if value is not None and value != bundled_dataset}  # fmt: skip
    if files and dataset:
        shown = ", ".join(f"--{name} {value}" for name, value in (*dataset.items(), *files.items()))
        raise ArgumentError(
            f"{shown}: data files replace the dataset, so {', '.join(f'--{name}' for name in dataset)} would be "
            "ignored; expected either the dataset or the files"
        )
    return bool(files)


def check_model_folder(name_or_path: str) -> None:
    """A `--model_name_or_path` that names a local folder must be one with a config.json: checked before any data is
    read, and said plainly (transformers calls a missing folder a malformed Hub repo id, and an empty one a
    tokenizer that needs sentencepiece)."""
    try:
        check_local_model_path(name_or_path)
    except (ValueError, OSError) as error:
        raise ArgumentError(f"--model_name_or_path {error}") from None


# Built from the fusion catalogue, so every `DWAttConfig` knob is a flag of every run_* script, with the
# config's own default; only the fields below are not config knobs.
ModelArguments = make_dataclass(
    "ModelArguments",
    [
        ("model_name_or_path", str | None, field(
            default=None,
            metadata={"help": "A backbone (Hub id, folder, or asset:<name> of `python -m dwatt.assets`) or a DWAtt "
            "checkpoint. Default: the bundled MiniLM."},
        )),
        *(_knob_field(knob) for knob in KNOBS.values()),
        ("freeze_backbone", bool, field(default=False, metadata={"help": "Train only the fusion and the head."})),
        ("cache_backbone_features", bool, field(
            default=False,
            metadata={"help": "With --freeze_backbone: run the backbone once per sentence (eval mode, so without its "
                      "dropout) and train and evaluate on its cached hidden states; same result, much faster."},
        )),
        ("lora_r", int | None, field(
            default=None,
            metadata={"help": "Train LoRA adapters of this rank on the backbone (peft) instead of its weights; the "
                      "fusion and head train in full, and the adapters are merged into the saved model."},
        )),
        ("lora_alpha", float, field(
            default=LORA_SETTINGS["lora_alpha"], metadata={"help": "LoRA scaling numerator (scale alpha / r)."},
        )),
        ("lora_dropout", float, field(
            default=LORA_SETTINGS["lora_dropout"], metadata={"help": "Dropout on the LoRA branch."},
        )),
        ("lora_target_modules", str | None, field(
            default=LORA_SETTINGS["lora_target_modules"],
            metadata={"help": "Comma-separated backbone module names to adapt (default: peft's for the backbone "
                      "type, e.g. query,value for BERT; all linear layers where peft has none)."},
        )),
        ("fusion_learning_rate", float | None, field(
            default=None,
            metadata={"help": "Learning rate of the fusion and head parameters, in their own group without weight "
                      "decay."},
        )),
        ("revision", str, field(default="main", metadata={"help": "Model revision (branch, tag or commit)."})),
        ("trust_remote_code", bool, field(default=False, metadata={"help": "Allow remote code in Hub backbones."})),
        ("ignore_mismatched_sizes", bool, field(
            default=False,
            metadata={"help": "Continue a DWAtt checkpoint with another label set: re-initialise the head."},
        )),
    ],
    bases=(_ModelArgumentsMethods,),
    namespace={"__module__": __name__, "__doc__": "Which encoder to start from and how to fuse its layers."},
)  # fmt: skip


def parse_arguments(dataclass_types, default_job: dict | None = None, argv: list[str] | None = None):
    """Parse CLI arguments (or one JSON file, as the transformers examples do) into the dataclasses.

    With no arguments at all, `default_job` (argument name -> value) is used: the script's default run. Every
    source goes through the same typed checks (`dwatt.validation`): a wrong type or an out-of-range value is
    refused with its flag or `file:line`, before anything runs.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = HfArgumentParser(dataclass_types)
    types, choices = field_types(*dataclass_types), dataclass_choices(*dataclass_types)
    if not argv and default_job is not None:
        logger.warning("No arguments given: running the default job %s", default_job)
        values = check_values(default_job, types, lambda name: f"the default job's {name}", choices=choices)
        given = set(default_job)
    elif len(argv) == 1 and argv[0].endswith(".json"):
        raw, source = read_json_arguments(argv[0])
        values = check_values(raw, types, source, choices=choices)
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ArgumentError(f"{source(unknown[0])}: unknown argument(s) {unknown}; `--help` lists them")
        given = set(raw)
    else:
        # Flags that must be seen as typed, even at their default value, start as a marker argparse leaves alone.
        unset, marked = object(), [name for name in LORA_SETTINGS if name in types]
        namespace = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(marked, unset)))  # exit 2 if bad
        given = {name for name in marked if getattr(namespace, name) is not unset}
        values = {name: value for name, value in vars(namespace).items() if value is not unset}  # typed by argparse
        values |= check_values({name: values[name] for name in RANGES if values.get(name) is not None}, types,
                               lambda name: f"--{name}")  # fmt: skip
    if "lora_r" in types:
        refuse_lora_settings_without_rank(values, given)
    try:
        with announced_rendezvous():  # TrainingArguments joins the process group: it waits for every machine
            parsed = parser.parse_dict(values)
    except ValueError as error:  # a dataclass's own check of how arguments go together
        raise ArgumentError(str(error)) from None
    for arguments in parsed:
        if isinstance(arguments, TrainingArguments):
            check_process_group(arguments)
    return parsed


@contextlib.contextmanager
def announced_rendezvous(every_seconds: float = 60.0):
    """Say so while a multi-machine launch waits for the other machines to join (it waits until --ddp_timeout,
    30 minutes by default, with no word of its own): a one-machine launch of a multi-machine config is the
    usual cause."""
    world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    if not local or world <= local or os.environ.get("LOCAL_RANK", "0") != "0":
        yield
        return
    machines, address = world // local, f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    started = time.monotonic()

    def tell(stop: threading.Event) -> None:
        while not stop.wait(every_seconds):
            print(
                f"dwatt: still waiting ({time.monotonic() - started:.0f} s) for {machines} machines x {local} processes"
                f" to join at {address}. Run the same command on every machine, each with its own --machine_rank; on "
                "one machine use a one-machine config (configs/accelerate/ddp.yaml or cpu-ddp.yaml). The wait ends "
                "with an error after --ddp_timeout seconds (1800 by default).",
                file=sys.stderr, flush=True,
            )  # fmt: skip

    stop = threading.Event()
    threading.Thread(target=tell, args=(stop,), daemon=True).start()
    try:
        yield
    finally:
        stop.set()


def check_process_group(training_args: TrainingArguments) -> None:
    """Refuse a multi-process launch whose processes did not form one group: each would train alone.

    `accelerate launch --multi_gpu` or `torchrun --nproc_per_node N` on a machine without GPUs start N
    processes, but the Trainer joins them into one (gloo) group only with `--use_cpu`; otherwise N
    independent single-process runs write into the same output folder.
    """
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and training_args.use_cpu:
        logger.warning(
            "FSDP was asked for (accelerate's FSDP config) with --use_cpu: on CPU the Trainer does not shard, so the "
            "processes train as plain data-parallel copies (checkpoints hold whole weights). Use GPUs for FSDP."
        )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and training_args.world_size == 1:
        raise SystemExit(
            f"Launched as {launched} processes (WORLD_SIZE={launched}), but they did not form one process group, so "
            "each would train the whole job alone into the same --output_dir. Without GPUs pass --use_cpu for "
            "data-parallel training on CPU (gloo); on GPUs check that torch sees them (torch.cuda.device_count())."
        )


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
