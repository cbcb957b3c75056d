"""The whole job's time left: distillation measured as it runs, evaluation measured by a short probe first."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable

import torch

from distill.core.evaluate import TrainConfig, test_accuracy, train_network
from distill.core.networks import get_network


def probe_eval_seconds(num_images: int, image_shape: tuple[int, ...], num_classes: int, config: TrainConfig, *,
                       test_images: int, network: str = "convnet", device: torch.device | str = "cpu",
                       **network_kwargs) -> float:
    """Seconds to train one evaluation net for ``config.epochs`` on ``num_images`` and test it, measured on noise.

    The probe is bounded whatever the request: it trains on one batch (at most ``config.batch_size``
    images) for a warm-up step, which pays for one-off kernel selection, then times two steps and scales
    them to the steps of the whole training; testing is timed on one batch of at most 500 images.
    """
    batch = max(1, min(num_images, config.batch_size))
    images = torch.randn(batch, *image_shape)
    labels = torch.arange(batch) % num_classes
    model = get_network(network, num_classes=num_classes, channels=image_shape[0], image_size=image_shape[-1],
                        **network_kwargs)
    train_network(model, images, labels, replace(config, epochs=1), seed=0, device=device)
    started = time.perf_counter()
    train_network(model, images, labels, replace(config, epochs=2), seed=1, device=device)
    step = (time.perf_counter() - started) / 2
    tested = min(500, max(1, test_images))
    started = time.perf_counter()
    test_accuracy(model, torch.randn(tested, *image_shape), torch.zeros(tested, dtype=torch.long), device=device)
    steps = math.ceil(num_images / config.batch_size) * config.epochs
    return step * steps + (time.perf_counter() - started) * test_images / tested


class JobClock:
    """Time left in ``iterations`` distillation steps followed by ``eval_seconds`` of evaluation.

    The step rate is measured from the steps seen so far, leaving out the first (which pays for
    compilation and kernel selection). Once ``announce_after`` steps are timed, ``announce`` is
    called with the rate, once: that is when a plan with a measured estimate can be printed.
    """

    def __init__(self, iterations: int, eval_seconds: float = 0.0, *,
                 announce: Callable[[float], None] | None = None, announce_after: int = 5) -> None:
        self.iterations, self.eval_seconds = iterations, eval_seconds
        self._announce, self._announce_after = announce, announce_after
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None

    def step(self, iteration: int) -> None:
        """Record that step ``iteration`` (0-based) has finished."""
        now = time.monotonic()
        if self._first is None:
            self._first = (iteration, now)
        self._last = (iteration, now)
        if self._announce is not None and iteration - self._first[0] >= self._announce_after:
            announce, self._announce = self._announce, None
            announce(self.seconds_per_iteration)

    def postfix(self) -> dict[str, str]:
        """The progress bar's field: the whole job's time left."""
        return {"job_left": minutes(self.seconds_left())}

    @property
    def seconds_per_iteration(self) -> float | None:
        if self._first is None or self._last is None or self._last[0] == self._first[0]:
            return None
        return (self._last[1] - self._first[1]) / (self._last[0] - self._first[0])

    def seconds_left(self) -> float | None:
        rate = self.seconds_per_iteration
        if rate is None or self._last is None:
            return None
        return (self.iterations - self._last[0] - 1) * rate + self.eval_seconds


def minutes(seconds: float | None) -> str:
    """``12 s``, ``4.3 min`` or ``2.1 h``."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["JobClock", "minutes", "probe_eval_seconds"]
