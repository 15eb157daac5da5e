"""seqeval as an `evaluate` metric that loads offline: `evaluate.load(dwatt.evaluate_metrics.SEQEVAL)`.

The Hub's `evaluate-metric/seqeval` is a script downloaded at load time (it fails without the Hub). This module
takes the same inputs and returns the same keys: per entity type a dict of `precision`, `recall`, `f1` and
`number` (gold entities), and `overall_precision`, `overall_recall`, `overall_f1` (micro) and `overall_accuracy`
(token accuracy). The scores are seqeval's own (`classification_report`, `accuracy_score`), default mode
(conlleval-compatible) unless `mode="strict"` and a `scheme` are given.
"""

import importlib
import warnings

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report

_DESCRIPTION = "Entity-level precision, recall and F1 of sequence labelling (seqeval), and token accuracy."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of tag sequences (one list of tags per sentence).
    references: list of gold tag sequences, aligned with the predictions.
    suffix: tags carry the type first (`PER-B`).
    scheme: 'IOB1', 'IOB2', 'IOE1', 'IOE2', 'IOBES' or 'BILOU' (with mode="strict").
    mode: None (conlleval-compatible) or 'strict'.
    sample_weight: weight of each sentence.
    zero_division: the value of a score whose denominator is 0: 0, 1 or "warn" (0 with a warning).
Returns:
    {type: {"precision", "recall", "f1", "number"}, ..., "overall_precision", "overall_recall", "overall_f1",
    "overall_accuracy"}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Seqeval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="seqeval: https://github.com/chakki-works/seqeval",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(
        self, predictions, references, suffix=False, scheme=None, mode=None, sample_weight=None, zero_division="warn"
    ):
        if scheme is not None:
            try:
                scheme = getattr(importlib.import_module("seqeval.scheme"), scheme)
            except AttributeError:
                raise ValueError(f"scheme={scheme!r}; expected IOB1, IOB2, IOE1, IOE2, IOBES or BILOU") from None
        with warnings.catch_warnings():  # no entity at all: numpy warns on the (unused) macro average's empty mean
            warnings.simplefilter("ignore", RuntimeWarning)
            report = classification_report(
                y_true=references, y_pred=predictions, suffix=suffix, output_dict=True, scheme=scheme, mode=mode,
                sample_weight=sample_weight, zero_division=zero_division,
            )  # fmt: skip
        overall = report.pop("micro avg")
        for average in ("macro avg", "weighted avg"):
            report.pop(average, None)
        scores = {
            name: {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"],
                   "number": row["support"]}
            for name, row in report.items()
        }  # fmt: skip
        scores["overall_precision"] = overall["precision"]
        scores["overall_recall"] = overall["recall"]
        scores["overall_f1"] = overall["f1-score"]
        scores["overall_accuracy"] = accuracy_score(y_true=references, y_pred=predictions)
        return scores
