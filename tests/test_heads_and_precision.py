"""Behaviour every head and every fusion must have, checked for all of them: a sentence gives the same output alone
and padded in a batch (every head), layer dropout drops whole layers and keeps the expected value (every fusion
that has it), and half precision matches float32 with the fusion's softmax in float32 (every fusion)."""

import pytest
import torch
from conftest import TINY, VOCAB
from transformers import BertConfig

from dwatt import (
    DWAttConfig,
    DWAttForMaskedLM,
    DWAttForMultipleChoice,
    DWAttForQuestionAnswering,
    DWAttForSequenceClassification,
    DWAttForTokenClassification,
)
from dwatt.configuration_dwatt import FUSIONS

HEADS = {
    "token": (DWAttForTokenClassification, lambda output: output.logits),
    "sequence": (DWAttForSequenceClassification, lambda output: output.logits),
    "mlm": (DWAttForMaskedLM, lambda output: output.logits),
    "qa": (DWAttForQuestionAnswering, lambda output: torch.stack([output.start_logits, output.end_logits], -1)),
}
#: Heads whose output has a position axis: compared at the real tokens only.
PER_TOKEN = {"token", "mlm", "qa"}


def tiny_config(fusion: str, **extra) -> DWAttConfig:
    backbone = BertConfig(vocab_size=VOCAB, max_position_embeddings=64, **TINY)
    return DWAttConfig(backbone_config=backbone, fusion=fusion, num_labels=3, **extra)


def model_of(head_class, fusion: str, dtype=torch.float64, **extra):
    torch.manual_seed(0)
    return head_class(tiny_config(fusion, **extra)).to(dtype).eval()


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("head", HEADS)
def test_every_head_gives_a_sentence_the_same_output_alone_and_padded(head, fusion):
    head_class, read = HEADS[head]
    model = model_of(head_class, fusion)
    generator = torch.Generator().manual_seed(1)
    short = torch.randint(4, VOCAB, (1, 4), generator=generator)
    other = torch.randint(4, VOCAB, (1, 9), generator=generator)
    batch = torch.zeros(2, 9, dtype=torch.long)
    batch[0, :4], batch[1] = short[0], other[0]
    mask = torch.zeros_like(batch)
    mask[0, :4], mask[1] = 1, 1
    with torch.no_grad():
        alone = read(model(input_ids=short, attention_mask=torch.ones_like(short)))[0]
        padded = read(model(input_ids=batch, attention_mask=mask))[0]
    if head in PER_TOKEN:
        padded = padded[:4]
    torch.testing.assert_close(padded, alone, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_multiple_choice_scores_each_choice_as_if_alone(fusion):
    model = model_of(DWAttForMultipleChoice, fusion)
    generator = torch.Generator().manual_seed(2)
    choices = torch.zeros(1, 2, 8, dtype=torch.long)
    mask = torch.zeros_like(choices)
    choices[0, 0, :3], choices[0, 1] = torch.randint(4, VOCAB, (3,), generator=generator), torch.randint(4, VOCAB, (8,))
    mask[0, 0, :3], mask[0, 1] = 1, 1
    with torch.no_grad():
        together = model(input_ids=choices, attention_mask=mask).logits[0]
        first_alone = model(input_ids=choices[:, :1, :3], attention_mask=mask[:, :1, :3]).logits[0]
    torch.testing.assert_close(together[0], first_alone[0], rtol=1e-10, atol=1e-10)


def fused_states(module, hidden_states, training: bool, seed: int):
    module.train(training)
    torch.manual_seed(seed)
    return module(hidden_states)[0]


@pytest.mark.parametrize("fusion", ["dwatt", "concat", "scalar_mix", "mean"])
def test_layer_dropout_drops_layers_in_training_only_and_never_every_layer(fusion):
    fusion_module = model_of(DWAttForTokenClassification, fusion, fusion_dropout=0.5).dwatt.fusion
    hidden = tuple(torch.randn(2, 5, 32, dtype=torch.float64) * (1 + n) for n in range(3))
    eval_output = fused_states(fusion_module, hidden, training=False, seed=0)
    draws = torch.stack([fused_states(fusion_module, hidden, training=True, seed=seed) for seed in range(50)])
    assert (draws - eval_output).abs().amax() > 1e-3 * eval_output.abs().amax()  # layers are dropped in training
    torch.testing.assert_close(fused_states(fusion_module, hidden, training=False, seed=9), eval_output, rtol=0, atol=0)
    fusion_module.train()
    for _ in range(200):
        assert fusion_module.kept_layers(hidden[-1], None).any(-1).all()  # a token never loses every layer


def test_concat_layer_dropout_keeps_the_expected_output_the_eval_output():
    """Inverted dropout over layer blocks: each kept block is divided by its keep probability, (1-p) + p^N with
    the keep-every-layer fallback, so the average over draws is the eval output (and a block is never rescaled
    by 1 - p alone)."""
    module = model_of(DWAttForTokenClassification, "concat", fusion_dropout=0.5).dwatt.fusion
    torch.nn.init.normal_(module.weight, std=0.2)
    hidden = tuple(torch.randn(1, 1, 32, dtype=torch.float64) for _ in range(3))
    eval_branch = fused_states(module, hidden, training=False, seed=0) - hidden[-1]
    branches = torch.stack([fused_states(module, hidden, training=True, seed=seed) - hidden[-1]
                            for seed in range(4000)])  # fmt: skip
    torch.testing.assert_close(branches.mean(0), eval_branch, rtol=0, atol=0.06 * eval_branch.abs().max().item())
    torch.nn.init.eye_(module.weight[:, :32])  # the branch shows the first layer's normalised block alone
    torch.nn.init.zeros_(module.weight[:, 32:])
    torch.nn.init.zeros_(module.bias)
    first_block = fused_states(module, hidden, training=False, seed=0) - hidden[-1]
    for seed in range(20):
        block = fused_states(module, hidden, training=True, seed=seed) - hidden[-1]
        expected = first_block / (0.5 + 0.5**3) if block.abs().sum() > 0 else torch.zeros_like(block)
        torch.testing.assert_close(block, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_bf16_matches_float32_with_the_fusion_softmax_in_float32(fusion, monkeypatch):
    reference = model_of(DWAttForTokenClassification, fusion, dtype=torch.float32)
    half = model_of(DWAttForTokenClassification, fusion, dtype=torch.bfloat16)
    inputs = {"input_ids": torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(3))}
    softmax_dtypes = []
    real_softmax = torch.softmax

    def recording_softmax(tensor, dim, dtype=None):
        softmax_dtypes.append((tensor.dtype, dtype))
        return real_softmax(tensor, dim, dtype=dtype)

    monkeypatch.setattr(torch, "softmax", recording_softmax)  # the fusions call torch.softmax over layers
    with torch.no_grad():
        expected = reference(**inputs, output_fusion_weights=True)
        softmax_dtypes.clear()
        got = half(**inputs, output_fusion_weights=True)
    assert got.logits.dtype == torch.bfloat16
    scale = expected.logits.abs().max().item()
    torch.testing.assert_close(got.logits.float(), expected.logits, rtol=0, atol=0.05 * scale)
    if got.fusion_weights is not None:  # computed in float32, handed back in the model's precision
        assert got.fusion_weights.dtype == torch.bfloat16
    if fusion in ("dwatt", "scalar_mix"):
        assert softmax_dtypes and all(dtype == torch.float32 for _, dtype in softmax_dtypes), softmax_dtypes
        torch.testing.assert_close(got.fusion_weights.float(), expected.fusion_weights, rtol=0, atol=2e-2)


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_loading_in_half_precision_keeps_the_fusion_in_float32(fusion, half, tmp_path):
    """from_pretrained(dtype=bf16 or fp16): the backbone and head in half, the fusion's parameters in float32
    (`_keep_in_fp32_modules_strict`); it reads the states in float32 and the logits come out in half, close to
    the float32 model's. The fusion weights of a float32 fusion match the float32 model's more closely than the
    bf16 bound of the all-half test above."""
    reference = model_of(DWAttForTokenClassification, fusion, dtype=torch.float32)
    reference.save_pretrained(tmp_path)
    loaded = DWAttForTokenClassification.from_pretrained(tmp_path, dtype=half).eval()
    fusion_dtypes = {p.dtype for p in loaded.dwatt.fusion.parameters()} if loaded.dwatt.fusion is not None else set()
    assert fusion_dtypes <= {torch.float32} and (fusion_dtypes or fusion in ("last", "mean", "deeper"))
    assert {p.dtype for p in loaded.dwatt.backbone.parameters()} == {half}
    assert loaded.classifier.weight.dtype == half
    inputs = {"input_ids": torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(3))}
    with torch.no_grad():
        expected = reference(**inputs, output_fusion_weights=True)
        got = loaded(**inputs, output_fusion_weights=True)
    assert got.logits.dtype == half
    scale = expected.logits.abs().max().item()
    torch.testing.assert_close(got.logits.float(), expected.logits, rtol=0, atol=0.05 * scale)
    if fusion_dtypes and expected.fusion_weights is not None:  # `mean` has no parameters to keep
        assert got.fusion_weights.dtype == torch.float32
        torch.testing.assert_close(got.fusion_weights, expected.fusion_weights, rtol=0, atol=1e-2)


