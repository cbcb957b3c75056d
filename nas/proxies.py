"""Proxies that rank candidates, behind a small registry (name -> how it scores a candidate).

Training proxies train a fresh (possibly reduced) cell network on a small or short budget and score
it on held-out real test images; every one trains the same candidate from the same initialisation
with the same recipe, and records both the test accuracy and TSE (the summed training loss):

* one per registered distillation method, under its name (``datadam``, ``dm``, ``random``, ``herding``, ...):
  on that method's :class:`SyntheticSet` (``ipc`` images per class), distilled and cached, or selected.
* ``random-matched``: on as many real images as the same number of image passes allows, each seen once.
* ``early-stop``: on the real training set (all, or a seeded subset) for a few epochs.

Zero-cost proxies score the full-size network at initialisation, without training:

* ``synflow`` (Abdelfattah et al., ICLR 2021) and ``params`` (the number of parameters), with no data;
* ``naswot`` (Mellor et al., ICML 2021), from one seeded batch of real training images.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from distill.core.cache import cache_file
from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.core.evaluate import test_accuracy, train_network
from distill.methods import distill, get_method, list_methods
from distill.core.registry import Registry
from distill.core.seeds import generator, global_seeds
from distill.core.synthetic import SyntheticSet, set_path
from distill.core.engine import TrainConfig
from distill.shell.distributed import World
from nas.network import FULL_CELLS_PER_STAGE, FULL_CHANNELS, build_network, resize_images
from nas.zero_cost import naswot, parameter_count, synflow

if TYPE_CHECKING:
    from nas.config import SearchConfig


@dataclass
class ProxySet:
    """What a proxy needs to score candidates.

    Attributes:
        name: proxy name.
        images, labels: normalised training images (at the proxy resolution) and class ids; ``None``
            for a zero-cost proxy.
        epochs: training epochs per candidate (0 for a zero-cost proxy).
        prepare_seconds: time spent making the set now (0 when loaded, cached or free).
        distill_seconds: the distillation time the set cost when it was made (cached or not).
        cached: whether a distilled set came from the cache.
        description: one line saying what the set is (for results.json).
        probe: for a zero-cost proxy, a seeded batch of real training images at the dataset's resolution
            (``naswot`` reads it; ``synflow`` and ``params`` only its shape).
    """

    name: str
    images: Tensor | None
    labels: Tensor | None
    epochs: int
    prepare_seconds: float = 0.0
    distill_seconds: float = 0.0
    cached: bool = False
    description: str = ""
    probe: Tensor | None = None

    @property
    def trains(self) -> bool:
        return self.images is not None


@dataclass
class ProxyOutcome:
    """One candidate scored by one proxy.

    Attributes:
        score: what the proxy ranks by (higher = better); ``None`` when training diverged.
        accuracy: test accuracy (%) at the end of training; ``None`` for zero-cost proxies and diverged runs.
        tse: sum of the training minibatch losses; ``None`` for zero-cost proxies and diverged runs.
        seconds: wall time of the whole scoring (training, BatchNorm pass and test, or the zero-cost score).
        train_seconds: wall time of training alone (0 for zero-cost proxies).
        images_seen: training-image passes (0 for zero-cost proxies).
        diverged: the training loss, the weights or the trained network's outputs became NaN or infinite.
    """

    score: float | None
    accuracy: float | None
    tse: float | None
    seconds: float
    train_seconds: float
    images_seen: int
    diverged: bool = False


@dataclass(frozen=True)
class SetContext:
    """What a set builder gets besides the config and the data.

    Attributes:
        given: ``--synthetic`` sets by method, with their paths.
        distilled_now: methods whose set this search distilled (maybe on another process) rather than
            found in the cache.
    """

    given: dict[str, tuple[SyntheticSet, str]]
    distilled_now: frozenset[str] = frozenset()


SetBuilder = Callable[["SearchConfig", ClassDataset, SetContext, torch.device, bool], ProxySet]
ZeroCostScore = Callable[[nn.Module, Tensor], float]


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy.

    Attributes:
        name: the ``--proxy`` name.
        ranks_by: one line saying which value the proxy ranks by (for results.json).
        build_set: for training proxies, makes the set candidates train on.
        zero_cost: for zero-cost proxies, scores an untrained network.
    """

    name: str
    ranks_by: str
    build_set: SetBuilder | None = None
    zero_cost: ZeroCostScore | None = None

    @property
    def trains(self) -> bool:
        return self.build_set is not None


