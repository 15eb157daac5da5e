"""DWAttConfig: validation names the field and the allowed values; nested configs round-trip exactly."""

import numpy as np
import pytest
from conftest import tiny_backbone_config
from transformers import BertConfig

from dwatt import FUSIONS, DWAttConfig
from dwatt.configuration_dwatt import DWATT_AUTO_MAP


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fusion": "attention"}, "DWAttConfig.fusion='attention' is not valid; allowed values: 'dwatt'"),
        ({"fusion_init": "zeros"}, "DWAttConfig.fusion_init='zeros'"),
        ({"fusion": "mean", "fusion_init": "identity"}, "fusion_init='identity' is not defined for fusion='mean'"),
        ({"dwatt_scale": "sqrt"}, "DWAttConfig.dwatt_scale='sqrt' is not valid; allowed values: 'none', 'sqrt_d'"),
        ({"dwatt_query_ratio": 0}, "DWAttConfig.dwatt_query_ratio=0"),
        ({"dwatt_value_ratio": -1.0}, "DWAttConfig.dwatt_value_ratio=-1.0"),
        ({"dwatt_pos_dim": 0}, "DWAttConfig.dwatt_pos_dim=0"),
        ({"fusion_dropout": 1.0}, "DWAttConfig.fusion_dropout=1.0"),
        ({"fusion_layers": [0, 3]}, "fusion_layers contains 3; expected integers in [-3, 2]"),
        ({"fusion_layers": [-4]}, "fusion_layers contains -4"),
        ({"fusion_layers": [1, -2]}, "names a hidden state twice"),
        ({"fusion_layers": []}, "expected 'all' or a non-empty list"),
        ({"fusion_layers": "last"}, "expected 'all' or a non-empty list"),
        ({"deeper_num_layers": 0}, "DWAttConfig.deeper_num_layers=0"),
        ({"backbone_config": {"hidden_size": 8}}, "without 'model_type'"),
        ({"backbone_config": 3}, "backbone_config has type int"),
    ],
)
def test_bad_values_raise_naming_field(kwargs, message):
    kwargs = {"backbone_config": tiny_backbone_config(), **kwargs}
    with pytest.raises(ValueError) as error:
        DWAttConfig(**kwargs)
    assert message in str(error.value)


def test_dwatt_config_as_backbone_is_refused():
    with pytest.raises(ValueError, match="itself a DWAtt config"):
        DWAttConfig(backbone_config=DWAttConfig())


def test_defaults_and_fused_indices():
    config = DWAttConfig(backbone_config=tiny_backbone_config())
    assert config.fusion == "dwatt" and config.fusion_init == "paper" and config.dwatt_scale == "sqrt_d"
    assert config.fused_layer_indices == [0, 1, 2]
    assert DWAttConfig(backbone_config=tiny_backbone_config(), fusion_layers=[-1, 0]).fused_layer_indices == [0, 2]
    assert config.auto_map == DWATT_AUTO_MAP
    assert set(FUSIONS) == {"dwatt", "concat", "scalar_mix", "mean", "last", "deeper"}
    assert DWAttConfig().backbone_config.model_type == "bert"  # constructible without arguments


@pytest.mark.parametrize("model_type", ["bert", "modernbert", "deberta-v2", "distilbert"])
def test_save_load_keeps_the_backbone_config_exactly(tmp_path, model_type):
    backbone = tiny_backbone_config(model_type)
    # a value equal to BERT's default but not to this family's: a diff against generic defaults would drop it
    backbone.max_position_embeddings = 512
    config = DWAttConfig(backbone_config=backbone, fusion="concat", fusion_layers=[0, -1], num_labels=3)
    config.save_pretrained(tmp_path)
    loaded = DWAttConfig.from_pretrained(tmp_path)
    assert type(loaded.backbone_config) is type(backbone)
    assert loaded.backbone_config.max_position_embeddings == 512
    assert loaded.backbone_config.hidden_size == backbone.hidden_size
    assert (loaded.fusion, loaded.fusion_layers, loaded.num_labels) == ("concat", [0, -1], 3)
    assert "_name_or_path" not in (tmp_path / "config.json").read_text().split('"backbone_config"')[1].split("}")[0]


