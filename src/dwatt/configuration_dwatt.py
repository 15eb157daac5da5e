"""Configuration of the DWAtt layer-fusion models.

Hub-portable: this file is copied next to every checkpoint and imported by `trust_remote_code`, so it
imports only the standard library and transformers.
"""

from __future__ import annotations

import difflib
import logging

from transformers import AutoConfig, PretrainedConfig

FUSIONS = ("dwatt", "concat", "scalar_mix", "mean", "last", "deeper")
FUSION_INITS = ("paper", "identity")
# "identity" zeroes a residual branch; only these fusions have one ("last" is the identity already).
FUSIONS_WITH_IDENTITY_INIT = ("dwatt", "concat", "last")
DWATT_SCALES = ("none", "sqrt_d")
# Fusions that mix the hidden states as they come (DWAtt normalises each layer in its value path).
FUSIONS_OF_RAW_STATES = ("concat", "scalar_mix", "mean")
# Backbones whose intermediate hidden states are the un-normalised residual stream (pre-LN: the norm sits at the
# start of each block, and only the last state gets a final norm), so a state's scale grows with its depth.
# BERT-style post-LN encoders (BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa, MPNet, DistilBERT, ALBERT) normalise
# every layer's output and are not listed.
PRE_LN_MODEL_TYPES = ("modernbert", "eurobert", "neobert", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma",
                      "gemma2", "gemma3", "gemma3_text", "phi3", "olmo", "olmo2")  # fmt: skip

# The knobs each fusion reads, besides `fusion` and `classifier_dropout` (every head's). Any other knob set away from
# its default is saved and ignored, so a new config warns about it. The same table as `dwatt.fusions.knobs_used`
# (which this hub file cannot import); tests/test_config.py checks that they agree. `deeper` reads DWAtt's sizing
# knobs: it matches its parameter count to the DWAtt they would build.
FUSION_KNOBS = {
    "last": ("fusion_init",),
    "deeper": ("deeper_num_layers", "deeper_intermediate_size", "fusion_layers", "dwatt_pos_dim", "dwatt_query_ratio",
               "dwatt_value_ratio"),
    "concat": ("fusion_layers", "fusion_layer_norm", "fusion_dropout", "fusion_init"),
    "scalar_mix": ("fusion_layers", "fusion_layer_norm", "scalar_mix_layer_norm", "fusion_dropout"),
    "mean": ("fusion_layers", "fusion_layer_norm", "fusion_dropout"),
    "dwatt": ("fusion_layers", "dwatt_scale", "dwatt_pos_dim", "dwatt_query_ratio", "dwatt_value_ratio",
              "dwatt_recompute_values", "fusion_dropout", "fusion_init"),
}  # fmt: skip

# Written into every saved config so any Auto class opens any checkpoint, whichever head saved it.
DWATT_AUTO_MAP = {
    "AutoConfig": "configuration_dwatt.DWAttConfig",
    "AutoModel": "modeling_dwatt.DWAttModel",
    "AutoModelForTokenClassification": "modeling_dwatt.DWAttForTokenClassification",
    "AutoModelForSequenceClassification": "modeling_dwatt.DWAttForSequenceClassification",
    "AutoModelForMaskedLM": "modeling_dwatt.DWAttForMaskedLM",
    "AutoModelForQuestionAnswering": "modeling_dwatt.DWAttForQuestionAnswering",
    "AutoModelForMultipleChoice": "modeling_dwatt.DWAttForMultipleChoice",
}


def _choice(field: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"DWAttConfig.{field}={value!r} is not valid; allowed values: {', '.join(map(repr, allowed))}")


