"""Ranking metrics on small examples worked out by hand."""

from __future__ import annotations

import math

import pytest

from nas import metrics


def test_spearman_known_example_with_tie():
    proxy = [1, 2, 3, 4, 5]
    true = [5, 6, 7, 8, 7]
    # ranks of true: 1, 2, 3.5, 5, 3.5 -> covariance 8, variances 10 and 9.5
    assert metrics.spearman(proxy, true) == pytest.approx(8 / math.sqrt(95))


def test_spearman_and_kendall_extremes():
    assert metrics.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert metrics.kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant
    assert metrics.spearman([1, 1, 1], [1, 2, 3]) is None  # constant proxy: undefined, not NaN
    assert metrics.kendall([1.0], [2.0]) is None


def test_top1_regret_overlap():
    proxy = [50.0, 70.0, 60.0, 70.0]
    true = [94.0, 92.0, 93.0, 91.0]
    assert metrics.top1(proxy, true) == 1  # ties go to the earlier candidate
    assert metrics.top1_true_accuracy(proxy, true) == 92.0
    assert metrics.regret(proxy, true) == pytest.approx(2.0)
    assert metrics.top_k_overlap(proxy, true, 2) == 0.0
    assert metrics.top_k_overlap(proxy, true, 3) == pytest.approx(2 / 3)
    assert metrics.top_k_overlap(proxy, true, 10) == 1.0
