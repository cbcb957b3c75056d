"""The two continual-learning protocols: GDumb-style retraining on the memory, and Avalanche replay."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from distill.core.data import ClassDataset
from distill.core.engine import TrainConfig, plan, train_network
from distill.core.evaluate import test_accuracy
from distill.core.networks import get_network, init_parameters
from distill.core.seeds import TRAIN, global_seeds, stream

from continual.buffer import AdaptOnUpdate
from continual.config import CLASS_BALANCED, ReplayConfig

ModelFactory = Callable[[int], nn.Module]
StepCallback = Callable[["StepResult"], None]

INIT_STREAM = TRAIN  # networks start as distill.core.evaluate's do
#: Replay trains through Avalanche's own loop (Naive), not through distill.core.engine: fp32, eager.
AVALANCHE_ENGINE = {"precision": "fp32", "compiled": False, "channels_last": False, "loop": "avalanche Naive"}
ACC_KEY = "Top1_Acc_Stream/eval_phase/test_stream"
FORGET_KEY = "StreamForgetting/eval_phase/test_stream"


@dataclass
class StepResult:
    """What one (protocol, method, seed) run measured after one experience."""

    step: int                       # 1-based
    classes_seen: list[int]
    accuracy: float                 # percent, on the test images of the classes seen (mean over models)
    accuracy_runs: list[float] = field(default_factory=list)
    forgetting: float | None = None  # percent (replay: Avalanche's StreamForgetting)
    memory_images: int = 0
    memory_bytes: int = 0
    images_per_class: int = 0
    distill_seconds: float = 0.0      # distilling in this run
    distill_seconds_cached: float = 0.0  # what the memories taken from the cache cost when first distilled
    train_seconds: float = 0.0
    #: what the training engine used for this step's models (:class:`distill.core.engine.EnginePlan`)
    engine: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def network_factory(name: str, *, num_classes: int, channels: int, image_size: int,
                    width: int | None = None) -> ModelFactory:
    """``factory(seed)`` -> a freshly initialised network; the seed alone fixes its weights.

    ``width`` applies to the ConvNet family only.
    """
    kwargs = {"width": width} if width is not None and name.startswith("convnet") else {}

    def make(seed: int) -> nn.Module:
        model = get_network(name, num_classes=num_classes, channels=channels, image_size=image_size, **kwargs)
        return init_parameters(model, stream(seed, INIT_STREAM))

    return make


def model_seed(seed: int, step: int, index: int) -> int:
    """A distinct, documented seed for the ``index``-th model of ``step`` in run ``seed``."""
    return seed * 100_000 + step * 100 + index


def run_gdumb(benchmark: Any, test: ClassDataset, buffer: Any, *, make_model: ModelFactory, train: TrainConfig,
              models_per_step: int, seed: int, device: torch.device,
              done: dict[int, StepResult] | None = None, on_step: StepCallback | None = None,
              progress: Callable[[Iterator], Iterator] | None = None) -> list[StepResult]:
    """DM/DataDAM's protocol: at every step, fresh models trained from scratch on the whole memory.

    Args:
        buffer: a storage policy with ``post_adapt`` and ``tensors()`` (a :class:`DistilledBuffer`).
        done: results of steps finished by an earlier run (1-based step -> result); their memories are
            rebuilt (from the cache) but their models are not trained again.
        on_step: called with every new result as soon as it exists (for checkpointing).

    Returns:
        One :class:`StepResult` per experience.
    """
    done = done or {}
    results: list[StepResult] = []
    seen: list[int] = []
    experiences = list(enumerate(benchmark.train_stream, start=1))
    for step, exp in (progress(experiences) if progress else experiences):
        seen += sorted(int(c) for c in exp.classes_in_this_experience)
        before = buffer.distill_seconds, buffer.cached_distill_seconds
        buffer.post_adapt(None, exp)
        distill_seconds = buffer.distill_seconds - before[0]
        cached_seconds = buffer.cached_distill_seconds - before[1]
        if step in done:
            results.append(done[step])
            continue
        images, labels = buffer.tensors()
        held = test.subset(sorted(seen))
        start = time.perf_counter()
        runs = []
        for index in range(models_per_step):
            s = model_seed(seed, step, index)
            model = make_model(s)
            train_network(model, images, labels, train, seed=s, device=device)
            runs.append(float(test_accuracy(model, held.images, held.labels, device=device)))
        result = StepResult(step=step, classes_seen=list(seen), accuracy=float(np.mean(runs)), accuracy_runs=runs,
                            memory_images=len(labels), memory_bytes=images.numel() * images.element_size(),
                            images_per_class=buffer.images_per_class, distill_seconds=distill_seconds,
                            distill_seconds_cached=cached_seconds, train_seconds=time.perf_counter() - start,
                            engine=plan(train, len(labels), device).to_dict())
        results.append(result)
        if on_step:
            on_step(result)
    return results


def make_class_balanced(mem_size: int, num_classes: int):
    """Avalanche's ``ClassBalancedBuffer`` sized to hold ``mem_size / num_classes`` images of every class."""
    from avalanche.training.storage_policy import ClassBalancedBuffer

    class _ClassBalancedBuffer(AdaptOnUpdate, ClassBalancedBuffer):
        pass

    return _ClassBalancedBuffer(max_size=mem_size, adaptive_size=False, total_num_classes=num_classes)


