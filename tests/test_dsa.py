"""DSA: one augmentation draw per class and step, applied to the real and the synthetic batch alike."""

import torch

from distill.core.augment import DSA
from distill.methods import DistillConfig, distill, get_method, list_methods
from distill.methods import gradient


def _recording(monkeypatch):
    calls = []
    original = DSA.apply

    def apply(self, x, params):
        calls.append((params, len(x)))
        return original(self, x, params)

    monkeypatch.setattr(DSA, "apply", apply)
    return calls


def test_real_and_synthetic_batch_share_the_draw_of_their_step(tiny_dataset, monkeypatch):
    calls = _recording(monkeypatch)
    cfg = DistillConfig(method="dsa", ipc=2, iterations=2, outer_loop=2, inner_loop=0, batch_real=7, depth=2,
                        width=8, precision="fp32")
    distill(tiny_dataset, cfg, seed=0, progress=False)
    assert len(calls) == 2 * 2 * 3 * 2  # iterations x updates x classes x (real, synthetic)
    pairs = [calls[i:i + 2] for i in range(0, len(calls), 2)]
    for (p_real, n_real), (p_syn, n_syn) in pairs:
        assert (n_real, n_syn) == (7, 2)
        assert p_real is not None and p_real is p_syn  # the same draw: the Siamese part
    draws = {id(p) for (p, _), _ in pairs}
    assert len(draws) == len(pairs)  # a fresh draw for every class and step


def test_dc_augments_nothing_and_dsa_augments_its_inner_loop(tiny_dataset, monkeypatch):
    calls = _recording(monkeypatch)
    distill(tiny_dataset, DistillConfig(method="dc", ipc=1, iterations=1, outer_loop=1, inner_loop=0, batch_real=4,
                                        depth=2, width=8, precision="fp32"), seed=0, progress=False)
    assert calls and all(p is None for p, _ in calls)
    inner = []
    monkeypatch.setattr(gradient, "fit", lambda net, images, labels, config, **kw: inner.append(config))
    for method in ("dc", "dsa"):
        distill(tiny_dataset, DistillConfig(method=method, ipc=1, iterations=1, outer_loop=2, inner_loop=3,
                                            batch_real=4, depth=2, width=8, precision="fp32"), progress=False)
    assert [(c.dsa, c.epochs) for c in inner] == [(False, 3), (True, 3)]  # dsa augments its inner loop too


def test_registered_and_runs_its_smoke_preset_in_seconds(tiny_dataset):
    import time

    assert "dsa" in list_methods()
    began = time.perf_counter()
    out = distill(tiny_dataset, DistillConfig(method="dsa", ipc=2, precision="fp32",
                                              **get_method("dsa").presets["smoke"]), seed=0, progress=False)
    assert time.perf_counter() - began < 10
    assert out.images.shape == (6, 3, 32, 32) and torch.isfinite(out.images).all()
    assert len(out.config["loss_curve"]) == 2
