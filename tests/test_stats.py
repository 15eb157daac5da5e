"""Statistics with known answers: Holm's step-down, the paired t-test p-value, the two-level bootstrap."""

import numpy as np
import pytest

from dwatt.experiments.stats import holm_adjusted, paired_difference, paired_t_p_value, seed_and_sentence_interval


def test_holm_adjusted_values_match_the_step_down_by_hand():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> kept monotone: 0.06
    adjusted = holm_adjusted([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert list(adjusted <= 0.05) == [True, False, False, True]  # Bonferroni (x4) would keep only 0.005
    np.testing.assert_allclose(holm_adjusted([0.5, 0.9]), [1.0, 1.0])  # capped at 1


def test_holm_leaves_untested_comparisons_out_of_the_count():
    adjusted = holm_adjusted([0.02, float("nan"), 0.01])
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.02])  # two tests, not three


def test_paired_t_p_value_agrees_with_the_interval():
    method, baseline = [0.52, 0.55, 0.50, 0.58, 0.54], [0.48, 0.50, 0.49, 0.51, 0.47]
    p = paired_t_p_value(method, baseline)
    assert p < 0.05 and paired_difference(method, baseline).significant  # the 95% interval excludes 0
    assert np.isnan(paired_t_p_value([0.5], [0.4])) and np.isnan(paired_t_p_value([0.5, 0.6], [0.4, 0.5]))


def counts_of(tp, pred, gold, seeds=3, sentences=40):
    return np.broadcast_to(np.array([tp, pred, gold]), (seeds, sentences, 3)).copy()


def test_bootstrap_of_identical_methods_is_exactly_zero():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(4, 50, 3))
    assert seed_and_sentence_interval(counts, counts.copy(), samples=200) == (0.0, 0.0, 0.0)


def test_bootstrap_of_a_perfect_method_against_a_useless_one_is_exactly_one():
    perfect, useless = counts_of(1, 1, 1), counts_of(0, 1, 1)
    assert seed_and_sentence_interval(perfect, useless, samples=200) == (1.0, 1.0, 1.0)


def test_bootstrap_widens_with_seed_spread_and_rejects_bad_shapes():
    rng = np.random.default_rng(1)
    gold = np.ones((5, 200), dtype=np.int64)
    steady = np.stack([gold * 0 + (rng.random((5, 200)) < 0.6), gold, gold], axis=-1)  # F1 ~0.6 every seed
    shaky = steady.copy()
    shaky[:, :, 0] = rng.random((5, 200)) < np.array([0.3, 0.9, 0.4, 0.8, 0.6])[:, None]  # seeds differ a lot
    base = np.stack([gold * 0 + (rng.random((5, 200)) < 0.5), gold, gold], axis=-1)
    _, low_steady, high_steady = seed_and_sentence_interval(steady, base, samples=500)
    _, low_shaky, high_shaky = seed_and_sentence_interval(shaky, base, samples=500)
    assert high_shaky - low_shaky > 2 * (high_steady - low_steady)
    with pytest.raises(ValueError, match=r"\[seeds, sentences, 3\]"):
        seed_and_sentence_interval(steady, base[:, :10])


def test_paired_t_is_the_mean_difference_over_its_standard_error_by_hand():
    """Seeds differ a lot, the method is better on every seed by about 1: paired p is tiny, unpaired p is not."""
    from scipy import stats

    baseline = [0.20, 0.35, 0.50, 0.65, 0.80]
    method = [0.211, 0.358, 0.513, 0.659, 0.812]
    d = np.subtract(method, baseline)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    by_hand = 2 * stats.t.sf(abs(t), len(d) - 1)
    assert paired_t_p_value(method, baseline) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand < 1e-3 and stats.ttest_ind(method, baseline).pvalue > 0.9  # unpaired would see nothing
    interval = paired_difference(method, baseline)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert (interval.low, interval.high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-12)


