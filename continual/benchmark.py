"""Class-incremental benchmarks built offline from distill.core.data tensors, with the documented class orders."""

from __future__ import annotations

import torch

from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset

from continual.config import check_steps
from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.core.seeds import class_order  # the DM/DataDAM protocol's order; re-exported here


def first_per_class(data: ClassDataset, n: int | None) -> ClassDataset:
    """The first ``n`` images of every class (all when ``n`` is ``None``), labels unchanged."""
    if n is None:
        return data
    if n < 1:
        raise DistillError(f"images per class must be at least 1, got {n}")
    idx = torch.cat([data.indices_of(c)[:n] for c in range(data.num_classes)])
    idx, _ = torch.sort(idx)
    return ClassDataset(data.images[idx], data.labels[idx], list(data.class_names), data.mean, data.std)


def make_benchmark(train: ClassDataset, test: ClassDataset, *, steps: int, order: list[int]):
    """A class-incremental Avalanche scenario: ``steps`` experiences of ``num_classes / steps`` classes each.

    Items are ``(x, y, 0)`` with the original class ids as labels; the images are the
    normalised tensors of ``train``/``test``, with no further transform.

    Returns:
        An Avalanche ``CLScenario`` with ``train_stream`` and ``test_stream``.
    """
    check_steps(steps, train.num_classes)
    if sorted(order) != list(range(train.num_classes)):
        raise DistillError(f"class order {order} is not a permutation of the {train.num_classes} classes")
    datasets = {
        "train": _make_taskaware_tensor_classification_dataset(train.images, train.labels, task_labels=0,
                                                                targets=train.labels),
        "test": _make_taskaware_tensor_classification_dataset(test.images, test.labels, task_labels=0,
                                                               targets=test.labels),
    }
    return class_incremental_benchmark(datasets, class_order=list(order), num_experiences=steps)


def experience_classes(benchmark) -> list[list[int]]:
    """The classes of every training experience, in the order the class order gives them."""
    return [sorted(int(c) for c in exp.classes_in_this_experience) for exp in benchmark.train_stream]


__all__ = ["check_steps", "class_order", "experience_classes", "first_per_class", "make_benchmark"]
