"""Probes of a trained model: per-word depth weights, layer ablations and first-k-layer predictions."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data.tokenization import (
    LABEL_PAD_ID,
    NUM_WORDS_TRUNCATED_COLUMN,
    make_token_collator,
    tokenize_and_align_labels,
)
from ...metrics import compute_ner_metrics
from ..stats import entity_type_of, f1_from_counts, paired_bootstrap_interval, sentence_entity_counts

logger = logging.getLogger(__name__)

#: Name of the unmodified model among the conditions of a `LayerAnalysis`.
FULL = "full"


def ablation_name(layer: int) -> str:
    """Condition name of the model with fused hidden state `layer` masked out."""
    return f"without {layer}"


def first_k_name(k: int) -> str:
    """Condition name of the model run on its first k backbone layers."""
    return f"first {k}"


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
    value_cache: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, fusion weights) of a token classifier from given backbone hidden states: the model's own
    `fuse`, then its head (dropout, classifier). `value_cache` shares DWAtt's values across the calls of
    one batch (see `DWAttDepthAttention.forward`)."""
    hidden, weights = model.dwatt.fuse(hidden_states, attention_mask, layer_mask, value_cache=value_cache)
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


@dataclass
class EncodedBatch:
    """One model batch with what is needed to go back to words."""

    inputs: dict[str, torch.Tensor]  # padded model inputs, no labels
    labels: torch.Tensor  # [batch, tokens], -100 where not scored
    word_ids: list[list[int | None]]  # per sentence, unpadded
    offsets: list[int]  # per sentence: position of its first token in the padded row (left padding)
    sentences: list[int]  # dataset row of each sentence
    # per sentence: words past `max_seq_length`, cut from the end and not scored
    words_truncated: list[int] = field(default_factory=list)


def encode_batches(
    dataset: Any, tokenizer: Any, label_list: Sequence[str], batch_size: int = 32, max_seq_length: int | None = 128
) -> list[EncodedBatch]:
    """Tokenise a NER dataset (``tokens``, ``ner_tags``) into model batches, labels mapped to `label_list`.

    Sentences are batched in order of length, so little compute goes to padding (half of it on tweets in
    file order); `EncodedBatch.sentences` maps rows back to the dataset. Words past `max_seq_length` sub-words are
    cut from the end of their sentence and not scored: `EncodedBatch.words_truncated` counts them per sentence.
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
        truncated = [int(encoding[NUM_WORDS_TRUNCATED_COLUMN][row]) for row in rows]
        batches.append(EncodedBatch(dict(padded), labels, word_ids, offsets, rows, truncated))
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
    weighted: str = ""  # what the fusion weights multiply, in words (normalised states or raw ones)
    words_truncated: int = 0  # words past max_seq_length, cut from the end of their sentence: not scored
    sentences_truncated: int = 0  # sentences that lost words so
    max_seq_length: int | None = None
    bootstrap_samples: int = 0  # resamples behind `intervals`

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
        return self.metrics[name]["f1"]

    def layer_mass(self, words: np.ndarray | None = None) -> np.ndarray:
        """Mean pooled weight per fused layer over the selected words (all by default)."""
        weights = self.words.weights
        return weights.mean(axis=0) if words is None else weights[words].mean(axis=0)


def _argmax_ids(logits: torch.Tensor) -> np.ndarray:
    return logits.argmax(dim=-1).cpu().numpy()


def weighted_states(config) -> str:
    """What a fusion's weights multiply, said plainly: a weight read off raw states of a pre-LN backbone also
    carries the state's norm, which grows with depth."""
    if config.fusion == "dwatt":
        return "each layer's value v_n, layer-normalised in DWAtt's value path"
    if config.fusion not in ("scalar_mix", "mean"):
        return ""
    if getattr(config, "fusion_layer_norm", False):
        return "the layer-normalised hidden states (`fusion_layer_norm=true`): the weights compare layers on one scale"
    return ("the hidden states as the backbone gives them (`fusion_layer_norm=false`): a layer's share of the fused "
            "state is its weight times its norm, and the norms are not equal across layers")  # fmt: skip


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
    truncated_by_row: dict[int, int] = {}
    for batch in encode_batches(dataset, tokenizer, label_list, batch_size, max_seq_length):
        truncated_by_row.update((row, count) for row, count in zip(batch.sentences, batch.words_truncated) if count)
        inputs = {name: tensor.to(device) for name, tensor in batch.inputs.items()}
        attention_mask = inputs.get("attention_mask")
        logits, full_weights = {}, None
        with torch.inference_mode():
            hidden_states = base.backbone(**backbone_inputs(inputs), output_hidden_states=True, return_dict=True)
            hidden_states = hidden_states.hidden_states
            cache = {}  # DWAtt's values of this batch, shared by every mask and prefix below
            for name, mask in masks.items():
                logits[name], weights = classify_hidden_states(model, hidden_states, mask, attention_mask, cache)
                full_weights = weights if name == FULL else full_weights
            if prefix_is_exact is not False:
                # Layers 0..k of the full pass are what a truncated pass computes, and a masked layer's value
                # gets weight exactly 0, so the shared values serve here too: first-k at almost no cost.
                for k in prefixes:
                    padded = first_k_hidden_states(hidden_states, k, num_layers)
                    mask = first_k_layer_mask(layer_indices, k) if layer_indices else None
                    logits[first_k_name(k)], _ = classify_hidden_states(model, padded, mask, attention_mask, cache)
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
        if not math.isclose(recomputed, metrics[name]["f1"], abs_tol=1e-9):
            raise RuntimeError(f"{name}: entity counts give F1 {recomputed}, seqeval {metrics[name]['f1']}")
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
        weighted=weighted_states(model.config),
        words_truncated=sum(truncated_by_row.values()),
        sentences_truncated=len(truncated_by_row),
        max_seq_length=max_seq_length,
        bootstrap_samples=bootstrap_samples,
    )
    if result.words_truncated:
        logger.warning("%s", truncation_note(result))
    for name in metrics:
        if name != FULL and bootstrap_samples:
            result.intervals[name] = paired_bootstrap_interval(counts[name], counts[FULL], bootstrap_samples, seed)
    return result


def truncation_note(result: LayerAnalysis) -> str:
    """What `max_seq_length` cut from the scoring, in words; empty when nothing was cut."""
    if not result.words_truncated:
        return ""
    scored = len(result.words.words)
    return (
        f"{result.words_truncated} of {scored + result.words_truncated} words were not scored: past max_seq_length "
        f"{result.max_seq_length} sub-words, cut from the end of {result.sentences_truncated} of "
        f"{len(result.gold_tags)} sentences (F1, ablation, first-k and weights are over the other {scored} words); "
        "raise --max_seq_length to score them"
    )


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
