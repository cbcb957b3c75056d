"""Shared fixtures: tiny tensors for unit tests, a small real CIFAR-10 tree for end-to-end tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from distill.data import from_tensors

REPO = Path(__file__).resolve().parents[1]

# Unit tests use tiny tensors, where one thread beats two and is immune to a busy machine.
torch.set_num_threads(1)
# Compiling costs seconds per graph and buys nothing on tiny tensors; tests that check the compiled
# path against eager ask for it explicitly (compile=True).
os.environ.setdefault("DISTILL_NO_COMPILE", "1")


def real_cifar10_root() -> Path | None:
    """The full CIFAR-10 ImageFolder copy: $DISTILL_DATA_ROOT, else ../shared/data/cifar10."""
    for candidate in (os.environ.get("DISTILL_DATA_ROOT"), REPO.parent / "shared" / "data" / "cifar10"):
        if candidate and (Path(candidate) / "train").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("DISTILL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tiny_dataset():
    """3 classes x 20 images of 3x32x32 noise, a class-dependent offset so classes differ."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(20)
    images = torch.randn(60, 3, 32, 32, generator=g) + labels.view(-1, 1, 1, 1).float()
    return from_tensors(images, labels, ["a", "b", "c"])


@pytest.fixture(scope="session")
def cifar_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a few real CIFAR-10 images per class (12 train, 4 test) in ImageFolder layout."""
    source = real_cifar10_root()
    if source is None:
        pytest.skip("real CIFAR-10 not found: set DISTILL_DATA_ROOT to an ImageFolder copy")
    root = tmp_path_factory.mktemp("cifar10")
    for split, n in (("train", 12), ("test", 4)):
        for class_dir in sorted((source / split).iterdir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for f in sorted(class_dir.iterdir())[:n]:
                shutil.copy(f, target / f.name)
    return root
