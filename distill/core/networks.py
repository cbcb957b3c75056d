"""The ConvNet family and the cross-architecture nets (AlexNet, VGG-11, ResNet-18) for small images."""

from __future__ import annotations

import operator
from typing import Callable

import torch
from torch import Tensor, nn

from distill.core.errors import DistillError
from distill.core.registry import Registry

#: ``name -> builder(num_classes=, channels=, image_size=, **kwargs)``
NETWORKS: Registry[Callable[..., nn.Module]] = Registry("network")


def register_network(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder ``fn(num_classes=, channels=, image_size=, **kwargs) -> nn.Module``."""
    return NETWORKS.decorator(name)


def list_networks() -> list[str]:
    return sorted(NETWORKS)


def get_network(name: str, *, num_classes: int, channels: int = 3, image_size: int = 32, **kwargs) -> nn.Module:
    """Build a freshly initialised network by registry name (see :func:`list_networks`)."""
    build = NETWORKS.get(name)  # an unknown name: one line listing the registered ones
    try:
        count = operator.index(num_classes)  # an int, numpy or torch integer; 0.7 or "3" are refused
    except TypeError:
        count = 0
    if count < 2 or isinstance(num_classes, bool):
        raise DistillError(f"num_classes must be an integer of at least 2 (a classifier needs two outputs), got "
                           f"{num_classes!r}; pass the number of classes")
    return build(num_classes=count, channels=channels, image_size=image_size, **kwargs)


#: The norms a ConvNet layer takes (``--norm``).
NORMS = ("instancenorm", "batchnorm", "none")


def make_norm(norm: str, width: int) -> nn.Module:
    if norm == "instancenorm":
        # GroupNorm with one group per channel is instance norm with a learnable affine, as in DC/DM/DataDAM.
        return nn.GroupNorm(width, width, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(width)
    if norm == "none":
        return nn.Identity()
    raise DistillError(f"unknown norm {norm!r}; use {', '.join(NORMS)}")


def make_act(act: str) -> nn.Module:
    # In place: the norm output is not needed by autograd, and one activation-sized buffer is saved per block.
    acts = {"relu": lambda: nn.ReLU(inplace=True), "sigmoid": nn.Sigmoid,
            "leakyrelu": lambda: nn.LeakyReLU(0.01, inplace=True)}
    if act not in acts:
        raise DistillError(f"unknown activation {act!r}; use {', '.join(acts)}")
    return acts[act]()


def make_pool(pooling: str) -> nn.Module:
    pools = {"avgpooling": lambda: nn.AvgPool2d(2, 2), "maxpooling": lambda: nn.MaxPool2d(2, 2), "none": nn.Identity}
    if pooling not in pools:
        raise DistillError(f"unknown pooling {pooling!r}; use {', '.join(pools)}")
    return pools[pooling]()


class ConvBlock(nn.Module):
    """conv3x3 -> norm -> activation; the pooling is applied by the caller after reading the activation."""

    def __init__(self, in_channels: int, width: int, norm: str, act: str, pooling: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.norm = make_norm(norm, width)
        self.act = make_act(act)
        self.pool = make_pool(pooling)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class ConvNet(nn.Module):
    """ConvNet-D of DC/DM/DataDAM: D blocks of [conv3x3 -> norm -> act -> pool], then a linear layer."""

    def __init__(self, *, num_classes: int, channels: int = 3, image_size: int = 32, depth: int = 3,
                 width: int = 128, norm: str = "instancenorm", act: str = "relu", pooling: str = "avgpooling") -> None:
        super().__init__()
        if depth < 1:
            raise DistillError(f"ConvNet depth must be at least 1, got {depth}")
        self.blocks = nn.ModuleList()
        size = image_size
        for d in range(depth):
            self.blocks.append(ConvBlock(channels if d == 0 else width, width, norm, act, pooling))
            if pooling != "none":
                size //= 2
        self.embedding_dim = width * size * size
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The activation of every block (before pooling) and the flattened embedding, without hooks."""
        activations = []
        for block in self.blocks:
            x = block(x)
            activations.append(x)
            x = block.pool(x)
        return activations, x.flatten(1)

    def embed(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block.pool(block(x))
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


@register_network("convnet")
def convnet(**kwargs) -> nn.Module:
    return ConvNet(**kwargs)


def _register_depth(depth: int) -> None:
    @register_network(f"convnet{depth}")
    def build(**kwargs) -> nn.Module:
        return ConvNet(depth=depth, **kwargs)


for _d in (1, 2, 3, 4):
    _register_depth(_d)


class AlexNet(nn.Module):
    """The AlexNet variant for 32x32 inputs used in the DC/DM cross-architecture tables."""

    def __init__(self, *, num_classes: int, channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 5, padding=4 if image_size == 28 else 2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(128, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(192, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(192 * (32 // 8) ** 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_network("alexnet")
def alexnet(**kwargs) -> nn.Module:
    return AlexNet(**kwargs)


class VGG11(nn.Module):
    """VGG-11 for 32x32 inputs (instance norm by default, as in the DC code's cross-architecture runs)."""

    CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")

    def __init__(self, *, num_classes: int, channels: int = 3, image_size: int = 32, norm: str = "instancenorm") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = channels
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), make_norm(norm, int(v)), nn.ReLU(inplace=True)]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512 * (image_size // 32) ** 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_network("vgg11")
def vgg11(**kwargs) -> nn.Module:
    return VGG11(**kwargs)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = make_norm(norm, planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), make_norm(norm, planes))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool)."""

    def __init__(self, *, num_classes: int, channels: int = 3, image_size: int = 32, norm: str = "instancenorm") -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, 1, 1, bias=False), make_norm(norm, 64), nn.ReLU(inplace=True))
        layers, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(in_planes, planes, stride, norm), BasicBlock(planes, planes, 1, norm)]
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@register_network("resnet18")
def resnet18(**kwargs) -> nn.Module:
    return ResNet18(**kwargs)


@torch.no_grad()
def init_parameters(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every parameter as PyTorch's default init would, from ``generator`` (no global RNG).

    Reusing one module and re-drawing its weights in place is how the distillation loop samples
    a fresh random encoder every iteration without rebuilding (or recompiling) it.
    """
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            bound = 1.0 / fan_in**0.5  # kaiming_uniform_(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            module.weight.copy_(torch.empty(module.weight.shape).uniform_(-bound, bound, generator=generator))
            if module.bias is not None:
                module.bias.copy_(torch.empty(module.bias.shape).uniform_(-bound, bound, generator=generator))
        elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d)):
            if module.weight is not None:
                module.weight.fill_(1.0)
                module.bias.zero_()
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
    return net


__all__ = ["NORMS", "VGG11", "AlexNet", "alexnet", "BasicBlock", "ConvBlock", "ConvNet", "convnet", "get_network",
           "init_parameters", "list_networks", "make_act", "make_norm", "make_pool", "register_network", "ResNet18",
           "resnet18", "vgg11"]
