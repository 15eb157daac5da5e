"""Property tests (hypothesis) for the fusion modules and the base model.

Random batch sizes, lengths, depths, widths, layer masks and hidden-state scales:
- padding never changes the outputs at real tokens (fusions are per token; the backbone masks padding);
- fusion weights are finite, non-negative, zero on masked layers and sum to 1 over the layers that take
  part, in eval and in training mode (layer dropout), even for degenerate (constant or huge) inputs.
"""

from __future__ import annotations

import copy
from functools import cache

import torch
from conftest import VOCAB, tiny_backbone_config
from hypothesis import given, settings
from hypothesis import strategies as st

from dwatt import FUSIONS, DWAttConfig, DWAttModel
from dwatt.modeling_dwatt import DWAttConcatFusion, DWAttDepthAttention, DWAttMeanFusion, DWAttScalarMix

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)  # derandomize: the same examples every run
MODEL_SETTINGS = settings(SETTINGS, max_examples=20)  # each example runs the backbone a few times
MODULE_FUSIONS = ("dwatt", "concat", "scalar_mix", "mean")
WEIGHTED_FUSIONS = ("dwatt", "scalar_mix", "mean")  # concat returns no weights


def build_fusion(kind: str, width: int, layer_indices: list[int], seed: int, dropout: float = 0.0, scale="none"):
    """A fusion module with seeded random parameters (module-level: no model init runs here)."""
    torch.manual_seed(seed)
    if kind == "dwatt":
        module = DWAttDepthAttention(width, layer_indices, pos_dim=5, scale=scale, fusion_dropout=dropout)
    elif kind == "concat":
        module = DWAttConcatFusion(width, layer_indices, fusion_dropout=dropout)
    elif kind == "scalar_mix":
        module = DWAttScalarMix(layer_indices, layer_norm=seed % 2 == 0, fusion_dropout=dropout)
    else:
        module = DWAttMeanFusion(layer_indices, fusion_dropout=dropout)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 1.0)
    return module


@st.composite
def fusion_cases(draw, kinds=MODULE_FUSIONS):
    """(module, hidden states, layer mask or None) for a random fusion problem."""
    kind = draw(st.sampled_from(kinds))
    num_states = draw(st.integers(2, 6))  # embeddings + 1..5 layers
    layer_indices = sorted(draw(st.sets(st.integers(0, num_states - 1), min_size=1)))
    width = draw(st.integers(1, 12))
    batch, length = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    scale = draw(st.sampled_from(["none", "sqrt_d"]))
    magnitude = draw(st.sampled_from([0.0, 1e-3, 1.0, 1e3]))  # 0: constant inputs, LayerNorm sees no variance
    mask = None
    if draw(st.booleans()):
        mask_values = draw(st.lists(st.booleans(), min_size=len(layer_indices), max_size=len(layer_indices)))
        mask_values[draw(st.integers(0, len(layer_indices) - 1))] = True  # at least one layer takes part
        mask = torch.tensor(mask_values)
    generator = torch.Generator().manual_seed(seed)
    hidden = tuple(torch.randn(batch, length, width, generator=generator) * magnitude for _ in range(num_states))
    module = build_fusion(kind, width, layer_indices, seed, scale=scale)
    return module, hidden, mask


def pad(hidden: tuple[torch.Tensor, ...], extra: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Append `extra` positions of large random junk to every hidden state (what padding looks like)."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(
        torch.cat(
            [state, 100 * torch.randn(state.shape[0], extra, state.shape[2], generator=generator).to(state)], dim=1
        )
        for state in hidden
    )


@SETTINGS
@given(case=fusion_cases(), extra=st.integers(1, 5), seed=st.integers(0, 1000))
def test_module_outputs_at_real_tokens_ignore_appended_padding(case, extra, seed):
    module, hidden, mask = case
    module.eval().double()  # float64: the padded shape runs other kernel blocks on some CPUs
    hidden = tuple(state.double() for state in hidden)
    with torch.no_grad():
        fused, weights = module(hidden, mask)
        fused_padded, weights_padded = module(pad(hidden, extra, seed), mask)
    length = hidden[0].shape[1]
    torch.testing.assert_close(fused_padded[:, :length], fused, rtol=1e-9, atol=1e-9)
    if weights is not None:
        torch.testing.assert_close(weights_padded[:, :length], weights, rtol=1e-9, atol=1e-12)


def assert_weights_are_a_distribution(weights: torch.Tensor, mask: torch.Tensor | None) -> None:
    assert torch.isfinite(weights).all()
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones_like(weights[..., 0]), rtol=0, atol=1e-5)
    if mask is not None:
        assert (weights[..., ~mask] == 0).all(), "a masked layer got weight"


