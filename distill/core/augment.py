"""Differentiable Siamese Augmentation (DSA, Zhao & Bilen 2021): seeded, shared between batches, differentiable."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.core.errors import DistillError
from distill.core.seeds import generator

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
GROUPS = ("color", "crop", "cutout", "flip", "scale", "rotate")

# Ranges of the DSA code (ParamDiffAug): METHOD.md §3.
BRIGHTNESS = 1.0
SATURATION = 2.0
CONTRAST = 0.5
CROP_RATIO = 0.125
CUTOUT_RATIO = 0.5
FLIP_PROB = 0.5
SCALE_RATIO = 1.2
ROTATE_DEGREES = 15.0


@dataclass
class AugParams:
    """One draw: the group picked and its parameters, ``n`` rows (1 row = shared by every image)."""

    group: str
    values: dict[str, Tensor]


class DSA:
    """DSA in "single" mode: each call picks one group of the strategy and applies it.

    Args:
        strategy: groups joined by ``_`` (``color``, ``crop``, ``cutout``, ``flip``, ``scale``, ``rotate``),
            or ``none`` for the identity.
    """

    def __init__(self, strategy: str = DEFAULT_STRATEGY) -> None:
        self.groups = () if strategy in ("", "none") else tuple(strategy.split("_"))
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown:
            raise DistillError(f"unknown DSA group(s) {', '.join(unknown)} in {strategy!r}; use groups of {'_'.join(GROUPS)}")
        self.strategy = strategy

    def sample(self, generator: torch.Generator, n: int = 1) -> AugParams | None:
        """Draw a group and its parameters for ``n`` images (``n=1``: shared, the Siamese case)."""
        if not self.groups:
            return None
        group = self.groups[int(torch.randint(len(self.groups), (1,), generator=generator))]
        u = lambda: torch.rand(n, generator=generator)  # noqa: E731
        if group == "color":
            values = {"brightness": u(), "saturation": u(), "contrast": u()}
        elif group in ("crop", "cutout"):
            values = {"x": u(), "y": u()}
        else:
            values = {"u": u()} if group != "scale" else {"sx": u(), "sy": u()}
        return AugParams(group, values)

    def apply(self, x: Tensor, params: AugParams | None) -> Tensor:
        """Apply a draw to ``x`` (N, C, H, W); rows of ``params`` broadcast over the batch."""
        if params is None:
            return x
        v = {k: t.to(x.device, x.dtype) for k, t in params.values.items()}
        return _OPS[params.group](x, v)

    def __call__(self, x: Tensor, generator: torch.Generator, *, siamese: bool = True) -> Tensor:
        """Augment ``x``: one draw shared by all images (``siamese``) or one per image."""
        return self.apply(x, self.sample(generator, 1 if siamese else x.shape[0]))


def dsa_seeded(x: Tensor, seed: int, strategy: str = DEFAULT_STRATEGY) -> Tensor:
    """Augment with a shared draw from ``seed``: two calls with one seed augment two batches alike."""
    return DSA(strategy)(x, generator(seed))


def _col(t: Tensor) -> Tensor:
    return t.view(-1, 1, 1, 1)


def _color(x: Tensor, v: dict[str, Tensor]) -> Tensor:
    x = x + (_col(v["brightness"]) - 0.5) * BRIGHTNESS
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_col(v["saturation"]) * SATURATION) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_col(v["contrast"]) + CONTRAST) + mean


def _integer_in(u: Tensor, low: int, high: int) -> Tensor:
    """Map u in [0, 1) to an integer in [low, high] (inclusive)."""
    return (low + torch.floor(u * (high - low + 1))).long()


def _crop(x: Tensor, v: dict[str, Tensor]) -> Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * CROP_RATIO + 0.5), int(w * CROP_RATIO + 0.5)
    tx = _integer_in(v["x"], -sh, sh)
    ty = _integer_in(v["y"], -sw, sw)
    padded = F.pad(x, (sw, sw, sh, sh))
    if len(tx) == 1:  # shared shift: a plain slice
        r, c = sh + int(tx), sw + int(ty)
        return padded[:, :, r:r + h, c:c + w]
    rows = torch.arange(h, device=x.device) + (tx.to(x.device) + sh).view(-1, 1)
    cols = torch.arange(w, device=x.device) + (ty.to(x.device) + sw).view(-1, 1)
    batch = torch.arange(n, device=x.device).view(-1, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _cutout(x: Tensor, v: dict[str, Tensor]) -> Tensor:
    _, _, h, w = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    ox = _integer_in(v["x"], 0, h - (ch % 2)).to(x.device).view(-1, 1) - ch // 2
    oy = _integer_in(v["y"], 0, w - (cw % 2)).to(x.device).view(-1, 1) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, -1)
    cols = torch.arange(w, device=x.device).view(1, -1)
    in_rows = (rows >= ox) & (rows < ox + ch)
    in_cols = (cols >= oy) & (cols < oy + cw)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep.unsqueeze(1).to(x.dtype)


def _flip(x: Tensor, v: dict[str, Tensor]) -> Tensor:
    flip = v["u"] < FLIP_PROB
    if len(flip) == 1:
        return x.flip(3) if bool(flip) else x
    return torch.where(_col(flip), x.flip(3), x)


def _affine(x: Tensor, theta: Tensor) -> Tensor:
    theta = theta.expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _scale(x: Tensor, v: dict[str, Tensor]) -> Tensor:
    lo = 1.0 / SCALE_RATIO
    sx = v["sx"] * (SCALE_RATIO - lo) + lo
    sy = v["sy"] * (SCALE_RATIO - lo) + lo
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    return _affine(x, theta)


def _rotate(x: Tensor, v: dict[str, Tensor]) -> Tensor:
    angle = (v["u"] - 0.5) * 2 * ROTATE_DEGREES / 180 * math.pi
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _affine(x, theta)


_OPS = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}


__all__ = ["BRIGHTNESS", "CONTRAST", "CROP_RATIO", "CUTOUT_RATIO", "DEFAULT_STRATEGY", "DSA", "FLIP_PROB", "GROUPS",
           "ROTATE_DEGREES", "SATURATION", "SCALE_RATIO", "AugParams", "dsa_seeded"]
