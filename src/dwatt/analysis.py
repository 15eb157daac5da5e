"""Where each word draws from: fusion-weight maps, layer ablation and first-k-layer inference.

Three questions about a trained token-classification checkpoint (`DWAttForTokenClassification`), asked
on a labelled NER split:

Fusion-weight maps
    The per-token fusion weights (`output_fusion_weights=True`) are pooled to words (the mean over a
    word's sub-word pieces, found through the tokenizer's ``word_ids``), then averaged per gold entity
    type, for ``O``, and for words the model tags right or wrong.

Layer ablation
    Entity F1 (seqeval, `dwatt.metrics.compute_ner_metrics`) with one fused layer removed at a time
    (the `fusion_layer_mask` of the model: the other weights renormalise), next to the weight ("mass")
    that layer received. Mass and effect are compared by rank; a layer whose two ranks differ by at
    least a third of the fused layers is flagged.

First-k-layer inference
    The backbone runs only its first k layers (`truncated_backbone` removes the others from its layer
    list for the duration of a ``with`` block), the hidden-states tuple is padded to L+1 entries with
    z_k, so the fusion's "last" state is z_k, the missing layers are masked out, and the fusion and the
    head are applied as `DWAttForTokenClassification.forward` does. With k = L this is the full model,
    bit for bit. `first_k_forward` does one such pass; `time_first_k` measures the speed-up.

`analyze_layers` runs the backbone once per batch for the full model and every ablation (they share the
value MLPs too: a mask only changes the weights). For first-k it uses layers 0..k of that same pass when,
on the first batch, this equals the truncated runs bit for bit (BERT-like encoders); otherwise (ModernBERT,
whose final norm changes the last state) it runs the truncated backbone for every k. It returns a
`LayerAnalysis`; `write_report` writes ``report.md`` and the PNG figures; `time_first_k` measures speed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seqeval.metrics.sequence_labeling import get_entities
from torch import nn

from .data import LABEL_PAD_ID, make_token_collator, tokenize_and_align_labels
from .metrics import compute_ner_metrics, entity_types
from .modeling_dwatt import DWAttDepthAttention

__all__ = [
    "FULL",
    "LayerAnalysis",
    "TimingResult",
    "WordRecords",
    "analyze_layers",
    "classify_hidden_states",
    "encode_batches",
    "find_layer_list",
    "first_k_forward",
    "first_k_hidden_states",
    "first_k_layer_mask",
    "paired_bootstrap_interval",
    "pool_to_words",
    "rank_disagreements",
    "sentence_entity_counts",
    "time_first_k",
    "truncated_backbone",
    "write_report",
]

#: Name of the unmodified model among the conditions of a `LayerAnalysis`.
FULL = "full"


def ablation_name(layer: int) -> str:
    """Condition name of the model with fused hidden state `layer` masked out."""
    return f"without {layer}"


def first_k_name(k: int) -> str:
    """Condition name of the model run on its first k backbone layers."""
    return f"first {k}"


# ----------------------------------------------------------------------------------------------------
# First-k-layer inference
# ----------------------------------------------------------------------------------------------------


def find_layer_list(backbone: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent module, attribute name, layer list) of the backbone's stack of encoder layers.

    Found generically as the outermost `nn.ModuleList` as long as ``config.num_hidden_layers``: BERT,
    RoBERTa, ELECTRA, DeBERTa (``encoder.layer``), DistilBERT (``transformer.layer``), ModernBERT
    (``layers``).
    """
    num_layers = backbone.config.num_hidden_layers
    for name, module in backbone.named_modules():  # pre-order: outer modules come first
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and name:
            parent_name, _, attribute = name.rpartition(".")
            return backbone.get_submodule(parent_name), attribute, module
    raise ValueError(
        f"{type(backbone).__name__} has no nn.ModuleList of num_hidden_layers={num_layers} layers; "
        "first-k-layer inference needs the encoder's layer list"
    )


def _install_output_hooks(backbone: nn.Module) -> None:
    """Install transformers 5's hidden-state recording hooks on every layer now, while the list is complete.

    transformers >= 5 records hidden states with forward hooks that it installs on the model's first call, on
    the layers present then, and never again: a first call on a truncated list would leave the other layers
    unhooked for good. transformers 4.x collects hidden states in the encoder loop and needs nothing.
    """
    try:
        from transformers.utils.output_capturing import maybe_install_capturing_hooks
    except ImportError:
        return
    maybe_install_capturing_hooks(backbone)


@contextmanager
def truncated_backbone(backbone: nn.Module, num_layers: int) -> Iterator[nn.Module]:
    """Within the block, the backbone runs only its first `num_layers` encoder layers.

    The layer list is swapped for a shorter one holding the same layer modules (no weights are copied)
    and put back on exit, also after an error.
    """
    parent, attribute, layers = find_layer_list(backbone)
    if not 0 <= num_layers <= len(layers):
        raise ValueError(f"num_layers must be in [0, {len(layers)}], got {num_layers}")
    _install_output_hooks(backbone)
    setattr(parent, attribute, nn.ModuleList(list(layers)[:num_layers]))
    try:
        yield backbone
    finally:
        setattr(parent, attribute, layers)


def first_k_hidden_states(hidden_states: Sequence[torch.Tensor], k: int, num_layers: int) -> tuple[torch.Tensor, ...]:
    """The hidden states z_0..z_k padded to L+1 entries by repeating z_k, so the fusion's last state is z_k."""
    prefix = tuple(hidden_states[: k + 1])
    return prefix + (prefix[-1],) * (num_layers - k)


def first_k_layer_mask(layer_indices: Sequence[int], k: int) -> torch.Tensor | None:
    """Fusion layer mask keeping the fused states that exist after k layers; None when all of them do."""
    keep = torch.tensor([index <= k for index in layer_indices], dtype=torch.bool)
    if bool(keep.all()):
        return None  # no mask at all, so k = L runs exactly the full model's code path
    if not bool(keep.any()):
        raise ValueError(f"no fused hidden state exists after {k} layers (fused: {list(layer_indices)})")
    return keep


