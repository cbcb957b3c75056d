"""t-SNE of a synthetic set's embeddings (stars) over a seeded sample of real images (dots), one colour per class."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from distill.core.data import ClassDataset, load_dataset
from distill.core.errors import DistillError
from distill.core.evaluate import TrainConfig, train_network
from distill.core.seeds import real_indices, stream
from distill.core.networks import ConvNet, init_parameters
from distill.methods import get_method, list_methods
from distill.core.synthetic import SyntheticSet

# Stream keys of this module, clear of seeds.py's, evaluate.py's and coreset.py's.
SAMPLE, ENCODER = 30, 31
ENCODERS = ("random", "trained")


@dataclass
class TsnePoints:
    """2-D t-SNE coordinates: the synthetic images first, then the real sample, with their labels."""

    coords: np.ndarray
    labels: np.ndarray
    is_synthetic: np.ndarray
    class_names: list[str]


def real_sample(train: ClassDataset, classes: list[int], per_class: int, seed: int, *,
                skip: int = 0) -> tuple[Tensor, Tensor]:
    """``per_class`` seeded random real images of each class (fewer where a class runs out).

    One seeded permutation per class: ``skip`` passes over its first images, so that samples drawn
    with different ``skip`` never share an image.
    """
    parts, labels = [], []
    for c in classes:
        idx = train.indices_of(c)
        picked = idx[real_indices(len(idx), skip + per_class, stream(seed, SAMPLE, c))[skip:]]
        parts.append(train.images[picked])
        labels.append(torch.full((len(picked),), c, dtype=torch.long))
    return torch.cat(parts), torch.cat(labels)


def make_encoder(train: ClassDataset, classes: list[int], *, encoder: str, seed: int, epochs: int,
                 train_per_class: int, plotted_per_class: int = 0, device: torch.device | str = "cpu") -> ConvNet:
    """A ConvNet-3: randomly initialised, or trained ``epochs`` epochs on a seeded real sample.

    The trained encoder learns from images after the first ``plotted_per_class`` of each class's
    permutation (see :func:`real_sample`), so that the dots are never images it memorised.
    """
    if encoder not in ENCODERS:
        raise DistillError(f"unknown encoder {encoder!r}; use random or trained")
    net = ConvNet(num_classes=train.num_classes, channels=train.image_shape[0], image_size=train.image_shape[-1])
    init_parameters(net, stream(seed, ENCODER))
    if encoder == "trained":
        images, labels = real_sample(train, classes, train_per_class, seed, skip=plotted_per_class)
        train_network(net, images, labels, TrainConfig(epochs=epochs), seed=seed, device=device)
    return net.to(device).eval()


@torch.no_grad()
def _embed(net: ConvNet, images: Tensor, device: torch.device | str, batch_size: int = 500) -> Tensor:
    return torch.cat([net.embed(images[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(images), batch_size)])


def tsne_points(synthetic: SyntheticSet, train: ClassDataset, *, per_class: int = 100, encoder: str = "random",
                seed: int = 0, epochs: int = 20, train_per_class: int = 200,
                device: torch.device | str = "cpu") -> TsnePoints:
    """Embed the synthetic images and a seeded real sample with one encoder and run scikit-learn's TSNE on both."""
    from sklearn.manifold import TSNE

    if tuple(synthetic.images.shape[1:]) != tuple(train.image_shape):
        raise DistillError(f"the synthetic images are {tuple(synthetic.images.shape[1:])} but the dataset's are "
                           f"{tuple(train.image_shape)}; pass the dataset the set was distilled from (--data-root)")
    classes = list(synthetic.class_ids)
    real, real_labels = real_sample(train, classes, per_class, seed)
    net = make_encoder(train, classes, encoder=encoder, seed=seed, epochs=epochs, train_per_class=train_per_class,
                       plotted_per_class=per_class, device=device)
    feats = torch.cat([_embed(net, synthetic.images, device), _embed(net, real, device)]).numpy()
    n = len(feats)
    if n < 3:
        raise DistillError(f"t-SNE needs at least 3 points, got {n}; raise --per-class")
    # Perplexity must stay below the number of points; 30 (scikit-learn's default) where there are enough.
    coords = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(feats)
    labels = torch.cat([synthetic.labels, real_labels]).numpy()
    flags = np.arange(n) < len(synthetic)
    return TsnePoints(coords, labels, flags, list(synthetic.class_names))


