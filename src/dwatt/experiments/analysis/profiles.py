"""Depth-weight profiles by entity type and correctness; ablation rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...metrics import entity_types
from ..stats import descending_ranks, rank_disagreements
from .probes import FULL, LayerAnalysis, ablation_name


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
                f1=metrics["f1"],
                precision=metrics["precision"],
                recall=metrics["recall"],
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