def sentence_noise_only(seeds=5, sentences=300, seed=3):
    """Every seed scores the same on every sentence (no seed-to-seed spread); sentences differ."""
    rng = np.random.default_rng(seed)
    gold = np.ones(sentences, dtype=np.int64)
    ours = np.stack([(rng.random(sentences) < 0.6).astype(np.int64), gold, gold], axis=-1)
    theirs = np.stack([(rng.random(sentences) < 0.5).astype(np.int64), gold, gold], axis=-1)
    return np.broadcast_to(ours, (seeds, sentences, 3)).copy(), np.broadcast_to(theirs, (seeds, sentences, 3)).copy()


def test_the_interval_has_width_from_test_sentences_alone():
    """With no seed-to-seed spread the interval's whole width comes from resampling test sentences (an interval
    that resampled only seeds would be a point)."""
    ours, theirs = sentence_noise_only()
    point, low, high = seed_and_sentence_interval(ours, theirs, samples=1000)
    assert low < point < high and high - low > 0.02


def test_the_interval_is_a_t_interval_with_the_bootstraps_standard_error():
    """mean +- t(0.975, n-1) sqrt(n/(n-1)) sd(resamples): wider than the resamples' own 95% percentile range by
    t_4 sqrt(5/4) / z = 1.58 for 5 seeds (about normal resamples); 1 seed falls back to the percentile range."""
    from dwatt.experiments.stats import _bootstrap_deltas

    rng = np.random.default_rng(4)
    gold = np.ones((5, 300), dtype=np.int64)
    ours = np.stack([(rng.random((5, 300)) < np.array([0.5, 0.7, 0.6, 0.8, 0.55])[:, None]), gold, gold], -1)
    theirs = np.stack([(rng.random((5, 300)) < 0.5), gold, gold], -1)
    ours, theirs = ours.astype(np.int64), theirs.astype(np.int64)
    point, low, high = seed_and_sentence_interval(ours, theirs, samples=4000, seed=1)
    deltas, _ = _bootstrap_deltas(ours, theirs, 4000, 1)
    from scipy import stats

    assert high - point == pytest.approx(point - low)
    assert (high - low) / 2 == pytest.approx(stats.t.ppf(0.975, 4) * np.sqrt(5 / 4) * deltas.std(), rel=1e-12)
    percentile_width = np.subtract(*np.percentile(deltas, [97.5, 2.5]))
    assert (high - low) / percentile_width == pytest.approx(1.58, abs=0.15)
    one_point, one_low, one_high = seed_and_sentence_interval(ours[:1], theirs[:1], samples=500)
    assert one_low < one_point < one_high


def test_the_summary_prints_holm_adjusted_p_over_one_family_per_regime():
    """Three methods against two baselines at one K: the family is the distinct pairs (deeper-last counted once
    though both tables show it), and each cell prints its pair's Holm-adjusted p, never the raw one."""
    from dwatt.experiments.sweep.summary import difference_table, regime_family

    seeds = range(5)
    offsets = {"last": 0.0, "deeper": 0.02, "dwatt": 0.05}
    noise = {"last": [0.0, 0.01, -0.01, 0.02, 0.0], "deeper": [0.01, -0.02, 0.0, 0.01, 0.02],
             "dwatt": [0.0, 0.0, 0.01, -0.01, 0.005]}  # fmt: skip
    test = {("r", m, 8): {s: 0.3 + 0.1 * s + offsets[m] + noise[m][s] for s in seeds} for m in offsets}
    family = regime_family(test, "r", ["last", "deeper", "dwatt"], [8])
    pairs = {frozenset(p) for p in (("deeper", "last"), ("dwatt", "last"), ("dwatt", "deeper"))}
    assert {pair for pair, _ in family} == pairs  # scalar_mix absent: its comparisons are not in the family
    raw = {pair: paired_t_p_value(list(test[("r", sorted(pair)[0], 8)].values()),
                                  list(test[("r", sorted(pair)[1], 8)].values())) for pair in pairs}  # fmt: skip
    ordered = sorted(pairs, key=sorted)
    expected = dict(zip(ordered, holm_adjusted([raw[pair] for pair in ordered])))
    for (pair, _), adjusted in family.items():
        assert adjusted == pytest.approx(expected[pair])
    strongest = min(pairs, key=raw.get)  # Holm multiplies the smallest p by the family's size, 3
    assert expected[strongest] == pytest.approx(3 * raw[strongest])
    baseline = "last" if "last" in strongest else "deeper"
    table = "\n".join(difference_table(test, {}, "r", ["last", "deeper", "dwatt"], [8], baseline, family))
    assert f"p={expected[strongest]:.3f}" in table and f"p={raw[strongest]:.3f}" not in table
    exploratory = "\n".join(difference_table(test, {}, "r", ["last", "deeper", "dwatt"], [8], "last"))
    assert "p=" not in exploratory and "**" not in exploratory


