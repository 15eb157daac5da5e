"""Every fusion on every backbone family: shapes, gradients, exact baselines, weights and masks."""

import pytest
import torch
from conftest import tiny_backbone_config
from transformers import AutoModelForTokenClassification

from dwatt import FUSIONS, DWAttConfig, DWAttForMaskedLM, DWAttForTokenClassification, DWAttModel
from dwatt.experiments.budget import fusion_budget
from dwatt.modeling_dwatt import DWAttDepthAttention


def tiny_model(backbone_type="bert", cls=DWAttForTokenClassification, **config_kwargs):
    torch.manual_seed(0)
    config = DWAttConfig(backbone_config=tiny_backbone_config(backbone_type), num_labels=5, **config_kwargs)
    return cls(config)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_forward_backward_every_fusion_and_backbone(backbone_type, fusion, batch):
    model = tiny_model(backbone_type, fusion=fusion, fusion_dropout=0.2)
    labels = torch.randint(0, 5, batch["input_ids"].shape)
    output = model(**batch, labels=labels, output_fusion_weights=True)
    assert output.logits.shape == (2, 7, 5)
    assert torch.isfinite(output.loss)
    output.loss.backward()
    fusion_module = model.dwatt.fusion or model.dwatt.deeper
    grads = {} if fusion_module is None else {name: p.grad for name, p in fusion_module.named_parameters()}
    assert bool(grads) == (fusion not in ("last", "mean"))  # mean and last have no parameters
    for name, grad in grads.items():  # each tensor, not any: a detached query or value path leaves its own at 0
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, f"{fusion}: no gradient reaches {name}"
    assert model.classifier.weight.grad.abs().sum() > 0
    if fusion in ("dwatt", "scalar_mix", "mean"):
        assert output.fusion_weights.shape == (2, 7, 3)
        torch.testing.assert_close(output.fusion_weights.sum(-1), torch.ones(2, 7))
    else:
        assert output.fusion_weights is None


def test_masked_lm_ties_decoder_to_input_embeddings(backbone_type, batch):
    model = tiny_model(backbone_type, cls=DWAttForMaskedLM)
    assert model.lm_head.decoder.weight is model.get_input_embeddings().weight
    output = model(**batch, labels=batch["input_ids"])
    assert output.logits.shape == (2, 7, model.config.backbone_config.vocab_size)
    output.loss.backward()


@pytest.mark.parametrize("backbone_type", ["bert", "roberta", "electra"])
def test_last_equals_stock_token_classification(backbone_type, batch):
    model = tiny_model(backbone_type, fusion="last").eval()
    stock_config = tiny_backbone_config(backbone_type)
    stock_config.num_labels = 5
    stock = AutoModelForTokenClassification.from_config(stock_config).eval()
    stock.base_model.load_state_dict(model.dwatt.backbone.state_dict())  # strict: same modules, no pooler
    stock.classifier.load_state_dict(model.classifier.state_dict())
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, stock(**batch).logits)


@pytest.mark.parametrize("fusion", ["dwatt", "concat"])
def test_identity_init_starts_exactly_at_last(fusion, batch):
    model = tiny_model(fusion=fusion, fusion_init="identity").eval()
    last = tiny_model(fusion="last").eval()
    last.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, last(**batch).logits)
    # and it can leave the identity: the zeroed scale gets a gradient
    model.train()
    model(**batch, labels=torch.randint(0, 5, (2, 7))).loss.backward()
    zeroed = model.dwatt.fusion.value_norm_weight if fusion == "dwatt" else model.dwatt.fusion.weight
    assert zeroed.grad.abs().sum() > 0


@pytest.mark.parametrize("fusion", ["dwatt", "scalar_mix", "mean", "concat"])
def test_layer_mask_removes_layers(fusion, batch):
    model = tiny_model(fusion=fusion).eval()
    mask = torch.tensor([True, False, True])
    with torch.no_grad():
        full = model(**batch, output_fusion_weights=True)
        masked = model(**batch, fusion_layer_mask=mask, output_fusion_weights=True)
    assert not torch.equal(full.logits, masked.logits)
    if fusion != "concat":
        assert torch.all(masked.fusion_weights[..., 1] == 0)
        torch.testing.assert_close(masked.fusion_weights.sum(-1), torch.ones(2, 7))