def classify_hidden_states(
    model: nn.Module,
    hidden_states: Sequence[torch.Tensor],
    layer_mask: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, fusion weights) of a token classifier from given backbone hidden states.

    Mirrors `DWAttModel.forward` after the backbone (fusion, then the "deeper" layers if any) and
    `DWAttForTokenClassification.forward` (dropout, classifier).
    """
    base = model.dwatt
    layer_mask = base._check_layer_mask(layer_mask)  # same validation and error message as the forward
    hidden, weights = hidden_states[-1], None
    if base.fusion is not None:
        hidden, weights = base.fusion(tuple(hidden_states), layer_mask)
    if base.deeper is not None:
        attend = None if attention_mask is None else attention_mask.bool()[:, None, None, :].to(hidden.device)
        for layer in base.deeper:
            hidden = layer(hidden, attend)
    return model.classifier(model.dropout(hidden)), weights


def backbone_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The backbone's inputs from a model batch: labels dropped, missing optional inputs left out."""
    names = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")
    return {name: batch[name] for name in names if batch.get(name) is not None}


def first_k_forward(model: nn.Module, batch: Mapping[str, Any], k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, fusion weights) of the model run on its first k backbone layers, fusing what exists.

    k = L gives exactly the full model's output. The last hidden state is what the truncated backbone
    returns as its last one (for ModernBERT that is layer k after the final norm).
    """
    backbone = model.dwatt.backbone
    num_layers = backbone.config.num_hidden_layers
    layer_indices = model.dwatt.fusion.layer_indices if model.dwatt.fusion is not None else []
    layer_mask = first_k_layer_mask(layer_indices, k) if layer_indices else None
    inputs = backbone_inputs(batch)
    with truncated_backbone(backbone, k):
        outputs = backbone(**inputs, output_hidden_states=True, return_dict=True)
    hidden_states = tuple(outputs.hidden_states or ())
    if k == 0 and not hidden_states:
        # transformers 5 records hidden states with hooks on the layers: with no layer left, nothing is recorded,
        # and the backbone's output is the embedding output.
        hidden_states = (outputs.last_hidden_state,)
    if len(hidden_states) != k + 1:
        raise RuntimeError(
            f"the backbone truncated to {k} layers returned {len(hidden_states)} hidden states, expected {k + 1}"
        )
    hidden_states = first_k_hidden_states(hidden_states, k, num_layers)
    return classify_hidden_states(model, hidden_states, layer_mask, inputs.get("attention_mask"))


@contextmanager
def shared_fusion_values(fusion: nn.Module | None, hidden_states: Sequence[torch.Tensor]) -> Iterator[None]:
    """Within the block, DWAtt runs its value MLPs once, on `hidden_states`, and reuses them.

    A layer mask changes only the weights a_n, never the values v_n, so every ablation of one batch can
    share them: this saves N-1 runs of the value MLPs per batch (each costs about a third of a MiniLM
    pass). The query still reads each call's own last state. Only valid for calls on these hidden states
    or on a first-k prefix of them (whose masked layers get weight exactly 0). Other fusions run unchanged.
    """
    if not isinstance(fusion, DWAttDepthAttention):
        yield
        return
    values = dict(fusion.layer_values(hidden_states, range(fusion.num_fused_layers)))
    # An instance attribute shadows the method until deleted.
    fusion.layer_values = lambda _states, layers: ((n, values[n]) for n in layers)
    try:
        yield
    finally:
        del fusion.layer_values


# ----------------------------------------------------------------------------------------------------
# Words, entities, scores
# ----------------------------------------------------------------------------------------------------


def pool_to_words(token_values: Any, word_ids: Sequence[int | None], num_words: int) -> np.ndarray:
    """Mean of each word's sub-word rows: [tokens, N] -> [num_words, N]; NaN rows for words with no piece.

    `word_ids` is the tokenizer's ``word_ids()`` of the sentence (None for special tokens); rows of
    `token_values` past its length (padding) are ignored.
    """
    values = np.asarray(token_values, dtype=np.float64)
    sums = np.zeros((num_words, values.shape[-1]))
    counts = np.zeros(num_words)
    for position, word in enumerate(word_ids):
        if word is not None:
            sums[word] += values[position]
            counts[word] += 1
    pooled = np.full_like(sums, np.nan)
    present = counts > 0
    pooled[present] = sums[present] / counts[present, None]
    return pooled


def entity_type_of(tag: str) -> str:
    """``B-person``/``I-person`` -> ``person``; ``O`` stays ``O``."""
    return tag.split("-", 1)[1] if "-" in tag else tag


def sentence_entity_counts(pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence [true positives, predicted entities, gold entities] (seqeval's default-mode entities).

    Summed over sentences they give seqeval's micro F1 = 2 tp / (pred + gold), so sentences can be
    resampled cheaply for confidence intervals.
    """
    counts = np.zeros((len(gold_tags), 3), dtype=np.int64)
    for row, (pred, gold) in enumerate(zip(pred_tags, gold_tags, strict=True)):
        pred_entities, gold_entities = set(get_entities(list(pred))), set(get_entities(list(gold)))
        counts[row] = (len(pred_entities & gold_entities), len(pred_entities), len(gold_entities))
    return counts


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    """Micro F1 from summed [tp, pred, gold] counts (last axis); 0 where there is nothing to score."""
    denominator = counts[..., 1] + counts[..., 2]
    return np.where(denominator > 0, 2 * counts[..., 0] / np.maximum(denominator, 1), 0.0)


def paired_bootstrap_interval(
    counts: np.ndarray, reference: np.ndarray, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of F1(counts) - F1(reference) over sentences resampled with replacement (paired)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(counts), size=(samples, len(counts)))
    deltas = f1_from_counts(counts[picks].sum(axis=1)) - f1_from_counts(reference[picks].sum(axis=1))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return float(low), float(high)


def descending_ranks(values: Sequence[float]) -> np.ndarray:
    """Rank 1 for the largest value (ties in order of position)."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def rank_disagreements(mass: Sequence[float], drop: Sequence[float], min_gap: int | None = None) -> list[str]:
    """Per layer: "" where attention mass and F1 drop agree, else which way they disagree.

    Both are ranked from the largest (rank 1); a layer whose two ranks differ by at least `min_gap`
    (default: a third of the layers, at least 2) is "high mass, small effect" or "low mass, large effect".
    """
    min_gap = max(2, math.ceil(len(mass) / 3)) if min_gap is None else min_gap
    mass_ranks, drop_ranks = descending_ranks(mass), descending_ranks(drop)
    flags = []
    for mass_rank, drop_rank in zip(mass_ranks, drop_ranks, strict=True):
        if abs(int(mass_rank) - int(drop_rank)) < min_gap:
            flags.append("")
        else:
            flags.append("high mass, small effect" if mass_rank < drop_rank else "low mass, large effect")
    return flags


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation, ties averaged (NaN when either side is constant)."""
    from scipy.stats import spearmanr  # installed with scikit-learn, which seqeval needs

    if np.std(np.asarray(a)) == 0 or np.std(np.asarray(b)) == 0:
        return float("nan")  # spearmanr would warn and return NaN
    return float(spearmanr(a, b).statistic)


