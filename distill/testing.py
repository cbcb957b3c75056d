"""Tiny synthetic data for fast tests and examples: a few classes of small random images."""

from __future__ import annotations

from typing import Sequence

import torch

from distill.data import ClassDataset, from_tensors


def tiny_dataset(num_classes: int = 4, per_class: int = 12, *, size: int = 8, channels: int = 3, seed: int = 0,
                 names: Sequence[str] | None = None, mean: float = 0.5, std: float = 0.25) -> ClassDataset:
    """``per_class`` images of every class: unit noise around the class id, so that classes are learnable.

    Images are ordered class by class; labels are the class ids; names default to ``class<id>``;
    ``mean``/``std`` is the normalisation the images claim, the same for every channel.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.randn(len(labels), channels, size, size, generator=g) + labels.view(-1, 1, 1, 1).float()
    return from_tensors(images, labels, list(names) if names else [f"class{c}" for c in range(num_classes)],
                        mean=(mean,) * channels, std=(std,) * channels)


__all__ = ["tiny_dataset"]
