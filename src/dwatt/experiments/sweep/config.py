"""A sweep described by a YAML file (`configs/sweeps/*.yaml`): data, backbone, methods, K, seeds, the step
budget and, per training regime, a learning-rate grid with the rule that picks one rate from it.

Errors name the file and the line of the offending key. Command-line overrides (`--set key.path=value`)
change a loaded config before it is checked, for quick variations of a committed one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ...data.fingerprints import data_fingerprints
from ...protocol import METHODS, SweepSettings
from ...tasks.arguments import ModelArguments, lora_settings_without_rank, uses_data_files
from ...tasks.ner import BUNDLED_DATASET, NerDataArguments
from ...validation import ArgumentError, check_values, dataclass_choices, field_types
from .fingerprints import backbone_fingerprint

#: `data:` keys, passed to run_ner's `NerDataArguments` (train/validation/test files or a Hub dataset).
DATA_KEYS = ("dataset_name", "dataset_config_name", "train_file", "validation_file", "test_file", "label_all_tokens")
#: Per-regime keys other than the grid: how the backbone trains.
REGIME_MODEL_KEYS = (
    "freeze_backbone", "cache_backbone_features", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
)  # fmt: skip
#: `settings:` keys: the shared hyper-parameters, except what a regime decides.
SETTINGS_KEYS = tuple(f.name for f in fields(SweepSettings) if f.name not in ("learning_rate", "freeze_backbone",
                                                                               "model_name_or_path"))  # fmt: skip
SETTINGS_TYPES = field_types(SweepSettings)
SELECTION_POINTS = ("last", "best")
TOP_KEYS = ("name", "description", "backbone", "data", "methods", "ks", "seeds", "selection", "regimes", "settings")


class SweepConfigError(ValueError):
    """A config file that cannot be run; the message names the file, the line and what was expected."""


@dataclass(frozen=True)
class Regime:
    """How the backbone trains (in full, frozen, or through LoRA adapters) and the rates tried."""

    name: str
    learning_rates: tuple[float, ...]
    model_values: dict[str, Any] = field(default_factory=dict)  # ModelArguments fields, e.g. lora_r

    @property
    def tuned(self) -> bool:
        return len(self.learning_rates) > 1


@dataclass(frozen=True)
class Selection:
    """The rule, fixed before any run, that picks a rate per (regime, method, K): the highest mean dev F1
    over `tuning_seeds`, at each run's last eval point (`last`) or its best one (`best`). Ties go to the
    rate listed first. Test scores never enter."""

    tuning_seeds: tuple[int, ...]
    point: str = "last"


@dataclass(frozen=True)
class SweepConfig:
    name: str
    methods: tuple[str, ...]
    ks: tuple[int, ...]
    seeds: tuple[int, ...]
    regimes: dict[str, Regime]
    selection: Selection
    settings: SweepSettings
    data: dict[str, Any]
    description: str = ""
    source: str = "<dict>"
    #: The config as its file (and `--set`) gave it, before a sitting's `--methods/--ks/--seeds/--regimes`
    #: (`with_lists`); None: this is it. Summaries are always written from the whole config's plan.
    whole: SweepConfig | None = field(default=None, compare=False, repr=False)

    @property
    def full(self) -> SweepConfig:
        """The config before any sitting's restriction of its lists: what summaries are written from."""
        return self.whole or self

    def fixed_settings(self) -> dict[str, Any]:
        """The shared settings stored in sweep.json (the backbone's name among them)."""
        return {name: getattr(self.settings, name) for name in ("model_name_or_path", *SETTINGS_KEYS)}

    def fixed_part(self) -> dict[str, Any]:
        """What must not change between sittings of one sweep (stored in sweep.json): everything but the
        lists of methods, K, seeds and rates, which may grow. Data files and a local backbone folder are also
        known by their content (SHA-256)."""
        return {
            "settings": self.fixed_settings(),
            "data": dict(sorted(self.data.items())),
            "regimes": {name: dict(sorted(regime.model_values.items())) for name, regime in self.regimes.items()},
            "selection": {"tuning_seeds": list(self.selection.tuning_seeds), "point": self.selection.point},
            "data_sha256": data_fingerprints(self.data),
            "backbone_sha256": backbone_fingerprint(self.settings.model_name_or_path),
        }


