"""Coreset baselines: random real images, and herding on a random ConvNet's embeddings."""

from __future__ import annotations

from typing import Sequence

import torch

from distill.data import ClassDataset
from distill.errors import DistillError
from distill.methods import DistillConfig, MethodOutput, register_method
from distill.networks import ConvNet, init_parameters
from distill.seeds import HERDING, INIT, real_indices, stream

# What a selection reads (its cache key): the encoder fields matter to herding; random keeps the same key.
_READS = ("method", "ipc", "depth", "width", "norm")


def _check_enough(train: ClassDataset, c: int, ipc: int) -> None:
    if len(train.indices_of(c)) < ipc:
        raise DistillError(f"class {c} has {len(train.indices_of(c))} images, fewer than ipc {ipc}; lower --ipc")


@register_method("random", reads=_READS, encoder=False)
def random_real(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                device: torch.device) -> MethodOutput:
    """``ipc`` random real images per class; the same draw initialises DataDAM/DM (``init=real``)."""
    parts = []
    for c in classes:
        _check_enough(train, c, cfg.ipc)
        parts.append(train.images_of(c)[real_indices(len(train.indices_of(c)), cfg.ipc, stream(seed, INIT, c))])
    return MethodOutput(torch.cat(parts))


@register_method("herding", reads=_READS)
@torch.no_grad()
def herding(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
            device: torch.device, batch_size: int = 500) -> MethodOutput:
    """Herding (Welling 2009): greedily pick images whose running mean embedding tracks the class mean."""
    parts = []
    for c in classes:
        _check_enough(train, c, cfg.ipc)
        images = train.images_of(c)
        net = ConvNet(num_classes=train.num_classes, channels=images.shape[1], image_size=images.shape[-1],
                      depth=cfg.depth, width=cfg.width, norm=cfg.norm or "instancenorm")
        net = init_parameters(net, stream(seed, HERDING, c)).to(device).eval()
        feats = torch.cat([net.embed(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)])
        parts.append(images[herding_select(feats, cfg.ipc).cpu()])
    return MethodOutput(torch.cat(parts))


def herding_select(features: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of ``k`` rows of ``features`` chosen by herding, in selection order."""
    mu = features.mean(0)
    total = torch.zeros_like(mu)
    chosen: list[int] = []
    available = torch.ones(len(features), dtype=torch.bool, device=features.device)
    for step in range(k):
        dist = ((mu - (total + features) / (step + 1)) ** 2).sum(1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        total += features[i]
    return torch.tensor(chosen, dtype=torch.long)


__all__ = ["herding", "herding_select", "random_real"]
