"""Pre-flight: every check a job can make before it decodes data, so that any refusal costs what the cheapest does.

The three command lines call these after their settings are resolved and before anything of the
request's size exists: no image is decoded, no tensor allocated, nothing written. What the data root
holds is read from its file listing (:class:`DataListing`), so ``--ipc 100000`` or ``--dataset
cifar100`` on a CIFAR-10 tree is refused in the time ``--ipc 0`` is. (The settings' dataclasses import
torch, so torch is imported first; that is the cost of the cheapest refusal too.)
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from distill.core.cache import cache_dir
from distill.core.data import (STATS, check_class_names, check_layout, class_files, default_data_root,
                          torchvision_classes)
from distill.core.errors import DistillError

#: CIFAR as torchvision's files hold it: images per class in train and test, image shape.
_TORCHVISION_LAYOUT = {"cifar10": ("cifar-10-batches-py", 5000, 1000), "cifar100": ("cifar-100-python", 500, 100)}
#: Bytes a float32 activation takes, times the copies autograd keeps of a layer (conv, norm, act, pool).
_ACTIVATION_BYTES = 4 * 6
#: Bytes per decoded pixel value while a dataset loads: uint8 decoded, float32 normalised, one float temporary.
_LOADING_BYTES = 1 + 4 + 4
GB = 1024 ** 3


@dataclass(frozen=True)
class DataListing:
    """What a data root holds, from its file listing (ImageFolder) or the dataset's metadata (torchvision files)."""

    root: Path
    classes: tuple[str, ...]
    train_counts: tuple[int, ...]
    test_counts: tuple[int, ...]
    image_shape: tuple[int, int, int]
    #: bytes the decode cache still has to write (0 when both splits are cached, or for torchvision files)
    to_decode: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def smallest_class(self) -> tuple[int, str]:
        """The training images of the smallest class, and its name."""
        n, i = min((n, i) for i, n in enumerate(self.train_counts))
        return n, self.classes[i]

    def pixels(self, split: str = "train") -> int:
        """Pixel values (images x C x H x W) of a split."""
        return sum(self.train_counts if split == "train" else self.test_counts) * math.prod(self.image_shape)


def read_listing(dataset: str, data_root: str | Path | None, *, test: bool = True) -> DataListing:
    """The classes, class sizes and image shape under ``data_root``, without decoding an image.

    Refuses a missing split, train and test splits with different classes, and a ``cifar10``/``cifar100``
    request on a root whose class folders are another dataset's.
    """
    root = Path(data_root) if data_root is not None else default_data_root()
    splits = ("train", "test") if test else ("train",)
    if dataset != "imagefolder" and not (root / "train").is_dir() and not (root / "test").is_dir():
        return _torchvision_listing(dataset, root)
    listed = {}
    for split in splits:
        check_layout(root, split)
        listed[split] = class_files(root, split)
    classes, files = listed["train"]
    if test and listed["test"][0] != classes:
        raise DistillError(f"{root}/train has classes {classes[:4]}... but {root}/test has {listed['test'][0][:4]}...; "
                           f"both splits need the same class folders")
    if dataset in STATS:
        check_class_names(dataset, classes, root)
    shape = _image_shape(Path(files[0][0].path))
    counts = {split: tuple(map(len, groups)) for split, (_, groups) in listed.items()}
    # Whether a split is decoded already is judged by name, without the stat of every file its key needs.
    to_decode = sum(sum(counts[split]) * math.prod(shape) for split in listed
                    if not any((cache_dir() / "decoded").glob(f"{root.name}-{split}-*.pt")))
    return DataListing(root, tuple(classes), counts["train"], counts.get("test", ()), shape, to_decode)


def _torchvision_listing(dataset: str, root: Path) -> DataListing:
    if dataset not in _TORCHVISION_LAYOUT:
        raise DistillError(f"unknown dataset {dataset!r}; choose one of cifar10, cifar100, imagefolder")
    folder, per_train, per_test = _TORCHVISION_LAYOUT[dataset]
    others = [name for name, (f, _, _) in _TORCHVISION_LAYOUT.items() if name != dataset and (root / f).is_dir()]
    if others and not (root / folder).is_dir():
        raise DistillError(f"{root} holds torchvision's {others[0]} files, not {dataset}'s; pass --dataset {others[0]} "
                           f"or a --data-root with {dataset}")
    classes = tuple(torchvision_classes(dataset))
    return DataListing(root, classes, (per_train,) * len(classes), (per_test,) * len(classes), (3, 32, 32), 0)