_PROXIES: Registry[ProxySpec] = Registry("proxy")
#: What every training proxy ranks by.
TRAINING_RANKS_BY = ("test accuracy at the end of training (rank_by = accuracy) or minus TSE, the summed training "
                     "loss (rank_by = tse)")


def register_training_proxy(name: str) -> Callable[[SetBuilder], SetBuilder]:
    """Register ``fn(config, train, context, device, progress) -> ProxySet`` as training proxy ``name``."""
    return _PROXIES.decorator(name, lambda fn: ProxySpec(name, ranks_by=TRAINING_RANKS_BY, build_set=fn))


def register_zero_cost_proxy(name: str, ranks_by: str) -> Callable[[ZeroCostScore], ZeroCostScore]:
    """Register ``fn(model, probe_images) -> float`` (higher = better) as zero-cost proxy ``name``."""
    return _PROXIES.decorator(name, lambda fn: ProxySpec(name, ranks_by=ranks_by, zero_cost=fn))


def get_proxy(name: str) -> ProxySpec:
    """The proxy ``name``: a registered distillation method's (its set), or one registered here."""
    if name in list_methods():
        return ProxySpec(name, ranks_by=TRAINING_RANKS_BY, build_set=_method_set(name))
    if name not in _PROXIES:
        raise DistillError(f"unknown proxy {name!r}; choose one of {', '.join(list_proxies())}")
    return _PROXIES.get(name)


def list_proxies() -> list[str]:
    """Every proxy: one per registered distillation method (the set it makes), then the others."""
    return [*list_methods(), *_PROXIES]


def seeded_subset(data: ClassDataset, count: int, seed: int) -> tuple[Tensor, Tensor]:
    """``count`` images drawn without replacement by ``seed`` (all of them, unshuffled, for 0)."""
    if count == 0 or count >= len(data):
        return data.images, data.labels
    order = torch.randperm(len(data), generator=generator(seed))[:count]
    order, _ = order.sort()
    return data.images[order], data.labels[order]


def _distill_config(config: SearchConfig, method: str):
    from dataclasses import replace

    return replace(config.distill, method=method, ipc=config.ipc)


def _cache_file(config: SearchConfig, method: str, train: ClassDataset) -> Path:
    """Cache key: the settings that determine the images (``result_key``), seed, dataset and data size.

    Nothing about the search (space, candidates, proxy network) is in it, so both spaces share a set.
    """
    from distill.methods import result_key

    record = {"seed": config.seed, "dataset": config.dataset, "distill": result_key(_distill_config(config, method)),
              "n": len(train), "classes": train.class_names, "shape": list(train.images.shape[1:])}
    return cache_file(config.cache_dir, "nas-sets", f"{config.dataset}-{method}-ipc{config.ipc}-seed{config.seed}",
                      record)


def distilled_set(config: SearchConfig, method: str, train: ClassDataset, *, device: torch.device,
                  progress: bool = True) -> tuple[SyntheticSet, bool]:
    """The ``method`` set for ``config`` from the cache, else distilled now and cached.

    Returns:
        the set and whether it came from the cache.
    """
    from distill.methods import load_or_distill

    return load_or_distill(_cache_file(config, method, train), train, _distill_config(config, method),
                           seed=config.seed, device=device, progress=progress)


