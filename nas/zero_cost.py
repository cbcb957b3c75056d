"""Zero-cost proxies: score an untrained network from its weights alone, with no training data."""

from __future__ import annotations

import copy

import torch
from torch import nn


def parameter_count(model: nn.Module) -> float:
    """Number of parameters (NAS-Bench-201's #params), a strong free baseline on that space."""
    return float(sum(p.numel() for p in model.parameters()))


def _without_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm replaced by the identity (the synflow paper scores the
    network built without BatchNorm: ``get_prunable_copy(bn=False)`` of Abdelfattah et al.)."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
    return model


def synflow(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> float:
    """SynFlow (Tanaka et al. 2020) as a NAS proxy (Abdelfattah et al., ICLR 2021).

    On a float64 copy of ``model`` without BatchNorm, with every parameter replaced by its absolute
    value, R is the sum of the output for one all-ones input; the score is Σ |θ ⊙ ∂R/∂θ| over the
    weights of the convolutions and linear layers (biases and norms excluded, as in the paper's code).
    ``model`` itself is left unchanged.

    Args:
        input_shape: the shape of one input image (channels, height, width).
    """
    net = _without_batchnorm(model).double().train()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    device = next(net.parameters()).device
    net(torch.ones((1, *input_shape), dtype=torch.float64, device=device)).sum().backward()
    score = 0.0
    for layer in net.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.weight.grad is not None:
            score += float((layer.weight.detach() * layer.weight.grad).abs().sum())
    return score
