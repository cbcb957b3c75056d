"""BatchNorm recalibration of a briefly trained candidate, and the even spread it draws from."""

from __future__ import annotations

import torch
from torch import nn

from nas.proxies import recalibrate_batchnorm, spread


def test_recalibration_sets_exact_statistics_and_restores_momentum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    model[1].running_mean.fill_(5.0)  # stale statistics, as after a short training run
    images = torch.randn(10, 3, 6, 6) * 2 + 1
    recalibrate_batchnorm(model, images, batch_size=5, device=torch.device("cpu"))
    with torch.no_grad():
        features = model[0](images)
    assert torch.allclose(model[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    # Two equal batches: the cumulative average of their unbiased variances.
    batches = [features[:5], features[5:]]
    expected_var = torch.stack([b.permute(1, 0, 2, 3).reshape(4, -1).var(dim=1) for b in batches]).mean(0)
    assert torch.allclose(model[1].running_var, expected_var, atol=1e-4)
    assert model[1].momentum == 0.1 and not model.training


def test_spread_covers_a_class_sorted_set():
    labels = torch.arange(10).repeat_interleave(50)
    picked = spread(labels, 20)
    assert len(picked) == 20 and set(picked.tolist()) == set(range(10))
    assert spread(labels, 0) is labels and torch.equal(spread(labels[:5], 20), labels[:5])
