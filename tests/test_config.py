"""DWAttConfig: validation names the field and the allowed values; nested configs round-trip exactly."""

import pytest
from conftest import tiny_backbone_config

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
