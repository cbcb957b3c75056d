"""ranking.png: proxy accuracy against true accuracy, one panel per proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def plot_ranking(rows: Sequence[Mapping], summary: Mapping[str, Mapping], path: str | Path, *, title: str = "") -> None:
    """Scatter of every candidate (x: true accuracy, y: proxy accuracy), Spearman rho in each title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.plot import save_figure

    proxies = list(summary)
    fig, axes = plt.subplots(1, max(1, len(proxies)), figsize=(4 * max(1, len(proxies)), 3.8), squeeze=False)
    for ax, proxy in zip(axes[0], proxies):
        mine = [r for r in rows if r["proxy"] == proxy]
        ax.scatter([r["true_accuracy"] for r in mine], [r["proxy_accuracy"] for r in mine], s=14, alpha=0.8)
        rho = summary[proxy].get("spearman")
        tau = summary[proxy].get("kendall")
        rho_text = "n/a" if rho is None else f"{rho:.2f}"
        tau_text = "n/a" if tau is None else f"{tau:.2f}"
        ax.set_title(f"{proxy}: ρ = {rho_text}, τ = {tau_text}")
        ax.set_xlabel("true accuracy (%, 200 epochs, whole set)")
        ax.set_ylabel("proxy accuracy (%)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
