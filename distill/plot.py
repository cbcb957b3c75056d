"""Plots written next to results (matplotlib, no display needed); ``python -m distill.plot tsne RUN_DIR``."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Sequence

from distill.core.io import atomic_write_bytes


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distill.plot", description="Plots of a finished run.")
    commands = parser.add_subparsers(dest="command", required=True)
    tsne = commands.add_parser("tsne", help="t-SNE of the synthetic images (stars) over real ones (dots): tsne.png")
    tsne.add_argument("run_dir", type=Path, help="a python -m distill.run --out folder (with synthetic.pt), or a set file (.pt)")
    tsne.add_argument("--data-root", help="dataset folder (default: the run's, else $DISTILL_DATA_ROOT)")
    tsne.add_argument("--per-class", type=int, default=100, help="real images per class drawn as dots (default 100)")
    tsne.add_argument("--encoder", choices=("random", "trained"), default="random",
                      help="random: one randomly initialised ConvNet-3 embeds both (default); trained: one trained "
                           "--epochs epochs on a separate seeded sample of --train-per-class real images per class")
    tsne.add_argument("--epochs", type=int, default=20, help="epochs of the trained encoder (default 20; with the "
                                                             "default sample about 6 CPU-minutes on one core)")
    tsne.add_argument("--train-per-class", type=int, default=200,
                      help="real images per class the trained encoder learns from (default 200)")
    tsne.add_argument("--seed", type=int, default=0, help="seed of the sample, the encoder and t-SNE (default 0)")
    tsne.add_argument("--out", type=Path, help="the PNG (default RUN_DIR/tsne.png; for a set file X.pt, X.tsne.png)")
    tsne.add_argument("--device", default="auto", help="auto | cpu | cuda")
    return parser


def main(argv: list[str] | None = None) -> int:
    from distill.shell.distributed import resolve_device
    from distill.core.errors import DistillError
    from distill.tsne import default_out, tsne_run

    args = build_parser().parse_args(argv)
    for name in ("per_class", "epochs", "train_per_class"):
        if getattr(args, name) < 1:
            raise DistillError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    out = args.out or default_out(args.run_dir)
    points = tsne_run(args.run_dir, data_root=args.data_root, per_class=args.per_class, encoder=args.encoder,
                      seed=args.seed, epochs=args.epochs, train_per_class=args.train_per_class, out=out,
                      device=resolve_device(args.device))
    print(f"{out}: {int(points.is_synthetic.sum())} synthetic and {int((~points.is_synthetic).sum())} real images")
    return 0


__all__ = ["downsample", "plot_loss", "save_figure"]

if __name__ == "__main__":
    from distill.shell.cli import run_cli

    run_cli(main)