def test_layer_mask_equals_fusing_fewer_layers(batch):
    """Masking a layer of DWAtt is the same model as one built without that layer."""
    model = tiny_model(fusion="dwatt").eval()
    fewer = tiny_model(fusion="dwatt", fusion_layers=[0, 2]).eval()
    state = model.state_dict()
    for name, tensor in fewer.state_dict().items():
        source = state[name]
        if "fusion" in name and source.shape != tensor.shape:
            source = source[[0, 2]]
        tensor.copy_(source)
    with torch.no_grad():
        masked = model(**batch, fusion_layer_mask=torch.tensor([True, False, True])).logits
        torch.testing.assert_close(masked, fewer(**batch).logits)


@pytest.mark.parametrize(
    "bad", [torch.tensor([True, False]), torch.tensor([1, 0, 1]), torch.zeros(3, dtype=torch.bool)]
)
def test_bad_layer_mask_is_refused(bad, batch):
    with pytest.raises(ValueError, match=r"fusion_layer_mask must be a bool tensor of shape \(3,\)"):
        tiny_model()(**batch, fusion_layer_mask=bad)
    with pytest.raises(ValueError, match="fusion='last' fuses no layers"):
        tiny_model(fusion="last")(**batch, fusion_layer_mask=torch.tensor([True]))


def test_padding_does_not_change_real_tokens(batch):
    model = tiny_model(fusion="dwatt").eval().double()  # float64: padding changes the kernels' blocking
    short = {k: v[1:, :5] for k, v in batch.items()}
    with torch.no_grad():
        padded = model(**batch).logits[1, :5]
        alone = model(**short).logits[0]
    torch.testing.assert_close(padded, alone, rtol=1e-10, atol=1e-10)


def batched_values(attention, stacked):
    """The value equations as one contraction over a layer axis (the form the layer loop replaced)."""
    hidden = torch.einsum("btnd,ndr->btnr", stacked, attention.value_in_weight) + attention.value_in_bias
    hidden = torch.nn.functional.layer_norm(
        torch.nn.functional.gelu(hidden), hidden.shape[-1:], eps=attention.layer_norm_eps
    )
    hidden = hidden * attention.value_mid_norm_weight + attention.value_mid_norm_bias
    values = torch.einsum("btnr,nrd->btnd", hidden, attention.value_out_weight) + attention.value_out_bias
    values = torch.nn.functional.layer_norm(values, values.shape[-1:], eps=attention.layer_norm_eps)
    return values * attention.value_norm_weight + attention.value_norm_bias


def test_dwatt_value_mlps_are_stacked_parameters_matching_the_batched_equations():
    """One [N, d, r] tensor per weight (no ModuleList), and the layer loop equals the batched formula,
    forward and backward. In float64: float32 kernels round differently per CPU (AVX2, AVX-512, default)."""
    attention = tiny_model().dwatt.fusion.double()
    assert isinstance(attention, DWAttDepthAttention)
    assert attention.value_in_weight.shape == (3, 32, 16) and attention.value_out_weight.shape == (3, 16, 32)
    assert not any(isinstance(m, torch.nn.ModuleList) for m in attention.modules())
    stacked = torch.randn(2, 5, 3, 32, dtype=torch.float64)
    looped = attention.values(stacked)
    expected = batched_values(attention, stacked)
    torch.testing.assert_close(looped, expected, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(looped)
    looped_grads = torch.autograd.grad((looped * weights).sum(), list(attention.parameters()), allow_unused=True)
    expected_grads = torch.autograd.grad((expected * weights).sum(), list(attention.parameters()), allow_unused=True)
    for name, got, want in zip([n for n, _ in attention.named_parameters()], looped_grads, expected_grads):
        assert (got is None) == (want is None), name
        if got is not None:
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=name)