# ----------------------------------------------------------------------------------------------------
# Running the analysis over a dataset
# ----------------------------------------------------------------------------------------------------


@dataclass
class EncodedBatch:
    """One model batch with what is needed to go back to words."""

    inputs: dict[str, torch.Tensor]  # padded model inputs, no labels
    labels: torch.Tensor  # [batch, tokens], -100 where not scored
    word_ids: list[list[int | None]]  # per sentence, unpadded
    offsets: list[int]  # per sentence: position of its first token in the padded row (left padding)
    sentences: list[int]  # dataset row of each sentence


def encode_batches(
    dataset: Any, tokenizer: Any, label_list: Sequence[str], batch_size: int = 32, max_seq_length: int | None = 128
) -> list[EncodedBatch]:
    """Tokenise a NER dataset (``tokens``, ``ner_tags``) into model batches, labels mapped to `label_list`.

    Sentences are batched in order of length, so little compute goes to padding (half of it on tweets in
    file order); `EncodedBatch.sentences` maps rows back to the dataset.
    """
    names = dataset.features["ner_tags"].feature.names
    model_id = {label: index for index, label in enumerate(label_list)}
    unknown = sorted(set(names) - set(model_id))
    if unknown:
        raise ValueError(f"dataset labels {unknown} are not in the model's label map {list(label_list)}")
    columns = dataset[0 : len(dataset)]  # plain lists (column access may give lazy Column objects)
    tags = [[model_id[names[tag]] for tag in sentence] for sentence in columns["ner_tags"]]
    encoding = tokenize_and_align_labels({"tokens": columns["tokens"], "ner_tags": tags}, tokenizer, max_seq_length)
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids", "labels") if key in encoding]
    order = np.argsort([len(ids) for ids in encoding["input_ids"]], kind="stable")
    collator = make_token_collator(tokenizer)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [int(row) for row in order[start : start + batch_size]]
        padded = collator([{key: encoding[key][row] for key in keys} for row in rows])
        labels = padded.pop("labels")
        word_ids = [encoding.word_ids(batch_index=row) for row in rows]
        offsets = [labels.shape[1] - len(ids) if left else 0 for ids in word_ids]
        batches.append(EncodedBatch(dict(padded), labels, word_ids, offsets, rows))
    return batches


@dataclass
class WordRecords:
    """One row per word of the split (words cut by truncation are left out)."""

    sentence: np.ndarray  # [W] dataset row
    position: np.ndarray  # [W] index of the word in its sentence
    words: list[str]
    gold: list[str]
    predicted: list[str]
    weights: np.ndarray | None  # [W, N] pooled fusion weights of the full model; None if it has none

    @property
    def gold_types(self) -> list[str]:
        """Gold entity type of each word (``O`` for outside)."""
        return [entity_type_of(tag) for tag in self.gold]

    @property
    def correct(self) -> np.ndarray:
        """Whether the full model's tag of each word equals the gold tag."""
        return np.array([gold == pred for gold, pred in zip(self.gold, self.predicted, strict=True)], dtype=bool)


@dataclass
class LayerAnalysis:
    """Everything `analyze_layers` measured; `write_report` turns it into report.md and figures."""

    label_list: list[str]
    layer_indices: list[int]  # fused hidden states (0 = embedding output)
    num_layers: int  # L, encoder layers of the backbone
    words: WordRecords
    gold_tags: list[list[str]]  # per sentence, scored words only
    predicted_tags: dict[str, list[list[str]]]  # per condition
    metrics: dict[str, dict[str, float]]  # per condition, compute_ner_metrics output
    entity_counts: dict[str, np.ndarray]  # per condition, [S, 3]
    # first-k scores from the full pass (checked bit-equal to truncated runs on the first batch) or truncated runs
    first_k_from_full_pass: bool = False
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # ΔF1 vs full, 95% paired bootstrap
    timing: TimingResult | None = None

    @property
    def ablated_layers(self) -> list[int]:
        """Fused layers that were masked out one at a time."""
        return [layer for layer in self.layer_indices if ablation_name(layer) in self.metrics]

    @property
    def first_ks(self) -> list[int]:
        """The k scored by first-k inference, L (the full model) included."""
        return [k for k in range(self.num_layers + 1) if first_k_name(k) in self.metrics or k == self.num_layers]

    def f1(self, condition: str) -> float:
        """Entity F1 of a condition ("full", "without 3", "first 2"; "first L" is the full model)."""
        name = FULL if condition == first_k_name(self.num_layers) else condition
        return self.metrics[name]["overall_f1"]

    def layer_mass(self, words: np.ndarray | None = None) -> np.ndarray:
        """Mean pooled weight per fused layer over the selected words (all by default)."""
        weights = self.words.weights
        return weights.mean(axis=0) if words is None else weights[words].mean(axis=0)


def _argmax_ids(logits: torch.Tensor) -> np.ndarray:
    return logits.argmax(dim=-1).cpu().numpy()


