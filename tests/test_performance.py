"""Issue 19's model changes: DWAtt's value-MLP recomputation (same gradients, less saved for backward) and the
layer-loop mean / scalar mix (same function as the stacked formula, no [B, T, N, d] copy)."""

import json

import pytest
import torch
from conftest import tiny_backbone_config

from dwatt import DWAttConfig, DWAttForTokenClassification
from dwatt.experiments.overhead import saved_activation_bytes


def tiny(fusion="dwatt", dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    config = DWAttConfig(backbone_config=tiny_backbone_config(), fusion=fusion, num_labels=5, **kwargs)
    return DWAttForTokenClassification(config).to(dtype)


def loss_and_gradients(model, batch):
    model.zero_grad(set_to_none=True)
    labels = torch.arange(batch["input_ids"].numel()).view_as(batch["input_ids"]) % 5
    loss = model(**batch, labels=labels).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("fusion_dropout", [0.0, 0.3])
def test_recomputed_values_give_the_same_gradients_in_float64(batch, fusion_dropout):
    recomputed, stored = (tiny(dwatt_recompute_values=flag, fusion_dropout=fusion_dropout) for flag in (True, False))
    stored.load_state_dict(recomputed.state_dict())
    recomputed.train(), stored.train()
    torch.manual_seed(1)
    loss_a, grads_a = loss_and_gradients(recomputed, batch)
    torch.manual_seed(1)
    loss_b, grads_b = loss_and_gradients(stored, batch)
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=0)
    assert grads_a.keys() == grads_b.keys() and any("value_in_weight" in name for name in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-12, atol=1e-14, msg=name)


def test_recomputation_saves_less_for_backward(batch):
    batch = {**batch, "labels": torch.zeros_like(batch["input_ids"])}
    sizes = {flag: saved_activation_bytes(tiny(dwatt_recompute_values=flag, dtype=torch.float32), batch)
             for flag in (True, False)}  # fmt: skip
    stock_like = saved_activation_bytes(tiny("last", dtype=torch.float32), batch)
    # Per fused layer and token the stored path keeps 3 r + d floats (pre-GELU, GELU, LN out, v_n's LN input) on
    # top of v_n; recomputation keeps v_n only.
    assert stock_like < sizes[True] < sizes[False]
    assert sizes[True] - stock_like < 0.6 * (sizes[False] - stock_like)


@pytest.mark.parametrize(("fusion", "layer_norm"), [("mean", False), ("scalar_mix", False), ("scalar_mix", True)])
def test_layer_loop_equals_the_stacked_formula(fusion, layer_norm, batch):
    kwargs = {"scalar_mix_layer_norm": True} if layer_norm else {}
    model = tiny(fusion, **kwargs).eval()
    module = model.dwatt.fusion
    with torch.no_grad():
        if fusion == "scalar_mix":
            module.scalar_logits.copy_(torch.tensor([0.3, -1.0, 2.0]))
            module.gamma.fill_(1.7)
        hidden_states = model.dwatt.backbone(**batch, output_hidden_states=True).hidden_states
        fused, weights = module(hidden_states)
        stacked = torch.stack(hidden_states, dim=-2)  # every hidden state is fused ("all")
        if layer_norm:
            stacked = torch.nn.functional.layer_norm(stacked, stacked.shape[-1:], eps=module.layer_norm_eps)
        if fusion == "scalar_mix":
            expected = module.gamma * torch.einsum("n,btnd->btd", torch.softmax(module.scalar_logits, 0), stacked)
        else:
            expected = stacked.mean(dim=-2)
    torch.testing.assert_close(fused, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]), rtol=1e-12, atol=1e-12)


def test_recompute_flag_is_saved_and_old_configs_default_to_it(tmp_path):
    assert DWAttConfig().dwatt_recompute_values is True and tiny().dwatt.fusion.recompute_values is True
    model = tiny(dwatt_recompute_values=False)
    model.save_pretrained(tmp_path)
    assert DWAttConfig.from_pretrained(tmp_path).dwatt_recompute_values is False
    assert model.dwatt.fusion.recompute_values is False
    # A config saved before the knob existed loads with the default; it changes memory, never outputs.
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["dwatt_recompute_values"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert DWAttConfig.from_pretrained(tmp_path).dwatt_recompute_values is True
    with pytest.raises(ValueError, match="dwatt_recompute_values='yes'"):
        DWAttConfig(dwatt_recompute_values="yes")
