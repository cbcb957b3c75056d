"""Proxies that rank candidates: train a fresh cell network on a small (or short) budget, test it.

* ``datadam`` / ``dm``: the candidate trains on a distilled :class:`SyntheticSet`.
* ``random``: on the same number of randomly chosen real training images.
* ``early-stop``: on real training images (all, or a seeded subset) for a few epochs.

Every proxy trains the same candidate from the same initialisation with the same recipe, and
scores it on the same held-out real test images.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from distill.data import ClassDataset, cache_dir as distill_cache_dir
from distill.errors import DistillError
from distill.evaluate import TrainConfig, test_accuracy, train_network
from distill.synthetic import SyntheticSet
from nas.config import SearchConfig
from nas.network import build_network


@dataclass
class ProxySet:
    """What a proxy trains candidates on.

    Attributes:
        name: proxy name (``datadam``, ``dm``, ``random``, ``early-stop``).
        images, labels: normalised training images and class ids.
        epochs: training epochs per candidate.
        prepare_seconds: time spent making the set (distillation), 0 when loaded or free.
        description: one line saying what the set is (for results.json).
    """

    name: str
    images: Tensor
    labels: Tensor
    epochs: int
    prepare_seconds: float = 0.0
    description: str = ""


@dataclass
class ProxyOutcome:
    accuracy: float
    seconds: float
    train_seconds: float
    images_seen: int


def train_config(config: SearchConfig, epochs: int) -> TrainConfig:
    """The candidate training recipe of ``config`` for ``epochs`` epochs."""
    return TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr, momentum=config.momentum,
                       weight_decay=config.weight_decay, nesterov=config.nesterov, schedule=config.schedule,
                       dsa=config.dsa, dsa_strategy=config.dsa_strategy, channels_last=True)


def seeded_subset(data: ClassDataset, count: int, seed: int) -> tuple[Tensor, Tensor]:
    """``count`` images drawn without replacement by ``seed`` (all of them, unshuffled, for 0)."""
    if count == 0 or count >= len(data):
        return data.images, data.labels
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    order, _ = order.sort()
    return data.images[order], data.labels[order]


def _distill_config(config: SearchConfig, method: str):
    from distill.config import from_dict
    from distill.methods import DistillConfig

    return from_dict(DistillConfig, {**config.distill, "method": method, "ipc": config.ipc}, where="[distill]")


def _cache_file(config: SearchConfig, method: str, train: ClassDataset) -> Path:
    """Cache key: the settings that determine the images (``result_key``), seed, dataset and data size."""
    from distill.methods import result_key

    key = json.dumps({"seed": config.seed, "dataset": config.dataset,
                      "distill": result_key(_distill_config(config, method)), "n": len(train),
                      "classes": train.class_names, "shape": list(train.images.shape[1:])}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    root = Path(config.cache_dir) if config.cache_dir else distill_cache_dir() / "nas-sets"
    return root / f"{config.dataset}-{method}-ipc{config.ipc}-seed{config.seed}-{digest}.pt"


def distilled_set(config: SearchConfig, method: str, train: ClassDataset, *, device: torch.device,
                  progress: bool = True) -> tuple[SyntheticSet, bool]:
    """The ``method`` set for ``config`` from the cache, else distilled now and cached.

    Returns:
        the set and whether it came from the cache.
    """
    from distill.methods import load_or_distill

    return load_or_distill(_cache_file(config, method, train), train, _distill_config(config, method),
                           seed=config.seed, device=device, progress=progress)


def _check_set(synthetic: SyntheticSet, train: ClassDataset, source: str) -> None:
    if synthetic.images.shape[1:] != train.images.shape[1:]:
        raise DistillError(f"synthetic set {source} has images of shape {tuple(synthetic.images.shape[1:])}, "
                           f"the dataset {tuple(train.images.shape[1:])}; distill it from the same dataset")
    if max(synthetic.class_ids, default=-1) >= train.num_classes:
        raise DistillError(f"synthetic set {source} has class ids beyond the dataset's {train.num_classes} classes; "
                           "distill it from the same dataset")


def load_synthetic_files(paths: list[str], proxies: list[str]) -> dict[str, tuple[SyntheticSet, str]]:
    """Map each ``--synthetic`` file to the proxy named by its ``method`` (datadam, dm or random)."""
    out: dict[str, tuple[SyntheticSet, str]] = {}
    for path in paths:
        synthetic = SyntheticSet.load(path)
        if synthetic.method not in ("datadam", "dm", "random"):
            raise DistillError(f"synthetic set {path} was made by method {synthetic.method!r}; the NAS proxies "
                               "take datadam, dm or random sets")
        if synthetic.method not in proxies:
            raise DistillError(f"synthetic set {path} is a {synthetic.method} set but --proxy "
                               f"{','.join(proxies)} does not use it; add {synthetic.method} to --proxy")
        if synthetic.method in out:
            raise DistillError(f"two --synthetic files are {synthetic.method} sets ({out[synthetic.method][1]}, "
                               f"{path}); pass one per method")
        out[synthetic.method] = (synthetic, str(path))
    return out


def build_proxy_sets(config: SearchConfig, train: ClassDataset, *, device: torch.device,
                     progress: bool = True) -> dict[str, ProxySet]:
    """The training set of every proxy in ``config.proxy`` (distilling or loading as needed)."""
    from distill.methods import DistillConfig, distill

    given = load_synthetic_files(list(config.synthetic), list(config.proxy))
    sets: dict[str, ProxySet] = {}
    for name in config.proxy:
        if name == "early-stop":
            images, labels = seeded_subset(train, config.early_stop_images, config.seed)
            what = "whole training set" if len(images) == len(train) else f"seeded subset (seed {config.seed})"
            sets[name] = ProxySet(name, images, labels, config.early_stop_epochs,
                                  description=f"{len(images)} real training images ({what}), "
                                              f"{config.early_stop_epochs} epochs")
            continue
        if name in given:
            synthetic, path = given[name]
            _check_set(synthetic, train, path)
            what, seconds = f"{name} set from {path} (ipc {synthetic.ipc})", 0.0
        elif name == "random":
            start = time.perf_counter()
            synthetic = distill(train, DistillConfig(method="random", ipc=config.ipc), seed=config.seed,
                                device="cpu", progress=False)
            what, seconds = f"random real images, ipc {config.ipc} (seed {config.seed})", time.perf_counter() - start
        else:
            synthetic, cached = distilled_set(config, name, train, device=device, progress=progress)
            seconds = 0.0 if cached else synthetic.seconds
            what = (f"{name} set, ipc {config.ipc}, {synthetic.iterations} iterations "
                    f"({'cached' if cached else 'distilled now'}, distillation took {synthetic.seconds / 60:.1f} min)")
        if tuple(synthetic.mean) != tuple(train.mean) or tuple(synthetic.std) != tuple(train.std):
            raise DistillError(f"the {name} set is normalised with mean/std {synthetic.mean}/{synthetic.std} but the "
                               f"dataset with {train.mean}/{train.std}; distill it from the same dataset")
        sets[name] = ProxySet(name, synthetic.images, synthetic.labels, config.epochs, prepare_seconds=seconds,
                              description=f"{len(synthetic)} images: {what}, {config.epochs} epochs")
    return sets


def make_candidate(arch: str, num_classes: int, *, in_channels: int, seed: int) -> torch.nn.Module:
    """The candidate network with a seeded initialisation (the same for every proxy)."""
    # Module constructors draw from the global generator; fork it so the caller's state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_network(arch, num_classes, in_channels=in_channels)


def spread(images: Tensor, count: int) -> Tensor:
    """At most ``count`` images evenly spaced through ``images`` (so every class of a class-sorted set is in)."""
    if count <= 0 or len(images) <= count:
        return images
    return images[torch.linspace(0, len(images) - 1, count).round().long()]


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, images: Tensor, *, batch_size: int,
                          device: torch.device) -> None:
    """Replace the BatchNorm running statistics by exact averages over ``images`` (no augmentation).

    After a short training run the running averages (momentum 0.1) lag behind weights that are
    still moving fast, which scores some candidates near chance for a reason unrelated to their
    quality; one pass over the proxy's own training images fixes that (as in one-shot NAS).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    for start in range(0, len(images), batch_size):
        model(images[start:start + batch_size].to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


def run_proxy(arch: str, proxy: ProxySet, test_images: Tensor, test_labels: Tensor, config: SearchConfig, *,
              num_classes: int, seed: int, device: torch.device) -> ProxyOutcome:
    """Train a fresh ``arch`` network on ``proxy``'s set and return its test accuracy (end of training)."""
    model = make_candidate(arch, num_classes, in_channels=proxy.images.shape[1], seed=seed)
    start = time.perf_counter()
    train_network(model, proxy.images, proxy.labels, train_config(config, proxy.epochs), seed=seed, device=device)
    trained = time.perf_counter()  # training alone: the whole-dataset estimate scales this per image
    if config.bn_recalibrate:
        recalibrate_batchnorm(model, spread(proxy.images, config.bn_recalibrate_images),
                              batch_size=config.batch_size, device=device)
    accuracy = test_accuracy(model, test_images, test_labels, device=device)
    end = time.perf_counter()
    return ProxyOutcome(accuracy=float(accuracy), seconds=end - start, train_seconds=trained - start,
                        images_seen=len(proxy.images) * proxy.epochs)
