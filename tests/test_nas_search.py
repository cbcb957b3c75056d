"""The search end to end on tiny data: results.json keys, resume, one-line CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from distill.data import STATS, from_tensors
from distill.errors import DistillError
from distill.synthetic import SyntheticSet
from nas import experiment
from nas.benchmark import load_benchmark
from nas.config import SearchConfig
from nas.search import main

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _tiny(n_per_class: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat(n_per_class)
    mean, std = STATS["cifar10"]  # as the CLI test's ImageFolder named like CIFAR-10 is normalised
    return from_tensors(torch.randn(len(labels), 3, 8, 8, generator=g), labels, CIFAR10, mean=mean, std=std)


def _config(**kw) -> SearchConfig:
    base = dict(space="top20", num_archs=2, proxy=["datadam", "random"], ipc=1, epochs=1, batch_size=10,
                early_stop_epochs=1, early_stop_images=20, device="cpu", progress=False)
    base.update(kw)
    return SearchConfig(**base)


@pytest.fixture
def tiny_synthetic(tmp_path):
    train = _tiny(4, 0)
    s = SyntheticSet(images=train.images[:10].clone(), labels=train.labels[:10].clone(), class_ids=list(range(10)),
                     class_names=CIFAR10, mean=train.mean, std=train.std, ipc=1, method="datadam")
    path = tmp_path / "datadam.pt"
    s.save(path)
    return path


def test_tiny_run_writes_results(tmp_path, tiny_synthetic):
    out = tmp_path / "run"
    config = _config(synthetic=[str(tiny_synthetic)], proxy=["datadam", "random", "early-stop"])
    results = experiment.run_search(config, out, train=_tiny(4, 0), test=_tiny(2, 1), benchmark=load_benchmark())
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["complete"] is True and on_disk["num_finished"] == 2
    assert set(on_disk["summary"]) == {"datadam", "random", "early-stop"}
    for s in on_disk["summary"].values():
        assert {"spearman", "spearman_ci95", "spearman_minus_random_ci95", "kendall", "top1_true_accuracy",
                "regret", "proxy_minutes", "whole_dataset_minutes_estimate", "images"} <= set(s)
        assert s["proxy_minutes"] > 0 and s["whole_dataset_minutes_estimate"] > 0
    assert on_disk["summary"]["random"]["spearman_minus_random_ci95"] is None  # not compared with itself
    assert on_disk["summary"]["datadam"]["images"] == 10 and on_disk["summary"]["early-stop"]["images"] == 20
    rows = on_disk["candidates"]
    assert len(rows) == 6
    table = load_benchmark()
    for row in rows:
        assert {"arch", "proxy", "proxy_accuracy", "true_accuracy", "seconds"} <= set(row)
        assert row["true_accuracy"] == table.true_accuracy(row["arch"])
        assert 0.0 <= row["proxy_accuracy"] <= 100.0
    assert (out / "ranking.png").stat().st_size > 0
    assert 'space = "top20"' in (out / "config.toml").read_text()
    assert results["summary"] == on_disk["summary"]


def test_resume_skips_finished_candidates(tmp_path, tiny_synthetic, monkeypatch):
    out = tmp_path / "run"
    train, test = _tiny(4, 0), _tiny(2, 1)
    calls = []
    real = experiment.run_proxy

    def counting(arch, proxy, *args, **kwargs):
        calls.append((arch, proxy.name))
        return real(arch, proxy, *args, **kwargs)

    monkeypatch.setattr(experiment, "run_proxy", counting)
    config = _config(synthetic=[str(tiny_synthetic)])
    experiment.run_search(config, out, train=train, test=test, benchmark=load_benchmark())
    first = list(calls)
    assert len(first) == 4
    with pytest.raises(DistillError, match="--resume"):
        experiment.run_search(config, out, train=train, test=test, benchmark=load_benchmark())
    calls.clear()
    bigger = _config(synthetic=[str(tiny_synthetic)], num_archs=3)
    results = experiment.run_search(bigger, out, train=train, test=test, benchmark=load_benchmark(), resume=True)
    new_archs = {a for a, _ in calls}
    assert len(calls) == 2 and len(new_archs) == 1 and new_archs.isdisjoint(a for a, _ in first)
    assert results["num_finished"] == 3 and len(results["candidates"]) == 6
    with pytest.raises(DistillError, match="other settings"):
        experiment.run_search(_config(synthetic=[str(tiny_synthetic)], epochs=2), out, train=train, test=test,
                              benchmark=load_benchmark(), resume=True)


def _imagefolder(root, n_per_class: int = 2) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CIFAR10:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n_per_class):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_cli_end_to_end_with_synthetic(tmp_path, tiny_synthetic, monkeypatch, capsys):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    _imagefolder(tmp_path / "data")
    out = tmp_path / "cli"
    code = main(["--preset", "smoke", "--space", "full", "--proxy", "datadam,random", "--synthetic",
                 str(tiny_synthetic), "--data-root", str(tmp_path / "data"), "--out", str(out), "--no-progress"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["space"] == "full" and set(results["summary"]) == {"datadam", "random"}
    assert "spearman" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "words"), [
    (["--space", "top10"], "unknown search space"),
    (["--proxy", "datadam,magic"], "unknown proxy"),
    (["--benchmark-file", "/nonexistent/NAS-Bench-201-v1_1.pth"], "does not exist"),
    (["--preset", "huge"], "unknown --preset"),
    (["--bn-recalibrate-images", "-1"], "must be 0 or more"),
])
def test_cli_errors_are_one_line(argv, words, tmp_path, capsys):
    from distill.config import run_cli

    with pytest.raises(SystemExit) as info:
        run_cli(lambda _: main(argv + ["--out", str(tmp_path / "o")]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and words in err and "\n" not in err


def test_distilled_set_is_cached_and_reused(tmp_path, monkeypatch):
    import distill.methods as methods
    from nas.proxies import distilled_set

    calls = []
    real = methods.distill

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(methods, "distill", counting)
    config = _config(cache_dir=str(tmp_path / "cache"), distill={"iterations": 1, "batch_real": 2})
    train = _tiny(4, 0)
    first, cached = distilled_set(config, "dm", train, device=torch.device("cpu"), progress=False)
    assert not cached and len(calls) == 1 and first.method == "dm" and len(first) == 10
    again, cached = distilled_set(config, "dm", train, device=torch.device("cpu"), progress=False)
    assert cached and len(calls) == 1 and torch.equal(again.images, first.images)
    other, cached = distilled_set(_config(cache_dir=str(tmp_path / "cache"), distill={"iterations": 2,
                                                                                      "batch_real": 2}),
                                  "dm", train, device=torch.device("cpu"), progress=False)
    assert not cached and len(calls) == 2
