"""Tiny synthetic data for fast tests and examples: a few classes of small random images."""

from __future__ import annotations

import torch

from distill.data import ClassDataset, from_tensors


def tiny_dataset(num_classes: int = 4, per_class: int = 12, *, size: int = 8, channels: int = 3,
                 seed: int = 0) -> ClassDataset:
    """``per_class`` images of every class; each class has its own mean so that classes are learnable.

    Images are ordered class by class; labels are the class ids.
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, channels, 1, 1, generator=g)
    images = torch.cat([centres[c] + 0.5 * torch.randn(per_class, channels, size, size, generator=g)
                        for c in range(num_classes)])
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return from_tensors(images, labels, [f"class{c}" for c in range(num_classes)],
                        mean=(0.5,) * channels, std=(0.25,) * channels)


__all__ = ["tiny_dataset"]