def analyze_layers(
    model: nn.Module,
    tokenizer: Any,
    dataset: Any,
    batch_size: int = 32,
    max_seq_length: int | None = 128,
    ablation: bool = True,
    first_k: bool = True,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    progress: Any = None,
) -> LayerAnalysis:
    """Fusion weights per word, F1 of the full model, of each single-layer ablation and of each first-k model.

    `dataset`: a `datasets.Dataset` with ``tokens`` and ``ner_tags`` (ClassLabel names must be in the
    model's label map). The full model and the ablations share one backbone pass per batch; each first-k
    model is a real truncated run (`first_k_forward`). `progress`, if given, is called once per batch.
    Intervals are 95% paired bootstrap intervals of each condition's F1 minus the full model's.
    """
    model.eval()
    base = model.dwatt
    label_list = [model.config.id2label[index] for index in range(model.config.num_labels)]
    num_layers = base.backbone.config.num_hidden_layers
    layer_indices = list(base.fusion.layer_indices) if base.fusion is not None else []
    masks: dict[str, torch.Tensor | None] = {FULL: None}
    if ablation and len(layer_indices) > 1:  # removing the only fused layer would leave nothing to fuse
        for position, layer in enumerate(layer_indices):
            mask = torch.ones(len(layer_indices), dtype=torch.bool)
            mask[position] = False
            masks[ablation_name(layer)] = mask
    prefixes = [k for k in range(num_layers) if not layer_indices or min(layer_indices) <= k] if first_k else []

    device = next(model.parameters()).device
    prefix_is_exact: bool | None = None if prefixes else True  # first-k from the full pass: decided on batch 1
    predicted_ids: dict[str, dict[int, np.ndarray]] = {name: {} for name in [*masks, *map(first_k_name, prefixes)]}
    gold_ids: dict[int, np.ndarray] = {}
    columns: dict[str, list] = {name: [] for name in ("sentence", "position", "words", "gold", "predicted", "weights")}
    for batch in encode_batches(dataset, tokenizer, label_list, batch_size, max_seq_length):
        inputs = {name: tensor.to(device) for name, tensor in batch.inputs.items()}
        attention_mask = inputs.get("attention_mask")
        logits, full_weights = {}, None
        with torch.inference_mode():
            hidden_states = base.backbone(**backbone_inputs(inputs), output_hidden_states=True, return_dict=True)
            hidden_states = hidden_states.hidden_states
            with shared_fusion_values(base.fusion, hidden_states):
                for name, mask in masks.items():
                    logits[name], weights = classify_hidden_states(model, hidden_states, mask, attention_mask)
                    full_weights = weights if name == FULL else full_weights
                if prefix_is_exact is not False:
                    # Layers 0..k of the full pass are what a truncated pass computes, and a masked layer's value
                    # gets weight exactly 0, so the shared values serve here too: first-k at almost no cost.
                    for k in prefixes:
                        padded = first_k_hidden_states(hidden_states, k, num_layers)
                        mask = first_k_layer_mask(layer_indices, k) if layer_indices else None
                        logits[first_k_name(k)], _ = classify_hidden_states(model, padded, mask, attention_mask)
            if prefix_is_exact is not True:
                # First batch: check the shortcut against real truncated runs. It fails where the backbone
                # post-processes its last state (ModernBERT's final norm); then every batch runs truncated.
                truncated = {first_k_name(k): first_k_forward(model, inputs, k)[0] for k in prefixes}
                if prefix_is_exact is None:
                    prefix_is_exact = all(torch.equal(truncated[name], logits[name]) for name in truncated)
                logits.update(truncated)
        ids = {name: _argmax_ids(values) for name, values in logits.items()}
        labels = batch.labels.numpy()
        for row, (word_ids, offset, dataset_row) in enumerate(
            zip(batch.word_ids, batch.offsets, batch.sentences, strict=True)
        ):
            scored = labels[row] != LABEL_PAD_ID
            gold_ids[dataset_row] = labels[row][scored]
            for name, values in ids.items():
                predicted_ids[name][dataset_row] = values[row][scored]
            tokens = dataset[dataset_row]["tokens"]
            pooled = None
            if full_weights is not None:
                span = slice(offset, offset + len(word_ids))
                pooled = pool_to_words(full_weights[row, span].float().cpu().numpy(), word_ids, len(tokens))
            first_piece = {}
            for index, word in enumerate(word_ids):
                if word is not None and word not in first_piece:
                    first_piece[word] = offset + index
            for word, piece in sorted(first_piece.items()):
                columns["sentence"].append(dataset_row)
                columns["position"].append(word)
                columns["words"].append(tokens[word])
                columns["gold"].append(label_list[int(labels[row][piece])])
                columns["predicted"].append(label_list[int(ids[FULL][row][piece])])
                if pooled is not None:
                    columns["weights"].append(pooled[word])
        if progress is not None:
            progress(batch)

    # Back to dataset order; words are already in (sentence, position) order within each sentence.
    order = np.lexsort((np.asarray(columns["position"]), np.asarray(columns["sentence"])))
    records = WordRecords(
        sentence=np.asarray(columns["sentence"])[order],
        position=np.asarray(columns["position"])[order],
        words=[columns["words"][i] for i in order],
        gold=[columns["gold"][i] for i in order],
        predicted=[columns["predicted"][i] for i in order],
        weights=np.asarray(columns["weights"])[order] if columns["weights"] else None,
    )
    rows = sorted(gold_ids)
    gold_rows = [gold_ids[row] for row in rows]
    gold_tags = [[label_list[int(i)] for i in ids_] for ids_ in gold_rows]
    metrics, predicted_tags, counts = {}, {}, {}
    for name, by_row in predicted_ids.items():
        predicted_rows = [by_row[row] for row in rows]
        metrics[name] = compute_ner_metrics(predicted_rows, gold_rows, label_list)
        predicted_tags[name] = [[label_list[int(i)] for i in ids_] for ids_ in predicted_rows]
        counts[name] = sentence_entity_counts(predicted_tags[name], gold_tags)
        # The resampled intervals rest on these counts: they must give seqeval's own F1.
        recomputed = float(f1_from_counts(counts[name].sum(axis=0)))
        if not math.isclose(recomputed, metrics[name]["overall_f1"], abs_tol=1e-9):
            raise RuntimeError(f"{name}: entity counts give F1 {recomputed}, seqeval {metrics[name]['overall_f1']}")
    result = LayerAnalysis(
        label_list=label_list,
        layer_indices=layer_indices,
        num_layers=num_layers,
        words=records,
        gold_tags=gold_tags,
        predicted_tags=predicted_tags,
        metrics=metrics,
        entity_counts=counts,
        first_k_from_full_pass=bool(prefixes) and bool(prefix_is_exact),
    )
    for name in metrics:
        if name != FULL and bootstrap_samples:
            result.intervals[name] = paired_bootstrap_interval(counts[name], counts[FULL], bootstrap_samples, seed)
    return result


# ----------------------------------------------------------------------------------------------------
# Timing first-k inference
# ----------------------------------------------------------------------------------------------------


@dataclass
class TimingResult:
    """Seconds per pass over the timed sentences, per k (k = L is the full model), one entry per repeat."""

    seconds: dict[int, list[float]]
    num_sentences: int
    num_tokens: int

    def median(self, k: int) -> float:
        """Median seconds per pass for k."""
        return float(np.median(self.seconds[k]))

    def speedups(self, k: int) -> np.ndarray:
        """Per repeat: time of the full model over time of the first-k model in that same repeat."""
        return np.asarray(self.seconds[max(self.seconds)]) / np.asarray(self.seconds[k])

    def speedup(self, k: int) -> float:
        """Median over repeats of the paired ratio: runs close in time share the machine's load, which cancels."""
        return float(np.median(self.speedups(k)))