def test_dwatt_skips_the_value_mlp_of_a_masked_layer(batch):
    """A layer off for every token contributes exactly 0, so its MLP is not run (the first-k saving)."""
    model = tiny_model().eval()
    fusion = model.dwatt.fusion
    computed = []
    original = fusion.value
    fusion.value = lambda hidden, mlp: computed.append(mlp[0].data_ptr()) or original(hidden, mlp)
    try:
        with torch.no_grad():
            model(**batch, fusion_layer_mask=torch.tensor([True, False, True]))
    finally:
        del fusion.value
    expected = [mlp[0].data_ptr() for i, mlp in enumerate(fusion.value_mlps()) if i != 1]
    assert computed == expected


def test_sqrt_d_scale_flattens_initial_weights(batch):
    unscaled = tiny_model(dwatt_scale="none").eval()
    scaled = tiny_model(dwatt_scale="sqrt_d").eval()
    scaled.load_state_dict(unscaled.state_dict())
    with torch.no_grad():
        w_none = unscaled(**batch, output_fusion_weights=True).fusion_weights.double()
        w_sqrt = scaled(**batch, output_fusion_weights=True).fusion_weights.double()
    # Same scores, divided by sqrt(d): log-weight differences between layers shrink by exactly sqrt(32).
    spread_none = w_none.log() - w_none.log()[..., :1]
    spread_sqrt = w_sqrt.log() - w_sqrt.log()[..., :1]
    torch.testing.assert_close(
        spread_sqrt * 32**0.5, spread_none, rtol=1e-4, atol=1e-4 * float(spread_none.abs().max())
    )
    assert w_sqrt.max() < w_none.max()


@pytest.mark.parametrize("backbone_type", ["bert", "modernbert", "distilbert"])
def test_deeper_matches_dwatt_budget_within_ten_percent(backbone_type):
    config = tiny_backbone_config(backbone_type)
    dwatt, deeper = fusion_budget(config, "dwatt"), fusion_budget(config, "deeper")
    assert abs(deeper.fusion_parameters / dwatt.fusion_parameters - 1) <= 0.10
    assert deeper.deeper_num_layers >= 1 and deeper.deeper_intermediate_size >= 1


def test_deeper_shape_is_saved_in_config(tmp_path):
    model = tiny_model(fusion="deeper")
    assert model.config.deeper_num_layers == len(model.dwatt.deeper)
    model.save_pretrained(tmp_path)
    reloaded = DWAttForTokenClassification.from_pretrained(tmp_path)
    assert reloaded.config.deeper_intermediate_size == model.config.deeper_intermediate_size


def test_base_model_returns_fused_states(batch):
    model = tiny_model(cls=DWAttModel).eval()
    output = model(**batch, output_hidden_states=True, output_fusion_weights=True)
    assert output.last_hidden_state.shape == (2, 7, 32)
    assert len(output.hidden_states) == 3
    backbone = model.backbone(**batch, output_hidden_states=True)
    for ours, theirs in zip(output.hidden_states, backbone.hidden_states, strict=True):
        assert torch.equal(ours, theirs)  # the backbone's own states, passed through
    fused, weights = model.fuse(backbone.hidden_states)  # and the fused state is the fusion of exactly those
    assert torch.equal(output.last_hidden_state, fused) and torch.equal(output.fusion_weights, weights)
    as_tuple = model(**batch, return_dict=False)
    torch.testing.assert_close(as_tuple[0], output.last_hidden_state)


def test_question_answering_and_multiple_choice_heads(batch):
    from dwatt import DWAttForMultipleChoice, DWAttForQuestionAnswering

    qa = tiny_model(cls=DWAttForQuestionAnswering)
    output = qa(**batch, start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([3, 4]))
    assert output.start_logits.shape == output.end_logits.shape == (2, 7)
    output.loss.backward()

    choice = tiny_model(cls=DWAttForMultipleChoice)
    choices = {name: value[None].expand(3, 2, 7) for name, value in batch.items()}  # 3 questions x 2 choices
    output = choice(**choices, labels=torch.tensor([0, 1, 1]), output_fusion_weights=True)
    assert output.logits.shape == (3, 2) and output.fusion_weights.shape == (6, 7, 3)
    output.loss.backward()
    assert len(choice(**choices, return_dict=False)) == 1  # only logits: None fields are dropped
