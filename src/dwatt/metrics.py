"""Evaluation metrics for dwatt: entity-level NER scores (seqeval) and classification scores.

`compute_ner_metrics` returns the keys of the Hugging Face ``run_ner`` example with
``return_entity_level_metrics=True``: ``overall_precision``, ``overall_recall``, ``overall_f1``,
``overall_accuracy`` and, per entity type, ``{type}_precision``, ``_recall``, ``_f1``,
``_number``. It calls `seqeval.metrics` directly in its default (conlleval-compatible) mode,
because ``evaluate.load("seqeval")`` downloads the metric script and fails offline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from seqeval.metrics import accuracy_score
from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

__all__ = [
    "IGNORE_INDEX",
    "align_predictions",
    "compute_classification_metrics",
    "compute_ner_metrics",
    "entity_types",
    "make_ner_compute_metrics",
]
#: Label id of positions that are not scored (special tokens, non-first sub-words, padding).
IGNORE_INDEX = -100


def _to_ids(row: Any) -> np.ndarray:
    """Label ids of one sequence from logits ``[seq, num_labels]`` or ids ``[seq]``."""
    array = np.asarray(row)
    return array.argmax(axis=-1) if array.ndim == 2 else array


def _first_output(predictions: Any) -> Any:
    # Models returning extra outputs (hidden states, fusion weights) give Trainer a tuple
    # whose first element holds the logits.
    return predictions[0] if isinstance(predictions, tuple) else predictions


def align_predictions(
    predictions: Any, label_ids: Any, label_list: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Turn predictions and gold ids into tag strings, dropping positions whose gold is -100.

    ``predictions``: logits ``[batch, seq, num_labels]`` or argmax ids ``[batch, seq]`` (rows may
    be ragged lists). Returns ``(pred_tags, gold_tags)``, one list of tags per sentence.
    """
    predictions = _first_output(predictions)
    if len(predictions) != len(label_ids):
        raise ValueError(f"{len(predictions)} prediction rows but {len(label_ids)} label rows; expected equal")
    pred_tags: list[list[str]] = []
    gold_tags: list[list[str]] = []
    for pred_row, gold_row in zip(predictions, label_ids, strict=True):
        pred_ids = _to_ids(pred_row)
        gold_ids = np.asarray(gold_row)
        scored = gold_ids != IGNORE_INDEX
        if scored.any() and int(np.flatnonzero(scored)[-1]) >= len(pred_ids):
            raise ValueError("a prediction row is shorter than its labelled positions")
        pred_tags.append([label_list[int(i)] for i in pred_ids[: len(gold_ids)][scored]])
        gold_tags.append([label_list[int(i)] for i in gold_ids[scored]])
    return pred_tags, gold_tags


def logits_to_label_ids(logits: Any, labels: Any) -> Any:
    """`preprocess_logits_for_metrics` for token classification: the argmax label id per token.

    Evaluation then gathers and keeps `[N, T]` ids across processes instead of `[N, T, num_labels]` logits.
    """
    return _first_output(logits).argmax(dim=-1)


def entity_types(label_list: Sequence[str]) -> list[str]:
    """Sorted entity types of a label list (``B-PER``/``I-PER`` give ``PER``; ``O`` none)."""
    return sorted({label.split("-", 1)[1] for label in label_list if "-" in label})


def _scores_from_tags(pred_tags: list[list[str]], gold_tags: list[list[str]], types: Sequence[str]) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(gold_tags, pred_tags, average="micro", zero_division=0)
    results: dict[str, float] = {
        "overall_precision": float(precision),
        "overall_recall": float(recall),
        "overall_f1": float(f1),
        "overall_accuracy": float(accuracy_score(gold_tags, pred_tags)) if any(gold_tags) else 0.0,
    }
    # seqeval reports the sorted union of gold and predicted types; we list every type of the
    # label list (zeros where absent) so logged keys stay the same from step to step.
    seen = sorted({name for name, _, _ in get_entities(gold_tags)} | {name for name, _, _ in get_entities(pred_tags)})
    per_type = {name: (0.0, 0.0, 0.0, 0) for name in types}
    if seen:
        p, r, f, support = precision_recall_fscore_support(gold_tags, pred_tags, average=None, zero_division=0)
        for name, values in zip(seen, zip(p, r, f, support, strict=True), strict=True):
            per_type[name] = values
    for name in sorted(per_type):
        p_value, r_value, f_value, number = per_type[name]
        results[f"{name}_precision"] = float(p_value)
        results[f"{name}_recall"] = float(r_value)
        results[f"{name}_f1"] = float(f_value)
        results[f"{name}_number"] = int(number)
    return results


def score_tag_sequences(
    pred_tags: list[list[str]], gold_tags: list[list[str]], label_list: Sequence[str]
) -> dict[str, float]:
    """The metrics of `compute_ner_metrics` from word-level tag strings (e.g. windowed predictions)."""
    return _scores_from_tags(pred_tags, gold_tags, entity_types(label_list))


def compute_ner_metrics(
    predictions: Any,
    labels: Any,
    label_list: Sequence[str],
    entity_level: bool = True,
) -> dict[str, float]:
    """Entity-level micro P/R/F1 and token accuracy (seqeval, conlleval-compatible mode).

    ``labels`` use -100 for positions to ignore. With ``entity_level`` (default) the result
    also has ``{type}_precision/_recall/_f1/_number`` for every type of ``label_list``, with
    zeros for types neither gold nor predicted (run_ner omits those; keeping them gives a
    stable set of keys across evaluations). ``zero_division`` is 0 throughout.
    """
    pred_tags, gold_tags = align_predictions(predictions, labels, label_list)
    results = _scores_from_tags(pred_tags, gold_tags, entity_types(label_list))
    if not entity_level:
        results = {key: value for key, value in results.items() if key.startswith("overall_")}
    return results


def make_ner_compute_metrics(label_list: Sequence[str], entity_level: bool = True) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics(eval_pred)`` for `transformers.Trainer` on token classification."""
    labels = list(label_list)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, label_ids = _unpack_eval_pred(eval_pred)
        return compute_ner_metrics(predictions, label_ids, labels, entity_level=entity_level)

    return compute_metrics


def _unpack_eval_pred(eval_pred: Any) -> tuple[Any, Any]:
    if hasattr(eval_pred, "predictions"):
        return eval_pred.predictions, eval_pred.label_ids
    predictions, label_ids = eval_pred[0], eval_pred[1]
    return predictions, label_ids


def compute_classification_metrics(eval_pred: Any) -> dict[str, float]:
    """``accuracy`` and ``macro_f1`` for sequence classification (Trainer ``compute_metrics``).

    Takes an `EvalPrediction` or a ``(predictions, label_ids)`` pair; predictions are logits
    ``[n, num_classes]`` or class ids ``[n]``.
    """
    from sklearn.metrics import f1_score

    predictions, label_ids = _unpack_eval_pred(eval_pred)
    predicted = _to_ids(_first_output(predictions)).reshape(-1)
    gold = np.asarray(label_ids).reshape(-1)
    return {
        "accuracy": float((predicted == gold).mean()) if gold.size else 0.0,
        "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
    }
