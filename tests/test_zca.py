"""ZCA whitening: invertible, fit on the training set only, and recorded in the set it produced."""

import pytest
import torch

from distill.core.data import from_tensors
from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill
from distill.core.synthetic import SyntheticSet
from distill.core.testing import tiny_dataset
from distill.core.zca import ZCA, fit_zca, fit_zca_cached, whiten_dataset, zca_of


def _train():
    return tiny_dataset(3, 40, size=4, mean=0.5, std=0.25)


def test_whiten_then_unwhiten_is_the_identity():
    train = _train()
    zca = fit_zca(train)
    back = zca.unwhiten(zca.whiten(train.images))
    assert (back - train.images).abs().max() < 1e-4


def test_whitening_is_kornias_formula_on_pixels():
    train = _train()
    zca = fit_zca(train, eps=0.1)
    pixels = (train.images * 0.25 + 0.5).flatten(1).double()
    centred = pixels - pixels.mean(0)
    cov = centred.T @ centred / (len(pixels) - 1)
    u, s, _ = torch.linalg.svd(cov)
    transform = u @ torch.diag((s + 0.1).rsqrt()) @ u.T
    expected = (centred @ transform).float().view_as(train.images)
    assert torch.allclose(zca.whiten(train.images), expected, atol=1e-4)


def test_the_test_set_is_whitened_with_the_training_statistics():
    train = _train()
    shifted = from_tensors(train.images[:12] + 1.0, train.labels[:12], train.class_names, mean=train.mean,
                           std=train.std)
    zca = fit_zca(train)
    white = whiten_dataset(shifted, zca)
    assert torch.allclose(white.images, zca.whiten(shifted.images))
    # the training mean is subtracted, not the test set's own: fit on itself, a set whitens to mean 0
    own = fit_zca(shifted).whiten(shifted.images)
    assert own.mean(0).abs().max() < 1e-4
    assert white.images.mean(0).abs().max() > 0.05
    assert not torch.allclose(white.images, own, atol=1e-2)
    assert torch.equal(white.labels, shifted.labels) and white.class_names == shifted.class_names


def test_cached_fit_equals_a_fresh_one_and_refuses_other_shapes():
    train = _train()
    first, again = fit_zca_cached(train), fit_zca_cached(train)
    assert torch.equal(first.eigvecs, again.eigvecs) and torch.allclose(first.mean, fit_zca(train).mean)
    with pytest.raises(DistillError, match="values"):
        first.whiten(torch.zeros(2, 3, 8, 8))


def test_a_distilled_set_records_the_statistics_it_was_whitened_with(tmp_path):
    train = _train()
    cfg = DistillConfig(method="random", ipc=3, zca=True)
    whitened = distill(train, cfg, seed=2, progress=False)
    plain = distill(train, DistillConfig(method="random", ipc=3), seed=2, progress=False)
    zca = zca_of(whitened)
    assert isinstance(zca, ZCA) and zca_of(plain) is None
    assert whitened.config["zca"] is True
    assert torch.allclose(zca.mean, fit_zca(train).mean)
    assert torch.allclose(zca.unwhiten(whitened.images), plain.images, atol=1e-4)
    whitened.save(tmp_path / "set.pt")  # the statistics travel with the file
    assert torch.equal(zca_of(SyntheticSet.load(tmp_path / "set.pt")).eigvecs, zca.eigvecs)


def test_a_whitened_set_is_refused_where_images_must_stay_plain():
    """A replay memory and a NAS proxy set live in the plain input space: a ZCA set is refused in one line."""
    from continual.buffer import DistilledBuffer
    from nas.proxies import check_set

    train = _train()
    whitened = distill(train, DistillConfig(method="random", ipc=2, zca=True), seed=0, progress=False)
    with pytest.raises(DistillError, match="ZCA-whitened images"):
        DistilledBuffer(6, synthetic=whitened)
    with pytest.raises(DistillError, match="distill it without --zca"):
        check_set(whitened, train, "whitened.pt")


def test_distill_run_tests_a_whitened_set_on_whitened_test_images(cifar_tree, tmp_path, monkeypatch):
    import json

    from distill import run
    from distill.core import zca as zca_module

    seen = []
    real = zca_module.whiten_dataset
    monkeypatch.setattr(zca_module, "whiten_dataset", lambda data, zca: seen.append(len(data)) or real(data, zca))
    out = tmp_path / "run"
    assert run.main(["--dataset", "cifar10", "--data-root", str(cifar_tree), "--preset", "smoke", "--method",
                     "random", "--zca", "--eval", "1", "--eval-epochs", "1", "--device", "cpu", "--out", str(out),
                     "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    # the 12 training images of each class, whitened once to distil, then the 4 test images of each, once
    assert results["zca"] is True and seen == [120, 40]


def test_a_damaged_zca_cache_entry_is_named_deleted_and_refit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path))
    train = _train()
    first = fit_zca_cached(train)
    (entry,) = (tmp_path / "zca").glob("*.pt")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)  # other numbers, same size
    entry.write_bytes(bytes(data))
    again = fit_zca_cached(train)
    err = capsys.readouterr().err
    assert err.startswith("cache: ") and entry.name in err and "deleted it, rebuilding" in err
    assert torch.equal(again.whiten(train.images), first.whiten(train.images))


def test_a_whitened_set_is_tested_on_test_images_whitened_alike():
    from distill.core.zca import whitened_like

    train, test = _train(), _train()
    whitened = distill(train, DistillConfig(method="random", ipc=3, zca=True), seed=2, progress=False)
    plain = distill(train, DistillConfig(method="random", ipc=3), seed=2, progress=False)
    assert whitened_like(test, plain) is test
    view = whitened_like(test, whitened)
    assert torch.allclose(view.images, whiten_dataset(test, fit_zca(train)).images, atol=1e-5)
    assert torch.equal(view.labels, test.labels)
