"""Coreset baselines: random real images, and herding on a random ConvNet's embeddings."""

from __future__ import annotations

from typing import Sequence

import torch

from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.methods import DistillConfig, MethodOutput, register_method
from distill.core.networks import ConvNet, init_parameters
from distill.core.seeds import HERDING, INIT, real_indices, stream

# What a selection reads (its cache key): the encoder fields matter to herding; random keeps the same key.
_READS = ("method", "ipc", "depth", "width", "norm")


def _check_enough(train: ClassDataset, c: int, ipc: int) -> None:
    if len(train.indices_of(c)) < ipc:
        raise DistillError(f"class {c} has {len(train.indices_of(c))} images, fewer than ipc {ipc}; lower --ipc")


@register_method("random", reads=_READS, encoder=False, color="tab:gray", experiments=("continual", "nas"),
                 baseline=True)
def random_real(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                device: torch.device) -> MethodOutput:
    """``ipc`` random real images per class; the same draw initialises DataDAM/DM (``init=real``)."""
    parts = []
    for c in classes:
        _check_enough(train, c, cfg.ipc)
        parts.append(train.images_of(c)[real_indices(len(train.indices_of(c)), cfg.ipc, stream(seed, INIT, c))])
    return MethodOutput(torch.cat(parts))


def initial_images(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                   device: torch.device) -> torch.Tensor:
    """``ipc`` images per class to start a distillation from: random real ones (``init=real``, the same draw
    as the ``random`` method), seeded Gaussian noise (``init=noise``), or a saved set (``init=PATH``)."""
    if cfg.init == "real":
        start = random_real(train, classes, cfg, seed=seed, device=device).images
    elif cfg.init == "noise":
        start = torch.cat([torch.randn((cfg.ipc, *train.image_shape), generator=stream(seed, INIT, c))
                           for c in classes])
    else:
        start = saved_start(cfg.init, train, classes, cfg.ipc)
    return start.to(device)


def saved_start(path: str, train: ClassDataset, classes: Sequence[int], ipc: int) -> torch.Tensor:
    """The first ``ipc`` images of each of ``classes`` from a saved set, as the start of a distillation.

    ``path`` is a :class:`~distill.core.synthetic.SyntheticSet` file (ours), a ``{"images", "labels"}`` tensor
    file, or the public DataDAM code's ``*_images.pt`` with its ``*_labels.pt`` beside it; images in the
    dataset's normalisation. Checked against the dataset's image shape and classes, and each class must
    hold ``ipc`` images.
    """
    from pathlib import Path

    from distill.core.synthetic import SyntheticSet

    file = Path(path)
    if not file.is_file():
        raise DistillError(f"--init {path}: no such file; pass real, noise, or a saved set")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: one line, not torch's advice
        raise DistillError(f"--init {path} is not a tensor file torch can read ({type(exc).__name__}); "
                           f"pass a synthetic.pt or an {{images, labels}} file") from None
    if isinstance(loaded, dict) and "class_ids" in loaded:
        synthetic = SyntheticSet.load(file)
        synthetic.check_compatible(train.class_names, train.image_shape, source=f"--init {path}")
        images, labels = synthetic.images, synthetic.labels
    elif isinstance(loaded, dict) and {"images", "labels"} <= set(loaded):
        images, labels = loaded["images"], loaded["labels"]
    elif isinstance(loaded, torch.Tensor) and file.name.endswith("_images.pt") and \
            file.with_name(file.name[:-len("_images.pt")] + "_labels.pt").is_file():
        images = loaded
        labels = torch.load(file.with_name(file.name[:-len("_images.pt")] + "_labels.pt"), weights_only=True)
    else:
        raise DistillError(f"--init {path} holds neither a synthetic set nor {{images, labels}}; "
                           f"pass a synthetic.pt, an {{images, labels}} file or X_images.pt beside X_labels.pt")
    images, labels = images.float(), labels.round().long().view(-1)
    if tuple(images.shape[1:]) != tuple(train.image_shape) or len(images) != len(labels):
        raise DistillError(f"--init {path}: {len(labels)} labels for images of shape {tuple(images.shape)}, "
                           f"but the dataset's images are {tuple(train.image_shape)}; pass a set of this dataset")
    parts = []
    for c in classes:
        mine = images[labels == c]
        if len(mine) < ipc:
            raise DistillError(f"--init {path} holds {len(mine)} images of class {c}, fewer than ipc {ipc}; "
                               f"lower --ipc or pass a larger set")
        parts.append(mine[:ipc])
    return torch.cat(parts)


@register_method("herding", reads=_READS, color="tab:green", experiments=("continual",))
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