# --- every validated field at its edges -------------------------------------------------------------------------
# (field, value, accepted): the edge values the checks allow, and the first values past them, of each kind a user
# might pass (a bool where a number is meant, a string, a float index).
EDGES = [
    ("dwatt_query_ratio", 4, True), ("dwatt_query_ratio", 4.5, False), ("dwatt_query_ratio", 0, False),
    ("dwatt_query_ratio", True, False), ("dwatt_query_ratio", "0.5", False),
    ("dwatt_value_ratio", 4.0, True), ("dwatt_value_ratio", 4.001, False),
    ("fusion_dropout", 0.0, True), ("fusion_dropout", 1.0, False),
    ("classifier_dropout", 0.0, True), ("classifier_dropout", 0.99, True), ("classifier_dropout", 1.0, False),
    ("classifier_dropout", 1.5, False), ("classifier_dropout", True, False), ("classifier_dropout", -0.1, False),
    ("fusion_layers", [-3, 2], True), ("fusion_layers", [-4], False), ("fusion_layers", [3], False),
    ("fusion_layers", [1.5], False), ("fusion_layers", ["a"], False), ("fusion_layers", 3, False),
    ("fusion_layers", [True], False), ("fusion_layers", [], False),
    ("dwatt_pos_dim", 1, True), ("dwatt_pos_dim", 0, False), ("dwatt_pos_dim", True, False),
    ("initializer_range", 1e-6, True), ("initializer_range", 0.0, False), ("initializer_range", float("nan"), False),
    ("initializer_range", "0.02", False), ("scalar_mix_layer_norm", True, True),
    ("deeper_num_layers", 2, True), ("deeper_num_layers", "2", False), ("deeper_num_layers", True, False),
    ("deeper_intermediate_size", 16, True), ("deeper_intermediate_size", 0, False),
    ("deeper_intermediate_size", 2.5, False), ("dwatt_pos_dim", "24", False), ("dwatt_recompute_values", 1, False),
    ("fusion_dropout", "0.1", False),
]  # fmt: skip


@pytest.mark.parametrize("field, value, accepted", EDGES, ids=lambda v: repr(v)[:12])
def test_each_field_accepts_its_edges_and_refuses_past_them(field, value, accepted):
    backbone = BertConfig(num_hidden_layers=2, hidden_size=8, num_attention_heads=2, intermediate_size=8)
    if accepted:
        assert getattr(DWAttConfig(backbone_config=backbone, **{field: value}), field) == value
    else:
        with pytest.raises(ValueError, match=rf"DWAttConfig\.{field}"):
            DWAttConfig(backbone_config=backbone, **{field: value})


def test_fusion_layers_errors_state_the_allowed_range():
    backbone = BertConfig(num_hidden_layers=2, hidden_size=8, num_attention_heads=2, intermediate_size=8)
    with pytest.raises(ValueError, match=r"expected 'all' or a non-empty list of hidden-state indices in \[-3, 2\]$"):
        DWAttConfig(backbone_config=backbone, fusion_layers=[])
    assert DWAttConfig(backbone_config=backbone, fusion_layers=[np.int64(1)]).fusion_layers == [1]  # numpy ints


def test_the_defaults_are_the_documented_ones():
    config = DWAttConfig()
    documented = {"fusion": "dwatt", "fusion_layers": "all", "dwatt_pos_dim": 24, "dwatt_query_ratio": 0.5,
                  "dwatt_value_ratio": 0.5, "dwatt_scale": "sqrt_d", "dwatt_recompute_values": True,
                  "fusion_dropout": 0.0, "fusion_init": "paper", "scalar_mix_layer_norm": False,
                  "deeper_num_layers": None, "deeper_intermediate_size": None, "classifier_dropout": None,
                  "initializer_range": 0.02, "tie_word_embeddings": True}  # fmt: skip
    assert {name: getattr(config, name) for name in documented} == documented


def test_misspellings_are_refused_wherever_they_come_and_only_close_ones():
    with pytest.raises(ValueError, match="unknown argument 'fusion_layer'; did you mean 'fusion_layers'"):
        DWAttConfig(output_hidden_states=True, fusion_layer=[0])  # after a base-class argument
    DWAttConfig(fusion_mode="x")  # similarity 0.71 to fusion_init: below the 0.8 cutoff, kept as an attribute
    DWAttConfig(_fusion_init="x")  # private names (transformers' own bookkeeping) are never checked
    with pytest.raises(ValueError, match=r"^DWAttConfig: the saved config has no 'backbone_config'"):
        DWAttConfig(transformers_version="5.0.0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transformers_version": "5.0.0", "backbone_config": None},
         "DWAttConfig: the saved config has no 'backbone_config'; expected the wrapped encoder's config (a folder "
         "written by DWAtt's save_pretrained has one)"),
        ({"backbone_config": {"hidden_size": 8}},
         "DWAttConfig.backbone_config is a dict without 'model_type'; expected a saved encoder config"),
        ({"backbone_config": 3}, "DWAttConfig.backbone_config has type int; expected a PretrainedConfig or a dict"),
        ({"backbone_config": DWAttConfig()},
         "DWAttConfig.backbone_config is itself a DWAtt config; expected a plain encoder config"),
        ({"fusion": "scalar_mix", "fusion_init": "identity"},
         "DWAttConfig.fusion_init='identity' is not defined for fusion='scalar_mix'; allowed with fusion in "
         "'dwatt', 'concat', 'last'"),
        ({"deeper_intermediate_size": 0},
         "DWAttConfig.deeper_intermediate_size=0 is not valid; expected None or a positive integer"),
        ({"num_labels": 0}, "DWAttConfig.num_labels=0 is not valid; expected at least 1 label"),
    ],
)  # fmt: skip
def test_errors_read_in_full(kwargs, message):
    kwargs = {"backbone_config": tiny_backbone_config(), **kwargs}
    with pytest.raises(ValueError) as error:
        DWAttConfig(**kwargs)
    assert str(error.value) == message


