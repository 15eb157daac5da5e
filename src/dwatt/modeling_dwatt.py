"""DWAtt: Depth-Wise Attention and other layer fusions on top of any pretrained encoder.

Hub-portable: this file is copied next to every checkpoint and imported by `trust_remote_code`, so it
imports only the standard library, torch, transformers and its sibling configuration file.

Layout, as in a transformers modeling file: outputs, fusion building blocks, the "deeper" baseline's
layers, the pretrained base class, the base model, then the task heads.

DWAtt (ElNokrashy, AlKhamissi, Diab, arXiv 2209.15168): for every token, with z_n its hidden state at
fused layer n and z_L the last one,
    v_n = LN_n(W_n LN(gelu(U_n z_n)))          one bottleneck MLP per fused layer
    q   = 1 + elu(z_L + W_Q LN(gelu(U_Q z_L)))
    k_n = W_K p_n                              p_n a learned depth embedding; keys ignore the input
    a_n = softmax_n(q . k_n)                   (optionally / sqrt(d))
    h   = z_L + sum_n a_n v_n
"""

from __future__ import annotations

import logging
import math
import os.path
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .configuration_dwatt import DWAttConfig

try:  # transformers >= 5: init functions that skip tensors already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4.x only calls _init_weights on modules that were not loaded
    from torch.nn import init


# ----------------------------------------------------------------------------------------------------
# Outputs: the standard dataclasses plus the fusion weights
# ----------------------------------------------------------------------------------------------------


@dataclass
class DWAttModelOutput(BaseModelOutput):
    """`BaseModelOutput` whose `last_hidden_state` is the fused representation.

    fusion_weights (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_fused_layers)`, *optional*):
        Weight of each fused layer per token (DWAtt); the global weights broadcast (scalar_mix, mean).
        Returned when `output_fusion_weights=True` and the fusion has weights.
    """

    fusion_weights: torch.FloatTensor | None = None


@dataclass
class DWAttTokenClassifierOutput(TokenClassifierOutput):
    """`TokenClassifierOutput` plus `fusion_weights` (see `DWAttModelOutput`)."""

    fusion_weights: torch.FloatTensor | None = None


@dataclass
class DWAttSequenceClassifierOutput(SequenceClassifierOutput):
    """`SequenceClassifierOutput` plus `fusion_weights` (see `DWAttModelOutput`)."""

    fusion_weights: torch.FloatTensor | None = None


@dataclass
class DWAttMaskedLMOutput(MaskedLMOutput):
    """`MaskedLMOutput` plus `fusion_weights` (see `DWAttModelOutput`)."""

    fusion_weights: torch.FloatTensor | None = None


@dataclass
class DWAttQuestionAnsweringOutput(QuestionAnsweringModelOutput):
    """`QuestionAnsweringModelOutput` plus `fusion_weights` (see `DWAttModelOutput`)."""

    fusion_weights: torch.FloatTensor | None = None


@dataclass
class DWAttMultipleChoiceOutput(MultipleChoiceModelOutput):
    """`MultipleChoiceModelOutput` plus `fusion_weights` (see `DWAttModelOutput`)."""

    fusion_weights: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------
# Backbone facts that differ in name between encoder families
# ----------------------------------------------------------------------------------------------------


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """Softmax over layers in at least float32 (half-precision scores lose the small weights), never lower
    than the model's own precision (a float64 model keeps float64)."""
    return torch.promote_types(dtype, torch.float32)


def looks_like_local_path(name_or_path: str) -> bool:
    """Whether a model name can only mean a local folder: a Hub id is `name` or `namespace/name` (no backslash, no
    leading dot or tilde), and a one-slash name counts as local when its first part is a folder here (`runs/missing`
    beside a `runs/` folder)."""
    # Not huggingface_hub's validate_repo_id: the hub pair imports only torch and transformers, and it would pass
    # `runs/missing` too.
    return (
        os.path.isabs(name_or_path)
        or name_or_path.startswith((".", "~"))
        or name_or_path.count("/") > 1
        or "\\" in name_or_path
        or (name_or_path.count("/") == 1 and os.path.isdir(name_or_path.split("/")[0]))
    )


def check_local_model_path(path: str) -> None:
    """A missing folder, a file or a folder without config.json, named as such (not as a bad Hub id)."""
    if os.path.isfile(path):
        raise ValueError(f"{path} is a file; expected the folder save_pretrained wrote (config.json, weights)")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(
            f"{path} has no config.json; expected a folder written by save_pretrained (is it empty, or the "
            "parent of the run folder?)"
        )
    if looks_like_local_path(path) and not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such folder; expected a folder written by save_pretrained")


def backbone_layer_norm_eps(backbone_config) -> float:
    """LayerNorm epsilon of the backbone (`layer_norm_eps` for BERT-likes, `norm_eps` for ModernBERT)."""
    for name in ("layer_norm_eps", "norm_eps"):
        value = getattr(backbone_config, name, None)
        if value is not None:
            return value
    return 1e-12