@pytest.mark.parametrize("option", ["dtype", "torch_dtype"])
@pytest.mark.parametrize("fusion", ["dwatt", "concat", "mean", "deeper"])
def test_from_backbone_in_half_precision_loads_as_from_pretrained_does(fusion, option, tiny_bert_dir, tmp_path):
    """Before: `from_backbone(path, dtype=torch.bfloat16)` sent dtype to DWAttConfig, so the whole model stayed in
    float32 and config.json said bfloat16. Now the backbone loads in bf16, the head (and the deeper layers) follow it,
    the fusion stays in float32 as under from_pretrained(dtype=...), and the output is close to the float32 model's."""
    half = torch.bfloat16
    torch.manual_seed(0)
    reference = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), fusion=fusion, num_labels=3)
    torch.manual_seed(0)
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), fusion=fusion, num_labels=3,
                                                      **{option: half})  # fmt: skip
    assert {p.dtype for p in model.dwatt.backbone.parameters()} == {half}
    assert model.classifier.weight.dtype == half
    fusion_dtypes = {p.dtype for p in model.dwatt.fusion.parameters()} if model.dwatt.fusion is not None else set()
    assert fusion_dtypes <= {torch.float32}
    if model.dwatt.deeper is not None:
        assert {p.dtype for p in model.dwatt.deeper.parameters()} == {half}
    assert model.config.dtype == half and "torch_dtype" not in model.config.to_diff_dict()
    inputs = {"input_ids": torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(3))}
    with torch.no_grad():
        expected, got = reference(**inputs).logits.double(), model(**inputs).logits
    assert got.dtype == half
    scale = expected.abs().max().item()
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=0.05 * scale)
    model.save_pretrained(tmp_path)
    loaded = DWAttForTokenClassification.from_pretrained(tmp_path)  # config.json's dtype is what was saved
    assert loaded.classifier.weight.dtype == half
    assert fusion_dtypes == ({p.dtype for p in loaded.dwatt.fusion.parameters()} if fusion_dtypes else set())
