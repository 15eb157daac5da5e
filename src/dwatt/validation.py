"""One typed check for every value that reaches a run: the command line, JSON arguments files, sweep YAML files
and `--set` overrides.

Types come from the annotations of the argument dataclasses (`ModelArguments`, the data arguments,
`TrainingArguments`, `SweepSettings`) and are checked by pydantic v2 in its lax mode, so a JSON `"false"` or a YAML
`3e-5` read as text become the value they plainly are, and anything else (`"abc"` for a number, `1.5` for a count,
`true` for a number) is refused. Ranges come from one table, `RANGES`, by field name, whatever the source; a
number in a range of reals is also finite (`inf` or `nan` for a rate would train NaN weights). Every error names
where the value came from (`--flag`, or `file:line`) and what was expected, and all of a source's errors are
reported at once, before anything is written.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import BeforeValidator, Field, TypeAdapter
from pydantic_core import PydanticCustomError


class ArgumentError(ValueError):
    """Values a user gave that cannot be run; the message names each one's source. Scripts exit with status 2."""


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric field, as pydantic `Field` constraints, and how to say them."""

    expected: str
    constraints: dict[str, float | bool]  # allow_inf_nan=False: a range of reals holds finite numbers only


PROBABILITY = Range("a probability in [0, 1)", {"ge": 0, "lt": 1, "allow_inf_nan": False})
FRACTION = Range("a fraction in [0, 1)", {"ge": 0, "lt": 1, "allow_inf_nan": False})
POSITIVE = Range("a number > 0", {"gt": 0, "allow_inf_nan": False})
COUNT = Range("a whole number >= 1", {"ge": 1})
SEED = Range("a seed >= 0", {"ge": 0})
NON_NEGATIVE = Range("a whole number >= 0", {"ge": 0})

#: Field name -> its range, for every source that sets it.
RANGES: dict[str, Range] = {
    "fusion_dropout": PROBABILITY,
    "classifier_dropout": PROBABILITY,
    "lora_dropout": PROBABILITY,
    "mlm_probability": Range("a probability in (0, 1)", {"gt": 0, "lt": 1, "allow_inf_nan": False}),
    "warmup_fraction": FRACTION,
    "dwatt_query_ratio": POSITIVE,
    "dwatt_value_ratio": POSITIVE,
    "dwatt_pos_dim": COUNT,
    "deeper_num_layers": COUNT,
    "deeper_intermediate_size": COUNT,
    "lora_r": COUNT,
    "lora_alpha": POSITIVE,
    "learning_rate": POSITIVE,
    "fusion_learning_rate": POSITIVE,
    "few_shot_k": COUNT,
    "few_shot_seed": SEED,
    "seed": SEED,
    "data_seed": SEED,
    "max_seq_length": COUNT,
    "max_eval_samples": COUNT,
    "max_predict_samples": COUNT,
    "max_train_samples": COUNT,
    "stride": NON_NEGATIVE,
    "per_device_train_batch_size": COUNT,
    "per_device_eval_batch_size": COUNT,
    "gradient_accumulation_steps": COUNT,
    "train_batch_size": COUNT,
    "eval_batch_size": COUNT,
    "eval_every": COUNT,
    "max_steps": COUNT,  # SweepSettings; TrainingArguments' -1 ("use epochs") is allowed below
    "num_train_epochs": POSITIVE,
}
#: TrainingArguments fields whose default is a sentinel outside the range (-1: "not set").
_SENTINELS = {"max_steps": -1}


def field_types(*dataclass_types: type) -> dict[str, Any]:
    """Field name -> annotation of the init fields of these dataclasses (the first one to name a field wins)."""
    types: dict[str, Any] = {}
    for dataclass_type in dataclass_types:
        hints = _type_hints(dataclass_type)
        for field in dataclasses.fields(dataclass_type):
            if field.init and field.name not in types:
                types[field.name] = hints.get(field.name, field.type)
    return types


@functools.cache
def _type_hints(dataclass_type: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(dataclass_type)
    except (NameError, TypeError):  # an annotation that cannot be resolved: checked by the class itself
        return {}


def _is_number_type(annotation: Any) -> bool:
    """True for `int`, `float` and their optional forms (`int | None`): fields where a boolean is a mistake."""
    members = set(typing.get_args(annotation)) - {type(None)} if typing.get_args(annotation) else {annotation}
    return bool(members) and members <= {int, float}


def _refuse_booleans(value: Any) -> Any:
    # pydantic's lax mode reads true as 1 (and 1.0): a JSON or YAML `true` for a seed or a count is a mistake.
    if isinstance(value, bool):
        raise PydanticCustomError("bool_for_number", "Input should be a number, not true or false")
    return value


@functools.cache
def _adapter(annotation: Any, range_name: str | None) -> TypeAdapter | None:
    """A pydantic validator for a field's type and range; None for a type pydantic cannot check."""
    rule = RANGES.get(range_name) if range_name else None
    target = Annotated[annotation, Field(**rule.constraints)] if rule else annotation
    if _is_number_type(annotation):
        target = Annotated[target, BeforeValidator(_refuse_booleans)]
    try:
        return TypeAdapter(target)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
        return None


