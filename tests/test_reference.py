"""The fusion modules against references written straight from the equations (docs/DESIGN.md, section 2).

The references below take the modules' parameters as plain float64 tensors and share no code with
`modeling_dwatt.py`: LayerNorm, GELU, ELU and softmax are spelled out. A wrong query, scale, key, value
path, residual or mask in the modules fails here. The deeper layer is compared with transformers'
own `BertLayer` carrying the same weights.
"""

import math

import pytest
import torch
from conftest import tiny_backbone_config
from transformers.models.bert.modeling_bert import BertLayer

from dwatt import DWAttConfig, DWAttModel

WIDTH, EPS = 32, 1e-12


def layer_norm(x, gain, bias, eps=EPS):
    mean = x.mean(dim=-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + eps) * gain + bias


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def elu(x):
    return torch.where(x > 0, x, torch.exp(x) - 1.0)


def softmax(scores):
    shifted = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
    return shifted / shifted.sum(dim=-1, keepdim=True)


def params(module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone().double() for name, p in module.named_parameters()}


def reference_dwatt(p, hidden_states, layer_indices, scale, mask=None):
    """h = z_L + sum_n a_n v_n with v_n = LN_n(W_n LN(gelu(U_n z_n))), q = 1 + elu(z_L + f_Q(z_L)),
    k_n = W_K p_n, a = softmax_n(q . k_n / s), s = sqrt(d) for "sqrt_d" else 1; masked layers get a_n = 0."""
    z_last = hidden_states[-1]
    query_hidden = layer_norm(
        gelu(z_last @ p["query_in.weight"].T + p["query_in.bias"]), p["query_norm.weight"], p["query_norm.bias"]
    )
    query = 1.0 + elu(z_last + query_hidden @ p["query_out.weight"].T + p["query_out.bias"])
    scores = []
    values = []
    for n, index in enumerate(layer_indices):
        key = p["depth_embedding"][n] @ p["key_weight"]  # k_n = W_K p_n, [d]
        scores.append((query * key).sum(-1) / (math.sqrt(WIDTH) if scale == "sqrt_d" else 1.0))
        inner = gelu(hidden_states[index] @ p["value_in_weight"][n] + p["value_in_bias"][n])
        inner = layer_norm(inner, p["value_mid_norm_weight"][n], p["value_mid_norm_bias"][n])
        value = inner @ p["value_out_weight"][n] + p["value_out_bias"][n]
        values.append(layer_norm(value, p["value_norm_weight"][n], p["value_norm_bias"][n]))
    scores = torch.stack(scores, dim=-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores)
    fused = z_last + sum(weights[..., n : n + 1] * values[n] for n in range(len(layer_indices)))
    return fused, weights


def reference_concat(p, hidden_states, layer_indices, mask=None):
    """h = z_L + W_C LN([z_0; ...; z_L]) (a masked layer's block zeroed after the LN)."""
    blocks = layer_norm(
        torch.cat([hidden_states[i] for i in layer_indices], dim=-1), p["norm.weight"], p["norm.bias"]
    ).split(WIDTH, dim=-1)
    if mask is not None:
        blocks = [block * float(keep) for block, keep in zip(blocks, mask.tolist(), strict=True)]
    return hidden_states[-1] + torch.cat(blocks, dim=-1) @ p["weight"].T + p["bias"]


def random_states(num_states=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 5, WIDTH, generator=generator, dtype=torch.float64) for _ in range(num_states))


def spread_parameters(module, seed=1):
    """Move every parameter off its init (LN gains of 1, zero biases), so each one matters in the check."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return module


def fusion_of(fusion, **config_kwargs):
    torch.manual_seed(0)
    config = DWAttConfig(backbone_config=tiny_backbone_config(), fusion=fusion, **config_kwargs)
    return spread_parameters(DWAttModel(config).eval().double())


CASES = [
    ({"dwatt_scale": "none"}, None),
    ({"dwatt_scale": "sqrt_d"}, None),
    ({"dwatt_scale": "sqrt_d", "fusion_layers": [0, -1]}, None),
    ({"dwatt_scale": "none", "fusion_layers": [1]}, None),
    ({"dwatt_scale": "sqrt_d"}, [True, False, True]),
    ({"dwatt_scale": "none", "dwatt_pos_dim": 5, "dwatt_query_ratio": 0.25, "dwatt_value_ratio": 1.0},
     [False, True, True]),
]  # fmt: skip


@pytest.mark.parametrize(("config_kwargs", "mask"), CASES)
def test_dwatt_fused_states_and_weights_equal_the_equations(config_kwargs, mask):
    model = fusion_of("dwatt", **config_kwargs)
    fusion = model.fusion
    states = random_states()
    mask = None if mask is None else torch.tensor(mask)
    with torch.no_grad():
        fused, weights = model.fuse(states, fusion_layer_mask=mask)
    want_fused, want_weights = reference_dwatt(
        params(fusion), states, fusion.layer_indices, config_kwargs["dwatt_scale"], mask
    )
    torch.testing.assert_close(weights, want_weights, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused, want_fused, rtol=1e-12, atol=1e-12)
    if len(fusion.layer_indices) > 1:
        assert 0.02 < float(want_weights.max() - want_weights.min())  # the weights vary: a real check


def test_dwatt_query_reads_the_last_layer_and_values_their_own_layer():
    """Changing z_0 moves only v_0's term; changing z_L moves the query (so every weight)."""
    model = fusion_of("dwatt", dwatt_scale="sqrt_d")
    states = random_states()
    with torch.no_grad():
        _, weights = model.fuse(states)
        _, weights_first_changed = model.fuse((states[0] + 1.0, *states[1:]))
        _, weights_last_changed = model.fuse((*states[:-1], states[-1] + 1.0))
    torch.testing.assert_close(weights_first_changed, weights, rtol=0, atol=0)
    assert not torch.allclose(weights_last_changed, weights)


