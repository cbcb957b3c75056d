"""Zero-cost proxies: hand-checked values on a tiny network, no data needed, the model left intact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.network import build_network
from nas.zero_cost import parameter_count, synflow


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