def check_set(synthetic: SyntheticSet, train: ClassDataset, source: str) -> None:
    """DistillError (one line) unless ``synthetic`` was made from ``train``'s classes, shape and normalisation."""
    if synthetic.images.shape[1:] != train.images.shape[1:]:
        raise DistillError(f"synthetic set {source} has images of shape {tuple(synthetic.images.shape[1:])}, "
                           f"the dataset {tuple(train.images.shape[1:])}; distill it from the same dataset")
    if sorted(synthetic.class_ids) != list(range(train.num_classes)):
        raise DistillError(f"synthetic set {source} holds {len(synthetic.class_ids)} classes "
                           f"({synthetic.class_ids}) but the dataset has {train.num_classes}; distill all "
                           f"{train.num_classes} classes of the dataset")
    if synthetic.class_names and list(synthetic.class_names) != list(train.class_names):
        raise DistillError(f"synthetic set {source} names its classes {list(synthetic.class_names)}, the dataset "
                           f"{list(train.class_names)}; distill it from the same dataset")
    if tuple(synthetic.mean) != tuple(train.mean) or tuple(synthetic.std) != tuple(train.std):
        raise DistillError(f"synthetic set {source} is normalised with mean/std {synthetic.mean}/{synthetic.std} but "
                           f"the dataset with {train.mean}/{train.std}; distill it from the same dataset")
    if synthetic.config.get("zca_statistics") is not None:
        raise DistillError(f"synthetic set {source} holds ZCA-whitened images, and candidates are tested on plain "
                           f"images; distill it without --zca")


def load_synthetic_files(paths: list[str], proxies: list[str]) -> dict[str, tuple[SyntheticSet, str]]:
    """Map each ``--synthetic`` file to the proxy named by its ``method`` (every registered method is one)."""
    out: dict[str, tuple[SyntheticSet, str]] = {}
    for path in paths:
        synthetic = SyntheticSet.load(set_path(path))
        if synthetic.method not in list_methods():
            raise DistillError(f"synthetic set {path} was made by method {synthetic.method!r}; the NAS proxies "
                               f"take sets of {', '.join(list_methods())}")
        if synthetic.method not in proxies:
            raise DistillError(f"synthetic set {path} is a {synthetic.method} set but --proxy "
                               f"{','.join(proxies)} does not use it; add {synthetic.method} to --proxy")
        if synthetic.method in out:
            raise DistillError(f"two --synthetic files are {synthetic.method} sets ({out[synthetic.method][1]}, "
                               f"{path}); pass one per method")
        out[synthetic.method] = (synthetic, str(path))
    return out


def proxy_resolution(config: SearchConfig, train: ClassDataset) -> int:
    """The image side training proxies work at."""
    return config.resolution or int(train.images.shape[-1])


def set_epochs(config: SearchConfig, set_size: int) -> int:
    """Epochs on a small set: ``train.epochs``, or what the ``images_seen`` budget allows."""
    if config.images_seen:
        return max(1, round(config.images_seen / set_size))
    return config.train.epochs


def matched_budget(config: SearchConfig, num_classes: int) -> int:
    """Image passes of a candidate on the ``ipc``-per-class sets (what ``random-matched`` spends)."""
    size = config.ipc * num_classes
    return size * set_epochs(config, size)


def _small_set(name: str, synthetic: SyntheticSet, config: SearchConfig, train: ClassDataset, what: str, *,
               prepare: float = 0.0, distill_seconds: float = 0.0, cached: bool = False) -> ProxySet:
    epochs = set_epochs(config, len(synthetic))
    return ProxySet(name, resize_images(synthetic.images, proxy_resolution(config, train)), synthetic.labels, epochs,
                    prepare_seconds=prepare, distill_seconds=distill_seconds, cached=cached,
                    description=f"{len(synthetic)} images: {what}, {epochs} epochs")


