"""Tiny synthetic data for fast tests and examples: a few classes of small random images."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from distill.core.data import ClassDataset, from_tensors
from distill.core.seeds import generator


def tiny_dataset(num_classes: int = 4, per_class: int = 12, *, size: int = 8, channels: int = 3, seed: int = 0,
                 names: Sequence[str] | None = None, mean: float = 0.5, std: float = 0.25) -> ClassDataset:
    """``per_class`` images of every class: unit noise around the class id, so that classes are learnable.

    Images are ordered class by class; labels are the class ids; names default to ``class<id>``;
    ``mean``/``std`` is the normalisation the images claim, the same for every channel.
    """
    g = generator(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.randn(len(labels), channels, size, size, generator=g) + labels.view(-1, 1, 1, 1).float()
    return from_tensors(images, labels, list(names) if names else [f"class{c}" for c in range(num_classes)],
                        mean=(mean,) * channels, std=(std,) * channels)


def image_tree(root: str | Path, class_names: Sequence[str], *, train: int = 12, test: int = 4, size: int = 32,
               seed: int = 0) -> Path:
    """An ImageFolder tree of noise PNGs, ``root/{train,test}/<class>/<i>.png``: real files for the command
    lines' tests, without a copy of a real dataset."""
    from PIL import Image

    root = Path(root)
    g = generator(seed)
    for split, count in (("train", train), ("test", test)):
        for name in class_names:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i:04d}.png")
    return root


__all__ = ["image_tree", "tiny_dataset"]