def _image_shape(path: Path) -> tuple[int, int, int]:
    """(3, H, W) of the image at ``path`` from its header: every image is decoded as RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        raise DistillError(f"cannot read image {path}; delete or replace the corrupt file") from None
    return 3, height, width


def check_ipc(ipc: int, listing: DataListing, *, flag: str = "--ipc", per_class: int | None = None) -> None:
    """Refuse more images per class than the smallest class has (or than ``per_class`` images kept of each)."""
    n, name = listing.smallest_class
    if per_class is not None and per_class < n:
        n, name = per_class, f"each class (--train-per-class {per_class})"
    else:
        name = f"class {name!r} in {listing.root}"
    if ipc > n:
        raise DistillError(f"{flag} {ipc} is more than the {n} training images of {name}; pass {flag} {n} or less")


def check_names(*, norm: str | None = None, dsa_strategy: str | None = None, networks: Mapping[str, str] = {},
                prefix: str = "--") -> None:
    """Refuse an unknown norm, DSA group or network (``networks`` maps each name to the flag that gave it;
    ``prefix`` begins the other flags' names: ``--distill-`` for a table's own)."""
    from distill.core.augment import DSA
    from distill.core.networks import NORMS, list_networks

    if norm is not None and norm not in NORMS:
        raise DistillError(f"unknown {prefix}norm {norm!r}; use {', '.join(NORMS)}")
    if dsa_strategy is not None:
        DSA(dsa_strategy)  # its constructor names an unknown group
    for name, flag in networks.items():
        if name not in list_networks():
            raise DistillError(f"unknown {flag} {name!r}; choose one of {', '.join(list_networks())}")


def check_output(out: Path | None) -> None:
    """Refuse an ``--out`` that is a file or that cannot be created or written to."""
    if out is None:
        out = Path("runs")
    if out.exists() and not out.is_dir():
        raise DistillError(f"--out {out} is a file; pass a folder")
    existing = _existing_parent(out)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DistillError(f"cannot write into {existing} (for --out {out}); pass a writable --out")


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def available_memory() -> tuple[int, str]:
    """Bytes this process may still take: the cgroup's limit less its use, or MemAvailable, whichever is less."""
    found = [(_meminfo_available(), "MemAvailable")]
    for limit_file, used_file in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes",
                                                                      "memory/memory.usage_in_bytes")):
        limit, used = (_read_int(Path("/sys/fs/cgroup") / f) for f in (limit_file, used_file))
        if limit is not None and used is not None and limit < 1 << 60:
            found.append((limit - used, "the cgroup's memory limit"))
    return min((n, source) for n, source in found if n is not None)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def check_memory(parts: Mapping[str, tuple[int, str]], *, device: Any = "cpu") -> None:
    """Refuse a run whose estimated peak memory exceeds what is available.

    Args:
        parts: what takes memory, as ``{"what": (bytes, "the knob that lowers it")}``; they add up.
        device: a CUDA device compares with its free memory (``torch.cuda.mem_get_info``): this rank's own
            GPU under torchrun (:func:`distill.shell.distributed.local_device`), so that no rank opens another's.
    """
    import torch

    total = sum(n for n, _ in parts.values())
    device = torch.device(device)
    if device.type == "cuda":
        available, source = torch.cuda.mem_get_info(device)[0], "the GPU's free memory"
    else:
        available, source = available_memory()
    if total > available:
        what, (n, knob) = max(parts.items(), key=lambda item: item[1][0])
        raise DistillError(f"the run needs about {total / GB:.1f} GB of memory ({what}: {n / GB:.1f} GB) but only "
                           f"{available / GB:.1f} GB are available ({source}); {knob}")


def check_disk(writes: Iterable[tuple[Path, int, str]]) -> None:
    """Refuse a run whose files (``(folder, bytes, what)``) do not fit in the free space of their file systems."""
    by_device: dict[int, tuple[Path, int, list[str]]] = {}
    for folder, n, what in writes:
        if n <= 0:
            continue
        existing = _existing_parent(Path(folder))
        dev = existing.stat().st_dev
        place, total, names = by_device.get(dev, (existing, 0, []))
        by_device[dev] = (place, total + n, names + [what])
    for place, total, names in by_device.values():
        free = shutil.disk_usage(place).free
        if total > free:
            raise DistillError(f"the run writes about {total / GB:.2f} GB ({', '.join(names)}) to {place}, which has "
                               f"{free / GB:.2f} GB free; free space or point --out or $DISTILL_CACHE_DIR elsewhere")


def encoder_memory(config, image_shape: Sequence[int], classes: int) -> dict[str, tuple[int, str]]:
    """Estimated memory of distilling ``classes`` with the resolved ``config``: the synthetic set with its
    gradient and momentum, and the encoder's activations of one step (all classes at once under BatchNorm)."""
    from distill.methods import get_method

    chw = math.prod(image_shape)
    method = get_method(config.method)
    parts = {"synthetic set": (config.ipc * classes * chw * 4 * (4 if method.iterates else 1), "lower --ipc")}
    if method.encoder:
        together = classes if config.norm == "batchnorm" else 1
        batch = (config.batch_real + config.ipc) * together
        # Each block's activations are a quarter of the one before (2x2 pooling).
        per_image = config.width * math.prod(image_shape[1:]) * _ACTIVATION_BYTES * 4 / 3
        parts["encoder activations"] = (int(batch * per_image), "lower --width, --batch-real or --ipc")
    return parts


def data_memory(listing: DataListing, *, test: bool) -> dict[str, tuple[int, str]]:
    """Estimated memory of the decoded, normalised real images while they load."""
    parts = {"real training images": (listing.pixels("train") * _LOADING_BYTES, "use a smaller dataset")}
    if test:
        parts["real test images"] = (listing.pixels("test") * _LOADING_BYTES, "use a smaller test split")
    return parts


def data_writes(listing: DataListing) -> list[tuple[Path, int, str]]:
    """The decode cache's share of a run's writes."""
    return [(cache_dir() / "decoded", listing.to_decode, "decoded images")]


__all__ = ["DataListing", "available_memory", "check_disk", "check_ipc", "check_memory", "check_names",
           "check_output", "data_memory", "data_writes", "encoder_memory", "read_listing"]
