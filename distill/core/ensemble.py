"""Several ConvNets of one architecture trained as one network: the same math per net, fewer and larger kernels.

An evaluation trains 3-10 fresh ConvNets on the same small set, one after another. On a small set
each step is mostly fixed cost, so :class:`ConvNetEnsemble` stacks the nets along the channel axis:
grouped convolutions (one group per net), per-channel norms (instance norm and BatchNorm are both
per channel, so stacking changes nothing), and a batched classifier. Net ``i`` sees its own
minibatch in channels ``[i*C, (i+1)*C)``; the loss is the sum of the nets' losses, whose gradient
with respect to each net's weights is that net's own. SGD is elementwise, so one optimizer over
the stacked weights updates each net exactly as its own optimizer would.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from distill.core.networks import ConvNet


def stackable(models: Sequence[nn.Module]) -> bool:
    """Whether ``models`` are ConvNets of one architecture with the norms the ensemble supports."""
    if len(models) < 2 or not all(type(m) is ConvNet for m in models):
        return False
    shapes = [[tuple(p.shape) for p in m.parameters()] for m in models]
    norms = {type(b.norm) for m in models for b in m.blocks}
    return all(s == shapes[0] for s in shapes) and norms <= {nn.GroupNorm, nn.BatchNorm2d, nn.Identity}


class ConvNetEnsemble(nn.Module):
    """``n`` ConvNets as one module; input (B, n*C, H, W), output (B, n, classes)."""

    def __init__(self, models: Sequence[ConvNet]) -> None:
        super().__init__()
        if not stackable(models):
            raise ValueError("ConvNetEnsemble needs two or more ConvNets of one architecture")
        self.n = n = len(models)
        self.blocks = nn.ModuleList()
        for d, first in enumerate(models[0].blocks):
            convs = [m.blocks[d].conv for m in models]
            conv = nn.Conv2d(n * first.conv.in_channels, n * first.conv.out_channels, 3, padding=1, groups=n)
            block = nn.Module()
            block.conv = conv
            block.norm = _stack_norm([m.blocks[d].norm for m in models])
            block.act, block.pool = first.act, first.pool
            with torch.no_grad():
                conv.weight.copy_(torch.cat([c.weight for c in convs]))
                conv.bias.copy_(torch.cat([c.bias for c in convs]))
            self.blocks.append(block)
        self.weight = nn.Parameter(torch.stack([m.classifier.weight.detach() for m in models]).clone())
        self.bias = nn.Parameter(torch.stack([m.classifier.bias.detach() for m in models]).clone())

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block.pool(block.act(block.norm(block.conv(x))))
        features = x.reshape(x.shape[0], self.n, -1)  # net i's channels are contiguous: its own flatten order
        return torch.einsum("bnd,nkd->bnk", features, self.weight) + self.bias

    @torch.no_grad()
    def write_back(self, models: Sequence[ConvNet]) -> None:
        """Copy each net's trained weights (and BatchNorm statistics) into ``models``."""
        for i, model in enumerate(models):
            for block, mine in zip(self.blocks, model.blocks):
                c = mine.conv.out_channels
                part = slice(i * c, (i + 1) * c)
                mine.conv.weight.copy_(block.conv.weight[part])
                mine.conv.bias.copy_(block.conv.bias[part])
                for name, tensor in list(mine.norm.named_parameters()) + list(mine.norm.named_buffers()):
                    source = getattr(block.norm, name)
                    tensor.copy_(source if tensor.dim() == 0 else source[part])
            model.classifier.weight.copy_(self.weight[i])
            model.classifier.bias.copy_(self.bias[i])


def _stack_norm(norms: Sequence[nn.Module]) -> nn.Module:
    first = norms[0]
    if isinstance(first, nn.GroupNorm):  # GroupNorm(C, C): one group per channel, so n*C groups over n*C channels
        stacked: nn.Module = nn.GroupNorm(len(norms) * first.num_groups, len(norms) * first.num_channels,
                                          eps=first.eps, affine=first.affine)
    elif isinstance(first, nn.BatchNorm2d):
        stacked = nn.BatchNorm2d(len(norms) * first.num_features, eps=first.eps, momentum=first.momentum)
    else:
        return first
    with torch.no_grad():
        for name, tensor in list(stacked.named_parameters()) + list(stacked.named_buffers()):
            parts = [getattr(n, name) for n in norms]
            tensor.copy_(parts[0] if tensor.dim() == 0 else torch.cat(parts))
    return stacked


__all__ = ["ConvNetEnsemble", "stackable"]