# ----------------------------------------------------------------------------------------------------
# Exact values and edges of every statistic (mutation testing found each of these unpinned)
# ----------------------------------------------------------------------------------------------------


def test_paired_difference_reports_its_size_and_level_and_needs_two_pairs_for_an_interval():
    from dwatt.experiments.stats import PairedDifference

    assert paired_difference([0.5], [0.4]) == PairedDifference(pytest.approx(0.1), None, None, 1, 0.95)
    two = paired_difference([0.5, 0.7], [0.4, 0.5], confidence=0.9)
    assert two.n == 2 and two.confidence == 0.9 and two.low < two.mean < two.high  # two pairs have an interval
    assert not PairedDifference(0.1, None, None, 1).significant
    with pytest.raises(ValueError, match=r"need paired, non-empty scores; got 0 and 0"):
        paired_difference([], [])
    with pytest.raises(ValueError, match=r"need paired, non-empty scores; got 1 and 2"):
        paired_difference([0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"need paired scores; got 1 and 2"):
        paired_t_p_value([0.1], [0.1, 0.2])
    assert 0 < paired_t_p_value([0.5, 0.7], [0.4, 0.5]) < 1  # two pairs can be tested


def test_holm_caps_adjusted_values_at_one():
    np.testing.assert_allclose(holm_adjusted([0.6, 0.9]), [1.0, 1.0])  # 2 x 0.6 = 1.2, capped


def test_the_interval_defaults_shapes_and_small_seed_counts():
    from scipy import stats as scipy_stats

    from dwatt.experiments.stats import _bootstrap_deltas

    ours, theirs = sentence_noise_only(seeds=2, sentences=50)
    ours[1, :, 0] = 0  # the second seed finds nothing: seeds differ
    assert seed_and_sentence_interval(ours, theirs) == seed_and_sentence_interval(ours, theirs, samples=2000, seed=0)
    point, low, high = seed_and_sentence_interval(ours, theirs, samples=300)
    deltas, _ = _bootstrap_deltas(ours, theirs, 300, 0)
    half = scipy_stats.t.ppf(0.975, 1) * np.sqrt(2) * deltas.std()  # two seeds: t with 1 degree of freedom
    assert (low, high) == pytest.approx((point - half, point + half), rel=1e-12)
    one_point, one_low, one_high = seed_and_sentence_interval(ours[:1], theirs[:1], samples=300, level=0.9)
    one_deltas, _ = _bootstrap_deltas(ours[:1], theirs[:1], 300, 0)
    assert (one_low, one_high) == pytest.approx(tuple(np.percentile(one_deltas, [5, 95])), rel=1e-12)
    with pytest.raises(ValueError, match=r"\[seeds, sentences, 3\]"):
        seed_and_sentence_interval(ours[..., :2], theirs[..., :2])


def test_every_sentence_and_seed_can_be_drawn():
    """One sentence holds the only entity: resamples with and without it both occur (sentence 0 is drawn too)."""
    from dwatt.experiments.stats import _bootstrap_deltas

    counts = np.zeros((2, 3, 3), dtype=np.int64)
    counts[:, 0] = (1, 1, 1)  # sentence 0: found; sentences 1-2: nothing
    counts[:, 1:, 2] = 1  # sentences 1-2 have a gold entity no method finds
    reference = counts.copy()
    reference[:, 0] = (0, 1, 1)
    deltas, point = _bootstrap_deltas(counts, reference, 200, 0)
    assert point == pytest.approx(0.5)  # F1 2 x 1 / (1 + 3) against 0
    assert (deltas == 0).any() and (deltas > 0).any()  # resamples without sentence 0, and with it


def test_sentence_counts_and_the_word_level_interval():
    from dwatt.experiments.stats import entity_type_of, paired_bootstrap_interval, sentence_entity_counts

    counts = sentence_entity_counts(
        [["B-PER", "I-PER", "O", "B-LOC"], ["O"]], [["B-PER", "I-PER", "O", "B-ORG"], ["O"]]
    )
    assert counts.dtype == np.int64 and counts.tolist() == [[1, 2, 2], [0, 0, 0]]
    with pytest.raises(ValueError):
        sentence_entity_counts([["O"]], [["O"], ["O"]])  # unpaired sentences are refused, not cut short
    assert [entity_type_of(tag) for tag in ("B-geo-loc", "I-PER", "O")] == ["geo-loc", "PER", "O"]

    rng = np.random.default_rng(2)
    ours = np.stack([rng.integers(0, 2, 60), np.ones(60, dtype=np.int64), np.ones(60, dtype=np.int64)], -1)
    theirs = np.stack([np.zeros(60, dtype=np.int64), np.ones(60, dtype=np.int64), np.ones(60, dtype=np.int64)], -1)
    low, high = paired_bootstrap_interval(ours, theirs)
    assert (low, high) == paired_bootstrap_interval(ours, theirs, samples=1000, seed=0)
    picks = np.random.default_rng(0).integers(0, 60, size=(1000, 60))
    from dwatt.experiments.stats import f1_from_counts

    deltas = f1_from_counts(ours[picks].sum(axis=1)) - f1_from_counts(theirs[picks].sum(axis=1))
    assert (low, high) == pytest.approx(tuple(np.percentile(deltas, [2.5, 97.5])), rel=1e-12)
    assert paired_bootstrap_interval(ours, theirs, level=0.5) != (low, high)


def test_ranks_and_their_disagreements():
    from dwatt.experiments.stats import descending_ranks, rank_disagreements, spearman

    ranks = descending_ranks([0.2, 0.9, 0.2, 0.5])
    assert ranks.dtype == np.int64 and ranks.tolist() == [3, 1, 4, 2]  # ties in order of position
    assert descending_ranks([3, 1, 2]).tolist() == [1, 3, 2]  # integers are ranked as numbers
    mass, drop = [0.5, 0.3, 0.1, 0.05, 0.05, 0.0], [0.0, 0.1, 0.2, 0.3, 0.5, 0.4]
    flags = rank_disagreements(mass, drop)  # 6 layers: a gap of 2 ranks counts
    assert flags == ["high mass, small effect", "high mass, small effect", "", "", "low mass, large effect",
                     "low mass, large effect"]  # fmt: skip
    assert rank_disagreements([0.3, 0.2, 0.1], [0.2, 0.3, 0.1]) == ["", "", ""]  # 1 rank apart: agree
    assert rank_disagreements([0.3, 0.2, 0.1], [0.1, 0.2, 0.3], min_gap=3) == ["", "", ""]
    assert rank_disagreements(list(range(9)), list(range(9))[::-1])[0] == "low mass, large effect"  # gap 3 at 9
    with pytest.raises(ValueError):
        rank_disagreements([0.1, 0.2], [0.1, 0.2, 0.3])
    assert spearman([1, 2, 3], [2, 4, 9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(spearman([1, 2, 3], [2, 2, 2]))


def test_mean_and_spread():
    from dwatt.experiments.stats import mean_std

    assert mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, np.std([1.0, 2.0, 4.0], ddof=1)))
    assert mean_std([0.3]) == (0.3, 0.0)


def test_rank_ties_keep_their_order_however_many_and_the_gap_scales_with_depth():
    from dwatt.experiments.stats import descending_ranks, rank_disagreements

    assert descending_ranks([0.5] * 50).tolist() == list(range(1, 51))  # a stable sort at any length
    mass = [0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.04, 0.03, 0.02, 0.01, 0.005, 0.0]
    drop = [mass[3], *mass[:3], *mass[4:]]  # layer 0 falls from rank 1 to rank 4: a gap of 3
    assert rank_disagreements(mass, drop)[0] == ""  # 12 layers: a disagreement needs a gap of 4


# --- the small helpers the summaries and the layer analysis build on -------------------------------------------


def test_f1_from_counts_by_hand():
    from dwatt.experiments.stats import f1_from_counts

    counts = np.array([[0, 0, 0], [2, 3, 5], [0, 1, 0]])  # nothing to score; 2 tp of 3 predicted, 5 gold; 1 wrong
    np.testing.assert_array_equal(f1_from_counts(counts), [0.0, 0.5, 0.0])


def test_mean_std_uses_the_sample_deviation_from_two_values():
    import math

    from dwatt.experiments.stats import mean_std

    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0)) and mean_std([5.0]) == (5.0, 0.0)


