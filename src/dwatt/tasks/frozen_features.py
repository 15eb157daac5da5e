"""A frozen backbone run once per sentence: its hidden states kept in memory and reused at every step.

With `--freeze_backbone --cache_backbone_features` the backbone's output for a given input never changes, so
computing it again at every training step and every evaluation wastes most of a frozen run's time (on a
12-layer encoder, about 90%). Inside `cached_backbone_features(model)`, the backbone's forward looks each row
of a batch up by its content (its unpadded token ids, token types and their positions); rows not seen before
are computed once, in eval mode and without gradients, and kept. The fusion, the deeper layers and the head
train on the cached states exactly as they would on the backbone's own output with its dropout off.

The backbone's forward is replaced on the instance for the duration of the block (accelerate patches
`model.forward` the same way for mixed precision): the Trainer, the sweep's test-split evaluator and windowed
prediction all call the model as usual, and the saved weights are untouched. A cache is shared by every model
whose backbone has the same content (a fingerprint of its config and weights), so the runs of a sweep in one
process compute each sentence once between them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

logger = logging.getLogger(__name__)


def backbone_fingerprint(backbone: nn.Module) -> str:
    """SHA-256 of the backbone's class, config and every weight and buffer: equal only for equal backbones."""
    digest = hashlib.sha256(type(backbone).__name__.encode())
    config = getattr(backbone, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class BackboneFeatureCache:
    """Per distinct input row, the backbone's hidden states (embeddings + every layer) at its real tokens,
    [num_hidden_states, tokens, hidden], computed once in eval mode."""

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint
        self.rows: dict[bytes, torch.Tensor] = {}
        self.computed = 0  # rows run through the backbone
        self.served = 0  # rows answered from the cache

    @staticmethod
    def row_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None):
        """A row's key: its real tokens and where they stand. The positions are part of it because a backbone that
        numbers positions from the first column (BERT) gives a left-padded sentence other states for each amount
        of padding; right-padded rows (the collators' default) keep one key however wide their batch."""
        keys = []
        for row in range(input_ids.shape[0]):
            real = attention_mask[row].bool()
            key = input_ids[row][real].cpu().numpy().tobytes()
            key += b"@" + real.nonzero().flatten().cpu().numpy().tobytes()
            if token_type_ids is not None:
                key += b"|" + token_type_ids[row][real].cpu().numpy().tobytes()
            keys.append(key)
        return keys

    def hidden_states(self, backbone_forward, backbone: nn.Module, input_ids, attention_mask, token_type_ids):
        """The batch's hidden states as `output_hidden_states` gives them; padding positions hold zeros (a
        padded position's state never reaches a real token's: per-token fusions, masked deeper layers)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keys = self.row_keys(input_ids, attention_mask, token_type_ids)
        missing: dict[bytes, int] = {}  # a row not seen before -> its first position in the batch
        for row, key in enumerate(keys):
            if key not in self.rows:
                missing.setdefault(key, row)
        if missing:
            rows = list(missing.values())
            self._compute(backbone_forward, backbone, input_ids, attention_mask, token_type_ids, rows, keys)
        self.served += len(keys) - len(missing)
        first = self.rows[keys[0]]
        states = first.new_zeros((first.shape[0], *input_ids.shape, first.shape[-1]))
        for row, key in enumerate(keys):
            states[:, row, attention_mask[row].bool()] = self.rows[key]
        return states.unbind(0)

    def _compute(self, backbone_forward, backbone, input_ids, attention_mask, token_type_ids, rows, keys):
        index = torch.tensor(rows, device=input_ids.device)
        inputs = {"input_ids": input_ids[index], "attention_mask": attention_mask[index]}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids[index]
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.no_grad():
                output = backbone_forward(**inputs, output_hidden_states=True, return_dict=True)
        finally:
            backbone.train(was_training)
        stacked = torch.stack(output.hidden_states)  # [states, rows, tokens, hidden]
        for position, row in enumerate(rows):
            self.rows[keys[row]] = stacked[:, position, attention_mask[row].bool()].clone()
        self.computed += len(rows)


#: The caches of backbones in use in this process, by fingerprint; one is kept (a sweep has one backbone).
_SHARED: dict[str, BackboneFeatureCache] = {}


def shared_cache(backbone: nn.Module) -> BackboneFeatureCache:
    """The process's cache for this backbone's content, new if the backbone differs from the last one."""
    fingerprint = backbone_fingerprint(backbone)
    if fingerprint not in _SHARED:
        _SHARED.clear()
        _SHARED[fingerprint] = BackboneFeatureCache(fingerprint)
    return _SHARED[fingerprint]


@contextlib.contextmanager
def cached_backbone_features(
    model: nn.Module, cache: BackboneFeatureCache | None = None
) -> Iterator[BackboneFeatureCache]:
    """Within the block, `model`'s frozen backbone answers from `cache` (default: the process's shared cache for
    its content). Calls the cache cannot answer as the backbone would (attention maps, `inputs_embeds`, explicit
    position ids) run the backbone itself."""
    backbone = model.base_model.backbone
    trainable = [name for name, parameter in backbone.named_parameters() if parameter.requires_grad]
    if trainable:
        raise ValueError(
            f"the backbone's features can be cached only while it is frozen; {len(trainable)} of its tensors train "
            f"({', '.join(trainable[:3])}, ...): pass --freeze_backbone (LoRA adapts the backbone: no cache)"
        )
    cache = cache if cache is not None else shared_cache(backbone)
    backbone_forward = backbone.forward

    def forward(input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        uncachable = any(kwargs.get(name) is not None for name in ("inputs_embeds", "position_ids"))
        if input_ids is None or uncachable or kwargs.get("output_attentions"):
            return backbone_forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                    **kwargs)  # fmt: skip
        states = cache.hidden_states(backbone_forward, backbone, input_ids, attention_mask, token_type_ids)
        return BaseModelOutput(last_hidden_state=states[-1], hidden_states=states)

    backbone.forward = forward
    computed, served = cache.computed, cache.served
    try:
        yield cache
    finally:
        del backbone.forward  # the class's own forward again
        logger.info(
            "Backbone feature cache: %d sentence(s) run through the frozen backbone, %d answered from the cache",
            cache.computed - computed, cache.served - served,
        )  # fmt: skip