def test_what_the_config_takes_from_its_backbone_and_labels():
    """A dict backbone (as config.json stores it) is built as its own class; the pad token and the attention
    implementation come from the backbone (the Trainer and the base class read them); label2id is derived
    from id2label given alone (transformers' run_ner reads label2id); one label is allowed."""
    backbone = {"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 8,
                "num_hidden_layers": 2, "pad_token_id": 3}  # fmt: skip
    config = DWAttConfig(backbone_config=backbone, id2label={0: "O", 1: "B-X"})
    assert type(config.backbone_config).__name__ == "BertConfig" and config.backbone_config.hidden_size == 8
    assert config.pad_token_id == 3
    assert config.label2id == {"O": 0, "B-X": 1}
    given = DWAttConfig(id2label={0: "O", 1: "B-X"}, label2id={"O": 0, "B-X": 1, "I-X": 1})
    assert given.label2id == {"O": 0, "B-X": 1, "I-X": 1}  # a label2id given is kept, not derived
    sdpa = BertConfig(num_hidden_layers=2, hidden_size=8, num_attention_heads=2, attn_implementation="sdpa")
    assert DWAttConfig(backbone_config=sdpa).backbone_config._attn_implementation == "sdpa"
    assert DWAttConfig(num_labels=1).num_labels == 1


def test_a_knob_the_fusion_does_not_use_is_named_in_a_warning(caplog):
    """Row 85's Python form. Before: `DWAttConfig(fusion="last", dwatt_pos_dim=64, fusion_layers=[0, 1])` saved both
    knobs and ignored them, without a word. A config warns (the CLI refuses); a saved config is read without one."""
    import logging

    def warnings_of(**kwargs):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dwatt.configuration_dwatt"):
            config = DWAttConfig(**kwargs)
        return config, [r.getMessage() for r in caplog.records if r.name == "dwatt.configuration_dwatt"]

    config, messages = warnings_of(backbone_config=tiny_backbone_config(), fusion="last", dwatt_pos_dim=64,
                                   fusion_layers=[0, 1])  # fmt: skip
    assert messages == [
        "DWAttConfig: fusion_layers=[0, 1], dwatt_pos_dim=64 not used by fusion='last' (saved in the config and "
        "ignored); 'last' reads only: fusion_init"
    ]
    _, messages = warnings_of(backbone_config=tiny_backbone_config(), fusion="mean", dwatt_scale="none",
                              fusion_layer_norm=True)  # fmt: skip
    assert messages == [
        "DWAttConfig: dwatt_scale='none' not used by fusion='mean' (saved in the config and ignored); 'mean' reads "
        "only: fusion_layers, fusion_layer_norm, fusion_dropout"
    ]
    _, messages = warnings_of(**config.to_dict())  # a saved config (written before this warning, or with it): quiet
    assert messages == []
    quiet = [
        {"fusion": fusion}
        for fusion in FUSIONS  # every default
    ] + [
        {"fusion": "last", "fusion_init": "identity", "classifier_dropout": 0.2},
        {"fusion": "deeper", "dwatt_pos_dim": 64, "fusion_layers": [0, 2], "deeper_num_layers": 1},
        {"fusion": "dwatt", "dwatt_pos_dim": 8, "fusion_layer_norm": False},  # False is what None gives for BERT
        {"fusion": "dwatt", "fusion_layer_norm": True, "backbone_config": tiny_backbone_config("modernbert")},
    ]
    for kwargs in quiet:
        _, messages = warnings_of(**{"backbone_config": tiny_backbone_config(), **kwargs})
        assert messages == [], kwargs


def test_the_configs_knob_table_is_the_catalogues():
    """The hub file cannot import `dwatt.fusions`: its copy of which fusion reads which knob must agree."""
    from dwatt.configuration_dwatt import FUSION_KNOBS
    from dwatt.fusions import SHARED_KNOBS, knobs_used

    assert set(FUSION_KNOBS) == set(FUSIONS)
    for fusion in FUSIONS:
        assert {*FUSION_KNOBS[fusion], *SHARED_KNOBS} == knobs_used(fusion), fusion
