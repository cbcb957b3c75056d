"""Class-incremental benchmark: the documented class orders, equal splits, original labels."""

from __future__ import annotations

import numpy as np
import pytest

from continual.benchmark import check_steps, class_order, experience_classes, first_per_class, make_benchmark
from continual.testing import tiny_dataset
from distill.core.errors import DistillError

# numpy.random.seed(s); numpy.random.permutation(10) for s = 0..4 (DM's and DataDAM's protocol)
DOCUMENTED = {
    0: [2, 8, 4, 9, 1, 6, 7, 3, 0, 5],
    1: [2, 9, 6, 4, 0, 3, 1, 7, 8, 5],
    2: [4, 1, 5, 0, 7, 2, 3, 6, 9, 8],
    3: [5, 4, 1, 2, 9, 6, 7, 0, 3, 8],
    4: [3, 8, 4, 9, 2, 6, 0, 1, 5, 7],
}


@pytest.mark.parametrize("seed", range(5))
def test_class_orders_are_the_documented_ones_and_leave_numpy_alone(seed):
    state = np.random.get_state()
    assert class_order(seed, 10) == DOCUMENTED[seed]
    np.random.seed(seed)
    assert class_order(seed, 10) == [int(c) for c in np.random.permutation(10)]
    np.random.set_state(state)
    before = np.random.get_state()[1].copy()
    class_order(seed, 10)
    assert (np.random.get_state()[1] == before).all()


@pytest.mark.parametrize("steps", [5, 10])
def test_experiences_follow_the_order_in_equal_chunks(steps):
    train, test = tiny_dataset(10, 3, size=4), tiny_dataset(10, 2, size=4, seed=1)
    bench = make_benchmark(train, test, steps=steps, order=DOCUMENTED[0])
    per = 10 // steps
    expected = [sorted(DOCUMENTED[0][i * per:(i + 1) * per]) for i in range(steps)]
    assert experience_classes(bench) == expected
    for exp, classes in zip(bench.train_stream, expected):
        labels = sorted({int(y) for y in exp.dataset.targets})
        assert labels == classes  # original class ids, no relabelling
        assert len(exp.dataset) == 3 * per and len(exp.dataset[0]) == 3
    assert [sorted(e.classes_in_this_experience) for e in bench.test_stream] == expected


def test_bad_steps_and_orders_are_user_errors():
    with pytest.raises(DistillError, match="--steps 3 does not divide the 10 classes"):
        check_steps(3, 10)
    train = tiny_dataset(4, 2, size=4)
    with pytest.raises(DistillError, match="not a permutation"):
        make_benchmark(train, train, steps=2, order=[0, 1, 2, 2])


def test_first_per_class_keeps_labels():
    data = tiny_dataset(3, 5, size=4)
    small = first_per_class(data, 2)
    assert small.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert (small.images_of(1) == data.images_of(1)[:2]).all()