def test_a_single_pair_keeps_its_mean_and_confidence_and_has_no_interval():
    single = paired_difference([3.0], [1.0], confidence=0.9)
    assert (single.mean, single.low, single.high, single.n, single.confidence) == (2.0, None, None, 1, 0.9)


def test_the_sentence_bootstrap_is_the_percentile_interval_of_paired_resampled_differences():
    from dwatt.experiments.stats import f1_from_counts, paired_bootstrap_interval

    rng = np.random.default_rng(5)
    ours = rng.integers(0, 3, size=(40, 3))
    reference = rng.integers(0, 3, size=(40, 3))
    picks = np.random.default_rng(7).integers(0, 40, size=(300, 40))
    deltas = f1_from_counts(ours[picks].sum(axis=1)) - f1_from_counts(reference[picks].sum(axis=1))
    expected = np.percentile(deltas, [5.0, 95.0])
    assert paired_bootstrap_interval(ours, reference, samples=300, seed=7, level=0.9) == pytest.approx(expected)
    assert paired_bootstrap_interval(ours, ours) == (0.0, 0.0)
    defaults = paired_bootstrap_interval(ours, reference, samples=1000, seed=0, level=0.95)
    assert paired_bootstrap_interval(ours, reference) == defaults


def test_ranks_keep_ties_in_position_order_and_disagreements_use_a_third_of_the_layers():
    from dwatt.experiments.stats import descending_ranks, rank_disagreements

    ranks = descending_ranks([1.0] * 40 + [2.0] * 40)  # long enough for numpy's unstable sort to reorder ties
    np.testing.assert_array_equal(ranks, list(range(41, 81)) + list(range(1, 41)))
    # mass ranks 1 2 3 4, drop ranks 3 4 2 1: gaps 2, 2, 1, 3; the default gap for 4 layers is 2
    assert rank_disagreements([4, 3, 2, 1], [2, 1, 3, 4]) == [
        "high mass, small effect", "high mass, small effect", "", "low mass, large effect"
    ]  # fmt: skip


def test_spearman_is_nan_only_when_a_side_is_constant():
    import math

    from dwatt.experiments.stats import spearman

    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1, 2, 3], [2, 2, 2]))
    assert spearman([0, 2], [0, 1]) == pytest.approx(1.0) and spearman([3, 1], [0, 2]) == pytest.approx(-1.0)
