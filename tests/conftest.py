"""Shared fixtures: tiny tensors for unit tests, a small real CIFAR-10 tree for end-to-end tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from distill.core.testing import tiny_dataset as make_tiny_dataset

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
    """3 classes x 20 images of 3x32x32 noise around a class-dependent centre, so classes differ."""
    return make_tiny_dataset(3, 20, size=32, names=["a", "b", "c"], mean=0.0, std=1.0)


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