def run_replay(benchmark: Any, storage_policy: Any, *, make_model: ModelFactory, replay: ReplayConfig,
               mem_size: int, seed: int, device: torch.device, on_step: StepCallback | None = None,
               progress: Callable[[Iterator], Iterator] | None = None) -> list[StepResult]:
    """One model trained through the stream with Avalanche's ``Naive`` + ``ReplayPlugin(storage_policy)``.

    After each experience the model is evaluated on the test experiences seen so far with
    Avalanche's stream accuracy and stream forgetting metrics.
    """
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.supervised import Naive

    results: list[StepResult] = []
    seen: list[int] = []
    with global_seeds(seed), warnings.catch_warnings():
        # An evaluator without loggers is what we want here.
        warnings.filterwarnings("ignore", message="No loggers specified")
        model = make_model(model_seed(seed, 0, 0))
        optimizer = torch.optim.SGD(model.parameters(), lr=replay.lr, momentum=replay.momentum,
                                    weight_decay=replay.weight_decay, nesterov=replay.nesterov)
        evaluator = EvaluationPlugin(accuracy_metrics(stream=True, experience=True),
                                     forgetting_metrics(experience=True, stream=True), loggers=[])
        plugin = ReplayPlugin(mem_size=mem_size, batch_size=replay.batch_size, batch_size_mem=replay.batch_size_mem,
                              storage_policy=storage_policy)
        strategy = Naive(model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(), train_mb_size=replay.batch_size,
                         train_epochs=replay.epochs, eval_mb_size=1000, device=device, plugins=[plugin],
                         evaluator=evaluator)
        experiences = list(enumerate(benchmark.train_stream, start=1))
        for step, exp in (progress(experiences) if progress else experiences):
            seen += sorted(int(c) for c in exp.classes_in_this_experience)
            before = (getattr(storage_policy, "distill_seconds", 0.0),
                      getattr(storage_policy, "cached_distill_seconds", 0.0))
            start = time.perf_counter()
            strategy.train(exp, num_workers=0)
            wall = time.perf_counter() - start
            distill_seconds = getattr(storage_policy, "distill_seconds", 0.0) - before[0]
            cached_seconds = getattr(storage_policy, "cached_distill_seconds", 0.0) - before[1]
            metrics = strategy.eval(benchmark.test_stream[:step], num_workers=0)
            buffer = storage_policy.buffer
            nbytes = sum(x.numel() * x.element_size() for x in _buffer_images(buffer))
            result = StepResult(step=step, classes_seen=list(seen), accuracy=100.0 * float(metrics[ACC_KEY]),
                                accuracy_runs=[100.0 * float(metrics[ACC_KEY])],
                                forgetting=100.0 * float(metrics.get(FORGET_KEY, 0.0)),
                                memory_images=len(buffer), memory_bytes=nbytes,
                                images_per_class=len(buffer) // max(len(seen), 1),
                                distill_seconds=distill_seconds, distill_seconds_cached=cached_seconds,
                                train_seconds=wall - distill_seconds, engine=AVALANCHE_ENGINE)
            results.append(result)
            if on_step:
                on_step(result)
    return results


def _buffer_images(buffer: Any) -> Iterator[torch.Tensor]:
    for i in range(len(buffer)):
        yield buffer[i][0]


__all__ = ["StepResult", "make_class_balanced", "model_seed", "network_factory", "run_gdumb", "run_replay",
           "CLASS_BALANCED"]
