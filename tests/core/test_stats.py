"""Bootstrap confidence intervals and Spearman's rho on data whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaze_explorer.core.stats import average_ranks, bootstrap_ci, proportion, spearman


def test_bootstrap_of_constant_data_is_a_point():
    assert bootstrap_ci([1.0] * 50) == (1.0, 1.0)
    assert bootstrap_ci([0.0] * 7) == (0.0, 0.0)


def test_bootstrap_ci_of_a_known_proportion_contains_it_with_the_expected_width():
    values = np.array([1.0] * 60 + [0.0] * 40)
    lo, hi = bootstrap_ci(values, n_resamples=4000, seed=1)
    assert lo < 0.6 < hi
    # normal approximation: +-1.96 * sqrt(p(1-p)/n) = +-0.096
    expected = 2 * 1.96 * math.sqrt(0.6 * 0.4 / 100)
    assert abs((hi - lo) - expected) < 0.03


def test_bootstrap_is_seeded_and_narrows_with_more_data():
    small = [1, 0] * 10
    large = [1, 0] * 500
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    w_small = np.subtract(*bootstrap_ci(small)[::-1])
    w_large = np.subtract(*bootstrap_ci(large)[::-1])
    assert w_large < w_small / 3


def test_bootstrap_of_nothing_is_nan_and_rejects_bad_confidence():
    lo, hi = bootstrap_ci([])
    assert math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError):
        bootstrap_ci([1, 2], confidence=1.5)


def test_average_ranks_share_ties():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]


def test_spearman_on_known_pairs():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # classic textbook value with no ties: 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # with ties: Pearson on average ranks ([1, 2.5, 2.5, 4] vs [1, 2, 3, 4])
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)


def test_spearman_is_nan_when_undefined():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_proportion():
    assert proportion([1, 0, 1, 1]) == 0.75
    assert math.isnan(proportion([]))
