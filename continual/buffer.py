"""DistilledBuffer: an Avalanche storage policy that keeps a distilled memory of every class seen."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset, as_classification_dataset
from avalanche.benchmarks.utils.transform_groups import TransformGroups
from avalanche.benchmarks.utils.utils import concat_datasets
from avalanche.training.storage_policy import ExemplarsBuffer

from distill.core.cache import cache_dir as default_cache_root
from distill.core.cache import cache_file, content_key
from distill.shell.distributed import resolve_device
from distill.core.data import from_tensors
from distill.core.errors import DistillError
from distill.methods import DistillConfig, get_method, list_methods, load_or_distill, result_key
from distill.core.synthetic import SyntheticSet

log = logging.getLogger(__name__)

def _canonical_order(images: Tensor) -> Tensor:
    """The images sorted by content hash.

    Streams list a class's images in different orders (the order depends on the other classes of
    the experience); sorting makes a class's memory depend only on its images and the seed, so
    every class order and step count reuses the same cached memory.
    """
    keys = [hashlib.sha1(image.numpy().tobytes()).digest() for image in images]
    return images[sorted(range(len(keys)), key=keys.__getitem__)]


class AdaptOnUpdate:
    """Mixin for an Avalanche buffer: the deprecated ``update()`` goes straight to ``post_adapt``.

    ReplayPlugin and GDumbPlugin still call ``update()``, whose deprecated default warns on every
    experience; this forwards it as that default would, without the warning. Put it first among the bases.
    """

    def update(self, strategy: Any, **kwargs: Any) -> None:
        self.post_adapt(strategy, strategy.experience)  # type: ignore[attr-defined]


class DistilledBuffer(AdaptOnUpdate, ExemplarsBuffer):
    """Class-balanced replay memory whose images per class are a distilled (or selected) set of that class.

    When an experience arrives, the classes new in it are distilled from that experience's data only
    (so no future class can leak in) with a method of :mod:`distill` -- ``datadam``, ``dm``, ``herding``,
    ``kcenter``, ``forgetting`` (which needs two classes or more per experience) or ``random`` -- or taken
    from a precomputed :class:`~distill.core.synthetic.SyntheticSet`. The memory
    holds ``min(ipc, max_size // classes_seen)`` images of every class seen and none of any other.
    Items have the stream's arity (``(x, y)`` or ``(x, y, t)``) and live in the stream's input space:
    distilled images are computed from the stream's eval-transformed tensors.

    Drop-in use::

        storage = DistilledBuffer(100, method="datadam", ipc=10)
        plugins = [ReplayPlugin(mem_size=100, storage_policy=storage)]

    Args:
        max_size: capacity in images (``ReplayPlugin`` requires it to equal ``mem_size``).
        method: distillation method; overrides ``distill_config.method`` (default: that, else DataDAM).
        synthetic: precomputed memories (a set, or the path of a ``synthetic.pt``); every class met must
            be in it, and its class names must be ``class_names`` when given, else :class:`DistillError`.
        transform: applied to memory images in the ``train`` transform group (e.g. augmentation).
        distill_config: distillation settings (iterations, ...); ``DistillConfig()`` if ``None``.
        ipc: images per class; default ``distill_config.ipc`` (or ``synthetic.ipc``).
        seed: seed of every distillation (randomness derives from seed, class id and iteration).
        device: where to distill (``"auto"``, ``"cpu"``, ``"cuda"``).
        cache_dir: where distilled memories are cached per (class, method, ipc, seed, config, data);
            default ``$DISTILL_CACHE_DIR/continual``; ``False`` disables the cache.
        class_names: names of all classes (recorded in the distilled sets).
        normalization: ``(mean, std)`` of the stream's inputs; recorded in distilled sets, and a
            ``synthetic`` set normalised differently is re-normalised to it.
        progress: show distillation progress bars.
    """

    def __init__(self, max_size: int, *, method: str | None = None, synthetic: SyntheticSet | str | Path | None = None,
                 transform: Callable[[Tensor], Tensor] | None = None, distill_config: DistillConfig | None = None,
                 ipc: int | None = None, seed: int = 0, device: torch.device | str = "cpu",
                 cache_dir: str | Path | bool | None = None, class_names: Sequence[str] | None = None,
                 normalization: tuple[Sequence[float], Sequence[float]] | None = None,
                 progress: bool = False) -> None:
        super().__init__(max_size)
        if isinstance(synthetic, (str, Path)):
            synthetic = SyntheticSet.load(synthetic)
        if synthetic is not None and not isinstance(synthetic, SyntheticSet):
            raise DistillError(f"synthetic must be a SyntheticSet or the path of a synthetic.pt, got "
                               f"{type(synthetic).__name__}; pass SyntheticSet.load(path) or the path")
        if synthetic is not None and synthetic.config.get("zca_statistics") is not None:
            raise DistillError("the synthetic set holds ZCA-whitened images and the stream plain ones: a memory must "
                               "live in the stream's input space; distill it without --zca")
        if synthetic is not None and class_names is not None:
            synthetic.check_compatible(class_names, source="the stream")
        if synthetic is not None:
            method = synthetic.method
            ipc = synthetic.ipc if ipc is None else ipc
            if ipc > synthetic.ipc:
                raise DistillError(f"ipc {ipc} is more than the {synthetic.ipc} images per class of the given "
                                   f"synthetic set; pass ipc <= {synthetic.ipc}")
        elif method is None:  # the config's method, else the default one
            method = (distill_config or DistillConfig()).method
        if synthetic is None and method not in list_methods():
            raise DistillError(f"unknown memory method {method!r}; choose one of {', '.join(list_methods())}")
        base = distill_config if distill_config is not None else DistillConfig()
        self.config = replace(base, method=method, ipc=ipc if ipc is not None else base.ipc)  # checks ipc >= 1
        self.method = method
        self.synthetic = synthetic
        self.transform = transform
        self.seed = seed
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        if cache_dir is False:
            self.cache_dir: Path | None = None
        else:
            self.cache_dir = Path(cache_dir) if cache_dir else default_cache_root() / "continual"
        self.class_names = list(class_names) if class_names is not None else None
        self.normalization = (tuple(map(float, normalization[0])), tuple(map(float, normalization[1]))) \
            if normalization is not None else None
        self.progress = progress
        self.memories: dict[int, Tensor] = {}        # class id -> (ipc, C, H, W), stream input space
        self.sets: dict[int, SyntheticSet] = {}       # class id -> its distilled set (provenance)
        self.seen_classes: list[int] = []             # in order of arrival
        self.distill_seconds = 0.0                    # spent distilling in this process (cache hits cost ~0)
        self.cached_distill_seconds = 0.0             # what the memories loaded from the cache once cost
        self.cache_hits = 0
        self._arity: int | None = None
        self._shape: tuple[int, ...] | None = None  # of one stream input, to check a precomputed set against
        self._task_label = 0

    # ------------------------------------------------------------------ Avalanche interface
    @property
    def ipc(self) -> int:
        return self.config.ipc

    @property
    def images_per_class(self) -> int:
        """Images of each seen class currently in the buffer (class-balanced)."""
        if not self.seen_classes:
            return 0
        return min(self.ipc, self.max_size // len(self.seen_classes))

    def post_adapt(self, agent_state: Any, exp: Any) -> None:
        """Add memories for the classes new in ``exp``, distilled from ``exp``'s data only."""
        dataset = exp.dataset
        if len(dataset) == 0:
            return
        first = dataset[0]
        self._arity = len(first) if isinstance(first, (tuple, list)) else 2
        x = first[0] if isinstance(first, (tuple, list)) else first
        self._shape = tuple(x.shape) if isinstance(x, Tensor) else None
        if self._arity == 3:
            self._task_label = int(first[2])
        classes = getattr(exp, "classes_in_this_experience", None)
        if classes is None:
            classes = set(int(y) for y in dataset.targets)
        new = [c for c in sorted(int(c) for c in classes) if c not in self.memories]
        self._check_capacity(len(self.seen_classes) + len(new), self.max_size)
        if new:
            if self.synthetic is not None:
                for c in new:
                    self.memories[c] = self._from_synthetic(c)
            else:
                real = self._real_images(dataset, new)
                if not get_method(self.method).per_class:
                    self.memories.update(self._distill_classes(new, real))
                else:
                    for c in new:
                        self.memories[c] = self._distill_class(c, real[c])
            self.seen_classes.extend(new)
        self._rebuild()

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change the capacity; every seen class keeps ``min(ipc, new_size // classes)`` images."""
        self._check_capacity(len(self.seen_classes), new_size)
        self.max_size = new_size
        self._rebuild()

    # ------------------------------------------------------------------ memory as tensors
    def tensors(self) -> tuple[Tensor, Tensor]:
        """The buffer's images and labels (what a fresh model trains on in the GDumb protocol)."""
        k = self.images_per_class
        if not self.seen_classes or k == 0:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        images = torch.cat([self.memories[c][:k] for c in self.seen_classes])
        labels = torch.tensor(self.seen_classes, dtype=torch.long).repeat_interleave(k)
        return images, labels

    @property
    def num_images(self) -> int:
        return self.images_per_class * len(self.seen_classes)

    @property
    def num_bytes(self) -> int:
        """Bytes of the images held (float32 as stored)."""
        images, _ = self.tensors()
        return images.numel() * images.element_size()

    # ------------------------------------------------------------------ internals
    def _check_capacity(self, num_classes: int, max_size: int) -> None:
        if num_classes and max_size < num_classes:
            raise DistillError(f"max_size {max_size} cannot hold one image for each of {num_classes} classes; "
                               f"raise mem_size to at least {num_classes * self.ipc}")

    def _rebuild(self) -> None:
        images, labels = self.tensors()
        if len(labels) == 0:
            self.buffer = concat_datasets([])
            return
        groups = {"train": (self.transform, None), "eval": (None, None)}
        if self._arity == 3:
            self.buffer = _make_taskaware_tensor_classification_dataset(
                images, labels, task_labels=self._task_label, targets=labels, transform_groups=groups)
        else:
            tensors = TensorDataset(images, labels)
            tensors.targets = labels.tolist()  # type: ignore[attr-defined]
            self.buffer = as_classification_dataset(tensors, transform_groups=TransformGroups(groups))

    def _real_images(self, dataset: Any, classes: list[int]) -> dict[int, Tensor]:
        """The eval-transformed input tensors of ``classes`` in this experience's dataset."""
        targets = torch.as_tensor([int(y) for y in dataset.targets])
        plain = dataset.eval() if hasattr(dataset, "eval") else dataset
        out = {}
        for c in classes:
            idx = torch.nonzero(targets == c).flatten().tolist()
            part = plain.subset(idx) if hasattr(plain, "subset") else torch.utils.data.Subset(plain, idx)
            loader = DataLoader(part, batch_size=1000, shuffle=False, num_workers=0,
                                collate_fn=getattr(part, "collate_fn", None))
            batches = [batch[0] for batch in loader]
            out[c] = _canonical_order(torch.cat(batches).float().cpu())
        return out

    def _names_for(self, c: int) -> list[str]:
        if self.class_names is not None:
            if c >= len(self.class_names):
                raise DistillError(f"class id {c} has no name among the {len(self.class_names)} class_names given; "
                                   f"pass names for every class")
            return self.class_names
        return [str(i) for i in range(c + 1)]

    def _cache_file(self, classes: list[int], images: Tensor) -> Path | None:
        if self.cache_dir is None:
            return None
        # One class keeps the key it always had, so that existing caches stay valid.
        record = {"class": classes[0] if len(classes) == 1 else classes, "seed": self.seed,
                  "config": result_key(self.config), "data": content_key(images, length=16)}
        name = "-".join(map(str, classes))
        return cache_file(self.cache_dir, "continual", f"{self.method}-class{name}-ipc{self.ipc}-seed{self.seed}", record)

    def _distill_class(self, c: int, images: Tensor) -> Tensor:
        return self._distill_classes([c], {c: images})[c]

    def _distill_classes(self, classes: list[int], real: dict[int, Tensor]) -> dict[int, Tensor]:
        """Distill ``classes`` in one call (one class, except for methods that are not ``per_class``)."""
        images = torch.cat([real[c] for c in classes])
        mean, std = self.normalization or ((0.0,) * images.shape[1], (1.0,) * images.shape[1])
        counts = torch.tensor([len(real[c]) for c in classes])
        labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(counts)
        train = from_tensors(images, labels, self._names_for(max(classes)), mean=mean, std=std)
        synthetic, cached = load_or_distill(self._cache_file(classes, images), train, self.config, classes=classes,
                                            seed=self.seed, device=self.device, progress=self.progress)
        if cached:
            self.cache_hits += 1
            self.cached_distill_seconds += synthetic.seconds
        else:
            self.distill_seconds += synthetic.seconds
        for c in classes:
            self.sets[c] = synthetic.subset([c]) if len(classes) > 1 else synthetic
        return {c: synthetic.images_of(c) for c in classes}

    def _from_synthetic(self, c: int) -> Tensor:
        assert self.synthetic is not None
        if c not in self.synthetic.class_ids:
            raise DistillError(f"the synthetic set has no images for class {c} (it holds classes "
                               f"{self.synthetic.class_ids}); distill class {c} too or pass a set that has it")
        images = self.synthetic.images_of(c)[: self.ipc]
        if self._shape is not None and tuple(images.shape[1:]) != self._shape:
            raise DistillError(f"the synthetic images are {tuple(images.shape[1:])} but the stream's are "
                               f"{self._shape}; pass a set distilled from the stream's dataset")
        self.sets[c] = self.synthetic.subset([c])
        if self.normalization is not None and (self.synthetic.mean, self.synthetic.std) != self.normalization:
            # Bring the stored images into the stream's normalisation: undo the set's, apply the stream's.
            m0 = torch.tensor(self.synthetic.mean).view(1, -1, 1, 1)
            s0 = torch.tensor(self.synthetic.std).view(1, -1, 1, 1)
            m1 = torch.tensor(self.normalization[0]).view(1, -1, 1, 1)
            s1 = torch.tensor(self.normalization[1]).view(1, -1, 1, 1)
            images = (images * s0 + m0 - m1) / s1
        return images.clone()


__all__ = ["DistilledBuffer"]
