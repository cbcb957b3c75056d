"""t-SNE of synthetic over real images: the PNG is written and every image is one point."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill
from distill.plot import main
from distill.tsne import plot_tsne, tsne_points


@pytest.mark.parametrize("encoder", ["random", "trained"])
def test_one_point_per_image_and_a_png(tiny_dataset, tmp_path, encoder):
    synthetic = distill(tiny_dataset, DistillConfig(method="random", ipc=2), progress=False)
    points = tsne_points(synthetic, tiny_dataset, per_class=5, encoder=encoder, epochs=1, train_per_class=4)
    assert points.coords.shape == (6 + 15, 2) and np.isfinite(points.coords).all()
    assert points.is_synthetic.sum() == 6 and (points.labels[:6] == synthetic.labels.numpy()).all()
    assert sorted(np.bincount(points.labels[6:]).tolist()) == [5, 5, 5]
    plot_tsne(points, tmp_path / "tsne.png", title="tiny")
    assert (tmp_path / "tsne.png").stat().st_size > 5_000


def test_same_seed_same_picture(tiny_dataset):
    synthetic = distill(tiny_dataset, DistillConfig(method="random", ipc=1), progress=False)
    a = tsne_points(synthetic, tiny_dataset, per_class=4)
    b = tsne_points(synthetic, tiny_dataset, per_class=4)
    assert np.array_equal(a.coords, b.coords)


def test_cli_writes_tsne_png_into_the_run(cifar_tree, tmp_path):
    from distill.run import main as run_main

    out = tmp_path / "run"
    assert run_main(["--dataset", "cifar10", "--data-root", str(cifar_tree), "--preset", "smoke", "--method", "herding",
                     "--width", "16", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    assert main(["tsne", str(out), "--per-class", "6"]) == 0
    assert (out / "tsne.png").stat().st_size > 10_000
    # A set file by itself (a benchmark's or the NAS cache's): the picture goes beside it.
    loose = tmp_path / "sets" / "herding.pt"
    loose.parent.mkdir()
    loose.write_bytes((out / "synthetic.pt").read_bytes())
    assert main(["tsne", str(loose), "--per-class", "6", "--data-root", str(cifar_tree)]) == 0
    assert (tmp_path / "sets" / "herding.tsne.png").stat().st_size > 10_000


def test_a_folder_without_a_set_is_one_line(tmp_path):
    with pytest.raises(DistillError, match="no synthetic.pt"):
        main(["tsne", str(tmp_path)])
    proc = subprocess.run([sys.executable, "-m", "distill.plot", "tsne", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "no synthetic.pt" in proc.stderr and "Traceback" not in proc.stderr


def test_mismatched_images_are_refused(tiny_dataset):
    synthetic = distill(tiny_dataset, DistillConfig(method="random", ipc=1), progress=False)
    synthetic.images = torch.nn.functional.interpolate(synthetic.images, size=16)
    with pytest.raises(DistillError, match="--data-root"):
        tsne_points(synthetic, tiny_dataset, per_class=4)


def test_the_trained_encoder_never_sees_the_plotted_images(tiny_dataset):
    from distill.tsne import real_sample

    plotted, _ = real_sample(tiny_dataset, [0, 1, 2], 5, seed=0)
    learned, _ = real_sample(tiny_dataset, [0, 1, 2], 10, seed=0, skip=5)
    assert len(learned) == 30
    both = torch.cat([plotted, learned]).flatten(1)
    assert len(torch.unique(both, dim=0)) == 45
