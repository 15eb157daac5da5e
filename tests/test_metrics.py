"""Tests for dwatt.metrics on hand-made cases whose scores were worked out by hand."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from dwatt.metrics import (
    align_predictions,
    compute_classification_metrics,
    compute_ner_metrics,
    entity_types,
    make_ner_compute_metrics,
)

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
ID = {label: index for index, label in enumerate(LABELS)}

# Gold / predicted tags per sentence. Entities:
#   PER: gold 3 (s1, s2, s5), predicted 2 (s1, s3), correct 1 -> P 1/2, R 1/3, F1 0.4
#   LOC: gold 3 (s1, s2, s4), predicted 3 (s2 twice, s4), correct 2 -> P = R = F1 = 2/3
#   all: gold 6, predicted 5, correct 3 -> P 3/5, R 1/2, F1 6/11
#   tokens: 8 of 12 right -> accuracy 2/3
GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["B-LOC", "O", "B-PER"],
    ["O", "O"],
    ["B-LOC", "I-LOC"],
    ["B-PER"],
]
PRED = [
    ["B-PER", "I-PER", "O", "O"],
    ["B-LOC", "O", "B-LOC"],
    ["B-PER", "O"],
    ["B-LOC", "I-LOC"],
    ["O"],
]
WIDTH = 7  # [CLS] + at most 4 words + padding


def padded_ids(tag_rows: list[list[str]], is_gold: bool) -> np.ndarray:
    """Rows like a Trainer batch: position 0 is [CLS], the tail is padding.

    Gold is -100 there; predictions get a real label (B-PER) so that counting an ignored
    position would change the scores.
    """
    fill = -100 if is_gold else ID["B-PER"]
    array = np.full((len(tag_rows), WIDTH), fill, dtype=np.int64)
    for row, tags in enumerate(tag_rows):
        array[row, 1 : 1 + len(tags)] = [ID[tag] for tag in tags]
    return array


def as_logits(ids: np.ndarray) -> np.ndarray:
    logits = np.random.default_rng(0).normal(size=(*ids.shape, len(LABELS))).astype(np.float32)
    np.put_along_axis(logits, ids[..., None], 10.0, axis=-1)
    return logits


EXPECTED = {
    "precision": 0.6,
    "recall": 0.5,
    "f1": 6 / 11,
    "accuracy": 2 / 3,
    "LOC_precision": 2 / 3,
    "LOC_recall": 2 / 3,
    "LOC_f1": 2 / 3,
    "LOC_number": 3,
    "PER_precision": 0.5,
    "PER_recall": 1 / 3,
    "PER_f1": 0.4,
    "PER_number": 3,
}


def test_hand_computed_scores_from_ids_and_logits() -> None:
    gold, pred = padded_ids(GOLD, True), padded_ids(PRED, False)
    for predictions in (pred, as_logits(pred)):
        results = compute_ner_metrics(predictions, gold, LABELS)
        assert set(results) == set(EXPECTED)
        assert results == pytest.approx(EXPECTED, abs=1e-12)
        assert isinstance(results["f1"], float)
        assert isinstance(results["PER_number"], int)


def test_align_predictions_drops_ignored_positions() -> None:
    pred_tags, gold_tags = align_predictions(padded_ids(PRED, False), padded_ids(GOLD, True), LABELS)
    assert gold_tags == GOLD
    assert pred_tags == PRED


def test_ignored_positions_inside_a_sentence() -> None:
    # Non-first sub-words are -100 in gold; whatever is predicted there must not count.
    gold = np.array([[-100, ID["B-PER"], -100, -100, ID["O"], -100]])
    pred = np.array([[ID["B-LOC"], ID["B-PER"], ID["B-LOC"], ID["I-LOC"], ID["O"], ID["B-LOC"]]])
    results = compute_ner_metrics(pred, gold, LABELS)
    assert results["f1"] == 1.0
    assert results["accuracy"] == 1.0
    assert "LOC_number" not in results  # LOC was predicted only where nothing is scored


def test_default_mode_is_conlleval_like() -> None:
    # conlleval (seqeval's default mode) lets a predicted chunk start with I-.
    gold = np.array([[ID["B-PER"], ID["I-PER"], ID["O"]]])
    pred = np.array([[ID["I-PER"], ID["I-PER"], ID["O"]]])
    assert compute_ner_metrics(pred, gold, LABELS)["f1"] == 1.0


def test_per_type_keys_only_for_types_in_gold_or_predictions_and_zero_division() -> None:
    labels = ["O", "B-geo-loc", "I-geo-loc", "B-person", "I-person"]
    gold = np.array([[0, 0, -100]])
    pred = np.array([[0, 0, 3]])
    results = compute_ner_metrics(pred, gold, labels)
    assert not [key for key in results if key.startswith(("geo-loc_", "person_"))]  # as transformers' run_ner logs
    assert results["f1"] == 0.0 and results["accuracy"] == 1.0
    overall_only = compute_ner_metrics(pred, gold, labels, entity_level=False)
    assert set(overall_only) == {"precision", "recall", "f1", "accuracy"}
    assert entity_types(labels) == ["geo-loc", "person"]


def test_make_ner_compute_metrics_for_trainer() -> None:
    from transformers import EvalPrediction

    compute_metrics = make_ner_compute_metrics(LABELS)
    gold, pred = padded_ids(GOLD, True), padded_ids(PRED, False)
    # Models with extra outputs hand Trainer a tuple whose first item holds the logits.
    eval_pred = EvalPrediction(predictions=(as_logits(pred), np.zeros(3)), label_ids=gold)
    assert compute_metrics(eval_pred) == pytest.approx(EXPECTED, abs=1e-12)
    assert compute_metrics((pred, gold))["f1"] == pytest.approx(6 / 11)
    overall_only = make_ner_compute_metrics(LABELS, entity_level=False)((pred, gold))
    assert overall_only == pytest.approx({name: EXPECTED[name] for name in ("precision", "recall", "f1", "accuracy")})


def test_mismatched_batch_sizes_raise() -> None:
    with pytest.raises(ValueError, match="prediction rows"):
        compute_ner_metrics(np.zeros((2, 3), dtype=int), np.zeros((3, 3), dtype=int), LABELS)
    # A prediction row one position shorter than its last labelled position.
    with pytest.raises(ValueError, match="^a prediction row is shorter than its labelled positions$"):
        compute_ner_metrics([np.array([0, 1])], [np.array([0, 1, 0])], LABELS)
    assert compute_ner_metrics([np.array([0, 1])], [np.array([0, 1, -100])], LABELS)["accuracy"] == 1.0


def test_nothing_labelled_scores_zero_and_undefined_scores_are_zero_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seqeval's and sklearn's "ill-defined" warnings would fail here
        assert compute_ner_metrics(np.zeros((2, 3), dtype=int), np.full((2, 3), -100), LABELS) == {
            "precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.0,
        }  # fmt: skip
        # Predicted PER where gold has no entity: precision 0, recall undefined -> 0.
        results = compute_ner_metrics(np.array([[ID["B-PER"], 0]]), np.array([[0, 0]]), LABELS)
        assert results["recall"] == 0.0 and results["PER_recall"] == 0.0 and results["f1"] == 0.0
        assert compute_classification_metrics((np.array([0, 0]), np.array([0, 1])))["macro_f1"] == pytest.approx(1 / 3)


def test_classification_metrics() -> None:
    from transformers import EvalPrediction

    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])  # predicts 0, 1, 0, 1
    labels = np.array([0, 1, 1, 1])
    # class 0: P 1/2, R 1 -> F1 2/3; class 1: P 1, R 2/3 -> F1 4/5; macro F1 = 11/15
    results = compute_classification_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert results == pytest.approx({"accuracy": 0.75, "macro_f1": 11 / 15}, abs=1e-12)
    assert compute_classification_metrics((np.array([1, 1]), np.array([1, 1]))) == {
        "accuracy": 1.0,
        "macro_f1": 1.0,
    }
    column = compute_classification_metrics((logits, labels.reshape(-1, 1)))  # labels as a [n, 1] column
    assert column == pytest.approx({"accuracy": 0.75, "macro_f1": 11 / 15}, abs=1e-12)
    empty = "^compute_classification_metrics: no examples to score; expected at least one label$"
    with pytest.raises(ValueError, match=empty):
        compute_classification_metrics((np.zeros((0, 2)), np.zeros(0, dtype=int)))


def random_tags(rng, sentences: int, types=("PER", "LOC", "ORG")) -> list[list[str]]:
    tags = ["O", *(f"{prefix}-{name}" for name in types for prefix in "BI")]
    return [[tags[i] for i in rng.integers(0, len(tags), size=rng.integers(1, 9))] for _ in range(sentences)]


def test_the_packaged_seqeval_module_loads_offline_and_equals_seqeval_itself():
    """`evaluate.load(dwatt.evaluate_metrics.SEQEVAL)` with HF_HUB_OFFLINE=1: the Hub seqeval metric's keys and
    seqeval's own numbers, on random tag sequences (I- starting chunks included)."""
    import evaluate
    from seqeval.metrics import accuracy_score
    from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

    from dwatt.evaluate_metrics import SEQEVAL

    metric = evaluate.load(SEQEVAL, keep_in_memory=True)
    rng = np.random.default_rng(0)
    for trial in range(5):
        gold = random_tags(rng, 30)
        pred = [[tag if rng.random() < 0.7 else "O" for tag in sentence] for sentence in gold]
        result = metric.compute(predictions=pred, references=gold, zero_division=0)
        seen = sorted({name for name, *_ in get_entities(gold)} | {name for name, *_ in get_entities(pred)})
        assert set(result) == {*seen, "overall_precision", "overall_recall", "overall_f1", "overall_accuracy"}
        precision, recall, f1, _ = precision_recall_fscore_support(gold, pred, average="micro", zero_division=0)
        assert (result["overall_precision"], result["overall_recall"], result["overall_f1"]) == pytest.approx(
            (precision, recall, f1), abs=1e-12
        )
        assert result["overall_accuracy"] == pytest.approx(accuracy_score(gold, pred), abs=1e-12)
        p, r, f, support = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
        for name, values in zip(seen, zip(p, r, f, support)):
            assert result[name] == pytest.approx(dict(zip(("precision", "recall", "f1", "number"), values)))
        flat = compute_ner_metrics(*tags_to_ids(pred, gold))
        assert flat["f1"] == pytest.approx(f1, abs=1e-12), trial


def tags_to_ids(pred: list[list[str]], gold: list[list[str]]):
    labels = sorted({tag for sentence in gold + pred for tag in sentence})
    width = max(map(len, gold))
    index = {tag: i for i, tag in enumerate(labels)}
    pred_ids = np.full((len(gold), width), -100)
    gold_ids = np.full((len(gold), width), -100)
    for row, (p, g) in enumerate(zip(pred, gold)):
        pred_ids[row, : len(p)] = [index[t] for t in p]
        gold_ids[row, : len(g)] = [index[t] for t in g]
    return pred_ids, gold_ids, labels


def test_overall_score_reads_todays_key_then_the_pre_0_2_key() -> None:
    from dwatt.metrics import overall_score

    assert overall_score({"eval_f1": 0.5, "eval_overall_f1": 0.1}, "eval", "f1") == 0.5
    assert overall_score({"predict_overall_f1": 0.25}, "predict", "f1") == 0.25
    assert overall_score({"eval_f1": 0.5}, "predict", "f1") is None
