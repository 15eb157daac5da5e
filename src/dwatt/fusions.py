"""The fusion catalogue: one entry per fusion, and every `DWAttConfig` knob that shapes one.

The command-line arguments of every `run_*` script, the model card, the sweep's methods and the checks
read this catalogue, so a knob or a fusion is described once. The hub-portable `configuration_dwatt.py`
cannot import it (it is copied next to checkpoints on its own); `tests/test_catalogue.py` checks that the
two agree: every fusion has an entry, every knob is a config field with the config's default.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from .configuration_dwatt import DWATT_SCALES, FUSION_INITS, FUSIONS, DWAttConfig

_CONFIG_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(DWAttConfig.__init__).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


@dataclass(frozen=True)
class Knob:
    """A `DWAttConfig` field that shapes a fusion (or its head), as the command line offers it."""

    name: str
    type: type  # the command-line type; `fusion_layers` is parsed from text
    help: str
    choices: tuple[str, ...] | None = None
    optional: bool = False  # None is a valid value (e.g. "match DWAtt's budget")

    @property
    def default(self) -> Any:
        """The config's own default: one source for the CLI and `from_backbone`."""
        return _CONFIG_DEFAULTS[self.name]


def parse_fusion_layers(text: str | list) -> str | list[int]:
    """`"all"` or comma-separated hidden-state indices (`"0,3,-1"`), as `DWAttConfig.fusion_layers` takes them."""
    if not isinstance(text, str):
        return list(text)
    text = text.strip()
    if text == "all":
        return "all"
    parts = [part.strip() for part in text.split(",")]
    if not all(part.lstrip("-").isdigit() for part in parts):
        raise ValueError(
            f"--fusion_layers={text!r} is not valid; expected 'all' or comma-separated integers like '0,3,-1'"
        )
    return [int(part) for part in parts]


KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob("fusion", str, "Layer fusion.", choices=FUSIONS),
        Knob("fusion_layers", str, "'all' or comma-separated hidden-state indices, e.g. '0,3,-1' (0: embeddings)."),
        Knob("dwatt_scale", str, "'sqrt_d' (q.k/sqrt(d)) or 'none' (the paper's q.k, as cited).", choices=DWATT_SCALES),
        Knob("dwatt_pos_dim", int, "Size of DWAtt's learned depth embeddings (behind its keys)."),
        Knob("dwatt_query_ratio", float, "Bottleneck ratio of DWAtt's query MLP."),
        Knob("dwatt_value_ratio", float, "Bottleneck ratio of DWAtt's value MLPs."),
        Knob("dwatt_recompute_values", bool, "Recompute DWAtt's value MLPs in backward: less memory, more FLOPs."),
        Knob("fusion_dropout", float, "Probability of dropping a fused layer per token in training."),
        Knob("fusion_init", str, "'paper', or 'identity': start exactly as the backbone.", choices=FUSION_INITS),
        Knob(
            "fusion_layer_norm",
            bool,
            "Layer-normalise each fused state before concat, scalar_mix or mean "
            "(default: by the backbone, true for pre-LN ones such as ModernBERT).",
            optional=True,
        ),
        Knob("scalar_mix_layer_norm", bool, "Older name of --fusion_layer_norm true."),
        Knob("deeper_num_layers", int, "Layers of the 'deeper' baseline (default: matched to DWAtt).", optional=True),
        Knob(
            "deeper_intermediate_size",
            int,
            "Feed-forward width of the 'deeper' layers (default: matched to DWAtt).",
            optional=True,
        ),  # fmt: skip
        Knob("classifier_dropout", float, "Dropout before the head (default: the backbone's).", optional=True),
    )
}


@dataclass(frozen=True)
class Fusion:
    """One fusion: how cards describe it, which knobs shape it, what it supports, how the sweep runs it."""

    name: str
    title: str
    description: str
    knobs: tuple[str, ...]
    per_token_weights: bool  # fusion_weights differ per token (else global, or none)
    identity_init: bool  # fusion_init="identity" is defined (a zero-initialisable residual branch, or none)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # sweep method name -> knob values


