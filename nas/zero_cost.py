"""Zero-cost proxies: score an untrained network from its weights (and, for NASWOT, one batch of images)."""

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


@torch.no_grad()
def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """NASWOT (Mellor et al., ICML 2021): log |det K_H| for one batch of ``images``.

    Every ReLU's input is binarised (x > 0) per image into a code c; K_H[i, j] sums, over the ReLUs,
    the number of units where images i and j agree (N_A minus the Hamming distance of their codes).
    The network runs on a copy in training mode (batch statistics), so ``model`` is left unchanged.
    A singular K_H (two images with identical codes everywhere) scores -inf as in the paper's code;
    here it is returned as the lowest finite float so results stay valid JSON.
    """
    net = copy.deepcopy(model).train()
    kernel = torch.zeros(len(images), len(images), dtype=torch.float64, device=images.device)

    def accumulate(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes = (inputs[0].detach().flatten(1) > 0).double()
        kernel.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_pre_hook(accumulate) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        net(images)
    finally:
        for hook in hooks:
            hook.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    value = float(logdet)
    return value if sign > 0 and value != float("-inf") else -1.7976931348623157e308


__all__ = ["naswot", "parameter_count", "synflow"]
