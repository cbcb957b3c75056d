"""Aggregate per-step accuracies over seeds: mean/std curves, average incremental accuracy, final accuracy."""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def average_incremental_accuracy(curve: Sequence[float]) -> float:
    """Mean of the accuracies after every step (Rebuffi et al., iCaRL)."""
    return statistics.fmean(curve) if curve else float("nan")


def summarise(curves: Mapping[int, Sequence[float]], steps: int) -> dict[str, Any]:
    """Statistics over seeds of per-step curves; only seeds with all ``steps`` values count.

    Returns:
        ``{"mean": [...], "std": [...], "per_seed": {seed: [...]}}`` per step, plus
        ``average_incremental_accuracy`` and ``final_accuracy`` as ``{"mean", "std", "per_seed"}``.
        Step lists have ``None`` where no seed has reached that step yet.
    """
    per_seed = {str(s): [float(v) for v in c] for s, c in curves.items()}
    mean, std = [], []
    for i in range(steps):
        values = [c[i] for c in per_seed.values() if len(c) > i]
        m, s = mean_std(values) if values else (None, None)
        mean.append(m)
        std.append(s)
    complete = {s: c for s, c in per_seed.items() if len(c) == steps}
    aia = {s: average_incremental_accuracy(c) for s, c in complete.items()}
    final = {s: c[-1] for s, c in complete.items()}
    return {
        "accuracy": {"mean": mean, "std": std, "per_seed": per_seed},
        "average_incremental_accuracy": _stat(aia),
        "final_accuracy": _stat(final),
        "seeds_complete": sorted(int(s) for s in complete),
    }


def _stat(per_seed: Mapping[str, float]) -> dict[str, Any]:
    if not per_seed:
        return {"mean": None, "std": None, "per_seed": {}}
    m, s = mean_std(list(per_seed.values()))
    return {"mean": m, "std": s, "per_seed": dict(per_seed)}


__all__ = ["average_incremental_accuracy", "mean_std", "summarise"]