# Baselines first, then the fusions from the simplest to DWAtt: the order of tables and plots.
CATALOGUE: dict[str, Fusion] = {
    fusion.name: fusion
    for fusion in (
        Fusion(
            "last",
            "no fusion: plain fine-tuning baseline",
            "No fusion: the classifier reads the last layer z_L, i.e. standard fine-tuning. This is the baseline the "
            "fusions are measured against; compare it only with runs on the same data, seed, steps and "
            "hyper-parameters.",
            (),
            per_token_weights=False,
            identity_init=True,
        ),
        Fusion(
            "deeper",
            "deeper-model baseline",
            "Deeper-model baseline (from the paper): extra, randomly initialised encoder layers on top of z_L, sized "
            "to DWAtt's parameter budget; the classifier reads their output.",
            ("deeper_num_layers", "deeper_intermediate_size"),
            per_token_weights=False,
            identity_init=False,
        ),
        Fusion(
            "concat",
            "concatenation of layers",
            "Concatenation fusion (the paper's Concat baseline): h = z_L + W_C·LN([z_0; …; z_L]), a projection of "
            "all fused hidden states of a token, added to the last layer; the classifier reads h.",
            ("fusion_layers", "fusion_layer_norm", "fusion_dropout", "fusion_init"),
            per_token_weights=False,
            identity_init=True,
        ),
        Fusion(
            "scalar_mix",
            "ELMo-style scalar mix",
            "Scalar mix (ELMo / AllenNLP): h = γ·Σ_n softmax(s)_n·z_n with one learned scalar per fused layer, the "
            "same for every token; the classifier reads h.",
            ("fusion_layers", "fusion_layer_norm", "scalar_mix_layer_norm", "fusion_dropout"),
            per_token_weights=False,
            identity_init=False,
        ),
        Fusion(
            "mean",
            "mean of layers",
            "Mean fusion: h is the plain average of the fused hidden states (no parameters); the classifier reads h.",
            ("fusion_layers", "fusion_layer_norm", "fusion_dropout"),
            per_token_weights=False,
            identity_init=False,
        ),
        Fusion(
            "dwatt",
            "Depth-Wise Attention",
            "Depth-Wise Attention (DWAtt; ElNokrashy, AlKhamissi & Diab, LREC-COLING 2024): every token attends over "
            "its own hidden states from the fused layers z_n (the embedding output and each encoder layer). Each "
            "layer has its own value MLP v_n = LN_n(W·LN(gelu(U·z_n))); the query comes from the last layer, "
            "q = 1 + elu(z_L + f_Q(z_L)); the keys k_n = W_K·p_n come from learned depth embeddings and do not "
            "depend on the input. The weights a_n = softmax_n(q·k_n) are per token, and the classifier reads "
            "h = z_L + Σ_n a_n·v_n.",
            (
                "fusion_layers",
                "dwatt_scale",
                "dwatt_pos_dim",
                "dwatt_query_ratio",
                "dwatt_value_ratio",
                "dwatt_recompute_values",
                "fusion_dropout",
                "fusion_init",
            ),  # fmt: skip
            per_token_weights=True,
            identity_init=True,
            variants={
                "dwatt": {"fusion": "dwatt", "dwatt_scale": "none"},
                "dwatt_sqrt_d": {"fusion": "dwatt", "dwatt_scale": "sqrt_d"},
            },
        ),
    )
}


#: DWAtt's sizing knobs: `deeper` matches its parameter count to the DWAtt these would build.
DEEPER_BUDGET_KNOBS = ("fusion_layers", "dwatt_pos_dim", "dwatt_query_ratio", "dwatt_value_ratio")
#: Knobs every fusion's model uses (the head's dropout), and the choice of fusion itself.
SHARED_KNOBS = ("fusion", "classifier_dropout")


def knobs_used(fusion: str) -> set[str]:
    """The knobs that change a model of this fusion; any other knob is saved in its config and ignored."""
    entry = CATALOGUE[fusion]
    used = {*SHARED_KNOBS, *entry.knobs}
    if entry.identity_init:
        used.add("fusion_init")
    if fusion == "deeper":
        used.update(DEEPER_BUDGET_KNOBS)
    return used


def unused_knobs(values: dict[str, Any]) -> dict[str, Any]:
    """The knobs in `values` set away from their default that `values["fusion"]` does not use."""
    used = knobs_used(values.get("fusion", KNOBS["fusion"].default))
    return {name: value for name, value in values.items()
            if name in KNOBS and name not in used and value != KNOBS[name].default}  # fmt: skip


def sweep_methods() -> dict[str, dict[str, Any]]:
    """Method name -> the knob values it sets, in catalogue order. A fusion without named variants is one
    method of its own name; `deeper` leaves its size unset, so it matches DWAtt's budget by itself."""
    methods = {}
    for fusion in CATALOGUE.values():
        methods.update(fusion.variants or {fusion.name: {"fusion": fusion.name}})
    return methods
