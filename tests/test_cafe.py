"""CAFE: the loss against its formula, the watchers that end its two loops, a smoke run."""

import pytest
import torch
import torch.nn.functional as F

from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill, get_method, list_methods
from distill.methods import cafe
from distill.methods.cafe import INNER_WEIGHT, _settled, cafe_loss, feature_maps
from distill.core.networks import ConvNet


def test_loss_is_weighted_alignment_of_class_means_plus_centres_plus_discrimination():
    g = torch.Generator().manual_seed(0)
    real = [torch.randn(6, 4, generator=g), torch.randn(6, 2, 3, 3, generator=g), torch.randn(6, 2, 5, 5, generator=g)]
    syn = [torch.randn(2, 4, generator=g), torch.randn(2, 2, 3, 3, generator=g), torch.randn(2, 2, 5, 5, generator=g)]
    weights = (1.0, 1.0, 0.1)
    expected = 0.0
    for w, r, s in zip(weights, real, syn):  # two classes: real rows 0-2 and 3-5, synthetic rows 0 and 1
        rm = torch.stack([r[:3].mean(0), r[3:].mean(0)])
        expected += w * ((rm - s) ** 2).sum()
    centres = syn[0]
    expected += ((torch.stack([real[0][:3].mean(0), real[0][3:].mean(0)]) - centres) ** 2).sum()
    logits = real[0] @ centres.T
    expected += INNER_WEIGHT * F.cross_entropy(logits, torch.tensor([0, 0, 0, 1, 1, 1]), reduction="sum")
    assert cafe_loss(real, syn, 2).item() == pytest.approx(expected.item(), rel=1e-6)


def test_feature_maps_are_the_pooled_output_then_each_block_deepest_first():
    net = ConvNet(num_classes=2, image_size=8, depth=2, width=4)
    maps = feature_maps(net, torch.randn(3, 3, 8, 8))
    assert [tuple(m.shape) for m in maps] == [(3, 4 * 2 * 2), (3, 4, 4, 4), (3, 4, 8, 8)]


def test_watchers_end_the_loops_as_the_public_code():
    flat = [0.50 + 0.001 * i for i in range(10)]
    assert _settled(flat, below=0.04) and not _settled(flat[:9], below=0.04)
    moving = [0.1 * i for i in range(10)]
    assert _settled(moving, above=0.03) and not _settled(flat, above=0.03)


def test_registered_and_runs_its_smoke_preset_in_seconds(tiny_dataset, monkeypatch):
    import time

    assert "cafe" in list_methods() and not get_method("cafe").per_class
    cfg = DistillConfig(method="cafe", ipc=2, precision="fp32", **get_method("cafe").presets["smoke"])
    assert cfg.resolved("cpu").lr_img == 0.1 and get_method("cafe").presets["paper"]["iterations"] == 2000
    monkeypatch.setattr(cafe, "MAX_UPDATES", 3)
    monkeypatch.setattr(cafe, "MAX_EPOCHS", 2)
    began = time.perf_counter()
    out = distill(tiny_dataset, cfg, seed=0, progress=False)
    assert time.perf_counter() - began < 10
    assert out.images.shape == (6, 3, 32, 32) and torch.isfinite(out.images).all()
    assert not torch.equal(out.images, distill(tiny_dataset, DistillConfig(method="random", ipc=2), progress=False).images)
    # Caps of 3 updates and 2 epochs: neither watcher (10 values) can end a loop, so every loop is cut and counted.
    n = cfg.iterations
    assert out.config["cafe_loops"] == {"iterations": n, "iterations_capped": n, "updates": 3 * n, "phases": 3 * n,
                                        "phases_capped": 3 * n, "epochs": 6 * n}


def test_refuses_depths_beyond_its_weights(tiny_dataset):
    with pytest.raises(DistillError, match="--depth 3"):
        distill(tiny_dataset, DistillConfig(method="cafe", ipc=1, iterations=1, depth=4, width=8), progress=False)