def _distilled(method: str, config: SearchConfig, train: ClassDataset, context: SetContext, device: torch.device,
               progress: bool) -> ProxySet:
    if method in context.given:
        synthetic, path = context.given[method]
        check_set(synthetic, train, path)
        return _small_set(method, synthetic, config, train, f"{method} set from {path} (ipc {synthetic.ipc})",
                          distill_seconds=synthetic.seconds, cached=True)
    synthetic, cached = distilled_set(config, method, train, device=device, progress=progress)
    cached = cached and method not in context.distilled_now
    check_set(synthetic, train, f"({method}, {'cached' if cached else 'distilled now'})")
    what = (f"{method} set, ipc {config.ipc}, {synthetic.iterations} iterations "
            f"({'cached' if cached else 'distilled now'}, distillation took {synthetic.seconds / 60:.1f} min)")
    return _small_set(method, synthetic, config, train, what, prepare=0.0 if cached else synthetic.seconds,
                      distill_seconds=synthetic.seconds, cached=cached)


def _method_set(method: str) -> SetBuilder:
    """The set builder of a method's proxy: a ``--synthetic`` file of that method, else the method's set: a
    learned one from the cache or distilled now (and cached), a selection of real images made on the spot."""
    spec = get_method(method)

    def build(config: SearchConfig, train: ClassDataset, context: SetContext, device: torch.device,
              progress: bool) -> ProxySet:
        if spec.iterates:
            if method not in context.given and _distill_config(config, method).resolved(device).zca:
                raise DistillError(f"the {method} proxy would distil ZCA-whitened images (its default here) and "
                                   f"candidates are tested on plain images; set zca = false in the [distill] table")
            return _distilled(method, config, train, context, device, progress)
        if method in context.given:
            synthetic, path = context.given[method]
            check_set(synthetic, train, path)
            return _small_set(method, synthetic, config, train, f"{method} set from {path} (ipc {synthetic.ipc})")
        start = time.perf_counter()
        synthetic = distill(train, _distill_config(config, method), seed=config.seed, device="cpu", progress=False)
        return _small_set(method, synthetic, config, train, f"{method} real images, ipc {config.ipc} "
                                                            f"(seed {config.seed})", prepare=time.perf_counter() - start)

    return build


# Every registered distillation method is a proxy that trains candidates on its set, under its own name
# (get_proxy); the paper's NAS table compares the registry's "nas" entries by default (nas.config.default_proxies).
#: The reference sets other proxies are paired against (the registry's baselines: random real images, DM).
BASELINE_SETS = tuple(m for m in list_methods() if get_method(m).baseline)


@register_training_proxy("random-matched")
def _random_matched_set(config: SearchConfig, train: ClassDataset, context: SetContext, device: torch.device,
                        progress: bool) -> ProxySet:
    budget = matched_budget(config, train.num_classes)
    images, labels = seeded_subset(train, min(budget, len(train)), config.seed)
    epochs = max(1, round(budget / len(images)))
    return ProxySet("random-matched", resize_images(images, proxy_resolution(config, train)), labels, epochs,
                    description=f"{len(images)} real training images (seeded subset, seed {config.seed}), {epochs} "
                                f"epoch(s): the {budget} image passes of the ipc-{config.ipc} sets, each image once")


@register_training_proxy("early-stop")
def _early_stop_set(config: SearchConfig, train: ClassDataset, context: SetContext, device: torch.device,
                    progress: bool) -> ProxySet:
    images, labels = seeded_subset(train, config.early_stop_images, config.seed)
    what = "whole training set" if len(images) == len(train) else f"seeded subset (seed {config.seed})"
    return ProxySet("early-stop", resize_images(images, proxy_resolution(config, train)), labels,
                    config.early_stop_epochs, description=f"{len(images)} real training images ({what}), "
                                                          f"{config.early_stop_epochs} epochs")


@register_zero_cost_proxy("synflow", "synflow score of the full-size network at initialisation (higher = better)")
def _synflow_score(model: nn.Module, probe: Tensor) -> float:
    return synflow(model, tuple(probe.shape[1:]))


@register_zero_cost_proxy("params", "number of parameters of the full-size network (more = better)")
def _params_score(model: nn.Module, probe: Tensor) -> float:
    return parameter_count(model)


