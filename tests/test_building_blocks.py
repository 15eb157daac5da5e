"""The modeling file's building blocks, each checked where the model-level tests cannot see it: the `deeper`
baseline's layer (heads, dropout only in training, the backbone's epsilon) and its parameter matching to DWAtt,
concat's per-layer normalisation epsilon, the fusions' defaults, the sentence head's pooling position, and the
public `fuse` (attention mask and value cache passed on)."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, VOCAB, tiny_backbone_config
from transformers import BertConfig

from dwatt import DWAttConfig, DWAttForSequenceClassification, DWAttModel
from dwatt.modeling_dwatt import (
    DWAttConcatFusion,
    DWAttDeeperLayer,
    DWAttDepthAttention,
    DWAttMeanFusion,
    DWAttScalarMix,
    build_deeper_layer,
    build_fusion,
    count_parameters,
    match_deeper_to_dwatt,
)


def bert(**extra) -> BertConfig:
    return BertConfig(**{"vocab_size": VOCAB, "max_position_embeddings": 64, **TINY, **extra})


def padded_batch():
    generator = torch.Generator().manual_seed(5)
    input_ids = torch.randint(4, VOCAB, (2, 7), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 4:] = 0
    return input_ids, attention_mask


# ---- the deeper baseline ------------------------------------------------------------------------------------------


def test_a_deeper_layer_falls_back_to_one_head_when_the_width_does_not_divide():
    layer = DWAttDeeperLayer(hidden_size=30, num_heads=4, intermediate_size=8, dropout=0.0, layer_norm_eps=1e-12)
    assert layer.num_heads == 1
    assert layer(torch.randn(2, 3, 30), None).shape == (2, 3, 30)
    assert DWAttDeeperLayer(32, 4, 8, 0.0, 1e-12).num_heads == 4


def test_a_deeper_layer_drops_out_in_training_only_with_its_own_probability(monkeypatch):
    torch.manual_seed(0)
    layer = DWAttDeeperLayer(32, 4, 16, dropout=0.5, layer_norm_eps=1e-12).double()
    without = DWAttDeeperLayer(32, 4, 16, dropout=0.0, layer_norm_eps=1e-12).double()
    without.load_state_dict(layer.state_dict())
    hidden = torch.randn(2, 5, 32, dtype=torch.float64)
    layer.eval(), without.eval()
    torch.testing.assert_close(layer(hidden, None), without(hidden, None), rtol=0, atol=0)  # eval: no dropout
    layer.train()
    assert not torch.allclose(layer(hidden, None), without(hidden, None))

    probabilities, real_attention = [], F.scaled_dot_product_attention

    def attention(*args, dropout_p=0.0, **kwargs):
        probabilities.append(dropout_p)
        return real_attention(*args, dropout_p=dropout_p, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", attention)
    layer(hidden, None)
    layer.eval()
    layer(hidden, None)
    assert probabilities == [0.5, 0.0]  # the attention probabilities too, in training only


def test_a_deeper_layer_takes_the_backbones_heads_dropout_and_epsilon():
    config = DWAttConfig(backbone_config=bert(hidden_dropout_prob=0.3, layer_norm_eps=1e-7), fusion="deeper")
    layer = build_deeper_layer(config, intermediate_size=16)
    assert (layer.num_heads, layer.dropout) == (TINY["num_attention_heads"], 0.3)
    assert layer.attention_norm.eps == layer.output_norm.eps == 1e-7
    # A backbone config that names no head count (transformers' configs all do: a bare object stands in)
    headless = SimpleNamespace(backbone_config=SimpleNamespace(hidden_size=32, hidden_dropout_prob=0.1))
    assert build_deeper_layer(headless, intermediate_size=16).num_heads == 1


def deeper_parameters(config: DWAttConfig, num_layers: int, width: int) -> int:
    return num_layers * count_parameters(build_deeper_layer(config, width))


def test_the_deeper_baseline_buys_the_full_width_layers_dwatts_budget_buys_then_fits_the_width():
    """`deeper` is the paper's baseline at DWAtt's parameter count: as many layers of the backbone's own FFN width
    as the budget buys (at least one), then the FFN width whose total comes closest to the budget."""
    backbone = bert(num_hidden_layers=6, intermediate_size=16)
    config = DWAttConfig(backbone_config=backbone, fusion="deeper", dwatt_value_ratio=1.0)
    budget = count_parameters(build_fusion(config, "dwatt"))
    num_layers, width = match_deeper_to_dwatt(config)
    assert num_layers == round(budget / deeper_parameters(config, 1, backbone.intermediate_size)) >= 2
    closest = min(range(1, 10 * width), key=lambda w: abs(deeper_parameters(config, num_layers, w) - budget))
    assert width == closest
    assert abs(deeper_parameters(config, num_layers, width) - budget) < 0.02 * budget


def test_a_backbone_config_without_an_ffn_width_counts_full_width_layers_at_four_times_the_hidden_size():
    backbone = tiny_backbone_config("distilbert")  # DistilBERT names its FFN width hidden_dim
    backbone.n_layers = 24
    config = DWAttConfig(backbone_config=backbone, fusion="deeper", dwatt_value_ratio=1.0)
    assert not hasattr(backbone, "intermediate_size")
    budget = count_parameters(build_fusion(config, "dwatt"))
    num_layers, _ = match_deeper_to_dwatt(config)
    assert num_layers == max(1, round(budget / deeper_parameters(config, 1, 4 * backbone.hidden_size)))
    assert num_layers != max(1, round(budget / deeper_parameters(config, 1, 5 * backbone.hidden_size)))


def test_the_deeper_baseline_is_one_narrowest_layer_when_dwatt_is_smaller_than_any_layer():
    config = DWAttConfig(backbone_config=bert(), fusion="deeper", dwatt_value_ratio=0.05, dwatt_query_ratio=0.05,
                         dwatt_pos_dim=1)  # fmt: skip
    assert count_parameters(build_fusion(config, "dwatt")) < deeper_parameters(config, 1, 1)
    assert match_deeper_to_dwatt(config) == (1, 1)


# ---- fusions ------------------------------------------------------------------------------------------------------


def test_the_fusions_default_to_no_layer_norm_and_no_layer_dropout():
    for module in (DWAttScalarMix([0, 1, 2]), DWAttMeanFusion([0, 1, 2]), DWAttConcatFusion(8, [0, 1, 2])):
        assert (module.layer_norm, module.fusion_dropout) == (False, 0.0), type(module).__name__
    assert DWAttScalarMix([0, 1]).layer_norm_eps == DWAttMeanFusion([0, 1]).layer_norm_eps == 1e-12
    assert DWAttConcatFusion(8, [0, 1]).norm.eps == 1e-12
    depth = DWAttDepthAttention(32, [0, 1, 2])  # the paper's sizes: 24-dim depth embeddings, d/2 bottlenecks
    assert (depth.depth_embedding.shape, depth.query_in.out_features, depth.value_in_weight.shape[-1]) == (
        (3, 24),
        16,
        16,
    )


def test_concat_normalises_each_layer_with_the_backbones_epsilon():
    """States of tiny variance, where an epsilon of 1e-5 (the torch default) would flatten them: each block is
    normalised with the configured 1e-12 before the joint LayerNorm."""
    torch.manual_seed(0)
    module = DWAttConcatFusion(16, [0, 1, 2], layer_norm_eps=1e-12, layer_norm=True).double()
    torch.nn.init.normal_(module.weight, std=0.1)
    torch.nn.init.normal_(module.bias, std=0.1)
    hidden = tuple(1e-4 * torch.randn(1, 3, 16, dtype=torch.float64) for _ in range(3))
    blocks = [F.layer_norm(state, (16,), eps=1e-12) for state in hidden]
    joint = F.layer_norm(torch.cat(blocks, -1), (48,), module.norm.weight, module.norm.bias, eps=1e-12)
    expected = hidden[-1] + joint @ module.weight.T + module.bias
    torch.testing.assert_close(module(hidden)[0], expected, rtol=1e-9, atol=1e-9)


# ---- the sentence head and the public fuse ------------------------------------------------------------------------


def test_the_sentence_head_reads_the_first_tokens_fused_state():
    torch.manual_seed(0)
    config = DWAttConfig(backbone_config=bert(), fusion="dwatt", num_labels=3)
    model = DWAttForSequenceClassification(config).double().eval()
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        fused = model.dwatt(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        head = model.classifier
        expected = head.out_proj(torch.tanh(head.dense(fused[:, 0])))
    assert model.num_labels == 3
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)


def test_fuse_on_the_backbones_states_equals_the_forward_pass_mask_and_value_cache_included():
    input_ids, attention_mask = padded_batch()
    for fusion in ("deeper", "dwatt"):
        torch.manual_seed(0)
        model = DWAttModel(DWAttConfig(backbone_config=bert(), fusion=fusion)).double().eval()
        with torch.no_grad():
            output = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            fused, _ = model.fuse(output.hidden_states, attention_mask)  # deeper attends only to real tokens
            # A cache filled by an ablation (layer 1 masked) holds layers 0 and 2: the next call computes layer 1 and
            # reuses the others; a third call reuses all three.
            cache = {}
            if fusion == "dwatt":
                model.fuse(output.hidden_states, attention_mask, torch.tensor([True, False, True]), value_cache=cache)
            filled_by_ablation = dict(cache)
            cached = [model.fuse(output.hidden_states, attention_mask, value_cache=cache)[0] for _ in range(2)]
        real = attention_mask.bool()
        torch.testing.assert_close(fused[real], output.last_hidden_state[real], rtol=1e-12, atol=1e-12)
        for result in cached:
            torch.testing.assert_close(result, fused, rtol=1e-12, atol=1e-12)
        if fusion == "dwatt":
            assert sorted(filled_by_ablation) == [0, 2] and sorted(cache) == [0, 1, 2]
            assert all(isinstance(value, torch.Tensor) for value in cache.values())
        else:
            assert cache == {}


# ---- the base model's input checks and outputs ----------------------------------------------------------------------


LONG_INPUT = (
    "the input has {length} tokens, more than the 64 positions the backbone has learned; truncate to 64 "
    "(tokenizer(..., truncation=True, max_length=64)) or use dwatt.inference.predict_word_labels, which labels "
    "longer text with overlapping windows"
)


@pytest.mark.parametrize("family", ["bert", "roberta"])  # BERT learns 64 positions; RoBERTa 66, numbered from 2
def test_the_base_model_refuses_more_tokens_than_learned_positions_by_ids_or_embeddings(family):
    model = DWAttModel(DWAttConfig(backbone_config=tiny_backbone_config(family), fusion="dwatt")).eval()
    with torch.no_grad():
        assert model(input_ids=torch.full((1, 64), 5)).last_hidden_state.shape == (1, 64, 32)
        for inputs in ({"input_ids": torch.full((1, 65), 5)}, {"inputs_embeds": torch.zeros(1, 65, 32)}):
            with pytest.raises(ValueError) as error:
                model(**inputs)
            assert str(error.value) == LONG_INPUT.format(length=65)
        # Positions given by the caller are the caller's: no check of the length
        positions = torch.arange(70).remainder(60)[None] + (2 if family == "roberta" else 0)
        assert model(input_ids=torch.full((1, 70), 5), position_ids=positions).last_hidden_state.shape[1] == 70


def test_the_base_model_names_an_empty_input_and_leaves_a_missing_one_to_transformers():
    model = DWAttModel(DWAttConfig(backbone_config=bert(), fusion="dwatt")).eval()
    with pytest.raises(ValueError) as error:
        model(input_ids=torch.zeros(1, 0, dtype=torch.long))
    assert str(error.value) == "the input has 0 tokens; expected at least one (the tokenizer adds [CLS]/[SEP])"
    with pytest.raises(ValueError, match="specify exactly one of input_ids or inputs_embeds"):
        model()


def test_the_base_model_honours_return_dict_passes_extra_arguments_and_asks_the_backbone_for_a_dict(monkeypatch):
    model = DWAttModel(DWAttConfig(backbone_config=bert(), fusion="dwatt")).eval()
    input_ids, attention_mask = padded_batch()
    received, backbone_forward = [], model.backbone.forward

    def forward(**kwargs):
        received.append(kwargs.pop("marker", None))
        return backbone_forward(**kwargs)

    monkeypatch.setattr(model.backbone, "forward", forward)
    # A backbone configured for tuples still hands the fusion a dict (transformers 4.x read this; 5.x ignores it)
    model.backbone.config.return_dict = False
    with torch.no_grad():
        output = model(input_ids=input_ids, attention_mask=attention_mask, marker="for the backbone")
        as_tuple = model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)
    assert received == ["for the backbone", None]
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], output.last_hidden_state, rtol=0, atol=0)


def test_a_backbone_without_bert_style_position_embeddings_is_not_length_checked():
    """Its own limits apply (ModernBERT's rotary positions, say): the check must not fail looking for them."""
    model = DWAttModel(DWAttConfig(backbone_config=bert(), fusion="dwatt"))
    model.backbone = torch.nn.Identity()  # no `embeddings` at all
    model._check_length(torch.ones(1, 500, dtype=torch.long), None)


def test_layer_dropout_inside_a_layer_mask_never_revives_a_masked_layer_and_falls_back_to_the_mask():
    """A user's layer mask and layer dropout in training together: dropout acts on the unmasked layers; a token
    whose draw would drop every unmasked layer keeps the mask's layers instead (never nothing, never a masked one)."""
    module = DWAttMeanFusion([0, 1, 2], fusion_dropout=0.5).train()
    tokens = torch.zeros(4, 50, 8)
    mask = torch.tensor([True, False, True])
    torch.manual_seed(0)
    kept = module.kept_layers(tokens, mask)
    torch.manual_seed(0)
    within = mask & ~module.dropped_layers(tokens)  # the same draw
    fallback = ~within.any(-1, keepdim=True)
    assert kept.shape == (4, 50, 3)
    torch.testing.assert_close(kept, torch.where(fallback, mask.expand_as(within), within), rtol=0, atol=0)
    assert not kept[..., 1].any() and kept.any(-1).all()
    assert fallback.any() and (kept.sum(-1) == 1).any()  # both cases occur in this draw


def test_with_layer_dropout_off_a_fusion_in_training_draws_no_random_numbers():
    """Layer dropout at 0 must not touch the random stream: a run's other dropout draws (and so its result) stay
    those of a model without the option."""
    hidden = tuple(torch.randn(2, 3, 8) for _ in range(3))
    for module in (DWAttMeanFusion([0, 1, 2]), DWAttScalarMix([0, 1, 2]), DWAttConcatFusion(8, [0, 1, 2])):
        module.train()
        torch.manual_seed(0)
        module(hidden)
        after = torch.rand(1)
        torch.manual_seed(0)
        torch.testing.assert_close(after, torch.rand(1), rtol=0, atol=0, msg=type(module).__name__)


def test_dwatt_defaults_are_the_papers_and_tiny_widths_keep_one_unit():
    depth = DWAttDepthAttention(32, [0, 1, 2])
    assert (depth.hidden_size, depth.score_scale, depth.layer_norm_eps) == (32, 1.0, 1e-12)  # no sqrt(d) scaling
    assert (depth.fusion_dropout, depth.recompute_values) == (0.0, True)
    narrow = DWAttDepthAttention(1, [0, 1], query_ratio=0.4, value_ratio=0.4)  # round(0.4) = 0: kept at 1
    assert (narrow.query_in.out_features, narrow.value_in_weight.shape[-1]) == (1, 1)


def test_initial_weights_follow_the_configs_initializer_range():
    """Value MLPs and heads start at N(0, initializer_range) (the DWAtt config's) as BERT's layers do; depth
    embeddings uniform in [0, 1)."""
    torch.manual_seed(0)
    config = DWAttConfig(backbone_config=bert(hidden_size=64), fusion="dwatt", num_labels=40, initializer_range=0.05)
    model = DWAttForSequenceClassification(config)
    fusion = model.dwatt.fusion
    for name, weight in (("value_in_weight", fusion.value_in_weight), ("value_out_weight", fusion.value_out_weight),
                         ("classifier.dense", model.classifier.dense.weight)):  # fmt: skip
        weight = weight.detach()
        assert abs(float(weight.mean())) < 0.005 and 0.045 < float(weight.std()) < 0.055, name
    embedding = fusion.depth_embedding.detach()
    assert float(embedding.min()) >= 0.0 and 0.9 < float(embedding.max()) < 1.0


def test_key_and_concat_weights_start_where_the_paper_and_the_init_switch_put_them():
    """W_K uniform within nn.Linear's bound 1/sqrt(pos_dim) (its fan-in: keys are W_K p_n); concat's projection
    N(0, initializer_range), or zero under `fusion_init="identity"`."""
    torch.manual_seed(0)
    dwatt = DWAttModel(DWAttConfig(backbone_config=bert(hidden_size=64), dwatt_pos_dim=4)).fusion
    keys = dwatt.key_weight.detach()
    assert 0.45 < float(keys.abs().max()) <= 0.5 and float(keys.min()) < -0.45  # 1 / sqrt(4), both signs
    concat = DWAttModel(DWAttConfig(backbone_config=bert(hidden_size=64), fusion="concat", initializer_range=0.05))
    weight = concat.fusion.weight.detach()
    assert abs(float(weight.mean())) < 0.005 and 0.045 < float(weight.std()) < 0.055
    identity = DWAttModel(DWAttConfig(backbone_config=bert(hidden_size=64), fusion="concat", fusion_init="identity"))
    assert not identity.fusion.weight.detach().any()


# ---- assembly: what the config and the backbone hand to each part -------------------------------------------------


@pytest.mark.parametrize("fusion", ["dwatt", "concat", "scalar_mix", "mean"])
def test_build_fusion_hands_each_fusion_the_configs_fields_and_the_backbones_epsilon(fusion):
    config = DWAttConfig(backbone_config=bert(layer_norm_eps=1e-7), fusion=fusion, fusion_layers=[1, 2],
                         dwatt_pos_dim=5, dwatt_query_ratio=0.25, dwatt_value_ratio=0.75, fusion_dropout=0.3,
                         fusion_layer_norm=fusion != "dwatt")  # fmt: skip
    module = build_fusion(config)
    assert module.layer_indices == [1, 2] and module.fusion_dropout == 0.3
    hidden = config.backbone_config.hidden_size
    if fusion == "dwatt":
        assert module.depth_embedding.shape == (2, 5) and module.key_weight.shape == (5, hidden)
        assert module.query_in.out_features == round(0.25 * hidden) and module.query_norm.eps == 1e-7
        assert module.value_in_weight.shape[-1] == round(0.75 * hidden) and module.layer_norm_eps == 1e-7
    elif fusion == "concat":
        assert module.layer_norm is True and module.norm.eps == 1e-7
    else:
        assert module.layer_norm is True and module.layer_norm_eps == 1e-7


def test_a_config_made_before_fusion_layer_norm_existed_builds_unnormalised_fusions():
    config = DWAttConfig(backbone_config=bert(), fusion="concat")
    del config.fusion_layer_norm  # a pickled or hand-built config object of an older release
    for fusion in ("concat", "scalar_mix", "mean"):
        assert build_fusion(config, fusion).layer_norm is False, fusion


def test_the_backbones_epsilon_is_read_under_each_familys_name():
    from dwatt.modeling_dwatt import backbone_layer_norm_eps

    assert backbone_layer_norm_eps(SimpleNamespace(layer_norm_eps=1e-7)) == 1e-7  # BERT family
    assert backbone_layer_norm_eps(SimpleNamespace(norm_eps=1e-6)) == 1e-6  # ModernBERT
    assert backbone_layer_norm_eps(SimpleNamespace(layer_norm_eps=None, norm_eps=1e-5)) == 1e-5
    assert backbone_layer_norm_eps(SimpleNamespace()) == 1e-12  # BERT's


def test_the_base_layer_fusion_drops_nothing_by_default():
    from dwatt.modeling_dwatt import DWAttLayerFusion

    assert DWAttLayerFusion([0, 2]).fusion_dropout == 0.0


@pytest.mark.parametrize(
    ("fusion", "own"),
    [("dwatt", {"DWAttDepthAttention"}), ("concat", {"DWAttConcatFusion"}), ("deeper", {"DWAttDeeperLayer"}),
     ("scalar_mix", set()), ("last", set())],
)  # fmt: skip
def test_a_model_names_the_backbones_layers_and_its_own_fusion_blocks_as_unsplittable(fusion, own):
    """`device_map="auto"` and FSDP's auto-wrap read `_no_split_modules`: the backbone's layers must stay whole,
    and FSDP refuses a named class the model does not hold, so only the blocks this model has are listed."""
    from transformers import BertModel

    expected = set(BertModel._no_split_modules) | own
    config = DWAttConfig(backbone_config=bert(), fusion=fusion, num_labels=3)
    assert set(DWAttModel(config)._no_split_modules) == expected
    assert set(DWAttForSequenceClassification(config)._no_split_modules) == expected


@pytest.mark.parametrize(("fusion", "kept"), [("dwatt", {"fusion"}), ("concat", {"fusion"}), ("scalar_mix", {"fusion"}),
                                             ("mean", set()), ("last", set()), ("deeper", set())])  # fmt: skip
def test_only_a_model_with_fusion_weights_asks_to_keep_them_in_float32(fusion, kept):
    """transformers 4.x refuses a `_keep_in_fp32_modules_strict` entry the model lacks (tests/test_compat_tf457.py
    loads such models there): `last`, `mean` and `deeper` list nothing."""
    model = DWAttModel(DWAttConfig(backbone_config=bert(), fusion=fusion))
    assert set(model._keep_in_fp32_modules_strict or ()) == kept


def test_backbone_dropout_is_read_under_each_familys_name():
    from dwatt.modeling_dwatt import backbone_dropout

    assert backbone_dropout(SimpleNamespace(hidden_dropout_prob=0.2)) == 0.2  # BERT family
    assert backbone_dropout(SimpleNamespace(dropout=0.3)) == 0.3  # DistilBERT
    assert backbone_dropout(SimpleNamespace(mlp_dropout=0.4)) == 0.4  # ModernBERT
    assert backbone_dropout(SimpleNamespace()) == 0.1


def test_the_head_dropout_is_the_configs_or_else_the_backbones():
    given = DWAttForSequenceClassification(DWAttConfig(backbone_config=bert(), classifier_dropout=0.3, num_labels=3))
    inherited = DWAttForSequenceClassification(DWAttConfig(backbone_config=bert(hidden_dropout_prob=0.2), num_labels=3))
    assert (given.dropout.p, inherited.dropout.p) == (0.3, 0.2)
    from dwatt import DWAttForTokenClassification

    assert DWAttForTokenClassification(DWAttConfig(backbone_config=bert(), num_labels=3)).num_labels == 3