@pytest.mark.parametrize(("fusion_layers", "mask"), [("all", None), ([0, 2], None), ("all", [True, False, True])])
def test_concat_equals_the_equation(fusion_layers, mask):
    model = fusion_of("concat", fusion_layers=fusion_layers)
    states = random_states()
    mask = None if mask is None else torch.tensor(mask)
    with torch.no_grad():
        fused, weights = model.fuse(states, fusion_layer_mask=mask)
    assert weights is None
    want = reference_concat(params(model.fusion), states, model.fusion.layer_indices, mask)
    torch.testing.assert_close(fused, want, rtol=1e-12, atol=1e-12)


def test_deeper_layer_equals_bert_layer_with_the_same_weights():
    model = fusion_of("deeper", deeper_num_layers=1, deeper_intermediate_size=48)
    (layer,) = model.deeper
    config = tiny_backbone_config()
    config.intermediate_size, config.hidden_act, config._attn_implementation = 48, "gelu", "eager"
    bert = BertLayer(config).eval().double()
    p = params(layer)
    q_w, k_w, v_w = p["qkv.weight"].split(WIDTH)
    q_b, k_b, v_b = p["qkv.bias"].split(WIDTH)
    with torch.no_grad():
        for target, weight, bias in (
            (bert.attention.self.query, q_w, q_b),
            (bert.attention.self.key, k_w, k_b),
            (bert.attention.self.value, v_w, v_b),
            (bert.attention.output.dense, p["attention_out.weight"], p["attention_out.bias"]),
            (bert.attention.output.LayerNorm, p["attention_norm.weight"], p["attention_norm.bias"]),
            (bert.intermediate.dense, p["intermediate.weight"], p["intermediate.bias"]),
            (bert.output.dense, p["output.weight"], p["output.bias"]),
            (bert.output.LayerNorm, p["output_norm.weight"], p["output_norm.bias"]),
        ):
            target.weight.copy_(weight)
            target.bias.copy_(bias)
    hidden = random_states(1)[0]
    with torch.no_grad():
        ours = layer(hidden, None)
        theirs = bert(hidden)
    theirs = theirs[0] if isinstance(theirs, tuple) else theirs
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_layer_dropout_drops_about_half_and_renormalises_the_rest():
    """p=0.5 over 7 layers: a (token, layer) pair gets weight 0 with probability 0.5 - 0.5**7 (a token never
    loses every layer); the kept weights are the eval weights renormalised over the kept layers."""
    torch.manual_seed(0)
    backbone = tiny_backbone_config()
    backbone.num_hidden_layers = 6
    model = spread_parameters(DWAttModel(DWAttConfig(backbone_config=backbone, fusion_dropout=0.5)).double())
    generator = torch.Generator().manual_seed(3)
    states = tuple(torch.randn(64, 64, WIDTH, generator=generator, dtype=torch.float64) for _ in range(7))
    with torch.no_grad():
        model.eval()
        _, eval_weights = model.fuse(states)
        model.train()
        torch.manual_seed(4)
        _, train_weights = model.fuse(states)
    assert (eval_weights > 0).all()  # nothing dropped in eval
    dropped = train_weights == 0
    assert abs(dropped.double().mean().item() - (0.5 - 0.5**7)) < 0.02
    assert not dropped.all(dim=-1).any()
    renormalised = eval_weights * ~dropped / (eval_weights * ~dropped).sum(dim=-1, keepdim=True)
    torch.testing.assert_close(train_weights, renormalised, rtol=1e-10, atol=1e-12)