@register_zero_cost_proxy("naswot", "NASWOT log|K_H| of the full-size network's ReLU codes on a seeded batch of "
                                    "real training images at initialisation (higher = better)")
def _naswot_score(model: nn.Module, probe: Tensor) -> float:
    return naswot(model, probe)


def sets_to_distill(config: SearchConfig) -> list[str]:
    """The distilled proxies of ``config`` that no ``--synthetic`` file serves."""
    given = {SyntheticSet.load(path).method for path in config.synthetic}
    return [name for name in config.proxy if name in list_methods() and get_method(name).iterates and name not in given]


def missing_from_cache(config: SearchConfig, train: ClassDataset) -> frozenset[str]:
    """The sets of :func:`sets_to_distill` that are not cached yet (they will be distilled now)."""
    return frozenset(m for m in sets_to_distill(config) if not _cache_file(config, m, train).is_file())


def build_proxy_sets(config: SearchConfig, train: ClassDataset, *, device: torch.device,
                     progress: bool = True, distilled_now: frozenset[str] = frozenset()) -> dict[str, ProxySet]:
    """What every proxy in ``config.proxy`` needs (distilling or loading sets as needed), in that order.

    Args:
        distilled_now: sets this search distilled into the cache before the call (reported as not cached).
    """
    context = SetContext(load_synthetic_files(list(config.synthetic), list(config.proxy)), distilled_now)
    sets: dict[str, ProxySet] = {}
    for name in config.proxy:
        spec = get_proxy(name)
        if spec.trains:
            sets[name] = spec.build_set(config, train, context, device, progress)
        else:
            probe, _ = seeded_subset(train, config.probe_images, config.seed)
            sets[name] = ProxySet(name, None, None, 0, probe=probe,
                                  description=f"zero-cost: {spec.ranks_by}; no training data")
    return sets


def make_candidate(arch: str, num_classes: int, *, in_channels: int, seed: int, channels: int = 16,
                   cells_per_stage: int = 5) -> torch.nn.Module:
    """The candidate network with a seeded initialisation (the same for every proxy)."""
    with global_seeds(seed):  # module constructors draw from the global generators; the caller's are kept
        return build_network(arch, num_classes, in_channels=in_channels, channels=channels,
                             cells_per_stage=cells_per_stage)


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