def time_first_k(
    model: nn.Module,
    batches: Sequence[EncodedBatch],
    ks: Sequence[int],
    repeats: int = 5,
    progress: Any = None,
) -> TimingResult:
    """Wall time of `first_k_forward` over `batches` for each k (and k = L), `repeats` times, interleaved.

    Each repeat runs every k once, in an order rotated by one per repeat, so slow phases of a shared
    machine spread over all k; one untimed warm-up pass per k comes first. `progress` is called per repeat.
    """
    import time

    model.eval()
    num_layers = model.dwatt.backbone.config.num_hidden_layers
    ks = sorted(set(ks) | {num_layers})
    device = next(model.parameters()).device
    inputs = [{name: tensor.to(device) for name, tensor in batch.inputs.items()} for batch in batches]
    seconds: dict[int, list[float]] = {k: [] for k in ks}
    with torch.inference_mode():
        for k in ks:
            first_k_forward(model, inputs[0], k)
        for repeat in range(repeats):
            shift = repeat % len(ks)
            for k in ks[shift:] + ks[:shift]:
                start = time.perf_counter()
                for batch in inputs:
                    first_k_forward(model, batch, k)
                seconds[k].append(time.perf_counter() - start)
            if progress is not None:
                progress(repeat)
    num_tokens = int(sum(batch.inputs["attention_mask"].sum() for batch in batches))
    num_sentences = sum(len(batch.sentences) for batch in batches)
    return TimingResult(seconds, num_sentences, num_tokens)


# ----------------------------------------------------------------------------------------------------
# Summaries of a LayerAnalysis
# ----------------------------------------------------------------------------------------------------


@dataclass
class Profile:
    """Mean pooled fusion weight per fused layer over a group of words, with its standard error."""

    name: str
    count: int
    mean: np.ndarray  # [N]
    stderr: np.ndarray  # [N]


def profile_of(name: str, weights: np.ndarray) -> Profile:
    """Profile of the rows of `weights` (NaN means for an empty group)."""
    count = len(weights)
    if count == 0:
        nan = np.full(weights.shape[-1], np.nan)
        return Profile(name, 0, nan, nan)
    stderr = weights.std(axis=0, ddof=1) / math.sqrt(count) if count > 1 else np.zeros(weights.shape[-1])
    return Profile(name, count, weights.mean(axis=0), stderr)


def type_profiles(result: LayerAnalysis) -> list[Profile]:
    """One profile per gold entity type of the label list (types with no word are left out), then ``O``."""
    weights, types = result.words.weights, np.asarray(result.words.gold_types)
    profiles = [profile_of(name, weights[types == name]) for name in entity_types(result.label_list)]
    return [profile for profile in profiles if profile.count] + [profile_of("O", weights[types == "O"])]


def correctness_profiles(result: LayerAnalysis) -> list[Profile]:
    """Profiles of gold-entity words tagged right / wrong and of ``O`` words tagged right / as an entity."""
    weights, correct = result.words.weights, result.words.correct
    entity = np.array([tag != "O" for tag in result.words.gold])
    return [
        profile_of("entity word, tagged right", weights[entity & correct]),
        profile_of("entity word, tagged wrong", weights[entity & ~correct]),
        profile_of("O word, tagged right", weights[~entity & correct]),
        profile_of("O word, tagged as an entity", weights[~entity & ~correct]),
    ]


def entity_relevant_words(result: LayerAnalysis) -> np.ndarray:
    """Words whose tag counts in entity F1: gold or predicted part of an entity."""
    return np.array([gold != "O" or pred != "O" for gold, pred in zip(result.words.gold, result.words.predicted)])


@dataclass
class AblationRow:
    """One fused layer: the mass it receives, F1 without it, and whether mass and effect disagree."""

    layer: int
    mass_all: float  # mean weight over all words
    mass_entity: float  # mean weight over words gold or predicted as (part of) an entity
    f1: float
    precision: float
    recall: float
    predicted_entities: int
    delta: float  # F1 without the layer minus F1 of the full model
    interval: tuple[float, float] | None
    mass_rank: int  # by mass_entity, 1 = largest
    drop_rank: int  # by -delta, 1 = largest drop
    disagreement: str

    @property
    def significant(self) -> bool:
        """The 95% interval of the F1 change excludes 0."""
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)


def ablation_rows(result: LayerAnalysis) -> list[AblationRow]:
    """Per ablated layer: mass, F1 change, ranks and the rank-disagreement flag (mass over entity words).

    Entity F1 is decided on the words that are (or are predicted to be) entities, so the mass that is
    compared with the F1 drop is the mean weight over those words; the mass over all words is listed too.
    """
    layers = result.ablated_layers
    if not layers or result.words.weights is None:
        return []
    positions = [result.layer_indices.index(layer) for layer in layers]
    mass_all = result.layer_mass()[positions]
    mass_entity = result.layer_mass(entity_relevant_words(result))[positions]
    full = result.f1(FULL)
    deltas = np.array([result.f1(ablation_name(layer)) - full for layer in layers])
    flags = rank_disagreements(mass_entity, -deltas)
    mass_ranks, drop_ranks = descending_ranks(mass_entity), descending_ranks(-deltas)
    rows = []
    for i, layer in enumerate(layers):
        name = ablation_name(layer)
        metrics = result.metrics[name]
        rows.append(
            AblationRow(
                layer=layer,
                mass_all=float(mass_all[i]),
                mass_entity=float(mass_entity[i]),
                f1=metrics["overall_f1"],
                precision=metrics["overall_precision"],
                recall=metrics["overall_recall"],
                predicted_entities=int(result.entity_counts[name][:, 1].sum()),
                delta=float(deltas[i]),
                interval=result.intervals.get(name),
                mass_rank=int(mass_ranks[i]),
                drop_rank=int(drop_ranks[i]),
                disagreement=flags[i],
            )
        )
    return rows


def pick_heatmap_sentences(result: LayerAnalysis, count: int = 4, max_words: int = 18) -> list[int]:
    """Up to `count` short sentences with entities, greedily covering as many entity types as possible."""
    by_sentence: dict[int, list[int]] = {}
    for index, sentence in enumerate(result.words.sentence):
        by_sentence.setdefault(int(sentence), []).append(index)
    candidates = []
    for sentence, indices in by_sentence.items():
        types = {result.words.gold_types[i] for i in indices} - {"O"}
        if types and len(indices) <= max_words:
            entity_words = sum(result.words.gold[i] != "O" for i in indices)
            candidates.append((sentence, types, entity_words))
    chosen, covered = [], set()
    while candidates and len(chosen) < count:
        # most new types first, then most entity words, then the earlier sentence
        best = max(candidates, key=lambda item: (len(item[1] - covered), item[2], -item[0]))
        chosen.append(best[0])
        covered |= best[1]
        candidates.remove(best)
    return sorted(chosen)