def backbone_dropout(backbone_config) -> float:
    """Hidden dropout probability of the backbone, used for heads and the deeper layers."""
    for name in ("hidden_dropout_prob", "dropout", "mlp_dropout"):
        value = getattr(backbone_config, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 0.1


def _backbone_tokenizer(name_or_path: str, backbone_kwargs: dict):
    """The backbone's tokenizer, or None when it has none (a bare weights folder, a random test model).

    Only a saved `tokenizer_config.json` counts: without one, `AutoTokenizer` may still build a near-empty
    tokenizer from the model config, which would then be saved as if it were the backbone's.
    """
    from transformers.utils import cached_file

    hub_kwargs = {key: backbone_kwargs[key] for key in ("revision", "token", "cache_dir", "local_files_only",
                  "subfolder", "force_download", "proxies") if key in backbone_kwargs}  # fmt: skip
    try:
        found = cached_file(name_or_path, "tokenizer_config.json", _raise_exceptions_for_missing_entries=False,
                            **hub_kwargs)  # fmt: skip
        if found is None:
            return None
        return AutoTokenizer.from_pretrained(
            name_or_path, trust_remote_code=backbone_kwargs.get("trust_remote_code", False), **hub_kwargs
        )
    except (OSError, ValueError, TypeError, KeyError) as error:  # files transformers cannot build a tokenizer from
        logging.getLogger(__name__).info("No tokenizer kept with the model: %s (%s)", name_or_path, error)
        return None


# ----------------------------------------------------------------------------------------------------
# Fusion building blocks. Each takes the backbone's hidden states (embeddings + every layer) and returns
# (fused [batch, tokens, d], weights [batch, tokens, N] or None).
# ----------------------------------------------------------------------------------------------------


class DWAttLayerFusion(nn.Module):
    """Base of the fusions: stacks the fused hidden states and draws the layer-dropout mask."""

    def __init__(self, layer_indices: list[int], fusion_dropout: float = 0.0):
        super().__init__()
        self.layer_indices = list(layer_indices)
        self.fusion_dropout = fusion_dropout

    @property
    def num_fused_layers(self) -> int:
        return len(self.layer_indices)

    def stack(self, hidden_states: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (stacked [batch, tokens, N, d], last [batch, tokens, d]) on one device.

        Stacking here, inside a submodule, keeps `device_map` splits of the backbone working.
        """
        last = hidden_states[-1]
        stacked = torch.stack([hidden_states[i].to(last.device) for i in self.layer_indices], dim=-2)
        return stacked, last

    def weighted_sum(self, hidden_states, weights: torch.Tensor, layer_norm_eps: float | None = None) -> torch.Tensor:
        """sum_n weights[..., n] * z_n (each z_n layer-normalised first, given an eps), layer by layer.

        No `[B, T, N, d]` stack is made: at BERT-base sizes an einsum over a stacked copy took 61 ms forward +
        backward on CPU against 24 ms for this loop, for the same FLOPs (issue 19).
        """
        last = hidden_states[-1]
        total = None
        for n, index in enumerate(self.layer_indices):
            hidden = hidden_states[index].to(last.device)
            if layer_norm_eps is not None:
                hidden = F.layer_norm(hidden, hidden.shape[-1:], eps=layer_norm_eps)
            weight = weights[..., n : n + 1]
            total = hidden * weight if total is None else torch.addcmul(total, weight, hidden)
        return total

    def dropped_layers(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """Bool [batch, tokens, N], True where a layer is dropped for that token (training only).

        `tokens` is any tensor whose first two dimensions are [batch, tokens].
        """
        if not self.training or self.fusion_dropout == 0.0:
            return None
        shape = (*tokens.shape[:2], self.num_fused_layers)
        dropped = torch.rand(shape, device=tokens.device) < self.fusion_dropout
        # Never drop every layer of a token: keep them all for that token instead.
        return dropped & ~dropped.all(dim=-1, keepdim=True)

    def kept_layers(self, tokens: torch.Tensor, layer_mask: torch.Tensor | None) -> torch.Tensor | None:
        """Bool mask of layers that take part (user mask and layer dropout), broadcastable to [B, T, N]."""
        keep = None if layer_mask is None else layer_mask.to(tokens.device).view(1, 1, -1)
        dropped = self.dropped_layers(tokens)
        if dropped is None:
            return keep
        kept = ~dropped if keep is None else keep & ~dropped
        if keep is not None:  # the two masks together may leave a token with nothing: fall back to the user mask
            kept = torch.where(kept.any(dim=-1, keepdim=True), kept, keep.expand_as(kept))
        return kept


class DWAttDepthAttention(DWAttLayerFusion):
    """Depth-wise attention: every token attends over its own hidden states from the fused layers.

    The N per-layer value MLPs are stored as stacked tensors (one `[N, d, r]` weight, not N modules) and
    run layer by layer straight from the backbone's hidden states: no `[B, T, N, d]` copy is made, each
    matmul carries its bias (addmm) and each LayerNorm its own affine. On CPU the module's forward +
    backward ran 1.4-1.7x faster this way than as one batched einsum over a stacked input (which needs
    that copy and separate bias and affine passes).
    Layers switched off by a layer mask are not computed at all.
    """

    def __init__(
        self,
        hidden_size: int,
        layer_indices: list[int],
        pos_dim: int = 24,
        query_ratio: float = 0.5,
        value_ratio: float = 0.5,
        scale: str = "none",
        layer_norm_eps: float = 1e-12,
        fusion_dropout: float = 0.0,
        recompute_values: bool = True,
    ):
        super().__init__(layer_indices, fusion_dropout)
        num_layers = len(layer_indices)
        self.recompute_values = recompute_values
        value_dim = max(1, round(value_ratio * hidden_size))
        query_dim = max(1, round(query_ratio * hidden_size))
        self.hidden_size = hidden_size
        self.layer_norm_eps = layer_norm_eps
        self.score_scale = 1.0 / math.sqrt(hidden_size) if scale == "sqrt_d" else 1.0

        # value path, one bottleneck MLP per fused layer: d -> value_dim -> d, then LN_n
        self.value_in_weight = nn.Parameter(torch.empty(num_layers, hidden_size, value_dim))
        self.value_in_bias = nn.Parameter(torch.empty(num_layers, value_dim))
        self.value_mid_norm_weight = nn.Parameter(torch.empty(num_layers, value_dim))
        self.value_mid_norm_bias = nn.Parameter(torch.empty(num_layers, value_dim))
        self.value_out_weight = nn.Parameter(torch.empty(num_layers, value_dim, hidden_size))
        self.value_out_bias = nn.Parameter(torch.empty(num_layers, hidden_size))
        self.value_norm_weight = nn.Parameter(torch.empty(num_layers, hidden_size))
        self.value_norm_bias = nn.Parameter(torch.empty(num_layers, hidden_size))

        # query path on the last layer
        self.query_in = nn.Linear(hidden_size, query_dim)
        self.query_norm = nn.LayerNorm(query_dim, eps=layer_norm_eps)
        self.query_out = nn.Linear(query_dim, hidden_size)

        # keys from learned depth embeddings: k_n = W_K p_n (no bias, as in the equations)
        self.depth_embedding = nn.Parameter(torch.empty(num_layers, pos_dim))
        self.key_weight = nn.Parameter(torch.empty(pos_dim, hidden_size))

    def value_mlps(self) -> list[tuple[torch.Tensor, ...]]:
        """Per fused layer, the views (U_n, b_n, LN gain, LN bias, W_n, c_n, LN_n gain, LN_n bias).

        `unbind` rather than indexing: backward then writes each stacked gradient once, not N times.
        """
        stacked_parameters = (
            self.value_in_weight, self.value_in_bias, self.value_mid_norm_weight, self.value_mid_norm_bias,
            self.value_out_weight, self.value_out_bias, self.value_norm_weight, self.value_norm_bias,
        )  # fmt: skip
        return list(zip(*(parameter.unbind(0) for parameter in stacked_parameters)))

    def value(self, hidden: torch.Tensor, mlp: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """v_n = LN_n(W_n LN(gelu(U_n z_n))) of one layer: [..., d] -> [..., d]."""
        in_weight, in_bias, mid_gain, mid_bias, out_weight, out_bias, gain, bias = mlp
        flat = hidden.reshape(-1, hidden.shape[-1])
        inner = F.gelu(torch.addmm(in_bias, flat, in_weight))
        inner = F.layer_norm(inner, inner.shape[-1:], mid_gain, mid_bias, self.layer_norm_eps)
        values = torch.addmm(out_bias, inner, out_weight)
        return F.layer_norm(values, values.shape[-1:], gain, bias, self.layer_norm_eps).view_as(hidden)

    def layer_values(
        self, hidden_states, layers: Iterable[int], value_cache: dict[int, torch.Tensor] | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(n, v_n) for the given fused-layer positions n, computed from the backbone's hidden states, or
        taken from (and added to) `value_cache`."""
        mlps = self.value_mlps()
        device = hidden_states[-1].device
        for n in layers:
            if value_cache is not None and n in value_cache:
                yield n, value_cache[n]
                continue
            value = self.value(hidden_states[self.layer_indices[n]].to(device), mlps[n])
            if value_cache is not None:
                value_cache[n] = value
            yield n, value

    def values(self, stacked: torch.Tensor) -> torch.Tensor:
        """Every layer's value at once, for inspection: stacked [B, T, N, d] -> [B, T, N, d]."""
        mlps = self.value_mlps()
        return torch.stack([self.value(stacked[..., n, :], mlp) for n, mlp in enumerate(mlps)], dim=-2)

    def forward(self, hidden_states, layer_mask=None, value_cache: dict[int, torch.Tensor] | None = None):
        """`value_cache` (a dict, filled on first use) reuses the values v_n across calls on the same hidden
        states: a layer mask changes only the weights, so the ablations of one batch share them."""
        last = hidden_states[-1]
        query = 1.0 + F.elu(last + self.query_out(self.query_norm(F.gelu(self.query_in(last)))))
        keys = self.depth_embedding @ self.key_weight  # [N, d]
        scores = (query @ keys.transpose(0, 1)) * self.score_scale  # [B, T, N]
        keep = self.kept_layers(last, layer_mask)
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(scores, dim=-1, dtype=_softmax_dtype(scores.dtype)).to(last.dtype)
        # A layer masked for every token has weight exactly 0: skip its value MLP.
        active = range(self.num_fused_layers) if layer_mask is None else torch.nonzero(layer_mask).flatten().tolist()
        if self.recompute_values and torch.is_grad_enabled() and value_cache is None:
            # Backward keeps only the inputs (hidden states the backbone keeps anyway, the weights); every value
            # MLP is run again there instead of storing its activations and v_n.
            fused = torch.utils.checkpoint.checkpoint(
                self.add_weighted_values, last, weights, hidden_states, active, use_reentrant=False
            )
        else:
            fused = self.add_weighted_values(last, weights, hidden_states, active, value_cache)
        return fused, weights

    def add_weighted_values(self, last, weights, hidden_states, active, value_cache=None) -> torch.Tensor:
        """h = z_L + sum over the active layers n of a_n v_n."""
        fused = last
        for n, value in self.layer_values(hidden_states, active, value_cache):
            fused = torch.addcmul(fused, weights[..., n : n + 1], value)
        return fused


class DWAttConcatFusion(DWAttLayerFusion):
    """Concat: h = z_L + W_C LN([z_0; ...; z_L]), with `layer_norm` each z_n layer-normalised first (no parameters).
    A masked or dropped layer's block is zeroed after the LN; layer dropout rescales the kept blocks so the
    expected output is the eval output."""

    def __init__(self, hidden_size: int, layer_indices: list[int], layer_norm_eps: float = 1e-12, fusion_dropout=0.0,
                 layer_norm: bool = False):  # fmt: skip
        super().__init__(layer_indices, fusion_dropout)
        # One LN over the whole concatenation leaves the blocks' relative scales as they were: a deep pre-LN state
        # 50x the embeddings' norm would still take the LN's statistics and squash the others.
        self.layer_norm = layer_norm
        concat_size = hidden_size * len(layer_indices)
        self.norm = nn.LayerNorm(concat_size, eps=layer_norm_eps)
        # Own parameters rather than an nn.Linear so `fusion_init="identity"` can zero them in _init_weights.
        self.weight = nn.Parameter(torch.empty(hidden_size, concat_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))

    def forward(self, hidden_states, layer_mask=None):
        stacked, last = self.stack(hidden_states)
        if self.layer_norm:
            stacked = F.layer_norm(stacked, stacked.shape[-1:], eps=self.norm.eps)
        normed = self.norm(stacked.flatten(-2)).view_as(stacked)
        if layer_mask is not None:
            normed = normed * layer_mask.to(normed.device, normed.dtype).view(1, 1, -1, 1)
        dropped = self.dropped_layers(stacked)
        if dropped is not None:  # inverted dropout over whole layer blocks
            # A block is kept with probability (1 - p) + p^N (a token that would lose every layer keeps them all):
            # dividing by that, not by 1 - p, keeps the expected output the eval output.
            kept_probability = (1.0 - self.fusion_dropout) + self.fusion_dropout**self.num_fused_layers
            normed = normed * (~dropped).unsqueeze(-1).to(normed.dtype) / kept_probability
        return last + F.linear(normed.flatten(-2), self.weight, self.bias), None


class DWAttScalarMix(DWAttLayerFusion):
    """ELMo/AllenNLP scalar mix: h = gamma * sum_n softmax(s)_n z_n, optionally layer-normalising each z_n."""

    def __init__(self, layer_indices: list[int], layer_norm: bool = False, layer_norm_eps=1e-12, fusion_dropout=0.0):
        super().__init__(layer_indices, fusion_dropout)
        self.layer_norm = layer_norm
        self.layer_norm_eps = layer_norm_eps
        self.scalar_logits = nn.Parameter(torch.empty(len(layer_indices)))
        self.gamma = nn.Parameter(torch.empty(1))

    def forward(self, hidden_states, layer_mask=None):
        top = hidden_states[-1]
        scores = self.scalar_logits.view(1, 1, -1).expand(*top.shape[:-1], -1)
        keep = self.kept_layers(top, layer_mask)
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(scores, dim=-1, dtype=_softmax_dtype(scores.dtype)).to(top.dtype)
        eps = self.layer_norm_eps if self.layer_norm else None
        return self.gamma * self.weighted_sum(hidden_states, weights, eps), weights


class DWAttMeanFusion(DWAttLayerFusion):
    """Plain average of the fused layers (flair's `layer_mean`), with `layer_norm` of the layer-normalised ones."""

    def __init__(self, layer_indices: list[int], fusion_dropout=0.0, layer_norm: bool = False, layer_norm_eps=1e-12):
        super().__init__(layer_indices, fusion_dropout)
        self.layer_norm = layer_norm
        self.layer_norm_eps = layer_norm_eps

    def forward(self, hidden_states, layer_mask=None):
        last = hidden_states[-1]
        keep = self.kept_layers(last, layer_mask)
        if keep is None:
            keep = torch.ones(1, 1, self.num_fused_layers, dtype=torch.bool, device=last.device)
        keep = keep.expand(*last.shape[:-1], -1).to(last.dtype)
        weights = keep / keep.sum(dim=-1, keepdim=True)
        return self.weighted_sum(hidden_states, weights, self.layer_norm_eps if self.layer_norm else None), weights


# ----------------------------------------------------------------------------------------------------
# The "deeper" baseline: extra encoder layers on the last hidden state
# ----------------------------------------------------------------------------------------------------


class DWAttDeeperLayer(nn.Module):
    """A post-LN transformer encoder layer (BERT's layout) built only from sizes, so it fits any backbone."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float, layer_norm_eps: float):
        super().__init__()
        self.num_heads = num_heads if hidden_size % num_heads == 0 else 1
        self.dropout = dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attention_out = nn.Linear(hidden_size, hidden_size)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, hidden: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        """`attend`: bool [batch, 1, 1, tokens], True for keys that may be attended to."""
        batch, tokens, width = hidden.shape
        query, key, value = self.qkv(hidden).view(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        dropout = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=attend, dropout_p=dropout)
        attended = attended.transpose(1, 2).reshape(batch, tokens, width)
        hidden = self.attention_norm(hidden + F.dropout(self.attention_out(attended), dropout, self.training))
        feed_forward = self.output(F.gelu(self.intermediate(hidden)))
        return self.output_norm(hidden + F.dropout(feed_forward, dropout, self.training))


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of a module (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def build_fusion(config: DWAttConfig, fusion: str | None = None) -> DWAttLayerFusion | None:
    """The fusion module named by `fusion` (default `config.fusion`); None for "last" and "deeper"."""
    fusion = fusion or config.fusion
    backbone = config.backbone_config
    layers = config.fused_layer_indices
    eps = backbone_layer_norm_eps(backbone)
    if fusion == "dwatt":
        return DWAttDepthAttention(
            backbone.hidden_size,
            layers,
            pos_dim=config.dwatt_pos_dim,
            query_ratio=config.dwatt_query_ratio,
            value_ratio=config.dwatt_value_ratio,
            scale=config.dwatt_scale,
            layer_norm_eps=eps,
            fusion_dropout=config.fusion_dropout,
            recompute_values=config.dwatt_recompute_values,
        )
    # A config object made before fusion_layer_norm existed (pickled, or built by hand) normalises nothing.
    layer_norm = getattr(config, "fusion_layer_norm", False)
    if fusion == "concat":
        return DWAttConcatFusion(backbone.hidden_size, layers, eps, config.fusion_dropout, layer_norm)
    if fusion == "scalar_mix":
        return DWAttScalarMix(layers, layer_norm, eps, config.fusion_dropout)
    if fusion == "mean":
        return DWAttMeanFusion(layers, config.fusion_dropout, layer_norm, eps)
    return None


def build_deeper_layer(config: DWAttConfig, intermediate_size: int) -> DWAttDeeperLayer:
    """One layer of the "deeper" baseline with the given feed-forward width."""
    backbone = config.backbone_config
    return DWAttDeeperLayer(
        backbone.hidden_size,
        getattr(backbone, "num_attention_heads", 1),
        intermediate_size,
        backbone_dropout(backbone),
        backbone_layer_norm_eps(backbone),
    )


def match_deeper_to_dwatt(config: DWAttConfig) -> tuple[int, int]:
    """(num_layers, intermediate_size) of the deeper baseline closest to DWAtt's parameter count.

    The count is taken from modules built on the meta device, so it cannot drift from the real layers.
    Fields already set in the config are kept; the others are chosen to fit the budget.
    """
    with torch.device("meta"):
        budget = count_parameters(build_fusion(config, "dwatt"))
        one, two = (count_parameters(build_deeper_layer(config, width)) for width in (1, 2))
        per_width, fixed = two - one, one - (two - one)  # a layer's count is linear in its FFN width
        backbone = config.backbone_config
        full_width = config.deeper_intermediate_size or getattr(backbone, "intermediate_size", 4 * backbone.hidden_size)
    num_layers = config.deeper_num_layers or max(1, round(budget / (fixed + per_width * full_width)))
    width = config.deeper_intermediate_size or max(1, round((budget / num_layers - fixed) / per_width))
    return num_layers, width


# ----------------------------------------------------------------------------------------------------
# Pretrained base
# ----------------------------------------------------------------------------------------------------

#: Parts of the weight names peft gives an adapted layer (its base weights and LoRA's A and B).
UNMERGED_ADAPTER_PARTS = (".base_layer.", ".lora_A.", ".lora_B.")


class DWAttPreTrainedModel(PreTrainedModel):
    """Weight init, config class and loading conventions shared by every DWAtt model."""

    config_class = DWAttConfig
    base_model_prefix = "dwatt"
    supports_gradient_checkpointing = True
    _supports_sdpa = True  # the backbone decides; these flags only let the request through
    _supports_flash_attn = True
    _supports_flex_attn = True
    # Every class a model of this family may hold; each instance narrows it to what it holds (plus its
    # backbone's layers), since FSDP's transformer auto-wrap refuses a named class the model lacks.
    _no_split_modules = ["DWAttDepthAttention", "DWAttConcatFusion", "DWAttDeeperLayer"]

    def post_init(self):
        # Loaded with dtype=float16 or bfloat16, the fusion stays in float32 (its softmax over layers, its norms and
        # the small layer weights lose precision in half); it reads the backbone's states in float32 and hands the
        # fused states back in the backbone's dtype. Costs the fusion's parameters and activations in float32.
        # Listed only where the model holds fusion weights (last, mean and deeper have none): transformers 4.x
        # refuses a `_keep_in_fp32_modules_strict` entry the model lacks.
        holds_fusion_weights = any(".fusion." in f".{name}" for name, _ in self.named_parameters())
        self._keep_in_fp32_modules_strict = ["fusion"] if holds_fusion_weights else None
        super().post_init()

    def _held_no_split_modules(self) -> list[str]:
        """The backbone's `_no_split_modules` (its layers) and the fusion blocks this model holds."""
        names = set(getattr(self.base_model.backbone, "_no_split_modules", None) or [])
        names |= {
            type(module).__name__ for module in self.modules() if type(module).__name__ in type(self)._no_split_modules
        }
        return sorted(names)

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        identity = self.config.fusion_init == "identity"
        if isinstance(module, DWAttDepthAttention):
            init.normal_(module.value_in_weight, mean=0.0, std=std)
            init.zeros_(module.value_in_bias)
            init.ones_(module.value_mid_norm_weight)
            init.zeros_(module.value_mid_norm_bias)
            init.normal_(module.value_out_weight, mean=0.0, std=std)
            init.zeros_(module.value_out_bias)
            # identity: a zero output scale makes every v_n = 0, so h = z_L at step 0 while gradients still flow
            (init.zeros_ if identity else init.ones_)(module.value_norm_weight)
            init.zeros_(module.value_norm_bias)
            init.uniform_(module.depth_embedding, 0.0, 1.0)
            # PyTorch's default nn.Linear init for W_K, as the public re-implementation uses
            bound = 1.0 / math.sqrt(module.key_weight.shape[0])
            init.uniform_(module.key_weight, -bound, bound)
        elif isinstance(module, DWAttConcatFusion):
            (init.zeros_ if identity else init.normal_)(module.weight, **({} if identity else {"std": std}))
            init.zeros_(module.bias)
        elif isinstance(module, DWAttScalarMix):
            init.zeros_(module.scalar_logits)  # a uniform mix, as AllenNLP's default
            init.ones_(module.gamma)

    # Options of `from_pretrained` that say how to read the backbone (its files and its precision), not what to
    # build: `from_backbone` hands them to the backbone's `from_pretrained` (and the Hub ones to its tokenizer's),
    # never to the config, where they would be saved and not act.
    BACKBONE_LOADING_KWARGS = (
        "dtype",
        "torch_dtype",
        "attn_implementation",
        "revision",
        "cache_dir",
        "local_files_only",
        "token",
        "trust_remote_code",
        "subfolder",
        "force_download",
        "proxies",
        "use_safetensors",
        "variant",
        "weights_only",
    )
    # Options of `from_pretrained` that `from_backbone` cannot honour: refused rather than saved in the config.
    REFUSED_BY_FROM_BACKBONE = (
        "device_map",
        "max_memory",
        "offload_folder",
        "quantization_config",
        "low_cpu_mem_usage",
        "ignore_mismatched_sizes",
        "output_loading_info",
        "state_dict",
    )

    @classmethod
    def from_backbone(
        cls, name_or_path: str, fusion: str = "dwatt", backbone_kwargs: dict | None = None, **config_kwargs
    ):
        """Build a DWAtt model around pretrained encoder weights (a Hub id or a local folder).

        The loading options of `from_pretrained` (`dtype`, `revision`, `cache_dir`, `local_files_only`, `token`,
        `trust_remote_code`, `subfolder`, `attn_implementation`, ...; `BACKBONE_LOADING_KWARGS`) go to
        `AutoModel.from_pretrained` of the backbone (the Hub ones to its tokenizer too), given here or in
        `backbone_kwargs`; the other keyword arguments to `DWAttConfig`. With `dtype`, the head and the fusion follow
        the backbone's dtype as `from_pretrained` of a DWAtt checkpoint loads them: under float16/bfloat16 the fusion
        stays in float32. The backbone's weights are kept bit-identical; only the fusion and the head are newly
        initialised. The model is returned in eval mode, as `from_pretrained` returns one (the Trainer switches to
        training mode). The backbone's tokenizer, where it has one, is kept with the model and written by
        `save_pretrained` next to the weights, so the saved folder works with `AutoTokenizer` and `pipeline` as it is.
        """
        backbone_kwargs = dict(backbone_kwargs or {})
        refused = [name for name in cls.REFUSED_BY_FROM_BACKBONE if name in config_kwargs or name in backbone_kwargs]
        if refused:
            raise ValueError(
                f"from_backbone does not take {', '.join(refused)}: a from_pretrained option it cannot apply to the "
                "new model; expected only loading options for the backbone "
                f"({', '.join(cls.BACKBONE_LOADING_KWARGS)}) and DWAttConfig fields. Place or quantise the model "
                "after building it (.to(device)), or save it and load it with from_pretrained"
            )
        for name in cls.BACKBONE_LOADING_KWARGS:
            if name not in config_kwargs:
                continue
            value = config_kwargs.pop(name)
            if name in backbone_kwargs and backbone_kwargs[name] != value:
                raise ValueError(
                    f"from_backbone got {name}={value!r} and backbone_kwargs[{name!r}]={backbone_kwargs[name]!r}; "
                    "expected one value"
                )
            backbone_kwargs[name] = value
        if backbone_kwargs.get("dtype") is not None and backbone_kwargs.get("torch_dtype") is not None:
            raise ValueError("from_backbone got both dtype and torch_dtype; expected dtype only (torch_dtype is its "
                             "older name)")  # fmt: skip
        # Weights through safetensors only, unless the caller opts out (a pickle can run code when read).
        backbone = AutoModel.from_pretrained(name_or_path, **{"use_safetensors": True, **backbone_kwargs})
        if isinstance(backbone, DWAttPreTrainedModel):
            raise ValueError(
                f"{name_or_path!r} is already a DWAtt checkpoint; load it with {cls.__name__}.from_pretrained instead"
            )
        config = DWAttConfig(backbone_config=backbone.config, fusion=fusion, **config_kwargs)
        model = cls(config, backbone=backbone)
        model.tie_weights()
        if backbone_kwargs.get("dtype", backbone_kwargs.get("torch_dtype")) is not None:
            model._follow_backbone_dtype()
        model.backbone_tokenizer = _backbone_tokenizer(name_or_path, backbone_kwargs)
        return model.eval()  # as from_pretrained returns it: no dropout until training switches it on

    def _follow_backbone_dtype(self) -> None:
        """Put the new weights (fusion, deeper layers, head) in the dtype the backbone was loaded in, as
        `from_pretrained(dtype=...)` of a DWAtt checkpoint does: under float16/bfloat16 the modules of
        `_keep_in_fp32_modules_strict` (the fusion) stay in float32. The backbone's own weights are left as loaded."""
        dtype = getattr(self.base_model.backbone.config, "dtype", None)
        if not isinstance(dtype, torch.dtype):  # e.g. a string from an older transformers
            dtype = getattr(torch, str(dtype).replace("torch.", ""), None) if dtype is not None else None
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            return
        keep = (self._keep_in_fp32_modules_strict or ()) if dtype in (torch.float16, torch.bfloat16) else ()
        backbone_tensors = {id(t) for t in self.base_model.backbone.parameters()}
        backbone_tensors |= {id(t) for t in self.base_model.backbone.buffers()}
        for name, module in self.named_modules():
            target = torch.float32 if any(f".{part}." in f".{name}." for part in keep) else dtype
            for tensors in (module._parameters, module._buffers):
                for key, tensor in tensors.items():
                    if tensor is None or id(tensor) in backbone_tensors or not tensor.is_floating_point():
                        continue
                    if isinstance(tensor, nn.Parameter):
                        tensor.data = tensor.data.to(target)
                    else:
                        tensors[key] = tensor.to(target)
        self.config.dtype = dtype

    def save_pretrained(self, save_directory, is_main_process=True, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; a model built by `from_backbone` also writes the backbone's
        tokenizer on the main process, unless the folder already holds one (the Trainer saves its own)."""
        super().save_pretrained(save_directory, is_main_process, *args, **kwargs)
        if is_main_process:
            self._save_backbone_tokenizer(save_directory)

    def _save_backbone_tokenizer(self, save_directory):
        tokenizer = getattr(self, "backbone_tokenizer", None)
        if tokenizer is not None and not os.path.isfile(os.path.join(save_directory, "tokenizer_config.json")):
            tokenizer.save_pretrained(save_directory)

    def _upload_modified_files(self, working_dir, *args, **kwargs):
        # `save_pretrained(..., push_to_hub=True)` uploads from inside transformers' save, before ours returns:
        # the tokenizer must be in the folder (and new in it) by then to reach the Hub.
        self._save_backbone_tokenizer(working_dir)
        return super()._upload_modified_files(working_dir, *args, **kwargs)

    # Hub options of `from_pretrained` that also apply to reading the config alone.
    _CONFIG_LOOKUP_KWARGS = (
        "cache_dir",
        "force_download",
        "local_files_only",
        "proxies",
        "revision",
        "subfolder",
        "token",
    )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, plus checks whose errors say what is wrong and what to do.

        - A plain encoder checkpoint (BERT, RoBERTa, ...) raises `ValueError` pointing to `from_backbone`.
        - Weights whose shapes differ from what the config builds (a label map of another size than the
          saved head, fusion weights of another configuration) raise `ValueError` listing them, unless
          `ignore_mismatched_sizes=True`: then they are newly initialised, as transformers does.
        - Fusion weights missing from the checkpoint are newly initialised, with a warning naming them.
        - A label map of the saved size but other names (`id2label=...`) keeps the trained head, with a
          warning listing the renamed outputs: new labels, not new names, need a newly trained head.
        - Non-finite (NaN/inf) weights raise `ValueError` naming the tensors.
        - Weights are read from safetensors only, unless `use_safetensors=False` is passed.
        """
        config = kwargs.get("config")
        saved_id2label = None
        if pretrained_model_name_or_path is not None or config is not None:
            saved_id2label = cls._check_dwatt_checkpoint(
                config if config is not None else pretrained_model_name_or_path, kwargs
            )
        safetensors_by_default = "use_safetensors" not in kwargs
        kwargs.setdefault("use_safetensors", True)
        ignore_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
        output_loading_info = kwargs.pop("output_loading_info", False)
        try:
            # Mismatches are let through here so the check below can name them; it raises unless the caller asked.
            model, loading_info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, ignore_mismatched_sizes=True, output_loading_info=True,
                **kwargs,
            )  # fmt: skip
        except Exception as error:
            # safetensors is not imported here (a hub file imports only torch and transformers): match by name
            if type(error).__name__ == "SafetensorError":
                raise OSError(
                    f"{pretrained_model_name_or_path}: the weights file could not be read ({error}); it is cut short "
                    "or corrupt: copy or download it again"
                ) from error
            if not (isinstance(error, OSError) and safetensors_by_default and "safetensors" in str(error)):
                raise
            raise OSError(
                f"{error} DWAtt models read weights from safetensors only, unless told otherwise: unpickling a "
                "pytorch_model.bin can run code. Pass use_safetensors=False to read pickled weights you trust."
            ) from error
        model._check_loaded_weights(pretrained_model_name_or_path, loading_info, ignore_mismatched_sizes)
        model._check_label_names(pretrained_model_name_or_path, saved_id2label, loading_info)
        return (model, loading_info) if output_loading_info else model

    @classmethod
    def _check_dwatt_checkpoint(cls, config_or_path, kwargs: dict) -> dict[int, str] | None:
        """Raise if the config to load is not a DWAtt one (e.g. a plain BERT folder given to a DWAtt class).

        Returns the saved `id2label` when the config was read from a file, for `_check_label_names`.
        """
        model_type = getattr(config_or_path, "model_type", None)
        saved_id2label = None
        if model_type is None:
            path, subfolder = str(config_or_path), kwargs.get("subfolder") or ""
            # A local folder's checkpoint may sit in a subfolder; a Hub id's subfolder is the Hub's to resolve.
            check_local_model_path(os.path.join(path, subfolder) if subfolder and os.path.isdir(path) else path)
        if model_type is None:  # a path or Hub id: read only its config.json
            lookup = {name: kwargs[name] for name in cls._CONFIG_LOOKUP_KWARGS if name in kwargs}
            config_dict, _ = cls.config_class.get_config_dict(config_or_path, **lookup)
            model_type = config_dict.get("model_type")
            if isinstance(config_dict.get("id2label"), dict):
                saved_id2label = {int(index): label for index, label in config_dict["id2label"].items()}
        if model_type != cls.config_class.model_type:
            raise ValueError(
                f"{config_or_path!r} holds a {model_type!r} config, not a DWAtt checkpoint "
                f"(model_type {cls.config_class.model_type!r}). To put a layer fusion on a plain encoder, use "
                f"{cls.__name__}.from_backbone({str(config_or_path)!r}, fusion='dwatt'), which keeps its weights."
            )
        return saved_id2label

    def _check_label_names(self, source, saved_id2label: dict[int, str] | None, loading_info: dict) -> None:
        """Warn when a label map of the saved size renames the outputs of a head that was kept as trained."""

        head_reinitialised = any(
            not (item if isinstance(item, str) else item[0]).startswith(f"{self.base_model_prefix}.")
            for item in loading_info.get("mismatched_keys") or ()
        )
        if not saved_id2label or head_reinitialised or not hasattr(self, "num_labels"):
            return
        current = {int(index): label for index, label in self.config.id2label.items()}
        renamed = [(index, saved_id2label.get(index), label) for index, label in sorted(current.items())]
        renamed = [(index, old, new) for index, old, new in renamed if old != new]
        if renamed:
            shown = ", ".join(f"{index}: {old!r} -> {new!r}" for index, old, new in renamed[:5])
            logging.getLogger(__name__).warning(
                "%s: the label map given renames %d of the %d outputs of the trained head (%s%s). The head is kept "
                "as trained: fine for new names of the same labels; for different labels it must be retrained.",
                source, len(renamed), len(current), shown, ", ..." if len(renamed) > 5 else "",
            )  # fmt: skip

    def _check_loaded_weights(self, source, loading_info: dict, ignore_mismatched_sizes: bool) -> None:
        """After loading: name shape mismatches (raise), missing fusion weights (warn), non-finite weights (raise)."""

        logger = logging.getLogger(__name__)
        own_shapes = {name: tuple(tensor.shape) for name, tensor in self.state_dict().items()}
        mismatched = []
        for item in loading_info.get("mismatched_keys") or ():
            # transformers 5 gives (key, checkpoint shape, model shape); 4.x only the key
            key, saved = (item[0], tuple(item[1])) if isinstance(item, tuple) else (item, None)
            mismatched.append((key, saved, own_shapes.get(key)))
        if mismatched and not ignore_mismatched_sizes:
            raise ValueError(self._mismatch_message(source, sorted(mismatched)))

        # peft's names inside an adapted layer: weights saved before the adapters were merged into the backbone
        unmerged = [key for key in loading_info.get("unexpected_keys") or () if any(
            part in key for part in UNMERGED_ADAPTER_PARTS)]  # fmt: skip
        if unmerged:
            raise ValueError(
                f"{source} holds LoRA adapters that were never merged into the backbone ({len(unmerged)} tensors, e.g. "
                f"{unmerged[0]}): loaded as a DWAtt model, every adapted layer would get random weights. It is a "
                "training-time save of a LoRA run (an intermediate checkpoint written before dwatt merged them, or a "
                "peft model). Load the run's final folder (merged at the end of training), or resume the run from it."
            )

        prefix = f"{self.base_model_prefix}."
        fusion_missing = sorted(
            key
            for key in loading_info.get("missing_keys") or ()
            if key.removeprefix(prefix).startswith(("fusion.", "deeper."))
        )
        if fusion_missing:
            logger.warning(
                "%s: the checkpoint has no weights for %d fusion tensor(s) of fusion=%r (%s); they were newly "
                "initialised (fusion_init=%r). Expected when putting a new fusion on a checkpoint trained with "
                "another one; otherwise the checkpoint is incomplete and the model needs training before use.",
                source, len(fusion_missing), self.config.fusion, ", ".join(fusion_missing[:4])
                + (", ..." if len(fusion_missing) > 4 else ""), self.config.fusion_init,
            )  # fmt: skip

        non_finite = []
        with torch.no_grad():
            for name, tensor in self.state_dict().items():
                if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all():
                    bad = int((~torch.isfinite(tensor)).sum())
                    non_finite.append(f"{name} ({bad} of {tensor.numel()} values)")
        if non_finite:
            shown = ", ".join(non_finite[:8]) + (f", ... ({len(non_finite)} tensors)" if len(non_finite) > 8 else "")
            raise ValueError(
                f"{source}: non-finite (NaN or inf) weights in {shown}. The checkpoint is corrupt or was saved after "
                "training diverged; use an earlier checkpoint (check the loss logged by the run that wrote it)."
            )

    def _mismatch_message(self, source, mismatched: list) -> str:
        """Why the checkpoint's shapes differ from this config's, and what to do about it."""
        prefix = f"{self.base_model_prefix}."

        def shape(value):
            # transformers 4.x does not return the checkpoint's shape (its own warning above shows it)
            return "another shape" if value is None else "x".join(map(str, value)) or "scalar"

        lines = [f"  {key}: checkpoint {shape(saved)}, model {shape(built)}" for key, saved, built in mismatched]
        message = [
            f"{source}: {len(mismatched)} weight(s) in the checkpoint have other shapes than "
            f"{type(self).__name__} builds from its config:",
            *lines,
        ]
        parts = {key.removeprefix(prefix).split(".", 1)[0] for key, _, _ in mismatched}
        in_head = any(not key.startswith(prefix) for key, _, _ in mismatched) and hasattr(self, self.base_model_prefix)
        if in_head and hasattr(self, "num_labels"):  # a classification head: its size is the label map's
            labels = list(self.config.id2label.values())
            message.append(
                f"The head does not match the label map: the config asks for num_labels={self.config.num_labels} "
                f"({labels[:8]}{' ...' if len(labels) > 8 else ''}). Give the checkpoint's own label map, or pass "
                "ignore_mismatched_sizes=True to start a new, untrained head for a new label set."
            )
        elif in_head:
            message.append("The task head's weights do not fit the config: config.json and the weights disagree.")
        if parts & {"fusion", "deeper"}:
            message.append(
                f"The fusion weights do not fit fusion={self.config.fusion!r}, fusion_layers="
                f"{self.config.fusion_layers!r}, dwatt_pos_dim={self.config.dwatt_pos_dim}: config.json and the "
                "weights do not belong together (or a config override changed the fusion's shape)."
            )
        if "backbone" in parts:
            message.append("The backbone weights do not fit backbone_config: config.json and the weights disagree.")
        return "\n".join(message)


# ----------------------------------------------------------------------------------------------------
# Base model
# ----------------------------------------------------------------------------------------------------


class DWAttModel(DWAttPreTrainedModel):
    """A pretrained encoder whose output is the fusion of its hidden states (`last_hidden_state` is h)."""

    def __init__(self, config: DWAttConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        if backbone is None:
            backbone = AutoModel.from_config(config.backbone_config)
        else:
            config.backbone_config = backbone.config
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # unused: would be an unused DDP parameter and a noisy load report
        self.backbone = backbone
        self.fusion = build_fusion(config)
        self.deeper = None
        if config.fusion == "deeper":
            config.deeper_num_layers, config.deeper_intermediate_size = match_deeper_to_dwatt(config)
            self.deeper = nn.ModuleList(
                build_deeper_layer(config, config.deeper_intermediate_size) for _ in range(config.deeper_num_layers)
            )
        self._no_split_modules = self._held_no_split_modules()
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.backbone.set_input_embeddings(value)

    @property
    def num_fused_layers(self) -> int:
        return 0 if self.fusion is None else self.fusion.num_fused_layers

    def _check_length(self, inputs: torch.Tensor | None, position_ids: torch.Tensor | None) -> None:
        """Empty input, or input longer than the backbone's learned positions, fails deep inside the encoder
        with a shape error; say what is wrong instead."""
        if inputs is None or inputs.dim() < 2:
            return
        length = inputs.shape[1]
        if length == 0:
            raise ValueError("the input has 0 tokens; expected at least one (the tokenizer adds [CLS]/[SEP])")
        positions = getattr(getattr(self.backbone, "embeddings", None), "position_embeddings", None)
        if position_ids is None and isinstance(positions, nn.Embedding):
            # RoBERTa-style embeddings number positions from padding_idx + 1
            usable = positions.num_embeddings - (positions.padding_idx + 1 if positions.padding_idx is not None else 0)
            if length > usable:
                raise ValueError(
                    f"the input has {length} tokens, more than the {usable} positions the backbone has learned; "
                    f"truncate to {usable} (tokenizer(..., truncation=True, max_length={usable})) or use "
                    "dwatt.inference.predict_word_labels, which labels longer text with overlapping windows"
                )

    def _check_layer_mask(self, fusion_layer_mask):
        if fusion_layer_mask is None:
            return None
        if self.fusion is None:
            raise ValueError(f"fusion_layer_mask was given, but fusion={self.config.fusion!r} fuses no layers")
        mask = torch.as_tensor(fusion_layer_mask)
        if mask.dtype != torch.bool or mask.shape != (self.num_fused_layers,) or not bool(mask.any()):
            raise ValueError(
                f"fusion_layer_mask must be a bool tensor of shape ({self.num_fused_layers},) with at least one True "
                f"(one entry per fused layer {self.fusion.layer_indices}); "
                f"got dtype {mask.dtype}, shape {tuple(mask.shape)}"
            )
        return mask

    def fuse(
        self,
        hidden_states: tuple[torch.Tensor, ...],
        attention_mask: torch.Tensor | None = None,
        fusion_layer_mask: torch.Tensor | None = None,
        value_cache: dict[int, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(fused states h [batch, tokens, d], fusion weights [batch, tokens, N] or None) from the backbone's
        hidden states (embeddings + every layer): the fusion, then the `deeper` layers if any.

        `forward` runs this after the backbone; call it yourself to fuse hidden states you hold (layer
        analysis, first-k-layer probes). `value_cache` is DWAtt's (see `DWAttDepthAttention.forward`).
        """
        return self._fuse(hidden_states, attention_mask, self._check_layer_mask(fusion_layer_mask), value_cache)

    def _fuse(self, hidden_states, attention_mask, layer_mask, value_cache=None):
        """`fuse` with the layer mask already checked (`forward` checks it before the backbone runs)."""
        hidden, weights = hidden_states[-1], None
        if self.fusion is not None:
            extra = {"value_cache": value_cache} if isinstance(self.fusion, DWAttDepthAttention) else {}
            states, backbone_dtype = tuple(hidden_states), hidden_states[-1].dtype
            fusion_dtype = next((p.dtype for p in self.fusion.parameters()), backbone_dtype)
            if fusion_dtype != backbone_dtype:
                states = tuple(state.to(fusion_dtype) for state in states)  # a float32 fusion on a half backbone
            hidden, weights = self.fusion(states, layer_mask, **extra)
            hidden = hidden.to(backbone_dtype)
        if self.deeper is not None:
            attend = None if attention_mask is None else attention_mask.bool()[:, None, None, :].to(hidden.device)
            for layer in self.deeper:
                hidden = layer(hidden, attend)
        return hidden, weights

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        fusion_layer_mask: torch.Tensor | None = None,
        output_fusion_weights: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DWAttModelOutput | tuple:
        r"""
        fusion_layer_mask (`torch.BoolTensor` of shape `(num_fused_layers,)`, *optional*):
            False removes a fused layer (the fusion weights renormalise over the rest): layer ablation.
        output_fusion_weights (`bool`, *optional*):
            Return the per-token weight of each fused layer as `fusion_weights`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        layer_mask = self._check_layer_mask(fusion_layer_mask)  # before the backbone runs
        self._check_length(input_ids if input_ids is not None else inputs_embeds, position_ids)
        # Only pass what was given: DistilBERT, MPNet and ModernBERT take no token_type_ids.
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "inputs_embeds": inputs_embeds,
            "output_attentions": output_attentions,
        }
        inputs = {name: value for name, value in inputs.items() if value is not None}
        outputs = self.backbone(
            **inputs, output_hidden_states=bool(output_hidden_states or self.fusion), return_dict=True, **kwargs
        )
        hidden, weights = self._fuse(outputs.hidden_states or (outputs.last_hidden_state,), attention_mask, layer_mask)
        output = DWAttModelOutput(
            last_hidden_state=hidden,
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=getattr(outputs, "attentions", None),
            fusion_weights=weights if output_fusion_weights else None,
        )
        return output if return_dict else output.to_tuple()


# ----------------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------------


class DWAttHeadModel(DWAttPreTrainedModel):
    """Shared parts of the task heads: the base model under `base_model_prefix` and the head dropout."""

    def __init__(self, config: DWAttConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        self.dwatt = DWAttModel(config, backbone=backbone)
        self._no_split_modules = self.dwatt._no_split_modules
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(backbone_dropout(config.backbone_config) if dropout is None else dropout)

    def _head_output(self, output_class, fused: DWAttModelOutput, return_dict: bool | None, **fields):
        """The head's output dataclass (or tuple), carrying the base model's optional outputs along."""
        output = output_class(
            **fields,
            hidden_states=fused.hidden_states,
            attentions=fused.attentions,
            fusion_weights=fused.fusion_weights,
        )
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class DWAttClassificationHead(nn.Module):
    """Sentence-level head on the first token: dense + tanh + dropout + projection (RoBERTa's layout)."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: nn.Dropout):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout
        self.out_proj = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pooled = self.dropout(torch.tanh(self.dense(self.dropout(hidden[:, 0]))))
        return self.out_proj(pooled)


class DWAttForTokenClassification(DWAttHeadModel):
    """DWAtt model with a linear token-classification head on the fused states (NER, POS tagging)."""

    def __init__(self, config: DWAttConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config, backbone)
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.backbone_config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        fusion_layer_mask: torch.Tensor | None = None,
        output_fusion_weights: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DWAttTokenClassifierOutput | tuple:
        r"""labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): -100 is ignored."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)  # for the loss; not for the backbone
        outputs = self.dwatt(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            fusion_layer_mask=fusion_layer_mask,
            output_fusion_weights=output_fusion_weights,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config, num_items_in_batch=num_items_in_batch)
        return self._head_output(DWAttTokenClassifierOutput, outputs, return_dict, loss=loss, logits=logits)


class DWAttForSequenceClassification(DWAttHeadModel):
    """DWAtt model with a sentence classification/regression head on the first token's fused state."""

    def __init__(self, config: DWAttConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config, backbone)
        self.num_labels = config.num_labels
        self.classifier = DWAttClassificationHead(config.backbone_config.hidden_size, config.num_labels, self.dropout)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        fusion_layer_mask: torch.Tensor | None = None,
        output_fusion_weights: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DWAttSequenceClassifierOutput | tuple:
        r"""labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*): class ids, or floats for regression."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)  # for the loss; not for the backbone
        outputs = self.dwatt(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            fusion_layer_mask=fusion_layer_mask,
            output_fusion_weights=output_fusion_weights,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, num_items_in_batch=num_items_in_batch)
        return self._head_output(DWAttSequenceClassifierOutput, outputs, return_dict, loss=loss, logits=logits)


class DWAttLMHead(nn.Module):
    """Masked-LM head: dense + gelu + LayerNorm, then a decoder tied to the input embeddings."""

    def __init__(self, hidden_size: int, embedding_size: int, vocab_size: int, layer_norm_eps: float):
        super().__init__()
        self.dense = nn.Linear(hidden_size, embedding_size)
        self.layer_norm = nn.LayerNorm(embedding_size, eps=layer_norm_eps)
        self.decoder = nn.Linear(embedding_size, vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(hidden))))


class DWAttForMaskedLM(DWAttHeadModel):
    """DWAtt model with a masked-LM head whose decoder is tied to the backbone's input embeddings."""

    def __init__(self, config: DWAttConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config, backbone)
        embeddings = self.dwatt.get_input_embeddings()
        self.lm_head = DWAttLMHead(
            config.backbone_config.hidden_size,
            embeddings.embedding_dim,
            embeddings.num_embeddings,
            backbone_layer_norm_eps(config.backbone_config),
        )
        # The embedding's name differs per backbone (ModernBERT: embeddings.tok_embeddings), so look it up.
        source = next(name for name, param in self.named_parameters() if param is embeddings.weight)
        self._tied_weights_keys = {"lm_head.decoder.weight": source}
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        fusion_layer_mask: torch.Tensor | None = None,
        output_fusion_weights: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DWAttMaskedLMOutput | tuple:
        r"""labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): -100 is ignored."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)  # for the loss; not for the backbone
        outputs = self.dwatt(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            fusion_layer_mask=fusion_layer_mask,
            output_fusion_weights=output_fusion_weights,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, logits.shape[-1], num_items_in_batch=num_items_in_batch)
        return self._head_output(DWAttMaskedLMOutput, outputs, return_dict, loss=loss, logits=logits)


class DWAttForQuestionAnswering(DWAttHeadModel):
    """DWAtt model with an extractive-QA head (span start/end logits) on the fused states."""

    def __init__(self, config: DWAttConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config, backbone)
        self.qa_outputs = nn.Linear(config.backbone_config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        fusion_layer_mask: torch.Tensor | None = None,
        output_fusion_weights: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DWAttQuestionAnsweringOutput | tuple:
        r"""start_positions, end_positions (`torch.LongTensor` of shape `(batch_size,)`, *optional*): the gold span."""
        kwargs.pop("num_items_in_batch", None)
        outputs = self.dwatt(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            fusion_layer_mask=fusion_layer_mask,
            output_fusion_weights=output_fusion_weights,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).split(1, dim=-1)
        start_logits, end_logits = start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = self.loss_function(start_logits, end_logits, start_positions, end_positions)
        return self._head_output(
            DWAttQuestionAnsweringOutput,
            outputs,
            return_dict,
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
        )


class DWAttForMultipleChoice(DWAttHeadModel):
    """DWAtt model with a multiple-choice head: one score per choice from the first token's fused state."""

    accepts_loss_kwargs = False  # a per-example mean loss: Trainer's own accumulation scaling is right

    def __init__(self, config: DWAttConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config, backbone)
        self.classifier = DWAttClassificationHead(config.backbone_config.hidden_size, 1, self.dropout)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        fusion_layer_mask: torch.Tensor | None = None,
        output_fusion_weights: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DWAttMultipleChoiceOutput | tuple:
        r"""Inputs are `(batch_size, num_choices, sequence_length)`; labels `(batch_size,)` hold the right choice."""
        reference = input_ids if input_ids is not None else inputs_embeds
        num_choices = reference.shape[1]

        def flat(tensor):
            return None if tensor is None else tensor.reshape(-1, *tensor.shape[2:])

        kwargs.pop("num_items_in_batch", None)
        outputs = self.dwatt(
            input_ids=flat(input_ids),
            attention_mask=flat(attention_mask),
            token_type_ids=flat(token_type_ids),
            position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds),
            fusion_layer_mask=fusion_layer_mask,
            output_fusion_weights=output_fusion_weights,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(outputs.last_hidden_state).view(-1, num_choices)
        loss = None if labels is None else F.cross_entropy(logits, labels.to(logits.device))
        return self._head_output(DWAttMultipleChoiceOutput, outputs, return_dict, loss=loss, logits=logits)


__all__ = [
    "DWAttPreTrainedModel",
    "DWAttModel",
    "DWAttForTokenClassification",
    "DWAttForSequenceClassification",
    "DWAttForMaskedLM",
    "DWAttForQuestionAnswering",
    "DWAttForMultipleChoice",
]
