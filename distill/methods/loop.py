"""The optimisation loop every learned method shares (DataDAM, DM, DC, DSA, MTT, CAFE): progress, time budget,
checkpoints, Ctrl-C.

A method supplies ``step(iteration) -> loss``, which updates its tensors in place (one outer iteration as
its paper counts them), and the tensors and optimizers a checkpoint must hold; :func:`run_loop` does the rest.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from distill.core.cache import content_key
from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.core.io import atomic_torch_save
from distill.methods import DistillConfig, nan_hint, result_key
from distill.methods.selection import initial_images


def bilevel_start(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                  device: torch.device):  # noqa: ANN201 - (images, labels, image optimizer, network, real images by class)
    """What the bi-level methods (gradient matching, CAFE) start from: the learnable images and their labels,
    SGD on the images, an instancenorm ConvNet to re-initialise every iteration, and each class's real images."""
    from distill.core.networks import ConvNet

    syn = torch.nn.Parameter(initial_images(train, classes, cfg, seed=seed, device=device))
    labels = torch.tensor(list(classes), device=device).repeat_interleave(cfg.ipc)
    optimizer = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum)
    net = ConvNet(num_classes=train.num_classes, channels=syn.shape[1], image_size=syn.shape[-1], depth=cfg.depth,
                  width=cfg.width, norm=cfg.norm).to(device)
    return syn, labels, optimizer, net, [train.images_of(c).to(device) for c in classes]


def _fingerprint(cfg: DistillConfig, classes: Sequence[int], seed: int, shape: Sequence[int]) -> str:
    # More iterations (or another time budget) may be asked for on --resume: the steps done stay valid.
    record = {k: v for k, v in result_key(cfg).items() if k not in ("iterations", "max_minutes")}
    record.update(classes=list(classes), seed=seed, shape=list(shape))
    return content_key(record, length=None)


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[list[bool]]:
    """Turn Ctrl-C (and a scheduler's SIGTERM) into a flag read at the end of a step, so a checkpoint
    never holds half a step."""
    flag = [False]
    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {s: signal.signal(s, lambda *_: flag.__setitem__(0, True)) for s in signals}
    except ValueError:  # not the main thread: interrupts arrive as usual
        yield flag
        return
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_loop(cfg: DistillConfig, step: Callable[[int], float], *, tensors: Sequence[Tensor],
             optimizers: Sequence[torch.optim.Optimizer], classes: Sequence[int], seed: int, shape: Sequence[int],
             progress: bool = True, checkpoint: Path | None = None, resume: bool = False,
             callback: Callable[[int, float], None] | None = None,
             postfix: Callable[[], dict[str, str]] | None = None) -> tuple[int, list[tuple[int, float]]]:
    """Run ``step`` for ``cfg.iterations`` iterations (or until ``cfg.max_minutes``), checkpointing ``tensors``
    and ``optimizers`` every ``cfg.checkpoint_minutes``, at the end and on Ctrl-C.

    Returns:
        The iterations done and the loss curve ``[(iteration, loss), ...]``.
    """
    start, curve = 0, []
    key = _fingerprint(cfg, classes, seed, shape)
    if resume and checkpoint is not None and checkpoint.is_file():
        start, curve = _load(checkpoint, key, tensors, optimizers)
    last_save = began = time.monotonic()
    done = start
    bar = tqdm(total=cfg.iterations, initial=start, disable=not progress, desc=f"{cfg.method} ipc{cfg.ipc}",
               unit="it", dynamic_ncols=True)
    with _deferred_interrupt() as interrupted, bar:
        for it in range(start, cfg.iterations):
            loss = step(it)
            if not math.isfinite(loss):
                raise DistillError(f"the {cfg.method} loss became {loss} at iteration {it}; {nan_hint(cfg)} "
                                   f"(the last checkpoint is intact)")
            done = it + 1
            curve.append((it, loss))
            bar.set_postfix(loss=f"{loss:.4g}", **(postfix() if postfix is not None else {}), refresh=False)
            bar.update()
            if callback is not None:
                callback(it, loss)
            out_of_time = cfg.max_minutes is not None and time.monotonic() - began > cfg.max_minutes * 60
            due = time.monotonic() - last_save > cfg.checkpoint_minutes * 60
            if checkpoint is not None and (due or interrupted[0] or out_of_time or done == cfg.iterations):
                atomic_torch_save({"key": key, "iteration": done, "tensors": [t.detach().cpu() for t in tensors],
                                   "optimizers": [o.state_dict() for o in optimizers], "curve": curve}, checkpoint)
                last_save = time.monotonic()
            if interrupted[0]:
                raise KeyboardInterrupt
            if out_of_time:
                break
    return done, curve


def _load(path: Path, key: str, tensors: Sequence[Tensor],
          optimizers: Sequence[torch.optim.Optimizer]) -> tuple[int, list[tuple[int, float]]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DistillError(f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start over") from None
    if state.get("key") != key or len(state.get("tensors", ())) != len(tensors):
        raise DistillError(f"checkpoint {path} belongs to a run with other settings, classes or seed; "
                           f"resume with the same command, or delete the checkpoint to start over")
    with torch.no_grad():
        for t, saved in zip(tensors, state["tensors"]):
            t.copy_(saved.to(t.device))
    for o, saved in zip(optimizers, state["optimizers"]):
        o.load_state_dict(saved)
    return int(state["iteration"]), [tuple(p) for p in state["curve"]]


__all__ = ["bilevel_start", "run_loop"]