def plot_tsne(points: TsnePoints, path: str | Path, *, title: str) -> None:
    """Real images as small dots, synthetic ones as large stars with a black edge, one colour per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from distill.plot import save_figure

    classes = sorted(set(points.labels.tolist()))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(8.5, 7))
    real, syn = ~points.is_synthetic, points.is_synthetic
    for i, c in enumerate(classes):
        colour = cmap(i % cmap.N)
        mine = points.labels == c
        ax.scatter(*points.coords[real & mine].T, s=12, color=colour, alpha=0.55, linewidths=0)
        ax.scatter(*points.coords[syn & mine].T, s=170, marker="*", color=colour, edgecolors="black",
                   linewidths=0.7, zorder=3)
    handles = [Line2D([], [], ls="", marker="o", color=cmap(i % cmap.N), label=points.class_names[c])
               for i, c in enumerate(classes)]
    handles += [Line2D([], [], ls="", marker="o", color="gray", alpha=0.6, markersize=5,
                       label=f"real ({int(real.sum())})"),
                Line2D([], [], ls="", marker="*", color="white", markeredgecolor="black", markersize=13,
                       label=f"synthetic ({int(syn.sum())})")]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def default_out(target: str | Path) -> Path:
    """Where ``tsne_run`` draws without ``out``: ``RUN_DIR/tsne.png``, or ``X.tsne.png`` beside a set file ``X.pt``."""
    target = Path(target)
    return target.with_suffix(".tsne.png") if target.is_file() else target / "tsne.png"


def tsne_run(run_dir: str | Path, *, data_root: str | None = None, per_class: int = 100, encoder: str = "random",
             seed: int = 0, epochs: int = 20, train_per_class: int = 200, out: str | Path | None = None,
             device: torch.device | str = "cpu") -> TsnePoints:
    """``tsne.png`` for the ``synthetic.pt`` of a ``distill.run`` folder (or a set file itself, which is drawn
    beside it), over the dataset named in the folder's config."""
    run_dir = Path(run_dir)
    out = Path(out) if out else default_out(run_dir)
    if run_dir.is_file():  # a set file: SyntheticSet.save's, e.g. a benchmark's or the NAS cache's
        set_file, run_dir = run_dir, run_dir.parent
    else:
        set_file = run_dir / "synthetic.pt"
        if not set_file.is_file():
            raise DistillError(f"{run_dir} has no synthetic.pt; pass the --out folder of a python -m distill.run "
                               "or a set file")
    synthetic = SyntheticSet.load(set_file)
    config = tomllib.loads((run_dir / "config.toml").read_text()) if (run_dir / "config.toml").is_file() else {}
    dataset = config.get("dataset", "cifar10")
    train = load_dataset(dataset, "train", data_root=data_root or config.get("data_root"))
    points = tsne_points(synthetic, train, per_class=per_class, encoder=encoder, seed=seed, epochs=epochs,
                         train_per_class=train_per_class, device=device)
    how = "random ConvNet-3" if encoder == "random" else f"ConvNet-3 trained {epochs} epochs on real images"
    shown = (get_method(synthetic.method).describe(synthetic.config.get("variant", ""))
             if synthetic.method in list_methods() else synthetic.method)  # a set of a method not loaded here
    steps = f", {synthetic.iterations} iterations" if synthetic.iterations else ""
    title = (f"t-SNE of {shown} {dataset} ipc {synthetic.ipc}{steps} (stars) over {per_class} real "
             f"images per class (dots)\nembeddings of one {how}, seed {seed}")
    plot_tsne(points, out, title=title)
    return points
