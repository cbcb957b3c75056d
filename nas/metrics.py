"""Ranking quality of a proxy: rank correlations, top-k overlap, top-1 accuracy and regret."""

from __future__ import annotations

import math
from typing import Collection, Mapping, Sequence

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


def correlations(scores: Sequence[float | None], true: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman ρ and Kendall τ of ``scores`` against ``true``; ``None`` scores (diverged candidates) rank last."""
    ranked = rankable(scores)
    return spearman(ranked, true), kendall(ranked, true)


def paired_difference_interval(mine: Mapping[str, float | None], theirs: Mapping[str, float | None],
                               true: Mapping[str, float], *, seed: int) -> list[float] | None:
    """Paired bootstrap interval of ρ(mine) − ρ(theirs) over the candidates both scored (keyed by arch);
    None for fewer than 3 such candidates."""
    both = [arch for arch in mine if arch in theirs]
    if len(both) < 3:
        return None
    return spearman_difference_interval(rankable([mine[a] for a in both]), rankable([theirs[a] for a in both]),
                                        [true[a] for a in both], seed=seed)


def ranking_quality(scores: Mapping[str, float | None], true: Mapping[str, float], *, top: Collection[str],
                    uniform: Collection[str], paired: Mapping[str, Mapping[str, float | None] | None], top_k: int,
                    seed: int, intervals: bool = True) -> dict:
    """How well ``scores`` (higher = better; None, a diverged candidate, ranks last) rank the candidates by
    ``true`` accuracy, all keyed by arch: ρ and τ on all of them, on the ``top`` 20 % and on the ``uniform``ly
    drawn ones; the bootstrap interval of ρ (None when not ``intervals``), and of ρ − ρ(other) for each column in
    ``paired`` (None for a column given as None); the top-1 pick, its regret and the top-``k`` overlap."""
    archs = list(scores)
    column, truth = [scores[a] for a in archs], [true[a] for a in archs]
    ranked = rankable(column)
    rho, tau = correlations(column, truth)
    rho_top, tau_top = correlations([scores[a] for a in top], [true[a] for a in top])
    rho_uniform, tau_uniform = correlations([scores[a] for a in uniform], [true[a] for a in uniform])
    return {
        "spearman": rho,
        "spearman_why": undefined_reason(column, truth),
        "spearman_ci95": spearman_interval(ranked, truth, seed=seed) if intervals else None,
        "kendall": tau,
        "spearman_top20": rho_top,
        "kendall_top20": tau_top,
        "top20_candidates": len(top),
        "spearman_uniform": rho_uniform,
        "kendall_uniform": tau_uniform,
        "uniform_candidates": len(uniform),
        **{f"spearman_minus_{other}_ci95": (None if theirs is None else
                                             paired_difference_interval(scores, theirs, true, seed=seed))
           for other, theirs in paired.items()},
        "top1_true_accuracy": top1_true_accuracy(ranked, truth),
        "top1_arch": archs[top1(ranked, truth)],
        "regret": regret(ranked, truth),
        "best_true_accuracy": max(truth),
        f"top{top_k}_overlap": top_k_overlap(ranked, truth, top_k),
    }


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


__all__ = ["correlations", "kendall", "paired_difference_interval", "rankable", "ranking_quality", "regret", "spearman", "spearman_difference_interval", "spearman_interval", "top1",
           "top1_true_accuracy", "top_k_overlap", "undefined_reason"]