def _expected(annotation: Any, name: str) -> str:
    if name in RANGES:
        return RANGES[name].expected
    text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    descriptions = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "text"}
    for optional in (" | None", "Optional["):
        if optional in text:
            return f"{descriptions.get(text.replace(optional, '').rstrip(']'), text)} or null"
    return descriptions.get(text, text)


def check_values(
    values: Mapping[str, Any], types: Mapping[str, Any], source: Callable[[str], str], *, choices=None
) -> dict[str, Any]:
    """The values, converted to their fields' types; `ArgumentError` listing every value of the wrong type or
    out of range, each with `source(name)` (a flag or file:line). Names without a type pass unchecked (the
    argument parser refuses unknown names itself). `choices` (name -> allowed values) are checked too."""
    checked, errors = dict(values), []
    for name, value in values.items():
        if name not in types or (name in _SENTINELS and value == _SENTINELS[name]):
            continue
        adapter = _adapter(types[name], name if name in RANGES else None)
        if adapter is None:
            continue
        try:
            checked[name] = adapter.validate_python(value)
        except pydantic.ValidationError as error:
            reason = error.errors()[0]["msg"]
            errors.append(f"{source(name)}: {name}={value!r} ({reason}); expected {_expected(types[name], name)}")
            continue
        allowed = (choices or {}).get(name)
        if allowed is not None and checked[name] is not None and checked[name] not in allowed:
            errors.append(f"{source(name)}: {name}={value!r}; expected one of {', '.join(map(str, allowed))}")
    if errors:
        raise ArgumentError("\n".join(errors))
    return checked


def dataclass_choices(*dataclass_types: type) -> dict[str, tuple]:
    """Field name -> `choices` from the fields' metadata (what the command line also offers)."""
    return {
        field.name: tuple(field.metadata["choices"])
        for dataclass_type in dataclass_types
        for field in dataclasses.fields(dataclass_type)
        if "choices" in field.metadata
    }


def read_json_arguments(path: str) -> tuple[dict, Callable[[str], str]]:
    """A JSON file of arguments: its object, and `source(name)` giving `path:line` of each key. Duplicate keys and
    anything but one object are refused, naming the file and the line."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArgumentError(f"{path}: no such file; expected a JSON file of arguments") from None
    except (IsADirectoryError, UnicodeDecodeError) as error:
        raise ArgumentError(f"{path}: not a UTF-8 JSON file ({error}); expected a JSON file of arguments") from None
    lines = _key_lines(text)

    def refuse_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise ArgumentError(f"{path}:{lines.get(key, '?')}: {key!r} given twice; expected each argument once")
            seen[key] = value
        return seen

    try:
        values = json.loads(text, object_pairs_hook=refuse_duplicates)
    except json.JSONDecodeError as error:
        where = f"{path}:{error.lineno}"
        raise ArgumentError(f"{where}: invalid JSON ({error.msg}); expected one object of arguments") from None
    if not isinstance(values, dict):
        raise ArgumentError(f"{path}: expected one JSON object of arguments, found a {type(values).__name__}")
    return values, lambda name: f"{path}:{lines.get(name, 1)}"


def _key_lines(text: str) -> dict[str, int]:
    """Key -> line of its first `"key":` in a JSON text (for messages; a key inside a string may mislead it)."""
    import re

    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        for match in re.finditer(r'"((?:[^"\\]|\\.)*)"\s*:', line):
            lines.setdefault(match.group(1), number)
    return lines
