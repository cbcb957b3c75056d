"""The NAS-Bench-201 network: builds for every op, right shapes, exact benchmark parameter counts."""

from __future__ import annotations

import pytest
import torch

from distill.core.errors import DistillError
from nas.archs import OPS, uniform_arch
from nas.network import build_network, count_parameters, resize_images

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


DISCONNECTED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize(("arch", "params"), [
    (BEST, 1_073_466),
    (uniform_arch("nor_conv_3x3"), 1_531_546),
    (uniform_arch("none"), 73_306),
])
def test_parameter_counts_equal_benchmark(arch, params):
    assert count_parameters(build_network(arch, num_classes=10)) == params


@pytest.mark.parametrize("op", OPS)
def test_every_op_builds_and_trains(op):
    torch.manual_seed(0)
    model = build_network(uniform_arch(op), num_classes=7)
    x = torch.randn(4, 3, 16, 16)
    logits = model(x)
    assert logits.shape == (4, 7)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    if op != "none":  # with 'none' everywhere the stem and cell-stage-1 are cut off from the loss
        assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(("channels", "cells", "resolution"), [(8, 5, 16), (4, 1, 8), (3, 2, 32), (16, 1, 12)])
def test_reduced_network_builds_for_every_op(op, channels, cells, resolution):
    torch.manual_seed(0)
    model = build_network(uniform_arch(op), num_classes=10, channels=channels, cells_per_stage=cells)
    logits = model(resize_images(torch.randn(3, 3, 32, 32), resolution))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    # N cells per stage, 3 stages, 2 reduction blocks; the classifier reads 4C features.
    assert len(model.cells) == 3 * cells + 2 and model.classifier.in_features == 4 * channels
    assert model.stem[0].out_channels == channels


def test_reduced_network_is_smaller_and_sizes_are_checked():
    full, reduced = build_network(BEST), build_network(BEST, channels=8, cells_per_stage=5)
    assert count_parameters(reduced) < count_parameters(full) / 3
    with pytest.raises(DistillError, match="channels"):
        build_network(BEST, channels=0)
    with pytest.raises(DistillError, match="cells-per-stage"):
        build_network(BEST, cells_per_stage=0)


def test_resize_images_averages_when_shrinking():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(resize_images(x, 2), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert resize_images(x, 4) is x and resize_images(x, 8).shape == (1, 1, 8, 8)
    with pytest.raises(DistillError, match="resolution"):
        resize_images(x, 0)


def test_disconnected_cell_outputs_zeros():
    model = build_network(DISCONNECTED).eval()
    cell = model.cells[0]
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(cell(x), torch.zeros_like(x))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_skip_only_cell_is_identity_sum():
    arch = "|skip_connect~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|"
    cell = build_network(arch).cells[0]
    x = torch.randn(2, 16, 4, 4)
    assert torch.allclose(cell(x), x)


def test_malformed_arch_raises():
    with pytest.raises(DistillError):
        build_network("|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|")