@SETTINGS
@given(case=fusion_cases(), training=st.booleans(), dropout=st.sampled_from([0.0, 0.5, 0.9]))
def test_module_weights_are_finite_and_sum_to_one_over_unmasked_layers(case, training, dropout):
    module, hidden, mask = case
    module.fusion_dropout = dropout
    module.train(training)
    with torch.no_grad():
        fused, weights = module(hidden, mask)
    assert torch.isfinite(fused).all()
    assert fused.shape == hidden[-1].shape
    if isinstance(module, DWAttConcatFusion):
        assert weights is None
        return
    assert weights.shape == (*hidden[0].shape[:2], len(module.layer_indices))
    assert_weights_are_a_distribution(weights, mask)


@cache
def tiny_model(fusion: str) -> DWAttModel:
    """One tiny random DWAtt model per fusion (BERT, 2 layers, width 32), built once."""
    torch.manual_seed(0)
    config = DWAttConfig(backbone_config=tiny_backbone_config("bert"), fusion=fusion, dwatt_scale="sqrt_d")
    return DWAttModel(config).eval()


@cache
def tiny_model_float64(fusion: str) -> DWAttModel:
    """`tiny_model` in float64 (a copy: the cached float32 model is shared by other tests)."""
    return copy.deepcopy(tiny_model(fusion)).double()


@MODEL_SETTINGS
@given(
    fusion=st.sampled_from(FUSIONS),
    lengths=st.lists(st.integers(1, 10), min_size=1, max_size=3),
    extra=st.integers(0, 4),
    seed=st.integers(0, 1000),
)
def test_model_outputs_at_real_tokens_ignore_padding(fusion, lengths, extra, seed):
    """Through the real backbone: a padded batch gives each row what the row alone, unpadded, gives."""
    model = tiny_model_float64(fusion)  # float64: a padded batch runs other kernel blocks than one row
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths) + extra
    input_ids = torch.randint(4, VOCAB, (len(lengths), width), generator=generator)
    attention_mask = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        for row, length in enumerate(lengths):
            alone = model(input_ids=input_ids[row : row + 1, :length]).last_hidden_state
            torch.testing.assert_close(batched[row : row + 1, :length], alone, rtol=1e-9, atol=1e-9)


@MODEL_SETTINGS
@given(
    fusion=st.sampled_from(WEIGHTED_FUSIONS),
    mask_values=st.lists(st.booleans(), min_size=3, max_size=3),
    keep=st.integers(0, 2),
    length=st.integers(1, 8),
)
def test_model_fusion_weights_are_a_distribution_over_unmasked_layers(fusion, mask_values, keep, length):
    model = tiny_model(fusion)  # 2 layers + embeddings: 3 fused hidden states
    mask_values[keep] = True
    mask = torch.tensor(mask_values)
    input_ids = torch.arange(4, 4 + length).view(1, -1)
    with torch.no_grad():
        output = model(input_ids=input_ids, fusion_layer_mask=mask, output_fusion_weights=True)
    assert output.fusion_weights.shape == (1, length, 3)
    assert_weights_are_a_distribution(output.fusion_weights, mask)


# ----------------------------------------------------------------------------------------------------
# Readers: any mix of line endings, a BOM and trailing whitespace reads back to the same sentences
# ----------------------------------------------------------------------------------------------------

_TOKEN = st.text(alphabet=st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=6)
_TYPE = st.sampled_from(["person", "geo-loc", "ORG"])


@st.composite
def iob2_sentences(draw):
    """Sentences of (token, IOB2 tag): an I- tag only continues a chunk of its own type."""
    sentences = []
    for _ in range(draw(st.integers(1, 4))):
        tokens, tags, previous = [], [], None
        for _ in range(draw(st.integers(1, 5))):
            choice = draw(st.sampled_from(["O", "B", "I"] if previous else ["O", "B"]))
            kind = previous if choice == "I" else draw(_TYPE)
            tags.append("O" if choice == "O" else f"{choice}-{kind}")
            previous = None if choice == "O" else kind
            tokens.append(draw(_TOKEN))
        sentences.append((tokens, tags))
    return sentences


@settings(max_examples=60, deadline=None)
@given(
    sentences=iob2_sentences(),
    endings=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=3),
    bom=st.booleans(),
    trailing=st.sampled_from(["", " ", "\t", "  \t"]),
    data=st.data(),
)
def test_column_files_read_back_whatever_the_line_endings(tmp_path_factory, sentences, endings, bom, trailing, data):
    from dwatt.data.ner_files import read_column_file

    text = ""

    def add_line(line: str) -> None:
        nonlocal text
        end = data.draw(st.sampled_from(endings))
        if text.endswith("\r") and line == "" and end.startswith("\n"):
            end = "\r"  # CR then LF is one CRLF break, not two: keep the blank line a blank line
        text += line + end

    for tokens, tags in sentences:
        for token, tag in zip(tokens, tags, strict=True):
            add_line(f"{token}\t{tag}{trailing}")
        add_line("")
    path = tmp_path_factory.mktemp("reader") / "data.txt"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    read = read_column_file(path, scheme="iob2")
    assert [(s.tokens, s.tags) for s in read] == sentences
