"""Evaluation metrics for dwatt: entity-level NER scores (seqeval, through `evaluate`) and classification scores.

`compute_ner_metrics` returns the keys transformers' token-classification example logs: ``precision``,
``recall``, ``f1`` (entity-level, micro) and ``accuracy`` (token), and, per entity type that is in the gold or
the predicted tags, ``{type}_precision``, ``_recall``, ``_f1`` and ``_number`` (as its
``return_entity_level_metrics`` gives them), so ``--metric_for_best_model f1`` works. The scores come from the
seqeval metric module shipped in the package (`dwatt.evaluate_metrics.SEQEVAL`, loaded with `evaluate.load`
offline; the Hub's is a script downloaded at load time), in seqeval's default (conlleval-compatible) mode. Run
folders written before 0.2 hold ``overall_f1`` etc.; `overall_score` reads either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "align_predictions",
    "compute_classification_metrics",
    "compute_ner_metrics",
    "entity_types",
    "make_ner_compute_metrics",
    "overall_score",
]
#: The overall scores, under the keys transformers' token-classification example logs them.
OVERALL_SCORES = ("precision", "recall", "f1", "accuracy")
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
        scored = np.flatnonzero(gold_ids != IGNORE_INDEX)
        if scored.size and int(scored[-1]) >= len(pred_ids):
            raise ValueError("a prediction row is shorter than its labelled positions")
        pred_tags.append([label_list[int(i)] for i in pred_ids[scored]])
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


@functools.cache
def seqeval_metric():
    """The packaged seqeval metric, loaded once (in memory: nothing is written to the cache folder)."""
    import evaluate

    from .evaluate_metrics import SEQEVAL

    return evaluate.load(SEQEVAL, keep_in_memory=True)


def _scores_from_tags(pred_tags: list[list[str]], gold_tags: list[list[str]]) -> dict[str, float]:
    if not any(gold_tags):  # nothing labelled to score (seqeval's accuracy would divide by zero)
        return {name: 0.0 for name in OVERALL_SCORES}
    report = seqeval_metric().compute(predictions=pred_tags, references=gold_tags, zero_division=0)
    results: dict[str, float] = {name: float(report[f"overall_{name}"]) for name in OVERALL_SCORES}
    for name in sorted(key for key, value in report.items() if isinstance(value, dict)):
        for score, value in report[name].items():
            results[f"{name}_{score}"] = int(value) if score == "number" else float(value)
    return results


def overall_score(metrics: dict, prefix: str, name: str) -> float | None:
    """A run's overall score (`name` in `OVERALL_SCORES`) from its metrics under today's key (`eval_f1`) or the
    key dwatt wrote before 0.2 (`eval_overall_f1`); None when it has neither."""
    for key in (f"{prefix}_{name}", f"{prefix}_overall_{name}"):
        if key in metrics:
            return metrics[key]
    return None


def score_tag_sequences(
    pred_tags: list[list[str]], gold_tags: list[list[str]], label_list: Sequence[str]
) -> dict[str, float]:
    """The metrics of `compute_ner_metrics` from word-level tag strings (e.g. windowed predictions)."""
    return _scores_from_tags(pred_tags, gold_tags)


def compute_ner_metrics(
    predictions: Any,
    labels: Any,
    label_list: Sequence[str],
    entity_level: bool = True,
) -> dict[str, float]:
    """Entity-level micro P/R/F1 and token accuracy (seqeval, conlleval-compatible mode).

    ``labels`` use -100 for positions to ignore. With ``entity_level`` (default) the result also has
    ``{type}_precision/_recall/_f1/_number`` for every type in the gold or predicted tags. ``zero_division``
    is 0 throughout.
    """
    pred_tags, gold_tags = align_predictions(predictions, labels, label_list)
    results = _scores_from_tags(pred_tags, gold_tags)
    if not entity_level:
        results = {name: results[name] for name in OVERALL_SCORES}
    return results


def make_ner_compute_metrics(label_list: Sequence[str], entity_level: bool = True) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics(eval_pred)`` for `transformers.Trainer` on token classification."""
    labels = list(label_list)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, label_ids = _unpack_eval_pred(eval_pred)
        return compute_ner_metrics(predictions, label_ids, labels, entity_level=entity_level)

    return compute_metrics


def _unpack_eval_pred(eval_pred: Any) -> tuple[Any, Any]:
    """(predictions, label_ids) of an `EvalPrediction` (indexable like a tuple) or a pair."""
    return eval_pred[0], eval_pred[1]


def compute_classification_metrics(eval_pred: Any) -> dict[str, float]:
    """``accuracy`` and ``macro_f1`` for sequence classification (Trainer ``compute_metrics``).

    Takes an `EvalPrediction` or a ``(predictions, label_ids)`` pair; predictions are logits
    ``[n, num_classes]`` or class ids ``[n]``.
    """
    from sklearn.metrics import f1_score

    predictions, label_ids = _unpack_eval_pred(eval_pred)
    predicted = _to_ids(_first_output(predictions)).reshape(-1)
    gold = np.asarray(label_ids).reshape(-1)
    if not gold.size:
        raise ValueError("compute_classification_metrics: no examples to score; expected at least one label")
    return {
        "accuracy": float((predicted == gold).mean()),
        "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
    }
