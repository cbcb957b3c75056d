"""Candidate spaces: seeded samples of NAS-Bench-201 cells, one per isomorphism class."""

from __future__ import annotations

import numpy as np

from distill.errors import DistillError
from nas.benchmark import Benchmark

SPACES = ("full", "top20")


def space_indices(benchmark: Benchmark, space: str, *, dataset: str = "cifar10") -> np.ndarray:
    """Benchmark indices of the archs in ``space``.

    ``full`` is every arch; ``top20`` those whose true accuracy is at or above the 80th
    percentile of the whole table (the best fifth).
    """
    if space == "full":
        return np.arange(len(benchmark))
    if space == "top20":
        acc = benchmark.accuracies(dataset)
        return np.flatnonzero(acc >= top20_threshold(benchmark, dataset=dataset))
    raise DistillError(f"unknown search space {space!r}; use one of {', '.join(SPACES)}")


def top20_threshold(benchmark: Benchmark, *, dataset: str = "cifar10") -> float:
    """The 80th percentile of true accuracy over the whole table."""
    return float(np.percentile(benchmark.accuracies(dataset), 80))


def unique_representatives(benchmark: Benchmark, indices: np.ndarray) -> np.ndarray:
    """The lowest index of each isomorphism class among ``indices`` (sorted)."""
    seen: set[str] = set()
    keep = []
    for i in sorted(int(i) for i in indices):
        key = benchmark.unique_keys[i]
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def sample_candidates(benchmark: Benchmark, space: str, num_archs: int, *, seed: int,
                      dataset: str = "cifar10") -> list[str]:
    """``num_archs`` arch strings drawn uniformly without replacement from the isomorphism classes
    of ``space``, so no two candidates compute the same function.

    Deterministic in ``seed``; a larger ``num_archs`` extends the smaller sample's list
    (same prefix), so a bigger run reuses a smaller one's candidates.
    """
    if num_archs < 1:
        raise DistillError(f"--num-archs must be at least 1, got {num_archs}")
    pool = unique_representatives(benchmark, space_indices(benchmark, space, dataset=dataset))
    if num_archs > len(pool):
        raise DistillError(f"--num-archs {num_archs} is more than the {len(pool)} distinct architectures "
                           f"of space {space!r}; pass at most {len(pool)}")
    order = np.random.default_rng(seed).permutation(len(pool))
    return [benchmark.archs[int(pool[i])] for i in order[:num_archs]]


def dedup_isomorphic(archs: list[str]) -> list[str]:
    """Drop archs isomorphic to an earlier one (order kept)."""
    from nas.archs import isomorphism_key

    seen: set[str] = set()
    out = []
    for arch in archs:
        key = isomorphism_key(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
    return out