# ----------------------------------------------------------------------------------------------------
# Figures (matplotlib's object API with the Agg canvas: no pyplot, no global backend change)
# ----------------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path, dpi: int = 90) -> Path:
    figure.savefig(path, dpi=dpi)
    return path


def _short_tag(tag: str) -> str:
    return tag if len(tag) <= 12 else tag[:11] + "…"


def plot_sentence_heatmaps(result: LayerAnalysis, sentences: Sequence[int], path: Path) -> Path:
    """Words x fused layers heatmaps of the pooled weights, one panel per sentence, on one colour scale."""
    words = result.words
    panels = [np.flatnonzero(words.sentence == sentence) for sentence in sentences]
    vmax = max(float(words.weights[indices].max()) for indices in panels)
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    tallest = max(len(indices) for indices in panels)
    figure = _new_figure(5.2 * columns, 0.8 + 0.24 * tallest * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for axis, sentence, indices in zip(axes.flat, sentences, panels):
        image = axis.imshow(words.weights[indices], aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax)
        labels = []
        for i in indices:
            gold, predicted = words.gold[i], words.predicted[i]
            label = f"{words.words[i][:16]}  {_short_tag(gold)}" if gold != "O" else words.words[i][:16]
            labels.append(label + (f" ✗{_short_tag(predicted)}" if predicted != gold else ""))
        axis.set_yticks(range(len(indices)), labels, fontsize=7)
        axis.set_xticks(range(len(result.layer_indices)), result.layer_indices, fontsize=7)
        axis.set_xlabel("fused hidden state (0 = embeddings)", fontsize=7)
        axis.set_title(f"sentence {sentence}", fontsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.colorbar(image, ax=axes, shrink=0.6, label="fusion weight (mean over the word's pieces)")
    figure.suptitle("Per-word fusion weights (gold tag after the word; ✗ = the model's wrong tag)", fontsize=9)
    return _save(figure, path)


def plot_type_profiles(profiles: Sequence[Profile], layer_indices: Sequence[int], path: Path) -> Path:
    """One small bar chart per entity type (mean weight per layer, ± s.e.), with the ``O`` profile as a line."""
    reference = next(profile for profile in profiles if profile.name == "O")
    entity_profiles = [profile for profile in profiles if profile.name != "O"]
    columns = min(5, max(1, len(entity_profiles)))
    rows = max(1, math.ceil(len(entity_profiles) / columns))
    figure = _new_figure(2.3 * columns, 1.9 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    x = np.arange(len(layer_indices))
    for axis, profile in zip(axes.flat, entity_profiles):
        axis.bar(x, profile.mean, yerr=profile.stderr, color="tab:blue", alpha=0.8, error_kw={"lw": 0.8})
        axis.plot(x, reference.mean, color="black", marker=".", lw=1, label=f"O (n={reference.count})")
        axis.set_title(f"{profile.name} (n={profile.count})", fontsize=8)
        axis.set_xticks(x, layer_indices, fontsize=7)
        axis.tick_params(axis="y", labelsize=7)
    for axis in list(axes.flat)[len(entity_profiles) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=6, loc="upper right")
    figure.supxlabel("fused hidden state (0 = embeddings)", fontsize=8)
    figure.supylabel("mean fusion weight", fontsize=8)
    figure.suptitle("Where words of each gold entity type draw from (bars ± s.e.; line: O words)", fontsize=9)
    return _save(figure, path)


def plot_ablation(rows: Sequence[AblationRow], path: Path) -> Path:
    """Mass per layer (top) next to the F1 change when that layer is masked out (bottom, 95% intervals)."""
    figure = _new_figure(6.0, 4.6)
    top, bottom = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(rows))
    top.bar(x - 0.2, [row.mass_entity for row in rows], 0.4, label="entity words (gold or predicted)")
    top.bar(x + 0.2, [row.mass_all for row in rows], 0.4, label="all words", color="tab:gray")
    top.set_ylabel("mean fusion weight", fontsize=8)
    top.legend(fontsize=7)
    deltas = np.array([row.delta for row in rows]) * 100
    errors = (
        np.array(
            [[row.delta - row.interval[0], row.interval[1] - row.delta] if row.interval else [0, 0] for row in rows]
        ).T
        * 100
    )
    colours = ["tab:red" if row.disagreement else "tab:blue" for row in rows]
    bottom.bar(x, deltas, yerr=errors, color=colours, error_kw={"lw": 0.8, "capsize": 2})
    bottom.axhline(0, color="black", lw=0.8)
    bottom.set_ylabel("F1 change without it (points)", fontsize=8)
    bottom.set_xticks(x, [row.layer for row in rows])
    bottom.set_xlabel("masked fused hidden state (red: mass and effect disagree in rank)", fontsize=8)
    figure.suptitle("Layer ablation: attention mass vs effect on entity F1", fontsize=9)
    return _save(figure, path)


def plot_first_k(result: LayerAnalysis, path: Path) -> Path:
    """Entity F1 (95% interval) and measured speed-up of first-k-layer inference per k."""
    ks = result.first_ks
    full = result.f1(FULL)
    f1 = np.array([result.f1(first_k_name(k)) for k in ks]) * 100
    low = np.array([full + result.intervals.get(first_k_name(k), (0.0, 0.0))[0] for k in ks]) * 100
    high = np.array([full + result.intervals.get(first_k_name(k), (0.0, 0.0))[1] for k in ks]) * 100
    figure = _new_figure(5.6, 3.4)
    axis = figure.subplots()
    axis.fill_between(ks, low, high, color="tab:blue", alpha=0.2, lw=0)
    axis.plot(ks, f1, marker="o", color="tab:blue", label="entity F1")
    axis.set_xlabel("backbone layers run (k)", fontsize=8)
    axis.set_ylabel("entity F1 (%)", color="tab:blue", fontsize=8)
    axis.set_xticks(ks)
    if result.timing is not None:
        speed = axis.twinx()
        medians = np.array([result.timing.speedup(k) for k in ks])
        quartiles = np.array([np.percentile(result.timing.speedups(k), [25, 75]) for k in ks])
        spread = np.stack([medians - quartiles[:, 0], quartiles[:, 1] - medians])
        speed.errorbar(ks, medians, yerr=spread, marker="s", color="tab:orange", capsize=2, lw=1)
        speed.set_ylabel("speed-up vs all layers (x)", color="tab:orange", fontsize=8)
    figure.suptitle("First-k-layer inference: F1 (band: 95% interval) and speed-up (bars: IQR)", fontsize=9)
    return _save(figure, path)


# ----------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------


def _points(value: float) -> str:
    """An F1 difference in points, signed."""
    return f"{value * 100:+.1f}"


def _interval(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0] * 100:+.1f}, {interval[1] * 100:+.1f}]"