def _ratio(field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 4:
        raise ValueError(f"DWAttConfig.{field}={value!r} is not valid; expected a number in (0, 4]")


def _as_int(value):
    """Integers of other types (numpy.int64, ...) as int; anything else unchanged, for the check to name."""
    if isinstance(value, bool) or isinstance(value, int) or not hasattr(value, "__index__"):
        return value
    return value.__index__()


def _is_probability(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0.0 <= value < 1.0


def _refuse_misspelled(kwargs: dict) -> None:
    """An unknown keyword that looks like one of ours is a typo: the base class would keep it as a dead
    attribute and the default would be used silently."""
    for name in kwargs:
        if name in OWN_FIELDS or hasattr(PretrainedConfig, name) or name.startswith("_"):
            continue
        close = difflib.get_close_matches(name, OWN_FIELDS, n=1, cutoff=0.8)
        if close:
            raise ValueError(f"DWAttConfig got an unknown argument {name!r}; did you mean {close[0]!r}?")


def _warn_unused_knobs(fusion: str, given: dict, defaults: dict) -> None:
    """Knobs set away from their default that `fusion` does not read would be saved in the config and ignored:
    named in a warning (the command line refuses them; a config is not refused, as transformers' configs are not)."""
    unused = {name: value for name, value in given.items()
              if name not in FUSION_KNOBS[fusion] and value != defaults[name]}  # fmt: skip
    if unused:
        shown = ", ".join(f"{name}={value!r}" for name, value in unused.items())
        logging.getLogger(__name__).warning(
            "DWAttConfig: %s not used by fusion=%r (saved in the config and ignored); %r reads only: %s",
            shown, fusion, fusion, ", ".join(FUSION_KNOBS[fusion]) or "none of the fusion knobs",
        )  # fmt: skip


def resolve_fusion_layers(fusion_layers, num_hidden_layers: int) -> list[int]:
    """Turn `fusion_layers` ("all" or a list of indices, negative allowed) into sorted hidden-state indices.

    Index 0 is the embedding output and index `num_hidden_layers` the last layer, as in
    `output_hidden_states`.
    """
    num_states = num_hidden_layers + 1
    if fusion_layers == "all":
        return list(range(num_states))
    if isinstance(fusion_layers, (str, bytes)) or not isinstance(fusion_layers, (list, tuple)) or not fusion_layers:
        raise ValueError(
            f"DWAttConfig.fusion_layers={fusion_layers!r} is not valid; expected 'all' or a non-empty list of "
            f"hidden-state indices in [{-num_states}, {num_states - 1}]"
        )
    resolved = []
    for index in fusion_layers:
        if isinstance(index, bool) or not isinstance(index, int) or not -num_states <= index < num_states:
            raise ValueError(
                f"DWAttConfig.fusion_layers contains {index!r}; expected integers in [{-num_states}, {num_states - 1}] "
                f"(the backbone has {num_hidden_layers} layers plus the embedding output)"
            )
        resolved.append(index % num_states)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"DWAttConfig.fusion_layers={fusion_layers!r} names a hidden state twice")
    return sorted(resolved)


def is_pre_ln(backbone_config) -> bool:
    """Whether the backbone's intermediate hidden states are un-normalised (pre-LN), by its `model_type`."""
    return getattr(backbone_config, "model_type", None) in PRE_LN_MODEL_TYPES


def _resolve_fusion_layer_norm(value, scalar_mix_layer_norm, fusion: str, backbone_config, saved: bool) -> bool:
    for field, given in (("fusion_layer_norm", value), ("scalar_mix_layer_norm", scalar_mix_layer_norm)):
        if given is not None and not isinstance(given, bool):
            raise ValueError(f"DWAttConfig.{field}={given!r} is not valid; expected true or false")
    if scalar_mix_layer_norm and value is False:
        raise ValueError(
            "DWAttConfig: scalar_mix_layer_norm=True and fusion_layer_norm=False; expected one setting (the first is "
            "the older name of fusion_layer_norm=True)"
        )
    if value is not None:
        return value
    if saved:  # written before fusion_layer_norm existed: only a scalar mix could normalise, and only when asked
        return bool(scalar_mix_layer_norm) and fusion == "scalar_mix"
    return bool(scalar_mix_layer_norm) or is_pre_ln(backbone_config)


class DWAttConfig(PretrainedConfig):
    r"""Configuration of a pretrained encoder (`backbone_config`) topped by a layer fusion.

    Args:
        backbone_config (`PretrainedConfig` or `dict`, *optional*):
            Config of the wrapped encoder (any `AutoModel` encoder). Defaults to `BertConfig()`.
        fusion (`str`, *optional*, defaults to `"dwatt"`):
            `"dwatt"` (depth-wise attention), `"concat"`, `"scalar_mix"`, `"mean"`, `"last"` (plain
            fine-tuning) or `"deeper"` (extra encoder layers on top, the paper's baseline).
        fusion_layers (`"all"` or `list[int]`, *optional*, defaults to `"all"`):
            Hidden states fused: `"all"` is the embedding output plus every layer; negative indices count
            from the last layer.
        dwatt_pos_dim (`int`, defaults to 24): size of the learned depth embeddings behind DWAtt's keys.
        dwatt_query_ratio, dwatt_value_ratio (`float`, default 0.5): bottleneck ratios of the query/value MLPs.
        dwatt_scale (`str`, defaults to `"sqrt_d"`): `"sqrt_d"` (q·k/√d) or `"none"` (the paper's equations as
            cited). `"sqrt_d"` had the better dev F1 at every K of the WNUT-16 sweep (results/wnut16/summary.md);
            checkpoints saved with `"none"` keep it (the value is always written to config.json).
        dwatt_recompute_values (`bool`, defaults to `True`): in training, run the value MLPs again in backward
            instead of storing their activations: same gradients; DWAtt's saved activations drop from 1.16-1.19x
            to 1.02-1.03x the stock model's (MiniLM, BERT-base sizes) for 3% more train FLOPs, a time cost within
            the noise of a CPU benchmark (results/overhead-*.md). `False` stores them: a little faster where
            memory is not the limit.
        fusion_dropout (`float`, defaults to 0.0): probability of dropping a fused layer per token in training.
        fusion_init (`str`, defaults to `"paper"`): `"paper"` or `"identity"` (the model starts exactly as the
            unmodified backbone; dwatt and concat only).
        fusion_layer_norm (`bool`, *optional*): layer-normalise each fused hidden state (no parameters) before
            `concat`, `scalar_mix` or `mean` mixes it, so no layer weighs in by its scale alone. `None` chooses by the
            backbone's architecture: `True` for pre-LN backbones (`PRE_LN_MODEL_TYPES`, e.g. ModernBERT, whose
            intermediate states are the raw residual stream), `False` for post-LN ones (BERT, RoBERTa, ...). The
            resolved value is saved; a checkpoint saved before this option keeps what it was trained with.
        scalar_mix_layer_norm (`bool`, defaults to `False`): the older name of `fusion_layer_norm=True` (AllenNLP's
            `do_layer_norm`); `True` sets it.
        deeper_num_layers, deeper_intermediate_size (`int`, *optional*): shape of the `"deeper"` baseline;
            `None` matches DWAtt's parameter budget when the model is built (the resolved values are saved).
        classifier_dropout (`float`, *optional*): dropout before the heads; defaults to the backbone's.
        initializer_range (`float`, defaults to 0.02): std of the normal init of new weights.
        tie_word_embeddings (`bool`, defaults to `True`): tie the masked-LM decoder to the input embeddings.
    """

    model_type = "dwatt"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config=None,
        fusion: str = "dwatt",
        fusion_layers="all",
        dwatt_pos_dim: int = 24,
        dwatt_query_ratio: float = 0.5,
        dwatt_value_ratio: float = 0.5,
        dwatt_scale: str = "sqrt_d",
        dwatt_recompute_values: bool = True,
        fusion_dropout: float = 0.0,
        fusion_init: str = "paper",
        fusion_layer_norm: bool | None = None,
        scalar_mix_layer_norm: bool = False,
        deeper_num_layers: int | None = None,
        deeper_intermediate_size: int | None = None,
        classifier_dropout: float | None = None,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        if backbone_config is None and "transformers_version" in kwargs:  # read from a saved config.json
            raise ValueError(
                "DWAttConfig: the saved config has no 'backbone_config'; expected the wrapped encoder's config "
                "(a folder written by DWAtt's save_pretrained has one)"
            )
        if backbone_config is None:
            backbone_config = AutoConfig.for_model("bert")
        elif isinstance(backbone_config, dict):
            backbone_config = dict(backbone_config)
            if "model_type" not in backbone_config:
                raise ValueError(
                    "DWAttConfig.backbone_config is a dict without 'model_type'; expected a saved encoder config"
                )
            backbone_config = AutoConfig.for_model(backbone_config.pop("model_type"), **backbone_config)
        elif not isinstance(backbone_config, PretrainedConfig):
            raise ValueError(
                f"DWAttConfig.backbone_config has type {type(backbone_config).__name__}; "
                "expected a PretrainedConfig or a dict"
            )
        if getattr(backbone_config, "model_type", None) == self.model_type:
            raise ValueError("DWAttConfig.backbone_config is itself a DWAtt config; expected a plain encoder config")

        _choice("fusion", fusion, FUSIONS)
        _choice("fusion_init", fusion_init, FUSION_INITS)
        if fusion_init == "identity" and fusion not in FUSIONS_WITH_IDENTITY_INIT:
            raise ValueError(
                f"DWAttConfig.fusion_init='identity' is not defined for fusion={fusion!r}; allowed with fusion in "
                f"{', '.join(map(repr, FUSIONS_WITH_IDENTITY_INIT))}"
            )
        _choice("dwatt_scale", dwatt_scale, DWATT_SCALES)
        _ratio("dwatt_query_ratio", dwatt_query_ratio)
        _ratio("dwatt_value_ratio", dwatt_value_ratio)
        if isinstance(dwatt_pos_dim, bool) or not isinstance(dwatt_pos_dim, int) or dwatt_pos_dim < 1:
            raise ValueError(f"DWAttConfig.dwatt_pos_dim={dwatt_pos_dim!r} is not valid; expected a positive integer")
        if not isinstance(dwatt_recompute_values, bool):
            raise ValueError(
                f"DWAttConfig.dwatt_recompute_values={dwatt_recompute_values!r} is not valid; expected true or false"
            )
        if not isinstance(fusion_dropout, (int, float)) or not 0.0 <= fusion_dropout < 1.0:
            raise ValueError(f"DWAttConfig.fusion_dropout={fusion_dropout!r} is not valid; expected a float in [0, 1)")
        for field, value in (
            ("deeper_num_layers", deeper_num_layers),
            ("deeper_intermediate_size", deeper_intermediate_size),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"DWAttConfig.{field}={value!r} is not valid; expected None or a positive integer")
        given_layer_norm = fusion_layer_norm
        fusion_layer_norm = _resolve_fusion_layer_norm(
            fusion_layer_norm, scalar_mix_layer_norm, fusion, backbone_config, saved="transformers_version" in kwargs
        )
        if isinstance(fusion_layers, (list, tuple)):  # numpy integers become ints (JSON can store them)
            fusion_layers = [_as_int(index) for index in fusion_layers]
        resolve_fusion_layers(fusion_layers, backbone_config.num_hidden_layers)
        if classifier_dropout is not None and not _is_probability(classifier_dropout):
            raise ValueError(
                f"DWAttConfig.classifier_dropout={classifier_dropout!r} is not valid; expected None or a float "
                "in [0, 1)"
            )
        if (
            isinstance(initializer_range, bool)
            or not isinstance(initializer_range, (int, float))
            or not initializer_range > 0  # NaN too
        ):
            raise ValueError(
                f"DWAttConfig.initializer_range={initializer_range!r} is not valid; expected a positive std"
            )
        _refuse_misspelled(kwargs)
        if "transformers_version" not in kwargs:  # a new config (a saved one was checked when it was made)
            _warn_unused_knobs(
                fusion,
                {"fusion_layers": fusion_layers, "dwatt_pos_dim": dwatt_pos_dim, "dwatt_query_ratio": dwatt_query_ratio,
                 "dwatt_value_ratio": dwatt_value_ratio, "dwatt_scale": dwatt_scale,
                 "dwatt_recompute_values": dwatt_recompute_values, "fusion_dropout": fusion_dropout,
                 "fusion_init": fusion_init, "fusion_layer_norm": given_layer_norm,
                 "scalar_mix_layer_norm": scalar_mix_layer_norm, "deeper_num_layers": deeper_num_layers,
                 "deeper_intermediate_size": deeper_intermediate_size},
                # fusion_layer_norm=None is its default; an explicit value equal to what None resolves to is too
                {**_INIT_DEFAULTS, "fusion_layer_norm": given_layer_norm if given_layer_norm is None
                 else is_pre_ln(backbone_config)},
            )  # fmt: skip

        self.backbone_config = backbone_config
        self.fusion = fusion
        self.fusion_layers = fusion_layers
        self.dwatt_pos_dim = dwatt_pos_dim
        self.dwatt_query_ratio = dwatt_query_ratio
        self.dwatt_value_ratio = dwatt_value_ratio
        self.dwatt_scale = dwatt_scale
        self.dwatt_recompute_values = dwatt_recompute_values
        self.fusion_dropout = fusion_dropout
        self.fusion_init = fusion_init
        self.fusion_layer_norm = fusion_layer_norm
        self.scalar_mix_layer_norm = scalar_mix_layer_norm
        self.deeper_num_layers = deeper_num_layers
        self.deeper_intermediate_size = deeper_intermediate_size
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        kwargs.setdefault("auto_map", dict(DWATT_AUTO_MAP))
        # The base class sets attn_implementation on every sub-config: without this it would reset the
        # backbone's (e.g. "sdpa" of a loaded encoder) to None, and its attention would fall back to a warning path.
        kwargs.setdefault("attn_implementation", getattr(backbone_config, "_attn_implementation", None))
        # A label map given one way only: the other is derived, as transformers' run_ner reads label2id.
        if kwargs.get("id2label") is not None and kwargs.get("label2id") is None:
            kwargs["label2id"] = {label: int(index) for index, label in kwargs["id2label"].items()}
        # The Trainer reads the model config's pad token and rewrites the config when it is missing.
        kwargs.setdefault("pad_token_id", getattr(backbone_config, "pad_token_id", None))
        # Passed to the base class rather than set here: transformers 4.x sets it there and would
        # overwrite our value; 5.x keeps unknown kwargs as attributes.
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        if self.num_labels < 1:
            raise ValueError(f"DWAttConfig.num_labels={self.num_labels} is not valid; expected at least 1 label")

    @property
    def fused_layer_indices(self) -> list[int]:
        """Hidden-state indices fused, sorted (0 = embedding output)."""
        return resolve_fusion_layers(self.fusion_layers, self.backbone_config.num_hidden_layers)

    def to_diff_dict(self) -> dict:
        # The base class diffs nested configs against the generic defaults, which drops fields that a
        # backbone class (e.g. ModernBERT's max_position_embeddings) defaults differently: keep them all.
        output = super().to_diff_dict()
        backbone = self.backbone_config.to_dict()
        backbone.pop("_name_or_path", None)
        output["backbone_config"] = backbone
        return output


# DWAttConfig.__init__'s own arguments (self and **kwargs excluded), for the misspelling check; read from
# its code object: the hub file's import allow-list (tests/test_remote_surface.py) has no inspect. A decorator
# that wraps __init__ (functools.wraps keeps the original as __wrapped__; mutmut's does) must not hide them.
_init = DWAttConfig.__init__
while hasattr(_init, "__wrapped__"):
    _init = _init.__wrapped__
OWN_FIELDS = _init.__code__.co_varnames[1 : _init.__code__.co_argcount]
# Their defaults, for the unused-knob warning (the positional defaults line up with the last arguments).
_INIT_DEFAULTS = dict(zip(OWN_FIELDS[len(OWN_FIELDS) - len(_init.__defaults__) :], _init.__defaults__))
del _init

__all__ = ["DWAttConfig"]
