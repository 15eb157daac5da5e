"""Statistics shared by the sweep and the analysis: paired intervals, bootstrap, ranks."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences (method minus baseline) and its confidence interval (None for n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def paired_difference(method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Student-t interval of the mean paired difference: mean +- t(1-a/2, n-1) * sd / sqrt(n)."""
    from scipy import stats  # installed with scikit-learn, which seqeval needs

    if len(method) != len(baseline) or not method:
        raise ValueError(f"need paired, non-empty scores; got {len(method)} and {len(baseline)}")
    differences = [a - b for a, b in zip(method, baseline)]
    mean = statistics.fmean(differences)
    n = len(differences)
    if n < 2:
        return PairedDifference(mean, None, None, n, confidence)
    half_width = stats.t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(differences) / math.sqrt(n)
    return PairedDifference(mean, mean - half_width, mean + half_width, n, confidence)


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


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired_t_p_value(method: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test (NaN for fewer than 2 pairs or no spread)."""
    from scipy import stats

    if len(method) != len(baseline):
        raise ValueError(f"need paired scores; got {len(method)} and {len(baseline)}")
    if len(method) < 2 or np.std(np.subtract(method, baseline)) == 0:
        return float("nan")
    return float(stats.ttest_rel(method, baseline).pvalue)


def holm_adjusted(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in input order: a comparison survives at family-wise level a
    when its adjusted value is <= a. NaN p-values (nothing to test) stay NaN and do not count.

    Written here because scipy has no Holm step-down (only Benjamini-Hochberg), and statsmodels would be
    a large dependency for these lines.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p), np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    running = 0.0
    for rank, index in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, (len(tested) - rank) * p[index])  # step-down, kept monotone
        adjusted[index] = min(1.0, running)
    return adjusted


def seed_and_sentence_interval(
    counts: np.ndarray, reference: np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean F1 difference, low, high) of a method against a reference, both [seeds, sentences, 3] per-sentence
    [tp, pred, gold] counts on the same seeds and test sentences (paired): a t interval whose standard error is
    the bootstrap's.

    Each resample draws seeds with replacement and, independently, test sentences with replacement (the same
    draw for both methods), and averages F1(method) - F1(reference) over the drawn seeds, so the spread covers
    both seed-to-seed variation and the finite test set, which a t-interval over seeds alone ignores. The
    interval is mean +- t(1-a/2, n-1) * sqrt(n / (n-1)) * sd(resampled means), n the number of seeds: the
    percentile interval of the same resamples is too narrow for a handful of seeds (a bootstrap over n values
    estimates their variance with divisor n, and a normal quantile stands in for t with n-1 degrees of freedom;
    with 5 seeds its 95% interval covers about 85%).
    """
    from scipy import stats

    if counts.shape != reference.shape or counts.ndim != 3 or counts.shape[-1] != 3:
        raise ValueError(
            f"need two [seeds, sentences, 3] arrays of the same shape; got {counts.shape}, {reference.shape}"
        )
    deltas, point = _bootstrap_deltas(counts, reference, samples, seed)
    num_seeds = counts.shape[0]
    if num_seeds < 2:  # one seed: the sentences are all there is to resample
        tail = (1.0 - level) / 2 * 100
        low, high = np.percentile(deltas, [tail, 100 - tail])
        return point, float(low), float(high)
    spread = float(np.std(deltas)) * math.sqrt(num_seeds / (num_seeds - 1))
    half_width = stats.t.ppf(0.5 + level / 2, num_seeds - 1) * spread
    return point, point - half_width, point + half_width


def _bootstrap_deltas(counts: np.ndarray, reference: np.ndarray, samples: int, seed: int) -> tuple[np.ndarray, float]:
    """Resampled mean F1 differences (seeds and, independently, test sentences drawn with replacement) and the
    difference on the data as it is.

    A resample's sentence draw enters only through how often it drew each sentence, so its per-seed sums are one
    matrix product of those multiplicities with the counts (exact: integers in float64).
    """
    rng = np.random.default_rng(seed)
    num_seeds, num_sentences, _ = counts.shape
    point = float((f1_from_counts(counts.sum(axis=1)) - f1_from_counts(reference.sum(axis=1))).mean())
    seed_draws = np.empty((samples, num_seeds), dtype=np.int64)
    multiplicities = np.empty((samples, num_sentences))
    for sample in range(samples):  # the draws in this order: seeds, then sentences, for each resample
        seed_draws[sample] = rng.integers(0, num_seeds, size=num_seeds)
        multiplicities[sample] = np.bincount(
            rng.integers(0, num_sentences, size=num_sentences), minlength=num_sentences
        )
    rows = np.arange(samples)[:, None]
    ours = np.einsum("bs,nsk->bnk", multiplicities, counts.astype(np.float64))[rows, seed_draws]
    theirs = np.einsum("bs,nsk->bnk", multiplicities, reference.astype(np.float64))[rows, seed_draws]
    return (f1_from_counts(ours) - f1_from_counts(theirs)).mean(axis=1), point
