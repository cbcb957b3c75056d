"""Candidate spaces: seeded samples of NAS-Bench-201 cells, one per isomorphism class."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distill.core.errors import DistillError
from distill.core.seeds import numpy_stream
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
    order = numpy_stream(seed).permutation(len(pool))
    return [benchmark.archs[int(pool[i])] for i in order[:num_archs]]


@dataclass(frozen=True)
class CandidateSample:
    """The candidates of a search and how each was drawn.

    Attributes:
        archs: arch strings, the uniformly drawn ones first.
        uniform: for each arch, whether it belongs to the uniform draw (else it was added by
            top-quintile oversampling).
        top_fraction: the requested fraction of candidates from the top quintile.
    """

    archs: list[str]
    uniform: list[bool]
    top_fraction: float

    @property
    def num_uniform(self) -> int:
        return sum(self.uniform)


def draw_candidates(benchmark: Benchmark, space: str, num_archs: int, *, seed: int, top_fraction: float = 0.0,
                    dataset: str = "cifar10") -> CandidateSample:
    """``num_archs`` distinct candidates: a uniform draw, topped up from the top quintile (the archs
    at or above the 80th percentile of true accuracy) until at least ``ceil(top_fraction x num_archs)``
    candidates are top-quintile ones.

    The uniform part is the prefix of :func:`sample_candidates` with the same seed, as long as
    possible; each candidate it gives up is replaced by a seeded draw from the top quintile. So the
    uniform part stays a uniform sample (ρ on it is unbent by the oversampling), and with
    ``top_fraction`` 0 (or at most the top quintile's natural share) this is :func:`sample_candidates`.
    """
    if not 0.0 <= top_fraction <= 1.0:
        raise DistillError(f"--top-fraction must be between 0 and 1, got {top_fraction}")
    uniform = sample_candidates(benchmark, space, num_archs, seed=seed, dataset=dataset)
    threshold = top20_threshold(benchmark, dataset=dataset)
    is_top = [benchmark.true_accuracy(a, dataset) >= threshold for a in uniform]
    target = math.ceil(top_fraction * num_archs - 1e-9)
    keep = num_archs
    # Dropping the last uniform candidate and adding a top one raises the count by 0 or 1.
    while keep > 0 and sum(is_top[:keep]) + (num_archs - keep) < target:
        keep -= 1
    kept = uniform[:keep]
    taken = {benchmark.unique_keys[benchmark.index_of(a)] for a in kept}
    pool = unique_representatives(benchmark, space_indices(benchmark, "top20", dataset=dataset))
    pool = [int(i) for i in pool if benchmark.unique_keys[int(i)] not in taken]
    extra_count = num_archs - keep
    if extra_count > len(pool):
        raise DistillError(f"--top-fraction {top_fraction} needs {extra_count} more top-quintile architectures "
                           f"than the {len(pool)} left; lower --top-fraction or --num-archs")
    # A stream of its own, so the oversampled part does not depend on how the uniform one was drawn.
    order = numpy_stream(seed, 1).permutation(len(pool))[:extra_count]
    extra = [benchmark.archs[pool[int(i)]] for i in order]
    return CandidateSample(archs=kept + extra, uniform=[True] * keep + [False] * extra_count,
                           top_fraction=top_fraction)


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


__all__ = ["SPACES", "CandidateSample", "dedup_isomorphic", "draw_candidates", "sample_candidates", "space_indices",
           "top20_threshold", "unique_representatives"]
