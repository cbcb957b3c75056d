"""Datasets as normalised tensors indexed by class: CIFAR-10/100, any ImageFolder tree, or tensors."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from distill.core.cache import cache_dir, content_key
from distill.core.errors import DistillError
from distill.core.store import discard, load_entry, save_entry

DATA_ROOT_ENV = "DISTILL_DATA_ROOT"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# The statistics the DC/DM/DataDAM code normalises with, so distilled sets stay comparable.
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DATASETS = ("cifar10", "cifar100", "imagefolder")


@dataclass
class ClassDataset:
    """Normalised images with integer labels, and what is needed to undo the normalisation."""

    images: Tensor
    labels: Tensor
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _index: list[Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.labels.ndim != 1 or len(self.images) != len(self.labels):
            raise DistillError(
                f"images must be (N, C, H, W) and labels (N,), got {tuple(self.images.shape)} and "
                f"{tuple(self.labels.shape)}; pass matching tensors")
        self.labels = self.labels.long()
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        self._index = list(torch.split(order, counts)) if len(order) else [order] * self.num_classes

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.labels)

    def indices_of(self, c: int) -> Tensor:
        return self._index[c]

    def images_of(self, c: int) -> Tensor:
        return self.images[self._index[c]]

    def subset(self, classes: Sequence[int]) -> "ClassDataset":
        """The images of ``classes`` only; labels and class names keep their original ids."""
        idx = torch.cat([self._index[c] for c in classes]) if classes else torch.empty(0, dtype=torch.long)
        return ClassDataset(self.images[idx], self.labels[idx], list(self.class_names), self.mean, self.std)


def from_tensors(images: Tensor, labels: Tensor, class_names: Sequence[str] | None = None, *,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> ClassDataset:
    """Wrap already normalised tensors (``mean``/``std`` default to 0/1 per channel)."""
    channels = images.shape[1] if images.ndim == 4 else 0
    if class_names is None:
        class_names = [str(c) for c in range(int(labels.max()) + 1 if len(labels) else 0)]
    return ClassDataset(images.float(), labels.long(), list(class_names),
                        tuple(mean) if mean is not None else (0.0,) * channels,
                        tuple(std) if std is not None else (1.0,) * channels)


def normalise(images_uint8: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (images_uint8.float().div_(255.0) - m) / s


def denormalise(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Back to [0, 1] pixel values."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images * s + m).clamp(0, 1)


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or Path.home() / ".cache" / "distill" / "datasets")


def load_dataset(name: str, split: str = "train", *, data_root: str | Path | None = None) -> ClassDataset:
    """Load ``name`` (cifar10, cifar100 or imagefolder) as a normalised :class:`ClassDataset`.

    Args:
        name: ``cifar10``/``cifar100`` read torchvision's files or an ImageFolder tree, downloading
            through torchvision when the root holds neither; ``imagefolder`` reads any
            ``<root>/<split>/<class>/<image>`` tree.
        split: ``train`` or ``test``.
        data_root: the folder; else ``$DISTILL_DATA_ROOT``; else ``~/.cache/distill/datasets``.
    """
    if name not in DATASETS:
        raise DistillError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise DistillError(f"unknown split {split!r}; use train or test")
    root = Path(data_root) if data_root is not None else default_data_root()
    check_layout(root, split)
    if name == "imagefolder" or (root / split).is_dir():
        images, labels, classes = _load_imagefolder_cached(root, split)
        if name in STATS:
            check_class_names(name, classes, root)
            mean, std = STATS[name]
        else:
            mean, std = _imagefolder_stats(root, images if split == "train" else None)
    else:
        images, labels, classes = _load_torchvision(name, root, split)
        mean, std = STATS[name]
    return ClassDataset(normalise(images, mean, std), labels, classes, mean, std)


def check_layout(root: Path, split: str) -> None:
    """Raise :class:`DistillError` for a root without ``split`` beside the other split, or a split passed as root.

    Name the two common wrong roots at once, rather than failing later as a download error."""
    other = "test" if split == "train" else "train"
    if (root / other).is_dir() and not (root / split).is_dir():
        raise DistillError(f"{root} has {other}/ but no {split}/; an ImageFolder root needs both "
                           f"train/<class>/ and test/<class>/ folders")
    if root.is_dir() and root.name in ("train", "test") and not (root / split).is_dir():
        with os.scandir(root) as entries:
            if any(e.is_dir() for e in entries):
                raise DistillError(f"{root} looks like a {root.name} split (class folders, no train/ or test/); "
                                   f"pass its parent {root.parent} as --data-root")


def check_class_names(name: str, classes: list[str], root: Path) -> None:
    """Raise :class:`DistillError` unless the class folders under ``root`` are those of ``name`` (cifar10, cifar100)."""
    expected = torchvision_classes(name)
    if classes != expected:
        raise DistillError(
            f"{root} has class folders {classes[:4]}... but {name} needs {expected[:4]}... ({len(expected)} classes); "
            f"point --data-root at a {name} tree or use --dataset imagefolder")


def torchvision_classes(name: str) -> list[str]:
    if name == "cifar10":
        return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    # CIFAR-100's fine labels are in alphabetical order, as its meta file lists them.
    return _cifar100_names()


def _cifar100_names() -> list[str]:
    return sorted(
        "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
        "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
        "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
        "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
        "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
        "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
        "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm".split())


def _load_torchvision(name: str, root: Path, split: str) -> tuple[Tensor, Tensor, list[str]]:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        ds = cls(str(root), train=split == "train", download=True)
    except Exception as exc:  # torchvision raises URLError, RuntimeError, ... when offline
        raise DistillError(
            f"could not read or download {name} into {root} ({type(exc).__name__}); pass --data-root with "
            f"torchvision's {name} files or an ImageFolder tree (train/<class>/, test/<class>/), "
            f"or set ${DATA_ROOT_ENV}") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.long), list(ds.classes)


def class_files(root: Path, split: str) -> tuple[list[str], list[list[os.DirEntry]]]:
    """The class folders of ``root/split`` and their image files (sorted ``os.DirEntry``s), from one ``scandir``
    per class and no ``stat``: what a pre-flight check needs (class names and sizes), at a listing's cost."""
    folder = root / split
    if not root.is_dir():
        raise DistillError(f"data root {root} does not exist; pass --data-root DIR or set ${DATA_ROOT_ENV}")
    if not folder.is_dir():
        raise DistillError(f"{folder} does not exist; an ImageFolder root needs {split}/<class>/<image> folders")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DistillError(f"{folder} has no class folders; expected {split}/<class>/<image>")
    files = []
    for c in classes:
        with os.scandir(folder / c) as entries:
            found = sorted((e for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES),
                           key=lambda e: e.name)
        if not found:
            raise DistillError(f"class folder {folder / c} has no images (.jpg, .jpeg, .png); add images or remove it")
        files.append(found)
    return classes, files


