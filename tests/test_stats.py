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
    assert low_steady > 0 and high_shaky - low_shaky > 2 * (high_steady - low_steady)
    with pytest.raises(ValueError, match=r"\[seeds, sentences, 3\]"):
        seed_and_sentence_interval(steady, base[:, :10])
