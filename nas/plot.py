"""ranking.png: each proxy's score against true accuracy, one panel per proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def plot_ranking(rows: Sequence[Mapping], summary: Mapping[str, Mapping], path: str | Path, *, title: str = "") -> None:
    """Scatter of every candidate (x: true accuracy, y: the score the proxy ranks by; diverged runs left
    out), Spearman rho in each title. Zero-cost scores are drawn on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.plot import save_figure

    proxies = list(summary)
    cols = min(4, max(1, len(proxies)))
    rows_of_panels = -(-max(1, len(proxies)) // cols)
    fig, axes = plt.subplots(rows_of_panels, cols, figsize=(4.2 * cols, 3.6 * rows_of_panels), squeeze=False)
    for ax in axes.flat[len(proxies):]:
        ax.set_visible(False)
    for ax, proxy in zip(axes.flat, proxies):
        mine = [r for r in rows if r["proxy"] == proxy and r.get("proxy_score") is not None]
        ax.scatter([r["true_accuracy"] for r in mine], [r["proxy_score"] for r in mine], s=14, alpha=0.8)
        ranks_by = summary[proxy].get("ranks_by", "accuracy")
        if ranks_by == "zero-cost score" and mine and min(r["proxy_score"] for r in mine) > 0:
            ax.set_yscale("log")
        rho = summary[proxy].get("spearman")
        tau = summary[proxy].get("kendall")
        ci = summary[proxy].get("spearman_ci95")
        rho_text = "n/a" if rho is None else f"{rho:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        tau_text = "n/a" if tau is None else f"{tau:.2f}"
        ax.set_title(f"{proxy}: ρ = {rho_text}, τ = {tau_text}", fontsize=10)
        ax.set_xlabel("true accuracy (%, 200 epochs, whole set)", fontsize=9)
        ax.set_ylabel({"accuracy": "proxy accuracy (%)", "tse": "minus TSE (summed training loss)"}.get(
            ranks_by, f"{proxy} score"), fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


__all__ = ["plot_ranking"]