def load_sweep_config(path: str | Path, overrides: list[str] = ()) -> SweepConfig:
    """Read and check a config file; `overrides` are `key.path=value` strings (values parsed as YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepConfigError(f"{path}: no such file; expected a sweep config (see configs/sweeps/)") from None
    except IsADirectoryError:
        raise SweepConfigError(f"{path} is a folder; expected a sweep config file (see configs/sweeps/)") from None
    try:
        node = yaml.compose(text, Loader=UniqueKeyLoader)
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SweepConfigError(f"{where}: invalid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{path}: expected a mapping of {', '.join(TOP_KEYS)}; found {type(raw).__name__}")
    lines: dict[str, int | str] = _line_index(node)
    for override in overrides:
        key, separator, value = override.partition("=")
        if not separator or not key.strip():
            raise SweepConfigError(f"--set {override!r}: expected key.path=value, e.g. settings.max_steps=4")
        try:
            parsed = yaml.load(value, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as error:
            raise SweepConfigError(f"--set {override!r}: the value is not valid YAML ({error})") from None
        _set_dotted(raw, key.strip(), parsed)
        lines[key.strip()] = f"--set {override}"
    return parse_sweep_config(raw, source=str(path), lines=lines)


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} given twice (first on line {first_lines[key]}); expected each key once",
                    key_node.start_mark,
                )  # fmt: skip
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_sweep_config(raw: dict, source: str = "<dict>", lines: dict[str, int | str] | None = None) -> SweepConfig:
    """Check a config's values (types and ranges through `dwatt.validation`, with the argument dataclasses'
    annotations) and build it. `lines`: dotted key -> its line in the file, or the `--set` that gave it."""
    lines = lines or {}

    def origin(key: str) -> str:
        """`file:line` of the key (or of its parent), or the `--set` that gave it."""
        line = lines.get(key) or lines.get(key.rsplit(".", 1)[0])
        if isinstance(line, str):
            return line
        return f"{source}:{line}" if line else source

    def fail(key: str, message: str):
        raise SweepConfigError(f"{origin(key)}: {key}: {message}")

    def checked(values: dict, types: dict, prefix: str) -> dict:
        try:
            return check_values(values, types, lambda name: origin(f"{prefix}.{name}"),
                                 choices=dataclass_choices(SweepSettings, ModelArguments))  # fmt: skip
        except ArgumentError as error:
            raise SweepConfigError(str(error)) from None

    def known(mapping: Any, allowed: tuple[str, ...], where: str) -> dict:
        if mapping is None:
            return {}
        if not isinstance(mapping, dict):
            fail(where, f"expected a mapping, found {type(mapping).__name__}")
        for key in mapping:
            if key not in allowed:
                fail(f"{where}.{key}" if where else key, f"unknown key; expected one of {', '.join(allowed)}")
        return mapping

    known(raw, TOP_KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        fail("name", f"expected a sweep name without '/', found {name!r}")

    methods = check_methods(_as_list(raw.get("methods"), "methods", fail), "methods", fail)
    ks = [_positive_int(k, "ks", fail) for k in _as_list(raw.get("ks"), "ks", fail)]
    seeds_value = raw.get("seeds", 5)
    if isinstance(seeds_value, int) and not isinstance(seeds_value, bool):
        seeds = list(range(_positive_int(seeds_value, "seeds", fail)))
    else:
        seeds = [_non_negative_int(seed, "seeds", fail) for seed in _as_list(seeds_value, "seeds", fail)]
    for key, values in (("methods", methods), ("ks", ks), ("seeds", seeds)):
        if len(set(values)) != len(values):
            fail(key, f"listed twice in {values}")

    settings_values = checked(dict(known(raw.get("settings"), SETTINGS_KEYS, "settings")), SETTINGS_TYPES, "settings")
    try:
        settings = SweepSettings(model_name_or_path=raw.get("backbone"), **settings_values)
    except TypeError as error:
        fail("settings", str(error))
    for key in ("max_steps", "eval_every", "train_batch_size", "eval_batch_size", "max_seq_length"):
        _positive_int(getattr(settings, key), f"settings.{key}", fail)
    if settings.eval_every > settings.max_steps:
        fail("settings.eval_every", f"{settings.eval_every} is more than max_steps {settings.max_steps}: no eval point")

    data = checked(dict(known(raw.get("data"), DATA_KEYS, "data")), field_types(NerDataArguments), "data")
    for key in ("train_file", "validation_file", "test_file"):
        if data.get(key) is not None and not Path(data[key]).is_file():
            fail(f"data.{key}", f"{data[key]} is not a file; expected a CoNLL, token<TAB>tag or JSON lines file")
    if data.get("train_file") and not (data.get("validation_file") and data.get("test_file")):
        fail("data", "a sweep needs validation_file (rates are chosen on it) and test_file with train_file")
    try:  # the rule every run applies, said here before any run starts
        uses_data_files(NerDataArguments(**{key: value for key, value in data.items() if value is not None}),
                        BUNDLED_DATASET)  # fmt: skip
    except ArgumentError as error:
        fail("data", str(error).replace("--", "data."))

    regimes_raw = raw.get("regimes")
    if not isinstance(regimes_raw, dict) or not regimes_raw:
        fail("regimes", "expected a mapping of regime name -> {learning_rates: [...], ...}")
    regimes = {}
    for regime_name, regime_raw in regimes_raw.items():
        where = f"regimes.{regime_name}"
        regime_raw = dict(known(regime_raw, ("learning_rates", *REGIME_MODEL_KEYS), where))
        rates = regime_raw.pop("learning_rates", None)
        regime_raw = checked(regime_raw, field_types(ModelArguments), where)
        regime_raw["learning_rates"] = rates
        grid_key = f"{where}.learning_rates"
        rates = [
            _positive_float(rate, grid_key, fail)
            for rate in _as_list(regime_raw.pop("learning_rates", None), grid_key, fail)
        ]
        if len(set(rates)) != len(rates):
            fail(grid_key, f"listed twice in {rates}")
        if regime_raw.get("freeze_backbone") and regime_raw.get("lora_r"):
            fail(where, "freeze_backbone and lora_r both set; expected one")
        if regime_raw.get("cache_backbone_features") and not regime_raw.get("freeze_backbone"):
            fail(where, "cache_backbone_features without freeze_backbone; expected both (only a frozen backbone's "
                        "features stay the same)")  # fmt: skip
        lora_keys = list(lora_settings_without_rank(regime_raw, given=regime_raw))  # the rule run flags follow
        if lora_keys:
            fail(f"{where}.{lora_keys[0]}", f"{', '.join(lora_keys)} given without lora_r; expected lora_r too "
                 "(without it there is no LoRA: the regime would fine-tune the whole backbone)")  # fmt: skip
        if regime_raw.get("freeze_backbone") and settings.fusion_learning_rate is not None and len(rates) > 1:
            fail(grid_key, f"{len(rates)} rates in a frozen regime while settings.fusion_learning_rate="
                 f"{settings.fusion_learning_rate:g} (at {origin('settings.fusion_learning_rate')}) sets the rate of "
                 "the fusion and head: the grid's rate would reach only the frozen backbone, so every rate would "
                 "give the same run and the choice would be a tie; expected one of the two (drop "
                 "settings.fusion_learning_rate to tune the fusion's rate, or give one rate)")  # fmt: skip
        regimes[str(regime_name)] = Regime(str(regime_name), tuple(rates), regime_raw)

    selection_raw = known(raw.get("selection"), ("tuning_seeds", "point"), "selection")
    tuning = selection_raw.get("tuning_seeds", seeds)
    tuning = [_non_negative_int(seed, "selection.tuning_seeds", fail) for seed in _as_list(tuning, "", fail)]
    if not tuning or not set(tuning) <= set(seeds):
        fail("selection.tuning_seeds", f"{tuning}; expected some of the seeds {seeds}")
    point = selection_raw.get("point", "last")
    if point not in SELECTION_POINTS:
        fail("selection.point", f"{point!r}; expected one of {', '.join(SELECTION_POINTS)}")

    return SweepConfig(
        name=name.strip(),
        methods=tuple(methods),
        ks=tuple(ks),
        seeds=tuple(seeds),
        regimes=regimes,
        selection=Selection(tuple(tuning), point),
        settings=settings,
        data=data,
        description=str(raw.get("description") or "").strip(),
        source=source,
    )


def with_lists(config: SweepConfig, methods=None, ks=None, seeds=None, regimes=None) -> SweepConfig:
    """The config restricted or widened to other methods, K, seeds or a subset of its regimes (for what a
    sitting trains; `.full` keeps the config as given, for the summary)."""
    whole = config.full
    if regimes is not None:
        missing = [name for name in regimes if name not in config.regimes]
        if missing:
            raise SweepConfigError(f"{config.source}: no regime {missing}; it has {', '.join(config.regimes)}")
        config = replace(config, regimes={name: config.regimes[name] for name in regimes})
    raw_lists = {"methods": methods, "ks": ks, "seeds": seeds}
    changes = {key: tuple(value) for key, value in raw_lists.items() if value is not None}
    restricted = replace(config, **changes)
    return restricted if restricted == whole else replace(restricted, whole=whole)


# ----------------------------------------------------------------------------------------------------
# Checked values and line numbers
# ----------------------------------------------------------------------------------------------------


def check_methods(methods: list, key: str, fail) -> list:
    """At least one method, each one of `dwatt.protocol.METHODS`; else `fail(key, message)` (the config file's
    line, or the command-line flag)."""
    unknown = [method for method in methods if method not in METHODS]
    if unknown or not methods:
        fail(key, f"unknown {unknown}; expected some of {', '.join(METHODS)}")
    return methods


def _as_list(value: Any, key: str, fail) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    fail(key, f"expected a list, found {value!r}")


def _number(value: Any, convert, key: str, fail):
    # YAML 1.1 reads 3e-5 (no dot) as a string: accept it as the number it plainly is.
    if isinstance(value, bool):
        fail(key, f"expected a number, found {value!r}")
    try:
        number = convert(value)
    except (TypeError, ValueError):
        fail(key, f"expected a number, found {value!r}")
    if convert is int and number != float(value):
        fail(key, f"expected a whole number, found {value!r}")
    return number


def _positive_int(value, key, fail) -> int:
    number = _number(value, int, key, fail)
    if number < 1:
        fail(key, f"expected a positive whole number, found {value!r}")
    return number


def _non_negative_int(value, key, fail) -> int:
    number = _number(value, int, key, fail)
    if number < 0:
        fail(key, f"expected a seed index >= 0, found {value!r}")
    return number


def _positive_float(value, key, fail) -> float:
    number = _number(value, float, key, fail)
    if not number > 0:
        fail(key, f"expected a positive learning rate, found {value!r}")
    if not math.isfinite(number):
        fail(key, f"expected a positive learning rate, found {value!r}, which is not a finite number")
    return number


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    mapping = raw
    for part in parents:
        mapping = mapping.setdefault(part, {})
        if not isinstance(mapping, dict):
            raise SweepConfigError(f"--set {dotted}: {part} is not a mapping")
    mapping[last] = value


def _line_index(node) -> dict[str, int]:
    """Dotted key -> 1-based line of the key in the file, for error messages."""
    lines: dict[str, int] = {}

    def walk(current, prefix: str) -> None:
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                dotted = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[dotted] = key_node.start_mark.line + 1
                walk(value_node, dotted)

    walk(node, "")
    return lines
