"""Candidate spaces: top20 threshold, isomorphism dedup, seeded and nested samples."""

from __future__ import annotations

import numpy as np
import pytest

from distill.core.errors import DistillError
from nas.archs import isomorphism_key
from nas.benchmark import Benchmark, load_benchmark
from nas.sampling import sample_candidates, space_indices


def test_top20_samples_only_best_fifth():
    table = load_benchmark()
    acc = table.accuracies("cifar10")
    threshold = np.percentile(acc, 80)
    archs = sample_candidates(table, "top20", 200, seed=3)
    assert all(table.true_accuracy(a) >= threshold for a in archs)
    assert len(space_indices(table, "top20")) >= 0.2 * len(table)


def test_samples_are_distinct_up_to_isomorphism_and_seeded():
    table = load_benchmark()
    archs = sample_candidates(table, "full", 300, seed=1)
    assert len({isomorphism_key(a) for a in archs}) == 300
    assert sample_candidates(table, "full", 300, seed=1) == archs
    assert sample_candidates(table, "full", 30, seed=1) == archs[:30]  # a bigger run extends a smaller one
    assert sample_candidates(table, "full", 300, seed=2) != archs


def test_isomorphic_duplicates_removed_from_tiny_table():
    a = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|skip_connect~2|"
    a_twin = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|skip_connect~2|".replace(
        "|nor_conv_3x3~0|+", "|avg_pool_3x3~0|+")  # node 1 feeds only a 'none' edge: same function
    b = "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
    assert isomorphism_key(a) == isomorphism_key(a_twin)
    table = Benchmark((a, a_twin, b), {"cifar10": np.array([90.0, 91.0, 80.0])}, "tiny")
    for seed in range(5):
        got = sample_candidates(table, "full", 2, seed=seed)
        assert sorted(got) == sorted([a, b])  # the class representative is the lowest index
    with pytest.raises(DistillError, match="distinct architectures"):
        sample_candidates(table, "full", 3, seed=0)


def test_unknown_space_is_one_line():
    with pytest.raises(DistillError) as info:
        space_indices(load_benchmark(), "top10")
    assert "unknown search space" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("fraction", "count"), [(0.4, 80), (0.5, 20), (1.0, 10), (0.1, 40)])
def test_top_fraction_oversampling_gives_the_requested_share_seeded(fraction, count):
    import math

    from nas.sampling import draw_candidates, top20_threshold

    table = load_benchmark()
    threshold = top20_threshold(table)
    drawn = draw_candidates(table, "full", count, seed=4, top_fraction=fraction)
    top = [table.true_accuracy(a) >= threshold for a in drawn.archs]
    assert len(drawn.archs) == count and len({isomorphism_key(a) for a in drawn.archs}) == count
    plain = sample_candidates(table, "full", count, seed=4)
    natural = sum(table.true_accuracy(a) >= threshold for a in plain)
    assert sum(top) == max(math.ceil(fraction * count), natural)  # at least the requested share
    assert all(t for t, u in zip(top, drawn.uniform) if not u)  # every added candidate is top-quintile
    # The uniform part is the plain uniform sample's prefix.
    assert drawn.archs[:drawn.num_uniform] == plain[:drawn.num_uniform]
    assert (drawn.num_uniform < count) == (natural < math.ceil(fraction * count))
    assert draw_candidates(table, "full", count, seed=4, top_fraction=fraction) == drawn
    assert draw_candidates(table, "full", count, seed=5, top_fraction=fraction).archs != drawn.archs


def test_no_oversampling_is_the_uniform_sample():
    from nas.sampling import draw_candidates

    table = load_benchmark()
    drawn = draw_candidates(table, "full", 30, seed=1)
    assert drawn.archs == sample_candidates(table, "full", 30, seed=1) and all(drawn.uniform)
    with pytest.raises(DistillError, match="top-fraction"):
        draw_candidates(table, "full", 30, seed=1, top_fraction=1.5)