def _weights_table(profiles: Sequence[Profile], layer_indices: Sequence[int], first_column: str) -> list[str]:
    """Markdown table of profiles; the largest weight of each row in bold."""
    header = f"| {first_column} | words | " + " | ".join(str(layer) for layer in layer_indices) + " | peak |"
    lines = [header, "|" + "---|" * (len(layer_indices) + 3)]
    for profile in profiles:
        if not profile.count:
            lines.append(f"| {profile.name} | 0 | " + " | ".join("" for _ in layer_indices) + " | |")
            continue
        peak = int(np.argmax(profile.mean))
        cells = [f"**{value:.3f}**" if i == peak else f"{value:.3f}" for i, value in enumerate(profile.mean)]
        lines.append(f"| {profile.name} | {profile.count} | " + " | ".join(cells) + f" | {layer_indices[peak]} |")
    return lines


def _layer_list(layers: Sequence[int]) -> str:
    return ", ".join(str(layer) for layer in layers) if layers else "none"


def profile_findings(result: LayerAnalysis, profiles: Sequence[Profile], correctness: Sequence[Profile]) -> list[str]:
    """Findings about the weight maps, in words: which layers entity types draw from more than ``O`` does."""
    layers = result.layer_indices
    reference = next(profile for profile in profiles if profile.name == "O")
    entity_profiles = [profile for profile in profiles if profile.name != "O"]
    if not entity_profiles:
        return [f"`O` words draw most from layer {layers[int(np.argmax(reference.mean))]}; no entity words."]
    by_layer: dict[int, list[str]] = {}
    for profile in entity_profiles:
        excess = profile.mean - reference.mean
        by_layer.setdefault(layers[int(np.argmax(excess))], []).append(profile.name)
    parts = [
        f"layer {layer} for {', '.join(names)}"
        for layer, names in sorted(by_layer.items(), key=lambda item: -len(item[1]))
    ]
    entity_weights = result.words.weights[np.array([tag != "O" for tag in result.words.gold])]
    entity_mean = entity_weights.mean(axis=0)
    top = int(np.argmax(entity_mean - reference.mean))
    o_peak = int(np.argmax(reference.mean))
    findings = [
        f"Entity words and `O` words draw from different depths. `O` words ({reference.count}) put most weight on "
        f"layer {layers[o_peak]} ({reference.mean[o_peak]:.3f}); entity words ({len(entity_weights)}) put "
        f"{entity_mean[top]:.3f} on layer {layers[top]} against {reference.mean[top]:.3f} for `O`. The layer each "
        f"type over-weights most relative to `O`: {'; '.join(parts)}."
    ]
    right, wrong, o_right, o_wrong = (profile.mean[top] if profile.count else float("nan") for profile in correctness)
    counts = [profile.count for profile in correctness]
    finding = (
        f"On layer {layers[top]}: entity words tagged right {right:.3f} (n={counts[0]}), tagged wrong "
        f"{wrong:.3f} (n={counts[1]}); `O` words tagged right {o_right:.3f} (n={counts[2]}), tagged as an entity "
        f"{o_wrong:.3f} (n={counts[3]})."
    )
    if counts[3] and counts[2] and abs(o_wrong - right) < abs(o_wrong - o_right):
        finding += (
            f" `O` words the model wrongly tags as entities draw from layer {layers[top]} like entity words do: "
            "the weight follows the predicted tag rather than the gold one."
        )
    findings.append(finding)
    return findings


def ablation_findings(result: LayerAnalysis, rows: Sequence[AblationRow]) -> list[str]:
    """Findings about the ablation: the largest drop, which changes are significant, where mass and effect disagree."""
    if not rows:
        return []
    full = result.metrics[FULL]
    full_predicted = int(result.entity_counts[FULL][:, 1].sum())
    worst = max(rows, key=lambda row: -row.delta)
    drops = [row.layer for row in rows if row.significant and row.delta < 0]
    gains = [row.layer for row in rows if row.significant and row.delta > 0]
    text = (
        f"Ablation: the largest F1 drop comes from masking layer {worst.layer} ({_points(worst.delta)} points, "
        f"95% interval {_interval(worst.interval)}). Significant drops (interval below 0): layers "
        f"{_layer_list(drops)}; significant gains (masking helps): layers {_layer_list(gains)}."
    )
    findings = [text]
    for row in rows:
        if row.disagreement:
            text = (
                f"Mass and effect disagree for layer {row.layer} ({row.disagreement}): rank {row.mass_rank} by mass "
                f"on entity words ({row.mass_entity:.3f}), rank {row.drop_rank} by F1 drop "
                f"({_points(row.delta)} {_interval(row.interval)}; precision {full['overall_precision']:.3f} -> "
                f"{row.precision:.3f}, recall {full['overall_recall']:.3f} -> {row.recall:.3f}, "
                f"{full_predicted} -> {row.predicted_entities} predicted entities)."
            )
            if not row.significant:
                text += " The F1 change is within the 95% interval of no change: this may be noise."
            findings.append(text)
    return findings


def first_k_findings(result: LayerAnalysis) -> list[str]:
    """Findings about first-k inference: the shallowest k whose F1 is not significantly below the full model."""
    ks = [k for k in result.first_ks if k < result.num_layers]
    if not ks:
        return []
    full = result.f1(FULL)
    safe = [k for k in ks if result.intervals.get(first_k_name(k), (0.0, 0.0))[1] >= 0]
    speed = (lambda k: f", {result.timing.speedup(k):.2f}x as fast") if result.timing else (lambda k: "")
    if not safe:
        k = max(ks)
        return [
            f"First-k inference: every k < {result.num_layers} loses F1 significantly; the deepest, k={k}, gives "
            f"{result.f1(first_k_name(k)):.3f} ({_points(result.f1(first_k_name(k)) - full)}){speed(k)}."
        ]
    k = min(safe)
    text = (
        f"First-k inference: k={k} is the shallowest whose F1 is not significantly below the full model: "
        f"{result.f1(first_k_name(k)):.3f} ({_points(result.f1(first_k_name(k)) - full)} points, "
        f"{_interval(result.intervals.get(first_k_name(k)))}){speed(k)}."
    )
    if k - 1 in ks:
        shallower = first_k_name(k - 1)
        text += f" One layer fewer (k={k - 1}) costs {_points(result.f1(shallower) - full)} points{speed(k - 1)}."
    return [text]


