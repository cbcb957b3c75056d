"""DataDAM (spatial attention matching + MMD) and DM (MMD only): the distribution-matching loop.

Each step samples a fresh random ConvNet encoder, pushes a DSA-augmented real batch and the
synthetic images of every class through it, and moves the synthetic images so that their mean
attention maps (DataDAM) and mean embedding (both) match the real ones (METHOD.md §1).
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from distill.core.augment import DSA
from distill.core.cache import content_key
from distill.core.data import ClassDataset
from distill.core.engine import autocast as engine_autocast
from distill.core.errors import DistillError
from distill.core.io import atomic_torch_save
from distill.methods import DistillConfig, MethodOutput, nan_hint, result_key
from distill.core.seeds import NET, STEP, real_indices, stream
from distill.methods.selection import initial_images
from distill.core.networks import ConvNet, init_parameters



def attention_map(f: Tensor, power: float, *, nonnegative: bool = False) -> Tensor:
    """Spatial attention ``sum_c |f_c|^p`` of a (B, C, H, W) map, as (B, H*W) rows of unit L2 norm.

    ``nonnegative`` (a ReLU output) skips the ``abs``; p = 1, 2 and 4 avoid the generic ``pow``.
    """
    x = f if nonnegative else f.abs()
    if power == 1:
        a = x.sum(1)
    elif power == 2:
        a = x.square().sum(1)
    elif power == 4:
        a = x.square().square().sum(1)
    else:
        a = x.pow(power).sum(1)
    return F.normalize(a.flatten(1).float(), dim=1)


def statistics(net: ConvNet, x: Tensor, power: float, *, attention: bool, groups: int = 1) -> list[Tensor]:
    """Per-group means of each block's attention map (all blocks but the last) and of the embedding.

    The images of ``x`` form ``groups`` equal consecutive groups (classes); results are (groups, D).
    Attention is taken as soon as a block is computed, so without autograd the large early
    activations are freed block by block.
    """
    nonnegative = isinstance(net.blocks[0].act, torch.nn.ReLU)
    stats = []
    last = len(net.blocks) - 1
    for i, block in enumerate(net.blocks):
        x = block(x)
        if attention and i < last:
            stats.append(attention_map(x, power, nonnegative=nonnegative).view(groups, -1, x.shape[2] * x.shape[3]).mean(1))
        x = block.pool(x)
    stats.append(x.flatten(1).float().view(groups, -1, x[0].numel()).mean(1))
    return stats


def compiled_statistics() -> Callable[..., list[Tensor]]:
    """:func:`statistics` through torch.compile: the same math, with norm, ReLU, attention and pooling fused.

    On a CPU the encoder is memory-bound outside its convolutions, and fusion removes most of that
    traffic (benchmarks/distill_speed.py). Where compilation fails, dynamo falls back to eager.
    """
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    return torch.compile(statistics, dynamic=False)


def matching_loss(real: list[Tensor], syn: list[Tensor], *, lambda_mmd: float, scale: float) -> Tensor:
    """``scale * (sum of squared attention-mean gaps + lambda_mmd * squared embedding-mean gap)``."""
    sam = sum(((r - s) ** 2).sum() for r, s in zip(real[:-1], syn[:-1]))
    mmd = ((real[-1] - syn[-1]) ** 2).sum()
    return scale * (sam + lambda_mmd * mmd)


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


def run_matching(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int, device: torch.device,
                 progress: bool = True, checkpoint: Path | None = None, resume: bool = False,
                 callback: Callable[[int, float], None] | None = None,
                 postfix: Callable[[], dict[str, str]] | None = None) -> MethodOutput:
    """Optimise ``cfg.ipc`` images per class with the DataDAM (or DM) loss; see the module docstring."""
    k, ipc = len(classes), cfg.ipc
    shape = (k * ipc, *train.image_shape)
    syn = torch.nn.Parameter(initial_images(train, classes, cfg, seed=seed, device=device))
    optimizer = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum)
    start, curve = 0, []
    key = _fingerprint(cfg, classes, seed, shape)
    if resume and checkpoint is not None and checkpoint.is_file():
        start, curve = _load_checkpoint(checkpoint, key, syn, optimizer)

    net = ConvNet(num_classes=train.num_classes, channels=shape[1], image_size=shape[-1], depth=cfg.depth,
                  width=cfg.width, norm=cfg.norm).to(device)
    net.requires_grad_(False).train()
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    stats_fn = compiled_statistics() if cfg.compile else statistics
    real_by_class = [train.images_of(c).to(device) for c in classes]
    dsa = DSA(cfg.dsa_strategy)
    attention = cfg.method == "datadam"
    joint = cfg.norm == "batchnorm"  # batch statistics couple the classes: one real and one synthetic batch
    n_real = min([cfg.batch_real] + [len(r) for r in real_by_class]) if joint else cfg.batch_real

    def step_loss(it: int) -> float:
        draws = []
        for i, c in enumerate(classes):
            g = stream(seed, STEP, it, c)
            idx = real_indices(len(real_by_class[i]), n_real, g)
            draws.append((real_by_class[i][idx.to(device)], dsa.sample(g)))
        if joint:
            real = torch.cat([dsa.apply(r, p) for r, p in draws]).contiguous(memory_format=layout)
            fake = torch.cat([dsa.apply(syn[i * ipc:(i + 1) * ipc], p)
                              for i, (_, p) in enumerate(draws)]).contiguous(memory_format=layout)
            with engine_autocast(cfg.precision, device):
                with torch.no_grad():
                    real_stats = stats_fn(net, real, cfg.power, attention=attention, groups=k)
                syn_stats = stats_fn(net, fake, cfg.power, attention=attention, groups=k)
            loss = matching_loss(real_stats, syn_stats, lambda_mmd=cfg.lambda_mmd, scale=cfg.loss_scale)
            loss.backward()
            return float(loss.detach())
        total = 0.0
        for i, (real, params) in enumerate(draws):
            with engine_autocast(cfg.precision, device):
                with torch.no_grad():
                    real_stats = stats_fn(net, dsa.apply(real, params).contiguous(memory_format=layout), cfg.power,
                                          attention=attention)
                fake = dsa.apply(syn[i * ipc:(i + 1) * ipc], params).contiguous(memory_format=layout)
                syn_stats = stats_fn(net, fake, cfg.power, attention=attention)
            loss = matching_loss(real_stats, syn_stats, lambda_mmd=cfg.lambda_mmd, scale=cfg.loss_scale)
            loss.backward()  # per class: the gradient of a sum, with one class's graph alive at a time
            total += float(loss.detach())
        return total

    last_save = began = time.monotonic()
    done = start
    bar = tqdm(total=cfg.iterations, initial=start, disable=not progress, desc=f"{cfg.method} ipc{ipc}",
               unit="it", dynamic_ncols=True)
    with _deferred_interrupt() as interrupted, bar:
        for it in range(start, cfg.iterations):
            init_parameters(net, stream(seed, NET, it))
            optimizer.zero_grad(set_to_none=True)
            loss = step_loss(it)
            if not math.isfinite(loss):
                raise DistillError(f"the {cfg.method} loss became {loss} at iteration {it}; {nan_hint(cfg)} "
                                   f"(the last checkpoint is intact)")
            optimizer.step()
            done = it + 1
            curve.append((it, loss))
            bar.set_postfix(loss=f"{loss:.4g}", **(postfix() if postfix is not None else {}), refresh=False)
            bar.update()
            if callback is not None:
                callback(it, loss)
            out_of_time = cfg.max_minutes is not None and time.monotonic() - began > cfg.max_minutes * 60
            due = time.monotonic() - last_save > cfg.checkpoint_minutes * 60
            if checkpoint is not None and (due or interrupted[0] or out_of_time or done == cfg.iterations):
                _save_checkpoint(checkpoint, key, done, syn, optimizer, curve)
                last_save = time.monotonic()
            if interrupted[0]:
                raise KeyboardInterrupt
            if out_of_time:
                break
    return MethodOutput(syn.detach().cpu(), done, curve)


def _save_checkpoint(path: Path, key: str, iteration: int, syn: Tensor, optimizer: torch.optim.Optimizer,
                     curve: list[tuple[int, float]]) -> None:
    momentum = optimizer.state[syn].get("momentum_buffer") if syn in optimizer.state else None
    atomic_torch_save({"key": key, "iteration": iteration, "images": syn.detach().cpu(),
                       "momentum": None if momentum is None else momentum.cpu(), "curve": curve}, path)


def _load_checkpoint(path: Path, key: str, syn: Tensor, optimizer: torch.optim.Optimizer) -> tuple[int, list]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DistillError(f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start over") from None
    if state.get("key") != key:
        raise DistillError(f"checkpoint {path} belongs to a run with other settings, classes or seed; "
                           f"resume with the same command, or delete the checkpoint to start over")
    with torch.no_grad():
        syn.copy_(state["images"].to(syn.device))
    if state["momentum"] is not None:
        optimizer.state[syn]["momentum_buffer"] = state["momentum"].to(syn.device)
    return int(state["iteration"]), [tuple(p) for p in state["curve"]]
