"""Per-layer normalisation of the fusions that mix raw hidden states (concat, scalar_mix, mean): its default by
backbone architecture, what it does to a layer's scale, and checkpoints saved before it existed."""

import json

import pytest
import torch
from conftest import tiny_backbone_config

from dwatt import DWAttConfig, DWAttForTokenClassification, DWAttModel

RAW_STATE_FUSIONS = ("concat", "scalar_mix", "mean")


def config(backbone_type="modernbert", **kwargs):
    return DWAttConfig(backbone_config=tiny_backbone_config(backbone_type), num_labels=3, **kwargs)


@pytest.mark.parametrize("fusion", RAW_STATE_FUSIONS)
def test_the_default_follows_the_backbones_layer_norm_placement(fusion):
    assert config("modernbert", fusion=fusion).fusion_layer_norm is True  # pre-LN: raw residual stream
    for post_ln in ("bert", "roberta", "deberta-v2", "mpnet"):
        assert config(post_ln, fusion=fusion).fusion_layer_norm is False
    assert config("modernbert", fusion=fusion, fusion_layer_norm=False).fusion_layer_norm is False  # asked: kept


@pytest.mark.parametrize("fusion", RAW_STATE_FUSIONS)
def test_with_normalisation_a_layers_scale_does_not_move_the_fused_output(fusion, batch):
    """On a tiny pre-LN backbone whose intermediate states are scaled by 5 and 50, as a deep residual stream
    outgrows the embeddings: normalised, the fused output is the same; raw, it is not."""
    outputs = {}
    for layer_norm in (True, False):
        torch.manual_seed(0)
        model = DWAttModel(config(fusion=fusion, fusion_layer_norm=layer_norm)).double().eval()
        with torch.no_grad():
            if fusion == "scalar_mix":  # unequal weights, so no layer's share is symmetric by chance
                model.fusion.scalar_logits.copy_(torch.tensor([0.3, -0.2, 0.1]))
            states = model.backbone(**batch, output_hidden_states=True).hidden_states
            scaled = (states[0] * 5, states[1] * 50, states[2])
            outputs[layer_norm] = model.fuse(states)[0], model.fuse(scaled)[0]
    fused, fused_scaled = outputs[True]
    scale = float(fused.abs().max())
    torch.testing.assert_close(fused_scaled, fused, rtol=0, atol=1e-5 * scale)
    raw, raw_scaled = outputs[False]
    assert (raw_scaled - raw).abs().max() > 0.1 * raw.abs().max()


def test_a_checkpoint_saved_before_the_option_keeps_what_it_was_trained_with(tmp_path):
    def saved_without_the_field(fusion, **kwargs):
        folder = tmp_path / f"{fusion}-{len(kwargs)}"
        DWAttForTokenClassification(config(fusion=fusion, **kwargs)).save_pretrained(folder)
        written = json.loads((folder / "config.json").read_text())
        del written["fusion_layer_norm"]
        (folder / "config.json").write_text(json.dumps(written))
        return DWAttForTokenClassification.from_pretrained(folder)

    assert saved_without_the_field("mean").dwatt.fusion.layer_norm is False  # a pre-LN backbone, but saved before
    assert saved_without_the_field("scalar_mix", scalar_mix_layer_norm=True).dwatt.fusion.layer_norm is True
    assert saved_without_the_field("concat", scalar_mix_layer_norm=True).dwatt.fusion.layer_norm is False  # was ignored
    model = DWAttForTokenClassification(config(fusion="mean"))
    model.save_pretrained(tmp_path / "new")
    assert json.loads((tmp_path / "new" / "config.json").read_text())["fusion_layer_norm"] is True  # resolved, saved
    assert DWAttForTokenClassification.from_pretrained(tmp_path / "new").dwatt.fusion.layer_norm is True


def test_contradictory_or_mistyped_settings_are_refused():
    with pytest.raises(ValueError, match="scalar_mix_layer_norm=True and fusion_layer_norm=False"):
        config(fusion="scalar_mix", scalar_mix_layer_norm=True, fusion_layer_norm=False)
    with pytest.raises(ValueError, match=r"fusion_layer_norm='yes' is not valid; expected true or false"):
        config(fusion="mean", fusion_layer_norm="yes")


def test_the_card_and_the_analysis_say_what_the_weights_multiply():
    from dwatt.experiments.analysis.probes import weighted_states
    from dwatt.hub.card import layer_norm_sentence

    assert layer_norm_sentence(config(fusion="mean")) == (
        " The fused hidden states are layer-normalised one by one before they are mixed: the default for a pre-LN "
        "(raw residual stream between layers) backbone (modernbert)."
    )
    assert layer_norm_sentence(config("modernbert", fusion="concat", fusion_layer_norm=False)).startswith(
        " The fused hidden states are mixed as the backbone gives them: not the default for a pre-LN"
    )
    assert "mixed as the backbone gives them: the default for a post-LN backbone (bert)" in layer_norm_sentence(
        config("bert", fusion="scalar_mix")
    )
    assert layer_norm_sentence(config(fusion="dwatt")) == ""
    assert weighted_states(config(fusion="scalar_mix")).startswith("the layer-normalised hidden states")
    assert weighted_states(config("bert", fusion="mean")).startswith("the hidden states as the backbone gives them")
    assert weighted_states(config(fusion="dwatt")).startswith("each layer's value v_n")


def test_the_older_name_turns_normalisation_on_for_any_backbone_and_each_error_is_whole():
    assert config("bert", fusion="scalar_mix", scalar_mix_layer_norm=True).fusion_layer_norm is True  # post-LN too
    with pytest.raises(ValueError) as refused:
        config(fusion="scalar_mix", scalar_mix_layer_norm=True, fusion_layer_norm=False)
    assert str(refused.value) == (
        "DWAttConfig: scalar_mix_layer_norm=True and fusion_layer_norm=False; expected one setting (the first is the "
        "older name of fusion_layer_norm=True)"
    )
    with pytest.raises(ValueError, match=r"^DWAttConfig.scalar_mix_layer_norm='yes' is not valid; expected true or"):
        config(fusion="scalar_mix", scalar_mix_layer_norm="yes")


def test_a_backbone_config_without_a_model_type_is_not_pre_ln():
    from types import SimpleNamespace

    from dwatt.configuration_dwatt import is_pre_ln

    assert is_pre_ln(SimpleNamespace()) is False and is_pre_ln(SimpleNamespace(model_type="modernbert")) is True


def test_a_config_from_before_the_option_is_said_to_mix_raw_states():
    """A config object made before fusion_layer_norm existed (pickled, or by hand) has no such field: the model
    builds its fusion without normalisation, and the card must say so."""
    from types import SimpleNamespace

    from dwatt.hub.card import layer_norm_sentence

    older = SimpleNamespace(fusion="mean", backbone_config=tiny_backbone_config("bert"))
    assert layer_norm_sentence(older) == (
        " The fused hidden states are mixed as the backbone gives them: the default for a post-LN backbone (bert)."
    )