def write_report(
    result: LayerAnalysis,
    output_dir: str | Path,
    title: str,
    description: Sequence[str] = (),
    num_heatmaps: int = 4,
) -> Path:
    """Write ``report.md`` and the figures of a `LayerAnalysis` into `output_dir`; return the report's path.

    `description`: Markdown lines that say what was analysed and how it was produced (put under the title).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    layers = result.layer_indices
    full = result.metrics[FULL]
    lines = [f"# Layer analysis: {title}", "", *description, ""]
    lines.append(
        f"Full model: entity F1 **{full['overall_f1']:.4f}** (precision {full['overall_precision']:.4f}, recall "
        f"{full['overall_recall']:.4f}) on {len(result.gold_tags)} sentences, {len(result.words.words)} words."
    )
    has_weights = result.words.weights is not None
    profiles = type_profiles(result) if has_weights else []
    correctness = correctness_profiles(result) if has_weights else []
    rows = ablation_rows(result)
    findings = []
    if has_weights:
        findings += profile_findings(result, profiles, correctness)
    findings += ablation_findings(result, rows) + first_k_findings(result)
    lines += ["", "## Findings", "", *[f"- {finding}" for finding in findings]]

    lines += ["", "## 1. Where each word draws from", ""]
    if not has_weights:
        lines.append("This fusion has no per-token weights (`fusion_weights` is None): no weight maps.")
    else:
        lines.append(
            "The fusion weights of each sub-word token (`output_fusion_weights=True`) are averaged over the pieces "
            "of each word (the tokenizer's `word_ids`), so each word's weights still sum to 1. Columns are the fused "
            "hidden states (0 = embedding output, L = last layer); the largest weight of each row is in bold."
        )
        sentences = pick_heatmap_sentences(result, num_heatmaps)
        if sentences:
            plot_sentence_heatmaps(result, sentences, output_dir / "sentence_heatmaps.png")
            lines += ["", "![Per-word fusion weights of a few sentences](sentence_heatmaps.png)"]
        plot_type_profiles(profiles, layers, output_dir / "type_profiles.png")
        lines += ["", "Mean weight per layer by gold entity type (B- and I- words together):", ""]
        lines += _weights_table(profiles, layers, "gold type")
        lines += ["", "![Mean fusion weight per layer for each entity type](type_profiles.png)", ""]
        lines += ["By whether the model tags the word right (its tag at the word's first piece):", ""]
        lines += _weights_table(correctness, layers, "group")

    if rows:
        lines += ["", "## 2. Layer ablation", ""]
        lines.append(
            "Each fused layer is masked out in turn (`fusion_layer_mask`; the other weights renormalise) and the "
            "test set is scored again. *Mass* is the layer's mean weight over the words that are or are predicted "
            "to be (part of) an entity, the words entity F1 is decided on (over all words in the next column). "
            "Intervals are 95% paired bootstrap intervals over sentences (1,000 resamples). Rule: mass and F1 drop "
            f"are each ranked (1 = largest); where the ranks differ by {max(2, math.ceil(len(rows) / 3))} or more "
            "(a third of the layers), the layer is flagged."
        )
        lines += [
            "",
            "| masked layer | mass (entity words) | mass (all words) | F1 without it | change | 95% interval "
            "| precision | recall | predicted entities | mass rank | drop rank | mass vs effect |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| none (full model) | | | {full['overall_f1']:.4f} | | | {full['overall_precision']:.3f} "
            f"| {full['overall_recall']:.3f} | {int(result.entity_counts[FULL][:, 1].sum())} | | | |",
        ]
        for row in rows:
            lines.append(
                f"| {row.layer} | {row.mass_entity:.3f} | {row.mass_all:.3f} | {row.f1:.4f} | {_points(row.delta)} "
                f"| {_interval(row.interval)} | {row.precision:.3f} | {row.recall:.3f} | {row.predicted_entities} "
                f"| {row.mass_rank} | {row.drop_rank} | {row.disagreement or 'agree'} |"
            )
        drops = [-row.delta for row in rows]
        rho_entity = spearman([row.mass_entity for row in rows], drops)
        rho_all = spearman([row.mass_all for row in rows], drops)
        lines += [
            "",
            f"Spearman rank correlation with the F1 drop: {rho_entity:+.2f} for the mass on entity words, "
            f"{rho_all:+.2f} for the mass on all words.",
        ]
        plot_ablation(rows, output_dir / "ablation.png")
        lines += ["", "![Layer ablation: mass and F1 change](ablation.png)"]

    ks = result.first_ks
    if len(ks) > 1:
        lines += ["", "## 3. First-k-layer inference", ""]
        how = (
            "taken from layers 0..k of the full pass, which was checked to equal the truncated run bit for bit "
            "on the first batch"
            if result.first_k_from_full_pass
            else "from truncated runs"
        )
        lines.append(
            "The backbone runs only its first k layers (`dwatt.analysis.truncated_backbone`); the hidden states are "
            "padded to L+1 with z_k (so z_k is the fusion's last state: query and residual), the layers above k are "
            f"masked out, and the fusion and head run as usual. k = L is the full model. Scores are {how}."
        )
        timing = result.timing
        if timing is not None:
            repeats = len(next(iter(timing.seconds.values())))
            lines.append(
                f"Speed: forward passes over the first {timing.num_sentences} sentences ({timing.num_tokens} tokens), "
                f"{repeats} repeats, each running every k once, in an order rotated per repeat. Speed-up is the "
                "median over repeats of the full model's time divided by the first-k time of the same repeat "
                "(paired, so changes in the load of a shared machine cancel), with its interquartile range. The "
                "fusion skips the value MLPs of the masked layers above k, so its cost shrinks with k too."
            )
        lines += [
            "",
            "| k | fused states used | F1 | change | 95% interval | median time (s) | speed-up | speed-up IQR |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in ks:
            name = FULL if k == result.num_layers else first_k_name(k)
            used = [layer for layer in layers if layer <= k] if layers else []
            time_cells = "| | | |"
            if timing is not None and k in timing.seconds:
                low, high = np.percentile(timing.speedups(k), [25, 75])
                time_cells = f"| {timing.median(k):.3f} | {timing.speedup(k):.2f}x | {low:.2f}-{high:.2f} |"
            change = "" if name == FULL else _points(result.f1(name) - result.f1(FULL))
            lines.append(
                f"| {k} | {_layer_list(used)} | {result.f1(name):.4f} | {change} "
                f"| {_interval(result.intervals.get(name))} {time_cells}"
            )
        plot_first_k(result, output_dir / "first_k.png")
        lines += ["", "![First-k-layer inference: F1 and speed-up](first_k.png)"]

    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
