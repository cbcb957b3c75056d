"""Every random stream of the project: independent, reproducible streams keyed by (seed, purpose, class,
iteration), and the few streams whose form a protocol fixes (a class order, a seeded draw, the global
generators that Avalanche and module constructors read)."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch

# Every stream key of the project, in one place: two purposes never share a key.
#: Distillation (distill.methods): initial images, encoder networks, optimisation steps, herding.
INIT, NET, STEP, HERDING = 0, 1, 2, 3
#: Training a network on a set (distill.core.evaluate, continual.protocols): its weights, batch order, DSA.
TRAIN, SHUFFLE, AUGMENT = 10, 11, 12
#: Coreset selection (distill.methods.coreset): k-center's first centre; forgetting's net, batch order, ties.
KCENTER_START, FORGET_NET, FORGET_SHUFFLE, FORGET_TIES = 20, 21, 22, 23
#: Gradient and trajectory matching (distill.methods.gradient, .trajectory): the inner-loop training of the
#: network on the synthetic set; an MTT expert's initial weights, and the shuffling/DSA of each of its epochs.
INNER_TRAIN, EXPERT_NET, EXPERT_EPOCH = 30, 31, 32
#: CAFE (distill.methods.cafe): the real images of its accuracy probes.
PROBE = 33


def stream(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator whose state depends only on ``seed`` and ``keys`` (never on call order)."""
    state = np.random.SeedSequence([seed % 2**32, *[k % 2**32 for k in keys]]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` itself: a draw whose seed the caller names (a seeded subset)."""
    return torch.Generator().manual_seed(seed)


def numpy_stream(seed: int, *keys: int) -> np.random.Generator:
    """numpy's generator of ``seed`` (``default_rng(seed)``), or of ``(seed, *keys)`` for a stream of its own."""
    return np.random.default_rng([seed, *keys] if keys else seed)


def class_order(seed: int, num_classes: int) -> list[int]:
    """The class order of DM/DataDAM's protocol: ``numpy.random.seed(seed); numpy.random.permutation(n)``.

    Uses a private ``RandomState`` seeded the same way, so the global numpy state is left alone.
    """
    return [int(c) for c in np.random.RandomState(seed).permutation(num_classes)]


@contextlib.contextmanager
def global_seeds(seed: int) -> Iterator[None]:
    """Seed python, numpy and torch's global generators for the block, and restore their states afterwards.

    Avalanche draws minibatch orders and reservoir weights from them, and module constructors draw
    initial weights; this keeps such code reproducible without leaving the caller's random state changed.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def seed_of(generator: torch.Generator) -> int:
    """An integer seed drawn from ``generator``, for APIs that take a seed (``distill.core.engine.fit``)."""
    return int(torch.randint(2**31 - 1, (1,), generator=generator))


def real_indices(count: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` distinct positions out of ``count`` (all of them, shuffled, if there are fewer)."""
    return torch.randperm(count, generator=generator)[:n]


__all__ = ["AUGMENT", "EXPERT_EPOCH", "EXPERT_NET", "FORGET_NET", "FORGET_SHUFFLE", "FORGET_TIES", "HERDING", "INIT",
           "INNER_TRAIN", "KCENTER_START", "NET", "PROBE", "SHUFFLE", "STEP", "TRAIN", "class_order", "generator",
           "global_seeds", "numpy_stream", "real_indices", "seed_of", "stream"]
