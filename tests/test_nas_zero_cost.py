"""Zero-cost proxies: hand-checked values on a tiny network, no data needed, the model left intact."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.network import build_network
from nas.zero_cost import naswot, parameter_count, synflow


def _tiny() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 1, bias=True))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
        model[3].weight.copy_(torch.tensor([[-1.0, 2.0]]))
        model[3].bias.fill_(-5.0)
        model[1].running_mean.fill_(7.0)  # statistics that would change the value if BatchNorm counted
        model[1].weight.fill_(-3.0)
    return model


def test_synflow_hand_checked_value():
    # With |θ|, ones input and no BatchNorm: h = |W1| 1 = (3, 7), R = |W2| h + |b| = 3 + 14 + 5.
    # Layer W2 contributes Σ |w2 ⊙ h| = 17; layer W1 contributes Σ_ij |w1_ij| |w2_i| = 3 + 14 = 17.
    # The bias and the BatchNorm parameters are not scored.
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert synflow(model, (2,)) == pytest.approx(34.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # model untouched
    assert all(p.grad is None for p in model.parameters()) and model[0].weight.dtype == torch.float32


def test_parameter_count_hand_checked_value():
    assert parameter_count(_tiny()) == 4 + 2 + 2 + 1 + 2  # W1, BN weight and bias, W2, bias


def test_synflow_on_nb201_cells_needs_no_data_and_orders_obvious_cases():
    torch.manual_seed(0)
    conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    pool = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"
    scores = {arch: synflow(build_network(arch)) for arch in (conv, pool)}
    assert all(0 < s < float("inf") for s in scores.values())
    assert scores[conv] > scores[pool]
    assert parameter_count(build_network(conv)) == 1_531_546


def test_naswot_hand_checked_value():
    # One ReLU; codes (x > 0) of the two images: (1, 0, 1) and (1, 1, 0). K_H = N_A - Hamming distance:
    # [[3, 1], [1, 3]], so log det = log 8.
    images = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -3.0]])
    assert naswot(nn.Sequential(nn.ReLU()), images) == pytest.approx(math.log(8.0))
    # Two ReLUs add their kernels: the second sees the first's output, codes (1, 0, 1) and (1, 1, 0) again.
    assert naswot(nn.Sequential(nn.ReLU(), nn.ReLU()), images) == pytest.approx(math.log(36.0 - 4.0))
    # Identical codes make K_H singular: the lowest score, still a finite float.
    same = torch.tensor([[1.0, -1.0], [2.0, -5.0]])
    assert naswot(nn.Sequential(nn.ReLU()), same) == -1.7976931348623157e308


def test_naswot_leaves_the_model_unchanged_and_scores_nb201_cells():
    torch.manual_seed(0)
    model = build_network("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    score = naswot(model, torch.randn(16, 3, 32, 32))
    assert math.isfinite(score) and score > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
