"""--init PATH: distillation starts from a saved set (ours, an {images, labels} file, or the DataDAM code's pair)."""

from __future__ import annotations

import pytest
import torch

from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill
from distill.methods.selection import saved_start


def _selection(tiny_dataset):
    return distill(tiny_dataset, DistillConfig(method="herding", ipc=3, width=8), seed=0, progress=False)


def test_a_saved_set_is_the_start_class_by_class(tiny_dataset, tmp_path):
    herding = _selection(tiny_dataset)
    herding.save(tmp_path / "herding.pt")
    start = saved_start(str(tmp_path / "herding.pt"), tiny_dataset, [2, 0], ipc=2)
    assert torch.equal(start, torch.cat([herding.images_of(2)[:2], herding.images_of(0)[:2]]))


def test_tensor_files_and_the_public_codes_pair_are_read(tiny_dataset, tmp_path):
    herding = _selection(tiny_dataset)
    torch.save({"images": herding.images, "labels": herding.labels}, tmp_path / "set.pt")
    torch.save(herding.images, tmp_path / "CIFAR_IPC3_images.pt")
    torch.save(herding.labels.float(), tmp_path / "CIFAR_IPC3_labels.pt")  # the public code's float class ids
    for name in ("set.pt", "CIFAR_IPC3_images.pt"):
        assert torch.equal(saved_start(str(tmp_path / name), tiny_dataset, [0, 1, 2], ipc=3), herding.images)


def test_distillation_starts_from_the_saved_images(tiny_dataset, tmp_path):
    herding = _selection(tiny_dataset)
    herding.save(tmp_path / "herding.pt")
    cfg = dict(method="dm", ipc=3, iterations=1, batch_real=8, width=8, lr_img=1e-3, precision="fp32")
    started = distill(tiny_dataset, DistillConfig(**cfg, init=str(tmp_path / "herding.pt")), seed=0, progress=False)
    moved = (started.images - herding.images).abs().max()
    assert 0 < moved < 0.05  # one small step away from the saved images
    real = distill(tiny_dataset, DistillConfig(**cfg), seed=0, progress=False)
    assert (real.images - herding.images).abs().max() > 10 * moved


@pytest.mark.parametrize("make,message", [
    (lambda p, d: p.write_bytes(b"not a tensor file"), "is not a tensor file torch can read"),
    (lambda p, d: torch.save({"images": torch.zeros(9, 3, 16, 16), "labels": torch.arange(9) % 3}, p),
     "but the dataset's images are (3, 32, 32)"),
    (lambda p, d: torch.save({"images": torch.zeros(3, 3, 32, 32), "labels": torch.arange(3)}, p),
     "holds 1 images of class 0, fewer than ipc 2"),
    (lambda p, d: torch.save({"weights": torch.zeros(3)}, p), "holds neither a synthetic set nor"),
])
def test_bad_start_files_are_one_line(tiny_dataset, tmp_path, make, message):
    path = tmp_path / "start.pt"
    make(path, tiny_dataset)
    with pytest.raises(DistillError, match=message.replace("(", r"\(").replace(")", r"\)")):
        saved_start(str(path), tiny_dataset, [0, 1, 2], ipc=2)
    with pytest.raises(DistillError, match="no such file"):
        saved_start(str(tmp_path / "missing.pt"), tiny_dataset, [0], ipc=1)
