"""Ranking quality of a proxy: rank correlations, top-k overlap, top-1 accuracy and regret."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from distill.core.seeds import numpy_stream


def _finite(value: float) -> float | None:
    """NaN (e.g. a constant proxy) becomes None so that results stay valid JSON."""
    value = float(value)
    return None if math.isnan(value) else value


def spearman(proxy: Sequence[float], true: Sequence[float]) -> float | None:
    """Spearman rank correlation (ties get average ranks); None when undefined (constant input, < 2 points)."""
    if len(proxy) < 2:
        return None
    if np.ptp(np.asarray(proxy, dtype=float)) == 0 or np.ptp(np.asarray(true, dtype=float)) == 0:
        return None
    return _finite(stats.spearmanr(proxy, true).statistic)


def kendall(proxy: Sequence[float], true: Sequence[float]) -> float | None:
    """Kendall tau-b rank correlation; None when undefined."""
    if len(proxy) < 2:
        return None
    if np.ptp(np.asarray(proxy, dtype=float)) == 0 or np.ptp(np.asarray(true, dtype=float)) == 0:
        return None
    return _finite(stats.kendalltau(proxy, true).statistic)


def top1(proxy: Sequence[float], true: Sequence[float]) -> int:
    """Position of the proxy's best candidate; ties go to the earliest candidate."""
    return int(np.argmax(np.asarray(proxy, dtype=float)))


def top1_true_accuracy(proxy: Sequence[float], true: Sequence[float]) -> float:
    """True accuracy of the candidate the proxy ranks first (the search's "performance")."""
    return float(true[top1(proxy, true)])


def regret(proxy: Sequence[float], true: Sequence[float]) -> float:
    """Best true accuracy among the candidates minus that of the proxy's pick (0 = found the best)."""
    return float(max(true)) - top1_true_accuracy(proxy, true)


def top_k_overlap(proxy: Sequence[float], true: Sequence[float], k: int) -> float:
    """Fraction of the true top-``k`` candidates that are also in the proxy's top-``k``
    (stable sort, so ties keep candidate order)."""
    k = min(k, len(true))
    if k <= 0:
        return float("nan")
    by_proxy = set(np.argsort(-np.asarray(proxy, dtype=float), kind="stable")[:k].tolist())
    by_true = set(np.argsort(-np.asarray(true, dtype=float), kind="stable")[:k].tolist())
    return len(by_proxy & by_true) / k


def _bootstrap_spearman(columns: Sequence[Sequence[float]], true: Sequence[float], *, resamples: int,
                        seed: int) -> np.ndarray:
    """Spearman ρ of each proxy column on ``resamples`` resamplings of the candidates (rows: resamples).

    The same resampled candidates serve every column, so differences between columns are paired.
    Resamples where a ρ is undefined (a constant column) are dropped.
    """
    true = np.asarray(true, dtype=float)
    columns = [np.asarray(c, dtype=float) for c in columns]
    rng = numpy_stream(seed)
    out = []
    for _ in range(resamples):
        pick = rng.integers(0, len(true), len(true))
        values = [spearman(c[pick], true[pick]) for c in columns]
        if None not in values:
            out.append(values)
    return np.asarray(out, dtype=float).reshape(-1, len(columns))


def _interval(draws: np.ndarray, level: float) -> list[float]:
    """The central ``level`` percentile interval of bootstrap ``draws``."""
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(draws, [tail, 100 - tail])]


def spearman_interval(proxy: Sequence[float], true: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of Spearman ρ over the candidates; None when undefined."""
    if len(proxy) < 3:
        return None
    draws = _bootstrap_spearman([proxy], true, resamples=resamples, seed=seed)
    return _interval(draws[:, 0], level) if len(draws) else None


def spearman_difference_interval(proxy: Sequence[float], other: Sequence[float], true: Sequence[float], *,
                                 resamples: int = 2000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Paired bootstrap interval of ρ(proxy) − ρ(other) on the same candidates; None when undefined.

    An interval that holds 0 means the two proxies' rankings are not told apart by these candidates.
    """
    if len(proxy) < 3:
        return None
    draws = _bootstrap_spearman([proxy, other], true, resamples=resamples, seed=seed)
    return _interval(draws[:, 0] - draws[:, 1], level) if len(draws) else None


def rankable(scores: Sequence[float | None]) -> list[float]:
    """Scores with ``None`` (a diverged candidate) replaced by a value below every real score, so that
    diverged candidates rank last, tied with each other."""
    finite = [float(s) for s in scores if s is not None]
    floor = (min(finite) - 1.0) if finite else 0.0
    return [floor if s is None else float(s) for s in scores]


def undefined_reason(scores: Sequence[float | None], true: Sequence[float]) -> str | None:
    """Why Spearman ρ / Kendall τ of ``scores`` against ``true`` is undefined; None when it is defined."""
    if len(scores) < 2:
        return f"{len(scores)} candidate(s), fewer than 2"
    if all(s is None for s in scores):
        return f"all {len(scores)} candidates diverged"
    if np.ptp(np.asarray(rankable(scores), dtype=float)) == 0:
        return "all proxy scores equal"
    if np.ptp(np.asarray(true, dtype=float)) == 0:
        return "all true accuracies equal"
    return None


__all__ = ["kendall", "rankable", "regret", "spearman", "spearman_difference_interval", "spearman_interval", "top1",
           "top1_true_accuracy", "top_k_overlap", "undefined_reason"]
