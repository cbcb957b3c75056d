"""The training engine: every network the toolkit trains goes through :func:`fit`.

Evaluation nets, continual-learning models and NAS-Bench-201 candidates all train here, with one
:class:`TrainConfig`. The engine owns the training step: SGD and its schedule, DSA, the memory
layout, the precision and compilation. One function, :func:`plan`, decides what ``auto`` means for
a run on a device, with the same resolver that distillation uses
(:func:`distill.core.hardware.resolve_precision`).

What makes it fast on a CPU (benchmarks/train_speed.py profiles a run and measures each part):

- **bf16 autocast** where the CPU has native bf16 (AVX512-BF16/AMX); fp32 elsewhere, where bf16 is
  emulated and ~10x slower. Weights, BatchNorm statistics, the loss and the optimizer step stay fp32,
  as torch's autocast rules have them: only convolutions and the linear layer run in bf16.
- **torch.compile** of forward, loss and backward: the profile of an evaluation net is convolutions
  plus memory-bound norm, ReLU and pooling passes, and fusion removes most of the latter. Compiling
  costs 10-30 s once per ConvNet and batch shape (155 s for a full-size NAS-Bench-201 cell network), so
  ``auto`` compiles runs of at least
  :data:`COMPILE_MIN_STEPS` steps only (an evaluation net at 300+ epochs; not a NAS candidate's
  short run).
- **channels-last** for compiled steps (eagerly, bf16 convolutions are slower in that layout here).
- **glibc malloc kept from trimming** (:func:`distill.core.perf.tune_allocator`): each step frees and
  re-allocates the same activation buffers, and page-faulting them in again cost ~29 % of a plain
  loop's time at ipc 50 (measured while profiling, not in the committed benchmark).
- **no per-step host sync**: the loss is read once per epoch unless a callback asks for every step.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from distill.core.augment import DEFAULT_STRATEGY, DSA
from distill.core.errors import DistillError
from distill.core.hardware import PRECISIONS, compile_available, resolve_precision
from distill.core.perf import tune_allocator
from distill.core.seeds import AUGMENT, SHUFFLE, stream
from distill.core.settings import checked
from distill.core.store import load_entry, save_entry

log = logging.getLogger(__name__)

#: ``compile = None`` compiles runs of at least this many optimizer steps: compiling costs 10-30 s on
#: a CPU and saves 0.1-1 s per step of an evaluation net (benchmarks/results/train-speed-*.json).
COMPILE_MIN_STEPS = 300


@dataclass
@checked
class SGDConfig:
    """Epochs of minibatch SGD: what every training recipe holds (:class:`TrainConfig` and continual's
    replay recipe add what each reads besides)."""

    epochs: int = field(default=1000, metadata={"help": "training epochs", "min": 1})
    batch_size: int = field(default=256, metadata={"help": "minibatch size", "min": 1})
    lr: float = field(default=0.01, metadata={"help": "SGD learning rate", "above": 0})
    momentum: float = field(default=0.9, metadata={"min": 0, "max": 1})
    weight_decay: float = field(default=5e-4, metadata={"min": 0})
    nesterov: bool = False


@dataclass
@checked
class TrainConfig(SGDConfig):
    """How a network is trained (defaults: the evaluation protocol of METHOD.md §2)."""

    schedule: str = field(default="step", metadata={"help": "step (x lr_decay at the midpoint) | cosine",
                                                    "choices": ("step", "cosine")})
    lr_decay: float = field(default=0.1, metadata={"above": 0})
    dsa: bool = field(default=True, metadata={"help": "DSA on every batch"})
    dsa_strategy: str = DEFAULT_STRATEGY
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 autocast where the CPU or GPU has native bf16, else fp32) | fp32 | bf16",
        "choices": PRECISIONS})
    compile: bool | None = field(default=None, metadata={
        "help": f"torch.compile the training step; unset: runs of >= {COMPILE_MIN_STEPS} steps where a C++ "
                "compiler or a GPU is present"})
    channels_last: bool | None = field(default=None, metadata={
        "help": "channels-last memory layout; unset: when the step is compiled"})


@dataclass(frozen=True)
class EnginePlan:
    """What a run uses, decided by :func:`plan`: recorded in every results file."""

    precision: str      # fp32 | bf16
    compiled: bool
    channels_last: bool
    steps: int          # optimizer steps of the whole run

    def to_dict(self) -> dict:
        return asdict(self)


class Fitted(NamedTuple):
    """What :func:`fit` reports: the plan it trained with, and the seconds the training took, summed over every
    call that resumed it from its checkpoint (the work after the last checkpoint of a stopped call is done
    again, and counted once)."""

    plan: EnginePlan
    seconds: float


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    return math.ceil(num_images / batch_size)


def plan(config: TrainConfig, num_images: int, device: torch.device | str = "cpu") -> EnginePlan:
    """Resolve ``auto`` precision, compilation and layout for ``num_images`` images on ``device``."""
    device = torch.device(device)
    steps = config.epochs * steps_per_epoch(max(num_images, 1), config.batch_size)
    compiled = (config.compile if config.compile is not None
                else steps >= COMPILE_MIN_STEPS and compile_available(device.type))
    layout = config.channels_last if config.channels_last is not None else compiled
    return EnginePlan(resolve_precision(config.precision, device), bool(compiled), bool(layout), steps)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision == "bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _loss(model: nn.Module, x: Tensor, y: Tensor, precision: str, device_type: str) -> tuple[Tensor, Tensor]:
    """The training loss and the (detached) logits it came from; under bf16 only the layers autocast lists run in
    bf16, the loss is fp32."""
    with autocast(precision, torch.device(device_type)):
        logits = model(x)
    return nn.functional.cross_entropy(logits.float(), y), logits.detach()


#: Compiled graphs kept for the one compiled loss: one per (architecture, batch shape) seen in a process.
#: Past dynamo's default of 8 it would silently run eagerly; a study evaluates many cells in one process.
RECOMPILE_LIMIT = 64


@functools.cache
def _compiled_loss() -> Callable[..., Tensor]:
    """:func:`_loss` through torch.compile: new nets of one architecture reuse its graphs. The first
    batch shape compiles static; a second (the last, smaller batch of an epoch, or a growing continual
    memory) compiles one graph with a dynamic batch size that serves every later size. Where compilation
    fails, dynamo falls back to eager."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(_loss)


