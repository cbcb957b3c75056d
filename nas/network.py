"""The NAS-Bench-201 cell network, built exactly as the benchmark trained it (same parameter counts),
or reduced (fewer channels, fewer cells per stage) for cheap proxy training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.core.errors import DistillError
from nas.archs import Genotype, parse_arch

#: The benchmark's network: C = 16 channels in the first stage, N = 5 cells per stage.
FULL_CHANNELS, FULL_CELLS_PER_STAGE = 16, 5


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BatchNorm (affine, running statistics), the benchmark's conv op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the input's shape (cells keep C_in == C_out and stride 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class AvgPool(nn.Module):
    """3x3 average pooling, stride 1, padding not counted (as in the benchmark)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


def make_op(name: str, channels: int) -> nn.Module:
    """One cell edge. Inside a cell channels never change and the stride is 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return AvgPool()
    raise ValueError(f"unknown op {name!r}")  # parse_arch has already rejected it


class Cell(nn.Module):
    """The 4-node DAG: node i is the sum of op(node j) over j < i; the output is node 3.

    Every edge, ``none`` included, is instantiated (the benchmark counts their parameters),
    and a cell whose output is cut off from its input returns zeros of the input's shape.
    """

    def __init__(self, genotype: Genotype, channels: int) -> None:
        super().__init__()
        self.genotype = genotype
        self.edges = nn.ModuleList(make_op(op, channels) for node in genotype for op, _ in node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        edge = 0
        for node in self.genotype:
            total = None
            for _, src in node:
                out = self.edges[edge](nodes[src])
                total = out if total is None else total + out
                edge += 1
            nodes.append(total)
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """The benchmark's reduction block: two ReLU-Conv-BN 3x3 (first with stride 2) plus
    an avg-pool + 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem conv3x3+BN, N cells at C, reduction to 2C, N cells, reduction to 4C, N cells,
    BN-ReLU, global average pooling, linear classifier (NAS-Bench-201's ``TinyNetwork``)."""

    def __init__(self, arch: str, num_classes: int = 10, *, channels: int = 16, cells_per_stage: int = 5,
                 in_channels: int = 3) -> None:
        super().__init__()
        genotype = parse_arch(arch)
        self.arch = arch
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        layers: list[nn.Module] = []
        c_prev = channels
        for stage in range(3):
            c = channels * 2**stage
            if stage > 0:
                layers.append(ResNetBasicBlock(c_prev, c))
            layers.extend(Cell(genotype, c) for _ in range(cells_per_stage))
            c_prev = c
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector fed to the classifier."""
        out = self.lastact(self.cells(self.stem(x)))
        return self.global_pooling(out).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def build_network(arch: str, num_classes: int = 10, *, channels: int = FULL_CHANNELS,
                  cells_per_stage: int = FULL_CELLS_PER_STAGE, in_channels: int = 3) -> nn.Module:
    """The network for ``arch``: the benchmark's (C=16, N=5) by default, or a reduced one (EcoNAS).

    Raises:
        DistillError: for a malformed arch string or a size below 1.
    """
    for name, value in (("channels", channels), ("cells_per_stage", cells_per_stage), ("num_classes", num_classes)):
        if value < 1:
            raise DistillError(f"the network's {name} must be at least 1, got {value}; "
                               f"pass --{name.replace('_', '-')} 1 or more")
    return NB201Network(arch, num_classes, channels=channels, cells_per_stage=cells_per_stage,
                        in_channels=in_channels)


def resize_images(images: Tensor, resolution: int) -> Tensor:
    """``images`` (N, C, H, W) at ``resolution`` x ``resolution``: area averaging when shrinking
    (32 -> 16 is a 2x2 average pool), bilinear when enlarging, unchanged at their own size."""
    if resolution < 1:
        raise DistillError(f"the proxy resolution must be at least 1 pixel, got {resolution}; "
                           "pass --resolution 8 or more")
    if images.shape[-2:] == (resolution, resolution):
        return images
    if resolution < min(images.shape[-2:]):
        return F.interpolate(images, size=(resolution, resolution), mode="area")
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["FULL_CELLS_PER_STAGE", "FULL_CHANNELS", "AvgPool", "build_network", "Cell", "count_parameters", "make_op",
           "NB201Network", "ReLUConvBN", "resize_images", "ResNetBasicBlock", "Zero"]
