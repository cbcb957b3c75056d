"""accuracy.png: accuracy on the classes seen vs step, one curve per memory method, +-std bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from distill.plot import save_figure

#: Memories that are not a distillation method: Avalanche's own buffer (colour, label).
OTHER_STYLE = {"class_balanced": ("tab:purple", "ClassBalancedBuffer")}


def style(memory: str) -> tuple[str | None, str]:
    """The colour and label of a memory: a method's own (its registry entry), else Avalanche's buffer's."""
    from distill.methods import get_method, list_methods

    if memory in list_methods():
        spec = get_method(memory)
        return spec.color, spec.label
    return OTHER_STYLE.get(memory, (None, memory))


def plot_accuracy(results: Mapping[str, Any], path: str | Path) -> None:
    """One panel per protocol in ``results["protocols"]``; x = number of classes seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = results["protocols"]
    fig, axes = plt.subplots(1, max(1, len(protocols)), figsize=(5.5 * max(1, len(protocols)), 4), squeeze=False)
    classes_per_step = results["num_classes"] // results["steps"]
    for ax, (protocol, methods) in zip(axes[0], protocols.items()):
        for method, summary in methods.items():
            acc = summary["accuracy"]
            points = [(i, m, s) for i, (m, s) in enumerate(zip(acc["mean"], acc["std"])) if m is not None]
            if not points:
                continue
            x = [(i + 1) * classes_per_step for i, _, _ in points]
            mean = [m for _, m, _ in points]
            std = [s for _, _, s in points]
            color, label = style(method)
            n = len(summary["accuracy"]["per_seed"])
            ax.plot(x, mean, marker="o", color=color, label=f"{label} (n={n})")
            ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=color, alpha=0.2)
        ax.set_title(f"{results['dataset']} {results['steps']} steps, {protocol}, ipc {results['ipc']}")
        ax.set_xlabel("classes seen")
        ax.set_ylabel("test accuracy on seen classes (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


__all__ = ["plot_accuracy"]
