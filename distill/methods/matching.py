"""DataDAM (spatial attention matching + MMD) and DM (MMD only): the distribution-matching loop.

Each step samples a fresh random ConvNet encoder, pushes a DSA-augmented real batch and the
synthetic images of every class through it, and moves the synthetic images so that their mean
attention maps (DataDAM) and mean embedding (both) match the real ones (METHOD.md §1).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.core.augment import DSA
from distill.core.data import ClassDataset
from distill.core.engine import autocast as engine_autocast
from distill.methods import DistillConfig, MethodOutput
from distill.core.seeds import NET, STEP, real_indices, stream
from distill.methods.loop import run_loop
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


def run_matching(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int, device: torch.device,
                 progress: bool = True, checkpoint: Path | None = None, resume: bool = False,
                 callback: Callable[[int, float], None] | None = None,
                 postfix: Callable[[], dict[str, str]] | None = None) -> MethodOutput:
    """Optimise ``cfg.ipc`` images per class with the DataDAM (or DM) loss; see the module docstring."""
    k, ipc = len(classes), cfg.ipc
    shape = (k * ipc, *train.image_shape)
    syn = torch.nn.Parameter(initial_images(train, classes, cfg, seed=seed, device=device))
    optimizer = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum)
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

    def step(it: int) -> float:
        init_parameters(net, stream(seed, NET, it))
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(it)
        if math.isfinite(loss):  # a NaN is reported by the loop; the images keep their last finite values
            optimizer.step()
        return loss

    done, curve = run_loop(cfg, step, tensors=[syn], optimizers=[optimizer], classes=classes, seed=seed,
                           shape=shape, progress=progress, checkpoint=checkpoint, resume=resume, callback=callback,
                           postfix=postfix)
    return MethodOutput(syn.detach().cpu(), done, curve)
