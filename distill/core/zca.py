"""ZCA whitening (as MTT and KIP use it on CIFAR): fit on the training set, applied to train and test alike.

The public MTT code fits Kornia's ``ZCAWhitening(eps=0.1)`` on [0, 1] pixels; our images are normalised,
so whitening first undoes the normalisation, and the regularisation means the same as theirs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from distill.core.cache import cache_dir, content_key
from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.core.store import load_entry, save_entry

log = logging.getLogger(__name__)

#: Kornia's ZCAWhitening ``eps`` in the MTT code (utils.py line 147).
EPS = 0.1
_CHUNK = 4096


def _channel(values: tuple[float, ...], like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


def _pixels(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Normalised images back to pixel values (unclamped: whitening must be invertible)."""
    return x * _channel(std, x) + _channel(mean, x)


@dataclass
class ZCA:
    """Whitening statistics of a training set: the pixel mean and the eigen-decomposition of the pixel covariance.

    ``whiten(x) = U diag((s + eps)^-1/2) U^T (pixels(x) - mean)`` with ``pixels`` undoing ``x``'s normalisation.
    """

    mean: Tensor       # (D,) pixel mean, D = C*H*W
    eigvecs: Tensor    # (D, D), columns
    eigvals: Tensor    # (D,)
    eps: float
    norm_mean: tuple[float, ...]  # the normalisation the images carry, undone before whitening
    norm_std: tuple[float, ...]

    def _rotate(self, flat: Tensor, power: float) -> Tensor:
        u = self.eigvecs.to(flat.device, flat.dtype)
        scale = (self.eigvals.to(flat.device, flat.dtype) + self.eps) ** power
        return ((flat @ u) * scale) @ u.T

    def whiten(self, x: Tensor) -> Tensor:
        """Whitened copies of normalised images ``x`` (N, C, H, W)."""
        if x[0].numel() != len(self.mean):
            raise DistillError(f"ZCA was fit on images of {len(self.mean)} values, got {tuple(x.shape[1:])}; "
                               f"whiten images of the dataset it was fit on")
        flat = _pixels(x, self.norm_mean, self.norm_std).flatten(1) - self.mean.to(x.device, x.dtype)
        return self._rotate(flat, -0.5).view_as(x)

    def unwhiten(self, w: Tensor) -> Tensor:
        """The normalised images whose whitening is ``w`` (the inverse of :meth:`whiten`)."""
        flat = self._rotate(w.flatten(1), 0.5) + self.mean.to(w.device, w.dtype)
        m, s = _channel(self.norm_mean, w), _channel(self.norm_std, w)
        return (flat.view_as(w) - m) / s

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "eigvecs": self.eigvecs, "eigvals": self.eigvals, "eps": self.eps,
                "norm_mean": list(self.norm_mean), "norm_std": list(self.norm_std)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ZCA":
        return cls(state["mean"], state["eigvecs"], state["eigvals"], float(state["eps"]),
                   tuple(state["norm_mean"]), tuple(state["norm_std"]))


def fit_zca(train: ClassDataset, eps: float = EPS) -> ZCA:
    """Fit on every image of ``train``: unbiased pixel covariance, accumulated in float64 chunk by chunk."""
    n = len(train)
    if n < 2:
        raise DistillError(f"ZCA needs at least 2 training images to estimate a covariance, got {n}")
    total = torch.zeros(train.images[0].numel(), dtype=torch.float64)
    for i in range(0, n, _CHUNK):
        total += _pixels(train.images[i:i + _CHUNK], train.mean, train.std).flatten(1).double().sum(0)
    mean = total / n
    cov = torch.zeros(len(mean), len(mean), dtype=torch.float64)
    for i in range(0, n, _CHUNK):
        centred = _pixels(train.images[i:i + _CHUNK], train.mean, train.std).flatten(1).double() - mean
        cov += centred.T @ centred
    eigvals, eigvecs = torch.linalg.eigh(cov / (n - 1))
    return ZCA(mean.float(), eigvecs.float(), eigvals.clamp_min(0).float(), eps, train.mean, train.std)


def fit_zca_cached(train: ClassDataset, eps: float = EPS) -> ZCA:
    """:func:`fit_zca`, cached in ``$DISTILL_CACHE_DIR/zca`` keyed by the images' content (CIFAR-10: ~1 min once)."""
    key = content_key({"eps": eps, "mean": list(train.mean), "std": list(train.std)}, train.images, length=16)
    path = cache_dir() / "zca" / f"zca-{key}.pt"
    state = load_entry(path)  # checked against its digest; a damaged entry is named, deleted and refit
    if state is not None:
        return ZCA.from_state(state)
    zca = fit_zca(train, eps)
    try:
        save_entry(zca.state_dict(), path)
    except OSError as exc:
        log.warning("could not cache the ZCA statistics in %s: %s", path, exc)
    return zca


def whiten_dataset(data: ClassDataset, zca: ZCA) -> ClassDataset:
    """``data`` with whitened images (labels, names and normalisation record kept), chunk by chunk."""
    images = torch.cat([zca.whiten(data.images[i:i + _CHUNK]) for i in range(0, len(data), _CHUNK)])
    return ClassDataset(images, data.labels, list(data.class_names), data.mean, data.std)


def zca_of(synthetic: Any) -> ZCA | None:
    """The ZCA a :class:`~distill.core.synthetic.SyntheticSet` was distilled under (``None``: not whitened).

    Evaluate such a set on ``whiten_dataset(test, zca_of(set))``, never on raw test images.
    """
    state = synthetic.config.get("zca_statistics")
    return ZCA.from_state(state) if state is not None else None


def whitened_like(test: ClassDataset, synthetic: Any) -> ClassDataset:
    """``test`` as ``synthetic``'s images see it: whitened with the set's statistics if it was distilled under ZCA
    (MTT's sets), else unchanged. Every evaluation of a set goes through this."""
    zca = zca_of(synthetic)
    return test if zca is None else whiten_dataset(test, zca)


__all__ = ["EPS", "ZCA", "fit_zca", "fit_zca_cached", "whitened_like", "whiten_dataset", "zca_of"]