@torch.no_grad()
def _finite(model: nn.Module, images: Tensor, device: torch.device) -> bool:
    """Whether every parameter and buffer, and the eval-mode logits on ``images``, are finite."""
    tensors = [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        return False
    model.eval()
    return bool(torch.isfinite(model(images.to(device))).all())


class _Diverged(Exception):
    """Raised from the loss callback to stop a run whose loss is no longer finite."""


@dataclass(frozen=True)
class Recipe:
    """How every training proxy trains and tests a candidate: the search settings that :func:`run_proxy` reads.

    Attributes:
        train: the training recipe (its ``epochs`` are replaced by each set's own).
        channels, cells_per_stage: the reduced network that training proxies train.
        bn_recalibrate, bn_recalibrate_images: recompute BatchNorm statistics after training, on at most
            this many of the set's images (0 = all).
        rank_by: ``accuracy`` or ``tse`` (:func:`training_score`).
    """

    train: TrainConfig
    channels: int = 16
    cells_per_stage: int = 5
    bn_recalibrate: bool = True
    bn_recalibrate_images: int = 500
    rank_by: str = "accuracy"

    @classmethod
    def of(cls, config: SearchConfig) -> "Recipe":
        return cls(config.train, channels=config.channels, cells_per_stage=config.cells_per_stage,
                   bn_recalibrate=config.bn_recalibrate, bn_recalibrate_images=config.bn_recalibrate_images,
                   rank_by=config.rank_by)


def run_proxy(arch: str, proxy: ProxySet, test_images: Tensor, test_labels: Tensor, recipe: Recipe, *,
              num_classes: int, seed: int, device: torch.device) -> ProxyOutcome:
    """Score ``arch`` with ``proxy``: a zero-cost score of the full-size network at initialisation, or a
    fresh reduced network trained on the proxy's set by ``recipe`` and tested on ``test_images`` (end of training)."""
    from dataclasses import replace

    start = time.perf_counter()
    if not proxy.trains:
        model = make_candidate(arch, num_classes, in_channels=proxy.probe.shape[1], seed=seed).to(device)
        score = float(get_proxy(proxy.name).zero_cost(model, proxy.probe.to(device)))
        return ProxyOutcome(score=score, accuracy=None, tse=None, seconds=time.perf_counter() - start,
                            train_seconds=0.0, images_seen=0)
    model = make_candidate(arch, num_classes, in_channels=proxy.images.shape[1], seed=seed, channels=recipe.channels,
                           cells_per_stage=recipe.cells_per_stage)
    losses: list[float] = []

    def log_loss(loss: float) -> None:
        losses.append(loss)
        if not math.isfinite(loss):
            raise _Diverged

    diverged = False
    try:
        train_network(model, proxy.images, proxy.labels, replace(recipe.train, epochs=proxy.epochs), seed=seed,
                      device=device, loss_callback=log_loss)
    except _Diverged:
        diverged = True
    trained = time.perf_counter()  # training alone: the whole-dataset estimate scales this per image
    images_seen = len(proxy.images) * proxy.epochs
    if not diverged and recipe.bn_recalibrate:
        recalibrate_batchnorm(model, spread(proxy.images, recipe.bn_recalibrate_images),
                              batch_size=recipe.train.batch_size, device=device)
    # A huge step can leave finite losses but broken weights (NaN logits score as one class, ~10 %).
    diverged = diverged or not _finite(model, spread(proxy.images, 64), device)
    if diverged:
        return ProxyOutcome(score=None, accuracy=None, tse=None, seconds=time.perf_counter() - start,
                            train_seconds=trained - start, images_seen=images_seen, diverged=True)
    accuracy = float(test_accuracy(model, test_images, test_labels, device=device))
    tse = float(sum(losses))
    end = time.perf_counter()
    return ProxyOutcome(score=training_score(accuracy, tse, recipe.rank_by), accuracy=accuracy, tse=tse,
                        seconds=end - start, train_seconds=trained - start, images_seen=images_seen)


_WARM_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


@dataclass
class ProxyBench:
    """Everything a search scores candidates with, resolved once from its settings (:func:`prepare_bench`).

    Attributes:
        proxies: each proxy's set, in the order of ``--proxy``.
        test_images, test_labels: the real test images (at the proxy resolution) that score a trained candidate.
        recipe: how training proxies train and test.
        num_classes: classes of the dataset.
        resolution: the image side training proxies work at.
        full_network: whether training proxies train the benchmark's full-size network at the dataset's
            resolution (only then is a whole-dataset cost estimated).
        budget: image passes of a candidate on the ipc sets (what ``random-matched`` spends).
    """

    proxies: dict[str, ProxySet]
    test_images: Tensor
    test_labels: Tensor
    recipe: Recipe
    num_classes: int
    resolution: int
    full_network: bool
    budget: int

    def score(self, arch: str, name: str, *, seed: int, device: torch.device) -> ProxyOutcome:
        """``arch`` scored by proxy ``name`` from the initialisation ``seed``."""
        return run_proxy(arch, self.proxies[name], self.test_images, self.test_labels, self.recipe,
                         num_classes=self.num_classes, seed=seed, device=device)

    def warm_up(self, device: torch.device) -> None:
        """One throwaway run per kind of proxy, so that lazy kernel initialisation is not billed to the first
        candidate."""
        from dataclasses import replace

        training = [p for p in self.proxies.values() if p.trains]
        if training:
            warm = replace(training[0], images=training[0].images[:2], labels=training[0].labels[:2], epochs=1)
            run_proxy(_WARM_ARCH, warm, warm.images, warm.labels, self.recipe, num_classes=self.num_classes,
                      seed=0, device=device)
        free = next((p for p in self.proxies.values() if not p.trains), None)
        if free is not None:
            run_proxy(_WARM_ARCH, free, torch.empty(0), torch.empty(0), self.recipe, num_classes=self.num_classes,
                      seed=0, device=device)

    def describe(self, device: torch.device) -> dict:
        """What results.json says about the proxies: the test images, the network, the budgets, the sets and
        what the training engine used for each training proxy (precision, compiled, layout, steps)."""
        from dataclasses import replace

        from distill.core.engine import plan

        return {
            "test_images": int(len(self.test_images)),
            "proxy_network": {"channels": self.recipe.channels, "cells_per_stage": self.recipe.cells_per_stage,
                              "resolution": self.resolution, "full_size": self.full_network,
                              "zero_cost_proxies_score": f"the full-size network (C={FULL_CHANNELS}, "
                                                         f"N={FULL_CELLS_PER_STAGE}) at the dataset's resolution"},
            "budget": {"small_set_images_seen": self.budget,
                       "images_seen": {n: int(len(p.images)) * p.epochs for n, p in self.proxies.items() if p.trains}},
            "proxy_sets": {n: p.description for n, p in self.proxies.items()},
            "train_engine": {n: plan(replace(self.recipe.train, epochs=p.epochs), len(p.images), device).to_dict()
                             for n, p in self.proxies.items() if p.trains},
        }


def prepare_bench(config: SearchConfig, train: ClassDataset, test: ClassDataset, *, world: World,
                  device: torch.device, progress: bool) -> ProxyBench:
    """Every proxy's set (the missing distilled ones shared out over the processes, then cached), the test
    images and the recipe: what :meth:`ProxyBench.score` needs, resolved from ``config`` once."""
    if train.num_classes != test.num_classes:
        raise DistillError("training and test sets have different classes; use one dataset")
    distilled_now = missing_from_cache(config, train)
    world.barrier()  # every rank knows which sets are missing before any is written
    # The missing sets are shared out over the processes (with two, DataDAM and DM distil side by side).
    for i, method in enumerate(m for m in config.proxy if m in distilled_now):
        if i % world.size == world.rank:
            distilled_set(config, method, train, device=device, progress=config.progress)
    world.barrier()  # every set is in the cache now
    proxies = build_proxy_sets(config, train, device=device, progress=progress, distilled_now=distilled_now)
    resolution = proxy_resolution(config, train)
    test_images, test_labels = seeded_subset(test, config.test_images, config.seed)
    full_network = (config.channels, config.cells_per_stage, resolution) == (
        FULL_CHANNELS, FULL_CELLS_PER_STAGE, int(train.images.shape[-1]))
    return ProxyBench(proxies, resize_images(test_images, resolution), test_labels, Recipe.of(config),
                      num_classes=train.num_classes, resolution=resolution, full_network=full_network,
                      budget=matched_budget(config, train.num_classes))


def training_score(accuracy: float | None, tse: float | None, rank_by: str) -> float | None:
    """What a training proxy ranks by (higher = better): test accuracy, or minus TSE; None when it diverged."""
    return accuracy if rank_by == "accuracy" else (None if tse is None else -tse)


__all__ = ["build_proxy_sets", "prepare_bench", "ProxyBench", "Recipe", "check_set", "distilled_set", "get_proxy", "list_proxies", "load_synthetic_files",
           "make_candidate", "matched_budget", "missing_from_cache", "proxy_resolution", "ProxyOutcome", "ProxySet",
           "ProxySpec", "recalibrate_batchnorm", "register_training_proxy", "register_zero_cost_proxy", "run_proxy",
           "seeded_subset", "set_epochs", "SetBuilder", "SetContext", "sets_to_distill", "spread", "training_score", "ZeroCostScore"]
