"""Scores the test split at every evaluation point of a sweep run."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from transformers import TrainerCallback

from ...inference import run_batches
from ...metrics import align_predictions, compute_ner_metrics
from ...tasks.arguments import ModelArguments
from ...tasks.ner import NerDataArguments, load_ner_data
from ..stats import sentence_entity_counts

SPLITS = ("dev", "test")
#: Scores kept per eval point (the CSV holds the first three; token accuracy helps checks).
OVERALL_SCORES = ("f1", "precision", "recall", "accuracy")


class TestSplitEvaluator(TrainerCallback):
    """Records dev metrics at each evaluation and scores the test split with the same model there and then.

    `run_ner` gives the Trainer only the dev split to evaluate, so the test split is predicted here, in
    eval mode with no gradients. Batches hold tweets of similar length (sorted once), which pads about
    half as much as file order; entity F1 does not depend on the order of sentences. Batches are built
    without a DataLoader so no random number is drawn: training proceeds exactly as without this callback.
    An evaluation at a step already recorded (run_ner's final `--do_eval` after the Trainer's own
    end-of-training evaluation) is skipped.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, test_dataset, label_list: Sequence[str], collator, batch_size: int):
        self.test_dataset = test_dataset
        self.label_list = list(label_list)
        self.collator = collator
        self.batch_size = batch_size
        lengths = [len(example["input_ids"]) for example in test_dataset]
        self.order = sorted(range(len(test_dataset)), key=lengths.__getitem__)
        self.points: dict[int, dict[str, dict[str, float]]] = {}  # step -> split -> metrics
        self.sentence_counts: dict[int, np.ndarray] = {}  # step -> test [sentences, 3] in dataset order
        self.trainable_parameters: int | None = None
        self.test_seconds = 0.0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.trainable_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if state.global_step in self.points:
            return
        dev = {name: metrics[f"eval_{name}"] for name in OVERALL_SCORES}
        started = time.perf_counter()
        test, counts = self.score_test_split(model)
        self.test_seconds += time.perf_counter() - started
        self.points[state.global_step] = {"dev": dev, "test": test}
        self.sentence_counts[state.global_step] = counts

    def score_test_split(self, model) -> tuple[dict[str, float], np.ndarray]:
        """Overall test scores, and per-sentence [tp, predicted, gold] entity counts in dataset order."""
        chunks = [self.order[start : start + self.batch_size] for start in range(0, len(self.order), self.batch_size)]
        batches = [self.collator([self.test_dataset[i] for i in chunk]) for chunk in chunks]
        predictions = run_batches(model, batches, lambda _, output: output.logits.argmax(dim=-1).cpu().numpy())
        predictions = [row for rows in predictions for row in rows]
        labels = [row for batch in batches for row in batch["labels"].numpy()]
        scores = compute_ner_metrics(predictions, labels, self.label_list, entity_level=False)
        counts = np.zeros((len(self.order), 3), dtype=np.int64)
        counts[self.order] = sentence_entity_counts(*align_predictions(predictions, labels, self.label_list))
        return {name: scores[name] for name in OVERALL_SCORES}, counts

    def kept_counts(self) -> dict:
        """The counts record of `store.SentenceCounts`: the last eval point and the best dev point (the
        highest dev F1, the earlier step on ties, as the summary picks it)."""
        from .store import encode_counts

        last = max(self.points)
        best = max(self.points, key=lambda step: (self.points[step]["dev"]["f1"], -step))
        return {
            "sentences": len(self.order),
            "points": {str(step): encode_counts(self.sentence_counts[step]) for step in sorted({last, best})},
        }


def tokenized_test_split(model_args: ModelArguments, data_args: NerDataArguments):
    """The test split tokenised as `run_ner` tokenises it, its label list and the collator."""
    from datasets import DatasetDict

    from ...data.tokenization import load_word_tokenizer, make_token_collator, tokenize_ner_dataset

    raw = load_ner_data(data_args)
    tokenizer = load_word_tokenizer(
        model_args.model_name_or_path, revision=model_args.revision, trust_remote_code=model_args.trust_remote_code
    )
    tokenized, _ = tokenize_ner_dataset(
        DatasetDict({"test": raw["test"]}), tokenizer, data_args.max_seq_length, data_args.label_all_tokens
    )
    label_list = raw["train" if "train" in raw else "test"].features["ner_tags"].feature.names
    return tokenized["test"], label_list, make_token_collator(tokenizer)
