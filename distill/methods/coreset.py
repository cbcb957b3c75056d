"""Coreset baselines of the paper's first table: K-Center and Forgetting (herding and random are in selection.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from distill.core.cache import cache_dir, content_key
from distill.core.data import ClassDataset
from distill.core.engine import CHECKPOINT_SUFFIX, TrainConfig, fit, plan
from distill.core.errors import DistillError
from distill.core.store import load_entry, save_entry
from distill.methods import DistillConfig, MethodOutput, register_method
from distill.methods.selection import _READS, _check_enough
from distill.core.networks import ConvNet, init_parameters
from distill.core.seeds import FORGET_NET, FORGET_SHUFFLE, FORGET_TIES, HERDING, KCENTER_START, seed_of, stream

log = logging.getLogger(__name__)

#: Forgetting's counting run, as Toneva et al. train CIFAR-10 (200 epochs, until the counts settle); it runs
#: on the training engine (bf16 and compiled where the machine affords them) and is cached for every ipc.
FORGETTING_EPOCHS = 200
FORGETTING_BATCH = 128
FORGETTING_LR = 0.01
#: Bump when the counting or training changes, so that stale cached counts are not reused.
_FORGETTING_VERSION = 2


def _random_encoder(train: ClassDataset, c: int, cfg: DistillConfig, seed: int, device: torch.device) -> ConvNet:
    """The randomly initialised ConvNet herding embeds class ``c`` with (same seed stream, same shape)."""
    net = ConvNet(num_classes=train.num_classes, channels=train.image_shape[0], image_size=train.image_shape[-1],
                  depth=cfg.depth, width=cfg.width, norm=cfg.norm or "instancenorm")
    return init_parameters(net, stream(seed, HERDING, c)).to(device).eval()


@torch.no_grad()
def _embed(net: ConvNet, images: Tensor, device: torch.device, batch_size: int = 500) -> Tensor:
    return torch.cat([net.embed(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)])


# ---------------------------------------------------------------------------------------------- K-Center
@register_method("kcenter", reads=_READS, label="K-Center", color="tab:purple")
@torch.no_grad()
def kcenter(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
            device: torch.device) -> MethodOutput:
    """Greedy K-Center (Sener & Savarese 2018) per class, on the embeddings of herding's random ConvNet.

    The first centre is a seeded random image of the class; every next one is the image farthest
    (Euclidean) from the centres chosen so far.
    """
    parts = []
    for c in classes:
        _check_enough(train, c, cfg.ipc)
        images = train.images_of(c)
        feats = _embed(_random_encoder(train, c, cfg, seed, device), images, device)
        first = int(torch.randint(len(images), (1,), generator=stream(seed, KCENTER_START, c)))
        parts.append(images[kcenter_select(feats, cfg.ipc, first=first).cpu()])
    return MethodOutput(torch.cat(parts))


def kcenter_select(features: Tensor, k: int, *, first: int = 0) -> Tensor:
    """Indices of ``k`` rows of ``features`` chosen by greedy k-center from row ``first``, in selection order."""
    features = features.float()
    chosen = [int(first)]
    dist = ((features - features[first]) ** 2).sum(1)  # squared distance to the nearest centre
    dist[first] = -1.0  # chosen points are marked -1: never chosen twice, even among duplicates
    for _ in range(1, min(k, len(features))):
        i = int(dist.argmax())
        chosen.append(i)
        dist = torch.minimum(dist, ((features - features[i]) ** 2).sum(1))
        dist[i] = -1.0
    return torch.tensor(chosen, dtype=torch.long)


# -------------------------------------------------------------------------------------------- Forgetting
class ForgettingCounter:
    """Forgetting events per example (Toneva et al., ICLR 2019) from the predictions at every presentation.

    An event is a presentation at which an example is misclassified after it was classified correctly
    at its previous presentation. An example never classified correctly is *never learned*.
    """

    def __init__(self, num_examples: int) -> None:
        self.events = torch.zeros(num_examples, dtype=torch.long)
        self.learned = torch.zeros(num_examples, dtype=torch.bool)
        self._previous = torch.zeros(num_examples, dtype=torch.bool)

    def state(self) -> dict[str, Tensor]:
        """The counts so far, as tensors a checkpoint saves and restores in place."""
        return {"events": self.events, "learned": self.learned, "previous": self._previous}

    def update(self, indices: Tensor, correct: Tensor) -> None:
        """Record one presentation of the examples ``indices`` (distinct) with whether each was right."""
        indices, correct = indices.cpu().long(), correct.cpu().bool()
        self.events[indices] += (self._previous[indices] & ~correct).long()
        self.learned[indices] |= correct
        self._previous[indices] = correct

    def scores(self) -> Tensor:
        """Events per example, with never-learned examples at +inf (the most forgettable, as in the paper)."""
        scores = self.events.double()
        scores[~self.learned] = float("inf")
        return scores


def forgetting_order(scores: Tensor, generator: torch.Generator) -> Tensor:
    """Positions of ``scores`` from most to least forgettable; ties in a seeded random order."""
    shuffle = torch.randperm(len(scores), generator=generator)
    return shuffle[torch.argsort(scores[shuffle], descending=True, stable=True)]


class Counts(NamedTuple):
    """Forgetting scores (see :meth:`ForgettingCounter.scores`) and the seconds their counting took, summed
    over every call that resumed it (``None`` for counts cached before the seconds were kept)."""

    scores: Tensor
    seconds: float | None


def forgetting_scores(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                      device: torch.device, epochs: int = FORGETTING_EPOCHS, progress: bool = False) -> Counts:
    """Forgetting scores of every image of ``classes``, in the order of
    ``torch.cat([train.indices_of(c) for c in classes])``; cached on disk, so that every ipc reuses one run.

    A ConvNet (``cfg``'s depth, width and norm) is trained on those images for ``epochs`` epochs (SGD,
    no augmentation, so that a prediction depends on the image and the weights only); every image's
    prediction is read from its training minibatch before the step, as Toneva et al. do.
    """
    index = torch.cat([train.indices_of(c) for c in classes])
    precision = plan(counting_recipe(epochs), len(index), device).precision
    path = _forgetting_cache(train, classes, cfg, seed, epochs, precision)
    cached = load_entry(path)  # checked against its digest; a damaged entry is deleted and recomputed
    if isinstance(cached, Tensor):  # cached before the seconds were kept
        cached = {"scores": cached, "seconds": None}
    if isinstance(cached, dict) and getattr(cached.get("scores"), "shape", None) == (len(index),):
        return Counts(cached["scores"], cached["seconds"])
    partial = path.with_name(path.stem + CHECKPOINT_SUFFIX)  # the counting so far: a later call continues it
    counts = _train_and_count(train, index, cfg, seed=seed, device=device, epochs=epochs,
                              progress=progress, checkpoint=partial)
    try:
        save_entry(counts._asdict(), path)
        partial.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not cache the forgetting counts in %s: %s", path, exc)
    return counts


def _forgetting_cache(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, seed: int,
                      epochs: int, precision: str) -> Path:
    """The cache file of the counts: keyed by the images of ``classes`` (content), the seed, the network and
    the training recipe with the precision it ran at."""
    from dataclasses import asdict

    key = content_key({"v": _FORGETTING_VERSION, "seed": seed, "depth": cfg.depth, "width": cfg.width,
                       "norm": cfg.norm, "recipe": asdict(counting_recipe(epochs)), "precision": precision,
                       "classes": list(classes), "num_classes": train.num_classes,
                       "shape": list(train.image_shape)},
                      *(train.images_of(c) for c in classes), length=16)  # and the images' content
    return cache_dir() / "forgetting" / f"events-{key}.pt"


def counting_recipe(epochs: int) -> TrainConfig:
    """How forgetting's network trains: SGD at a constant rate, no augmentation, so that a prediction depends on
    the image and the weights only."""
    return TrainConfig(epochs=epochs, batch_size=FORGETTING_BATCH, lr=FORGETTING_LR, momentum=0.9,
                       weight_decay=5e-4, lr_decay=1.0, dsa=False)


def _train_and_count(train: ClassDataset, index: Tensor, cfg: DistillConfig, *, seed: int,
                     device: torch.device, epochs: int, progress: bool, checkpoint: Path) -> Counts:
    net = ConvNet(num_classes=train.num_classes, channels=train.image_shape[0], image_size=train.image_shape[-1],
                  depth=cfg.depth, width=cfg.width, norm=cfg.norm or "instancenorm")
    net = init_parameters(net, stream(seed, FORGET_NET))
    counter = ForgettingCounter(len(index))
    trained = fit(net, train.images[index], train.labels[index], counting_recipe(epochs),
                  seed=seed_of(stream(seed, FORGET_SHUFFLE)), device=device, progress=progress,
                  batch_callback=counter.update, checkpoint=checkpoint, keep=counter.state())
    return Counts(counter.scores(), trained.seconds)


@register_method("forgetting", reads=(*_READS, "counting_epochs"), per_class=False, color="tab:brown",
                 defaults=lambda ipc: {"counting_epochs": FORGETTING_EPOCHS})
def forgetting(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
               device: torch.device, progress: bool = False) -> MethodOutput:
    """Per class, the ``ipc`` images forgotten most often while a ConvNet trains ``cfg.counting_epochs`` epochs on
    the images of ``classes``.

    Never-learned images count as forgotten infinitely often (Toneva et al.), so they come first; ties
    are broken in a seeded random order. The network is trained on ``classes`` together (a forgetting
    event needs other classes to confuse an image with), hence at least two classes are needed.
    """
    classes = [int(c) for c in classes]
    if len(classes) < 2:
        raise DistillError(f"forgetting trains a classifier on the classes it selects from and got only {classes}; "
                           f"pass two classes or more (or use kcenter or herding for one class at a time)")
    for c in classes:
        _check_enough(train, c, cfg.ipc)
    scores, seconds = forgetting_scores(train, classes, cfg, seed=seed, device=device,
                                        epochs=cfg.counting_epochs, progress=progress)
    parts, start = [], 0
    for c in classes:
        images = train.images_of(c)
        mine = scores[start:start + len(images)]
        start += len(images)
        parts.append(images[forgetting_order(mine, stream(seed, FORGET_TIES, c))[:cfg.ipc]])
    # The counting is the cost, spent once for every ipc: recorded beside the set's own (selection) seconds.
    return MethodOutput(torch.cat(parts), extra={"counting_seconds": seconds, "counting_images": len(scores)})