def sgd(params, config: TrainConfig, num_images: int):  # noqa: ANN001, ANN201 - parameters in, (optimizer, scheduler) out
    """The SGD optimizer and the per-step learning-rate schedule of ``config``."""
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov)
    per_epoch = steps_per_epoch(num_images, config.batch_size)
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * per_epoch))
    elif config.schedule == "step":
        # At the midpoint, as DM's code: a 1-epoch run decays at its end, i.e. never (a milestone at step 0
        # would decay the rate before the first step).
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [max(1, config.epochs // 2) * per_epoch],
                                                         gamma=config.lr_decay)
    else:
        raise DistillError(f"unknown schedule {config.schedule!r}; use step or cosine")
    return optimizer, scheduler


def check_set(images: Tensor, labels: Tensor) -> None:
    if len(images) == 0:
        raise DistillError("cannot train on an empty set; the memory or synthetic set holds no images")
    if len(images) != len(labels):
        raise DistillError(f"{len(images)} images but {len(labels)} labels; pass one label per image")


#: How a training checkpoint of :func:`fit` is named beside the entry its run will produce (``x.pt`` →
#: ``x.checkpoint.pt``), so that a job can tell the training checkpoints it wrote from its other files.
CHECKPOINT_SUFFIX = ".checkpoint.pt"


def check_finite(loss: Tensor) -> None:
    if not torch.isfinite(loss):
        raise DistillError(f"training loss became {float(loss)}; lower the learning rate (--lr)")


def fit(model: nn.Module, images: Tensor, labels: Tensor, config: TrainConfig, *, seed: int,
        device: torch.device | str = "cpu", progress: bool = False,
        loss_callback: Callable[[float], None] | None = None,
        batch_callback: Callable[[Tensor, Tensor], None] | None = None, checkpoint: Path | None = None,
        keep: Mapping[str, Tensor] | None = None, checkpoint_minutes: float = 5.0) -> Fitted:
    """Train ``model`` in place from the weights it has and leave it in eval mode; returns the plan used and the
    training's seconds.

    Shuffling and augmentation come from ``seed``; the end-of-training weights are kept (no early
    stopping on test data). ``loss_callback`` is called with every minibatch's training loss (a host
    sync per step; without it the loss is read once per epoch, to stop on NaN). ``batch_callback`` is
    called with every minibatch's positions in ``images`` and whether each was classified right by the
    forward that made the loss, before the step (what forgetting counts).

    ``checkpoint``: a file that receives the training's state (weights, optimizer, schedule, the shuffling
    and augmentation streams, the seconds spent so far, and the tensors of ``keep``, which the caller updates in
    place) at the end of an epoch every ``checkpoint_minutes``. A call that finds it continues from its epoch,
    bit for bit as if never stopped, so it must be named by everything the run reads; the caller deletes it
    once the result is safe. For runs longer than a sitting (forgetting's 200 counting epochs over 50,000 images).
    """
    started = time.monotonic()
    check_set(images, labels)
    device = torch.device(device)
    run = plan(config, len(images), device)
    tune_allocator()
    layout = torch.channels_last if run.channels_last else torch.contiguous_format
    model.to(device).to(memory_format=layout).train()
    images, labels = images.to(device), labels.to(device)
    optimizer, scheduler = sgd(model.parameters(), config, len(images))
    dsa = DSA(config.dsa_strategy if config.dsa else "none")
    shuffle, augment = stream(seed, SHUFFLE), stream(seed, AUGMENT)
    loss_fn = _compiled_loss() if run.compiled else _loss
    parts, keep = {"model": model, "optimizer": optimizer, "scheduler": scheduler}, dict(keep or {})
    first, before = _resume(checkpoint, parts, shuffle, augment, keep)
    last_save = time.monotonic()
    for epoch in tqdm(range(first, config.epochs), initial=first, total=config.epochs, disable=not progress,
                      desc="train", unit="ep", leave=False):
        order = torch.randperm(len(images), generator=shuffle).to(device)
        for start in range(0, len(images), config.batch_size):
            idx = order[start:start + config.batch_size]
            x = dsa(images[idx], augment, siamese=False).contiguous(memory_format=layout)
            loss, logits = loss_fn(model, x, labels[idx], run.precision, device.type)
            if loss_callback is not None:
                loss_callback(float(loss.detach()))
            if batch_callback is not None:
                batch_callback(idx, logits.argmax(1) == labels[idx])  # only when asked: off the hot path
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        check_finite(loss.detach())
        if checkpoint is not None and epoch + 1 < config.epochs and \
                time.monotonic() - last_save >= checkpoint_minutes * 60:
            try:
                save_entry({"epoch": epoch + 1, **{k: v.state_dict() for k, v in parts.items()},
                            "shuffle": shuffle.get_state(), "augment": augment.get_state(), "keep": keep,
                            "seconds": before + time.monotonic() - started}, checkpoint)
            except OSError as exc:  # a full disk costs the checkpoint, not the training
                log.warning("%s; training goes on without it", exc)
            last_save = time.monotonic()
    model.to(memory_format=torch.contiguous_format).eval()
    return Fitted(run, before + time.monotonic() - started)


def _resume(checkpoint: Path | None, parts: dict, shuffle: torch.Generator, augment: torch.Generator,
            keep: Mapping[str, Tensor]) -> tuple[int, float]:
    """Load ``checkpoint`` (see :func:`fit`) into the training's parts; the epoch to start from and the seconds
    spent before it (0 and 0 without one).

    A damaged file is named and deleted by :func:`load_entry`, and the run starts over.
    """
    state = load_entry(checkpoint)
    if state is None:
        return 0, 0.0
    try:
        for name, part in parts.items():
            part.load_state_dict(state[name])
        shuffle.set_state(state["shuffle"])
        augment.set_state(state["augment"])
        for name, tensor in keep.items():
            tensor.copy_(state["keep"][name])
        return int(state["epoch"]), float(state["seconds"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise DistillError(f"checkpoint {checkpoint} belongs to another training run ({type(exc).__name__}); "
                           f"delete it to start over") from None


def train_network(model: nn.Module, images: Tensor, labels: Tensor, config: TrainConfig, *, seed: int,
                  device: torch.device | str = "cpu", progress: bool = False,
                  loss_callback: Callable[[float], None] | None = None) -> nn.Module:
    """:func:`fit`, returning the trained model (in eval mode)."""
    fit(model, images, labels, config, seed=seed, device=device, progress=progress, loss_callback=loss_callback)
    return model


__all__ = ["CHECKPOINT_SUFFIX", "COMPILE_MIN_STEPS", "EnginePlan", "Fitted", "SGDConfig", "TrainConfig", "autocast",
           "check_finite", "check_set", "fit", "plan", "sgd", "steps_per_epoch", "train_network"]
