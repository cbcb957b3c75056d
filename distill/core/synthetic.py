"""SyntheticSet: the distilled images with everything needed to use them (labels, normalisation, provenance)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from distill.core.data import denormalise
from distill.core.errors import DistillError
from distill.core.io import atomic_torch_save
from distill.core.store import DamagedEntry, content_digest

FORMAT_VERSION = 1
REPO = Path(__file__).resolve().parents[2]


def set_path(name: str | Path) -> Path:
    """A ``--synthetic`` file as a preset names it: the path as given where it exists, else in the repository
    (the presets under ``configs/`` name the paper-table study's sets by their path in it)."""
    path = Path(name)
    return path if path.is_absolute() or path.exists() or not (REPO / path).exists() else REPO / path


def _how_to_make(path: Path) -> str:
    if path.parent.name == "paper-table":  # a study set; those of ipc 50 (6 MB each) are not committed
        return f"the paper-table study makes it: python benchmarks/paper_table.py --only {path.stem}"
    return "run `python -m distill.run` to make one"


_FIELDS = ("images", "labels", "class_ids", "class_names", "mean", "std", "ipc", "method", "config", "seed",
           "iterations", "seconds", "git_revision")


def git_revision() -> str | None:
    """The commit of this checkout, or ``None`` outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass
class SyntheticSet:
    """A distilled (or selected) set: ``ipc`` normalised images for each class in ``class_ids``.

    ``class_names`` lists the names of all classes of the source dataset (index = class id), so a
    subset keeps its meaning. Images are ordered class by class, in the order of ``class_ids``.
    """

    images: Tensor
    labels: Tensor
    class_ids: list[int]
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    ipc: int
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    iterations: int = 0
    seconds: float = 0.0
    git_revision: str | None = None

    def __post_init__(self) -> None:
        self.images = self.images.detach().float().cpu().contiguous()
        self.labels = self.labels.detach().long().cpu()
        self.class_ids = [int(c) for c in self.class_ids]
        self.mean, self.std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`DistillError` naming the first inconsistency."""
        n = len(self.class_ids) * self.ipc
        if self.images.ndim != 4:
            raise DistillError(f"synthetic images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if len(self.images) != n or len(self.labels) != n:
            raise DistillError(f"synthetic set has {len(self.images)} images and {len(self.labels)} labels, but "
                               f"{len(self.class_ids)} classes x ipc {self.ipc} = {n}; the file is inconsistent")
        expected = torch.tensor(self.class_ids, dtype=torch.long).repeat_interleave(self.ipc)
        if not torch.equal(self.labels, expected):
            raise DistillError("synthetic labels are not grouped by class_ids in ipc blocks; the file is inconsistent")
        if any(c < 0 or c >= len(self.class_names) for c in self.class_ids):
            raise DistillError(f"class ids {self.class_ids} fall outside the {len(self.class_names)} class names")
        if len(set(self.class_ids)) != len(self.class_ids):
            raise DistillError(f"class ids {self.class_ids} repeat; each class may appear once")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise DistillError(f"mean/std have {len(self.mean)}/{len(self.std)} entries for {self.images.shape[1]} channels")
        if not torch.isfinite(self.images).all():
            raise DistillError("synthetic images contain NaN or inf; rerun the distillation with a lower lr_img")

    def __len__(self) -> int:
        return len(self.images)

    def check_compatible(self, class_names: Sequence[str], image_shape: Sequence[int] | None = None, *,
                         source: str = "the dataset") -> None:
        """Raise :class:`DistillError` unless this set was made from a dataset with these classes and image shape.

        A set of another dataset's classes would otherwise be trained on silently, with labels that
        mean something else (or that the network cannot even output).
        """
        names = list(class_names)
        if self.class_names != names:
            raise DistillError(f"the synthetic set was made from {len(self.class_names)} classes "
                               f"({', '.join(self.class_names[:3])}, ...) but {source} has {len(names)} "
                               f"({', '.join(names[:3])}, ...); pass a set distilled from {source}")
        if image_shape is not None and tuple(self.images.shape[1:]) != tuple(image_shape):
            raise DistillError(f"the synthetic images are {tuple(self.images.shape[1:])} but {source}'s are "
                               f"{tuple(image_shape)}; pass a set distilled from {source}")

    @property
    def num_bytes(self) -> int:
        """Memory the images take as stored (float32)."""
        return self.images.numel() * self.images.element_size()

    def images_of(self, c: int) -> Tensor:
        if c not in self.class_ids:
            raise DistillError(f"class {c} is not in this synthetic set (classes {self.class_ids}); distill it first")
        i = self.class_ids.index(c)
        return self.images[i * self.ipc:(i + 1) * self.ipc]

    def subset(self, classes: Sequence[int]) -> "SyntheticSet":
        """The images of ``classes`` (in that order)."""
        missing = [c for c in classes if c not in self.class_ids]
        if missing:
            raise DistillError(f"synthetic set has no images for class(es) {missing} (it holds {self.class_ids}); "
                               f"distill those classes or pass a set that has them")
        images = torch.cat([self.images_of(c) for c in classes]) if classes else self.images[:0]
        return self._replace(images=images, class_ids=list(classes))

    def take(self, ipc: int) -> "SyntheticSet":
        """The first ``ipc`` images of every class (a smaller, still class-balanced memory)."""
        if not 0 <= ipc <= self.ipc:
            raise DistillError(f"cannot take {ipc} images per class from a set with ipc {self.ipc}")
        images = self.images.view(len(self.class_ids), self.ipc, *self.images.shape[1:])[:, :ipc]
        return self._replace(images=images.reshape(-1, *self.images.shape[1:]), ipc=ipc)

    def _replace(self, **changes: Any) -> "SyntheticSet":
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        ids = values["class_ids"]
        values["labels"] = torch.tensor(ids, dtype=torch.long).repeat_interleave(values["ipc"])
        return SyntheticSet(**values)

    @staticmethod
    def merge(sets: Sequence["SyntheticSet"]) -> "SyntheticSet":
        """Concatenate per-class memories of disjoint classes (same ipc, normalisation and class names)."""
        if not sets:
            raise DistillError("nothing to merge: pass at least one SyntheticSet")
        first = sets[0]
        for s in sets[1:]:
            if s.ipc != first.ipc or s.mean != first.mean or s.std != first.std or s.class_names != first.class_names:
                raise DistillError("cannot merge synthetic sets with different ipc, mean/std or class names")
            if s.images.shape[1:] != first.images.shape[1:]:
                raise DistillError("cannot merge synthetic sets with different image shapes")
        ids = [c for s in sets for c in s.class_ids]
        return first._replace(images=torch.cat([s.images for s in sets]), class_ids=ids,
                              seconds=sum(s.seconds for s in sets))

    def state_dict(self) -> dict[str, Any]:
        """The fields, the format version and a digest of them all (checked by :meth:`load`)."""
        state = {"format_version": FORMAT_VERSION, **{name: getattr(self, name) for name in _FIELDS}}
        return {**state, "digest": content_digest(state)}

    def save(self, path: str | Path) -> None:
        """Write atomically (temporary file, then rename)."""
        if Path(path).is_dir():
            raise DistillError(f"{path} is a folder; pass a file path such as {Path(path) / 'synthetic.pt'}")
        atomic_torch_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path, *, require_digest: bool = False) -> "SyntheticSet":
        """Read and validate a file written by :meth:`save`, checking its content against its digest.

        Args:
            require_digest: refuse a file without a digest (a cache must not trust one; a set written
                before digests existed is still read when a user passes it).
        """
        path = Path(path)
        if not path.is_file():
            raise DistillError(f"synthetic set file {path} does not exist; {_how_to_make(path)}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DistillError(f"{path} is not a readable synthetic set ({type(exc).__name__}); it may be truncated "
                               f"or not a distill file: distill again") from None
        if not isinstance(state, dict) or "format_version" not in state:
            raise DistillError(f"{path} is not a synthetic set file (no format_version); pass a synthetic.pt")
        if state["format_version"] != FORMAT_VERSION:
            raise DistillError(f"{path} has format version {state['format_version']}, this toolkit reads "
                               f"{FORMAT_VERSION}; distill again with this version")
        missing = [name for name in _FIELDS if name not in state]
        if missing:
            raise DistillError(f"{path} lacks field(s) {', '.join(missing)}; the file is damaged, distill again")
        digest = state.pop("digest", None)
        if (digest is None and require_digest) or (digest is not None and digest != content_digest(state)):
            raise DamagedEntry(f"{path} does not match the digest of its content; the file is damaged, distill again")
        return cls(**{name: state[name] for name in _FIELDS})

    def to_png(self, path: str | Path, *, max_per_class: int = 10) -> None:
        """Save a grid, one row per class, denormalised to pixel values."""
        from torchvision.utils import make_grid
        from torchvision.io import encode_png

        k = min(self.ipc, max_per_class)
        images = self.images.view(len(self.class_ids), self.ipc, *self.images.shape[1:])[:, :k]
        pixels = denormalise(images.reshape(-1, *self.images.shape[1:]), self.mean, self.std)
        grid = make_grid(pixels, nrow=k, padding=2, pad_value=1.0)
        from distill.core.io import atomic_write_bytes

        atomic_write_bytes(path, bytes(encode_png((grid * 255).round().to(torch.uint8)).numpy()))


__all__ = ["FORMAT_VERSION", "git_revision", "set_path", "SyntheticSet"]
