"""Plots written next to results (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from distill.io import atomic_write_bytes


def save_figure(fig, path: str | Path) -> None:  # noqa: ANN001 - a matplotlib Figure
    """Save a figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_loss(curve: Sequence[Sequence[float]], path: str | Path, *, title: str) -> None:
    """Distillation loss against iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if curve:
        its, losses = zip(*curve)
        ax.plot(its, losses, lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("matching loss (sum over classes)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def downsample(curve: Sequence[Sequence[float]], points: int = 400) -> list[list[float]]:
    """Average consecutive windows so a long curve stays readable in results.json."""
    if len(curve) <= points:
        return [[int(i), float(v)] for i, v in curve]
    size = len(curve) / points
    out = []
    for p in range(points):
        window = curve[int(p * size):int((p + 1) * size)]
        out.append([int(window[-1][0]), sum(v for _, v in window) / len(window)])
    return out


__all__ = ["downsample", "plot_loss", "save_figure"]