def list_imagefolder(root: Path, split: str) -> tuple[list[str], list[list[Path]], str]:
    """The class folders, their image files, and a digest of the whole listing.

    The digest covers every file's path, size and ``mtime_ns``, so moving an image to another
    class or editing one in place changes it; a ``scandir`` of CIFAR-10's 60,000 files takes
    about 0.2 s, far less than decoding them.
    """
    classes, entries = class_files(root, split)
    digest = hashlib.sha1()
    for c, found in zip(classes, entries):
        for e in found:
            st = e.stat()
            digest.update(f"{c}/{e.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return classes, [[Path(e.path) for e in found] for found in entries], digest.hexdigest()


def decoded_cache_file(root: Path, split: str, listing: str) -> Path:
    """Where the decoded images of ``root/split`` are cached: keyed by the folder and its listing's digest."""
    key = content_key([str(root.resolve()), split, listing], length=16)
    return cache_dir() / "decoded" / f"{root.name}-{split}-{key}.pt"


def _load_imagefolder_cached(root: Path, split: str) -> tuple[Tensor, Tensor, list[str]]:
    classes, files, listing = list_imagefolder(root, split)
    flat = [p for group in files for p in group]
    cache_file = decoded_cache_file(root, split, listing)
    cached = load_entry(cache_file)  # checked against the digest of its content; a damaged one is deleted
    if cached is not None:
        if cached["classes"] == classes and len(cached["labels"]) == len(flat):
            return cached["images"], cached["labels"], classes
        discard(cache_file, f"{cache_file} holds other classes or image count than {root / split}")
    images, labels = _decode(files)
    try:
        save_entry({"images": images, "labels": labels, "classes": classes}, cache_file)
    except OSError:
        pass  # a read-only cache folder costs a decode next time, nothing else
    return images, labels, classes


def _decode(files: list[list[Path]]) -> tuple[Tensor, Tensor]:
    import warnings

    from torchvision.io import ImageReadMode, decode_image

    images, labels, shape = [], [], None
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders in favour of torchcodec; they still work, and a
        # second large dependency for reading 32x32 JPEGs is not worth it yet.
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities")
        for label, group in enumerate(files):
            for path in group:
                try:
                    # read through Python (not torchvision's read_file), so that audit hooks see every file
                    data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
                    img = decode_image(data, mode=ImageReadMode.RGB)
                except (RuntimeError, ValueError):  # ValueError: an empty file
                    raise DistillError(f"cannot decode image {path}; delete or replace the corrupt file") from None
                if shape is None:
                    shape = img.shape
                elif img.shape != shape:
                    raise DistillError(
                        f"image {path} is {tuple(img.shape)} but earlier images are {tuple(shape)}; "
                        f"resize the tree to one size")
                images.append(img)
                labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _imagefolder_stats(root: Path, train_images: Tensor | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if train_images is None:
        train_images, _, _ = _load_imagefolder_cached(root, "train")
    x = train_images.float().div_(255.0)
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())


__all__ = ["DATA_ROOT_ENV", "DATASETS", "IMAGE_SUFFIXES", "STATS", "check_class_names", "check_layout", "class_files",
           "ClassDataset", "decoded_cache_file", "default_data_root", "denormalise", "from_tensors", "list_imagefolder",
           "load_dataset", "normalise", "torchvision_classes"]
