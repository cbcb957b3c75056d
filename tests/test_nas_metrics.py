"""Ranking metrics on small examples worked out by hand."""

from __future__ import annotations

import math

import numpy as np

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


def test_bootstrap_intervals():
    rng = np.random.default_rng(1)
    true = rng.normal(size=30)
    noisy = true + rng.normal(scale=1.0, size=30)
    low, high = metrics.spearman_interval(noisy, true, resamples=500)
    assert low < metrics.spearman(noisy, true) < high and high - low > 0.1
    assert metrics.spearman_interval(true * 2, true, resamples=200) == pytest.approx([1.0, 1.0])  # every resample
    assert metrics.spearman_difference_interval(noisy, noisy, true, resamples=200) == pytest.approx([0.0, 0.0])
    better, worse = true + rng.normal(scale=0.1, size=30), rng.normal(size=30)
    low, high = metrics.spearman_difference_interval(better, worse, true, resamples=500)
    assert low > 0  # a near-perfect proxy is told apart from an unrelated one
    assert metrics.spearman_interval(noisy, true, resamples=100, seed=3) == metrics.spearman_interval(
        noisy, true, resamples=100, seed=3)
    assert metrics.spearman_interval([1.0, 2.0], [1.0, 2.0]) is None


def test_ranking_quality_of_a_column_keyed_by_arch():
    true = {"a": 70.0, "b": 80.0, "c": 90.0, "d": 60.0}
    scores = {"a": 2.0, "b": 3.0, "c": None, "d": 1.0}  # c diverged: it ranks last
    other = {"d": 1.0, "a": 2.0, "b": 3.0, "c": 4.0}  # a perfect ranking, keyed in another order
    q = metrics.ranking_quality(scores, true, top=["b", "c"], uniform=["a", "b", "d"],
                                paired={"perfect": other, "skipped": None}, top_k=2, seed=0)
    # c, diverged, scores below every real score: [2, 3, floor, 1] ranks as [2, 3, 0, 1]
    assert q["spearman"] == pytest.approx(metrics.spearman([2, 3, 0, 1], [70, 80, 90, 60]))
    assert q["spearman_uniform"] == pytest.approx(1.0)  # a, b, d are ranked right
    assert q["spearman_top20"] == pytest.approx(-1.0) and q["top20_candidates"] == 2
    assert q["top1_arch"] == "b" and q["top1_true_accuracy"] == 80.0 and q["regret"] == pytest.approx(10.0)
    assert q["top2_overlap"] == pytest.approx(0.5)  # proxy top 2 {b, a}, true top 2 {c, b}
    low, high = q["spearman_minus_perfect_ci95"]
    assert low <= high <= 1e-9  # never better than a perfect ranking, paired on the same archs
    assert q["spearman_minus_skipped_ci95"] is None
    assert metrics.ranking_quality(scores, true, top=[], uniform=[], paired={}, top_k=1, seed=0,
                                   intervals=False)["spearman_ci95"] is None
