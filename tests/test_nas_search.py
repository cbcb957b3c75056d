"""The search end to end on tiny data: results.json keys, resume, one-line CLI errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distill.shell.cli import write_settings
from distill.core.data import STATS, from_tensors
from distill.core.errors import DistillError
from distill.core.synthetic import SyntheticSet
from nas import experiment, metrics
from nas.benchmark import load_benchmark
from nas.config import SearchConfig, nb201_train_config
from nas.search import main

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _tiny(n_per_class: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat(n_per_class)
    mean, std = STATS["cifar10"]  # as the CLI test's ImageFolder named like CIFAR-10 is normalised
    return from_tensors(torch.randn(len(labels), 3, 8, 8, generator=g), labels, CIFAR10, mean=mean, std=std)


def _config(*, epochs: int = 1, batch_size: int = 10, lr: float = 0.1, **kw) -> SearchConfig:
    base = dict(space="top20", num_archs=2, proxy=["datadam", "random"], ipc=1, early_stop_epochs=1,
                early_stop_images=20, channels=4, cells_per_stage=1, device="cpu", progress=False,
                train=nb201_train_config(epochs=epochs, batch_size=batch_size, lr=lr))
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
    from scipy import stats

    out = tmp_path / "run"
    datadam = SyntheticSet.load(tiny_synthetic)  # DM's set: other images, so the two rank candidates apart
    dataclasses.replace(datadam, images=datadam.images.flip(-1), method="dm").save(tmp_path / "dm.pt")
    proxies = ["datadam", "dm", "random", "random-matched", "early-stop", "synflow", "params", "naswot"]
    config = _config(synthetic=[str(tiny_synthetic), str(tmp_path / "dm.pt")], proxy=proxies, space="full",
                     num_archs=4, top_fraction=0.75, epochs=2)
    results = experiment.run_search(config, out, train=_tiny(4, 0), test=_tiny(2, 1), benchmark=load_benchmark())
    write_settings(out, config)  # what the command line writes beside the results
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["complete"] is True and on_disk["num_finished"] == 4
    assert on_disk["sampling"]["top_fraction"] == 0.75 and on_disk["sampling"]["top20"] >= 3
    assert on_disk["sampling"]["uniform"] + on_disk["sampling"]["oversampled"] == 4
    assert on_disk["proxy_network"]["channels"] == 4 and on_disk["proxy_network"]["full_size"] is False
    assert set(on_disk["summary"]) == set(proxies)
    for name, s in on_disk["summary"].items():
        assert {"spearman", "spearman_why", "spearman_ci95", "spearman_minus_random_ci95",
                "spearman_minus_synflow_ci95", "spearman_minus_params_ci95", "kendall", "spearman_top20", "kendall_top20", "spearman_uniform",
                "top1_true_accuracy", "regret", "proxy_minutes", "distill_minutes", "total_minutes", "diverged",
                "ranks_by"} <= set(s)
        assert s["proxy_minutes"] > 0 and s["diverged"] == 0
    training = ["datadam", "dm", "random", "random-matched", "early-stop"]
    for name in training:
        s = on_disk["summary"][name]
        assert {"spearman_accuracy", "spearman_tse", "kendall_tse", "images_seen"} <= set(s)
        assert s["whole_dataset_minutes_estimate"] is None  # a reduced network says nothing about the full one
    assert on_disk["summary"]["random"]["spearman_minus_random_ci95"] is None  # not compared with itself
    assert on_disk["summary"]["synflow"]["spearman_minus_synflow_ci95"] is None
    assert on_disk["summary"]["params"]["spearman_minus_params_ci95"] is None
    # The interval against #params is the paired bootstrap over the rows of both, matched by arch.
    params = {r["arch"]: r["proxy_score"] for r in on_disk["candidates"] if r["proxy"] == "params"}
    mine = [r for r in on_disk["candidates"] if r["proxy"] == "datadam"]
    assert on_disk["summary"]["datadam"]["spearman_minus_params_ci95"] == metrics.spearman_difference_interval(
        metrics.rankable([r["proxy_score"] for r in mine]), metrics.rankable([params[r["arch"]] for r in mine]),
        [r["true_accuracy"] for r in mine], seed=0)
    # DataDAM's paper claims ρ(DataDAM) > ρ(DM): every proxy is paired against the registry's baselines, DM included.
    dm_scores = {r["arch"]: r["proxy_score"] for r in on_disk["candidates"] if r["proxy"] == "dm"}
    assert on_disk["summary"]["datadam"]["spearman_minus_dm_ci95"] is not None
    assert on_disk["summary"]["datadam"]["spearman_minus_dm_ci95"] == metrics.paired_difference_interval(
        {r["arch"]: r["proxy_score"] for r in mine}, dm_scores, {r["arch"]: r["true_accuracy"] for r in mine}, seed=0)
    assert on_disk["summary"]["dm"]["spearman_minus_dm_ci95"] is None
    # random-matched spends the small sets' image passes (10 images x 2 epochs), each on a new image.
    assert on_disk["summary"]["random-matched"]["images"] == 20 and on_disk["summary"]["random-matched"]["epochs"] == 1
    assert on_disk["summary"]["datadam"]["images_seen"] == on_disk["summary"]["random-matched"]["images_seen"] == 20
    rows = on_disk["candidates"]
    assert len(rows) == 4 * len(proxies)
    table = load_benchmark()
    threshold = on_disk["top20_threshold"]
    for row in rows:
        assert {"arch", "proxy", "proxy_accuracy", "true_accuracy", "seconds", "tse", "proxy_score", "diverged",
                "uniform"} <= set(row)
        assert row["true_accuracy"] == table.true_accuracy(row["arch"])
        if row["proxy"] in training:
            assert 0.0 <= row["proxy_accuracy"] <= 100.0 and row["tse"] > 0
            assert row["proxy_score"] == row["proxy_accuracy"]  # rank_by = accuracy
        else:
            assert row["proxy_accuracy"] is None and row["tse"] is None and row["proxy_score"] > 0
    # Every summary correlation recomputed from the rows.
    for name, s in on_disk["summary"].items():
        mine = [r for r in rows if r["proxy"] == name]
        true = [r["true_accuracy"] for r in mine]
        expected = stats.spearmanr([r["proxy_score"] for r in mine], true).statistic
        assert s["spearman"] == pytest.approx(expected) if s["spearman"] is not None else np.isnan(expected)
        top = [r for r in mine if r["true_accuracy"] >= threshold]
        assert s["top20_candidates"] == len(top)
        uniform = [r for r in mine if r["uniform"]]
        assert s["uniform_candidates"] == len(uniform) == on_disk["sampling"]["uniform"]
        if name in training:
            expected = stats.spearmanr([-r["tse"] for r in mine], true).statistic
            assert s["spearman_tse"] == pytest.approx(expected) if s["spearman_tse"] is not None \
                else np.isnan(expected)
    assert (out / "ranking.png").stat().st_size > 0
    config_text = (out / "config.toml").read_text()
    assert 'space = "full"' in config_text and "[train]" in config_text and "[distill]" in config_text
    assert results["summary"] == on_disk["summary"]
    assert "rho top20" in experiment.format_summary(results)


def test_tse_is_the_sum_of_the_logged_training_losses(monkeypatch):
    import nas.proxies as proxies_module
    from nas.proxies import ProxySet, Recipe, run_proxy

    logged: list[float] = []
    real = proxies_module.train_network

    def recording(*args, loss_callback, **kwargs):
        def both(loss: float) -> None:
            logged.append(loss)
            loss_callback(loss)

        return real(*args, loss_callback=both, **kwargs)

    monkeypatch.setattr(proxies_module, "train_network", recording)
    data = _tiny(3, 0)
    proxy = ProxySet("random", data.images, data.labels, epochs=2)
    for rank_by in ("accuracy", "tse"):
        logged.clear()
        outcome = run_proxy(BEST, proxy, data.images, data.labels, Recipe.of(_config(batch_size=8, rank_by=rank_by)),
                            num_classes=10, seed=0, device=torch.device("cpu"))
        assert len(logged) == 2 * 4  # 2 epochs x ceil(30 / 8) minibatches
        assert outcome.tse == pytest.approx(sum(logged)) and outcome.tse > 0
        assert outcome.score == (outcome.accuracy if rank_by == "accuracy" else -outcome.tse)


BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_diverged_candidates_are_flagged_and_counted(tmp_path):
    out = tmp_path / "run"
    config = _config(proxy=["random", "early-stop", "params"], lr=1e30)
    results = experiment.run_search(config, out, train=_tiny(4, 0), test=_tiny(2, 1), benchmark=load_benchmark())
    for row in results["candidates"]:
        if row["proxy"] == "params":
            assert row["diverged"] is False and row["proxy_score"] > 0
        else:
            assert row["diverged"] is True and row["proxy_score"] is None and row["proxy_accuracy"] is None
    for name in ("random", "early-stop"):
        s = results["summary"][name]
        assert s["diverged"] == 2 and s["spearman"] is None and s["spearman_why"] == "all 2 candidates diverged"
    text = experiment.format_summary(results)
    assert "random: rho n/a (all 2 candidates diverged)" in text
    assert "early-stop: 2 of 2 candidates diverged" in text


def test_tied_scores_say_why_rho_is_na(tmp_path, monkeypatch):
    from nas.proxies import ProxyBench, ProxyOutcome

    def constant(*args, **kwargs):
        return ProxyOutcome(score=13.0, accuracy=13.0, tse=5.0, seconds=0.01, train_seconds=0.01, images_seen=10)

    monkeypatch.setattr(ProxyBench, "score", constant)
    results = experiment.run_search(_config(proxy=["random"], num_archs=3), tmp_path / "run", train=_tiny(4, 0),
                                    test=_tiny(2, 1), benchmark=load_benchmark())
    s = results["summary"]["random"]
    assert s["spearman"] is None and s["kendall"] is None and s["spearman_why"] == "all proxy scores equal"
    assert "random: rho n/a (all proxy scores equal)" in experiment.format_summary(results)


def test_synthetic_set_with_other_classes_is_refused(tmp_path):
    train = _tiny(4, 0)
    two = SyntheticSet(images=train.images[:2].clone(), labels=torch.tensor([0, 1]), class_ids=[0, 1],
                       class_names=CIFAR10, mean=train.mean, std=train.std, ipc=1, method="datadam")
    path = tmp_path / "two.pt"
    two.save(path)
    with pytest.raises(DistillError) as info:
        experiment.run_search(_config(synthetic=[str(path)]), tmp_path / "run", train=train, test=_tiny(2, 1),
                              benchmark=load_benchmark())
    message = str(info.value)
    assert "holds 2 classes" in message and "has 10" in message and "\n" not in message


def test_distilled_set_cache_key_ignores_the_search(tmp_path):
    from nas.proxies import _cache_file

    train = _tiny(4, 0)
    a = _config(space="full", num_archs=80, channels=8, resolution=16, cache_dir=str(tmp_path))
    b = _config(space="top20", num_archs=3, channels=16, resolution=0, cache_dir=str(tmp_path), epochs=7)
    assert _cache_file(a, "datadam", train) == _cache_file(b, "datadam", train)
    assert _cache_file(a, "datadam", train) != _cache_file(_config(seed=1, cache_dir=str(tmp_path)), "datadam", train)


@pytest.mark.parametrize("preset", ["nb201-full-cpu", "nb201-top20-cpu", "nb201-full-ipc50-cpu",
                                    "nb201-top20-ipc50-cpu", "nb201-full-paper", "nb201-top20-paper", "smoke"])
def test_every_preset_loads_and_keeps_the_nb201_recipe(preset):
    from distill.core.settings import preset_path
    from nas.config import resolve_search_config

    config = resolve_search_config(preset_file=preset_path("nas", preset))
    assert config.train.lr == 0.1 and config.train.nesterov and config.train.schedule == "cosine"
    assert config.distill.iterations >= 1 and config.num_archs >= 2
    if preset.endswith("-cpu"):
        assert 60 <= config.num_archs <= 100 and config.test_images >= 2000
        assert config.distill.iterations >= 1000 and config.ipc == (50 if "ipc50" in preset else 10)
        top = load_benchmark()
        from nas.sampling import draw_candidates, top20_threshold

        drawn = draw_candidates(top, config.space, config.num_archs, seed=config.seed,
                                top_fraction=config.top_fraction)
        assert sum(top.true_accuracy(a) >= top20_threshold(top) for a in drawn.archs) >= 20
    if "ipc50" in preset:  # the study's 8000-iteration sets, not distilled again; the rest as the CPU preset
        assert [Path(p).name for p in config.synthetic] == ["datadam-paper-ipc50-it8000-br256-s0.pt",
                                                           "dm-ipc50-it8000-br256-s0.pt"]
        assert {Path(p).parent for p in config.synthetic} == {Path("benchmarks/results/paper-table")}  # committed
        base = resolve_search_config(preset_file=preset_path("nas", preset.replace("-ipc50", "")))
        assert (config.channels, config.cells_per_stage, config.resolution, config.images_seen, config.rank_by) == \
            (base.channels, base.cells_per_stage, base.resolution, base.images_seen, base.rank_by)


def test_cli_flags_reach_the_train_and_distill_tables(tmp_path):
    from nas.config import namespace_overrides, resolve_search_config
    from nas.search import build_parser

    args = build_parser().parse_args(["--lr", "0.05", "--epochs", "3", "--distill-iterations", "7",
                                      "--no-distill-channels-last", "--channels", "8"])
    config = resolve_search_config(overrides=namespace_overrides(args))
    assert config.train.lr == 0.05 and config.train.epochs == 3 and config.train.batch_size == 256
    assert config.distill.iterations == 7 and config.distill.channels_last is False and config.channels == 8


def test_resume_skips_finished_candidates(tmp_path, tiny_synthetic, monkeypatch):
    out = tmp_path / "run"
    train, test = _tiny(4, 0), _tiny(2, 1)
    calls = []
    from nas.proxies import ProxyBench

    real = ProxyBench.score

    def counting(self, arch, name, **kwargs):
        calls.append((arch, name))
        return real(self, arch, name, **kwargs)

    monkeypatch.setattr(ProxyBench, "score", counting)
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
    # Another --rank-by re-ranks the finished rows without training anything again.
    calls.clear()
    by_tse = experiment.run_search(_config(synthetic=[str(tiny_synthetic)], num_archs=3, rank_by="tse"), out,
                                   train=train, test=test, benchmark=load_benchmark(), resume=True)
    assert calls == []
    assert all(r["proxy_score"] == -r["tse"] for r in by_tse["candidates"])
    assert all(by_tse["summary"][p]["spearman"] == by_tse["summary"][p]["spearman_tse"] for p in ("datadam", "random"))


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
    assert set(results["train_engine"]) == {"datadam", "random"}
    assert results["train_engine"]["datadam"]["precision"] in ("fp32", "bf16")
    assert results["train_engine"]["datadam"]["compiled"] is False
    assert "rho" in capsys.readouterr().out


def test_cli_with_a_diverging_learning_rate_flags_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    _imagefolder(tmp_path / "data")
    code = main(["--preset", "smoke", "--proxy", "random,synflow", "--lr", "1e30", "--data-root",
                 str(tmp_path / "data"), "--out", str(tmp_path / "cli"), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "random: rho n/a (all 2 candidates diverged)" in text and "random: 2 of 2 candidates diverged" in text
    results = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert results["summary"]["random"]["diverged"] == 2 and results["summary"]["synflow"]["diverged"] == 0


@pytest.mark.parametrize(("argv", "words"), [
    (["--space", "top10"], "unknown search space"),
    (["--proxy", "datadam,magic"], "unknown proxy"),
    (["--benchmark-file", "/nonexistent/NAS-Bench-201-v1_1.pth"], "does not exist"),
    (["--preset", "huge"], "unknown --preset"),
    (["--bn-recalibrate-images", "-1"], "bn_recalibrate_images must be at least 0, got -1"),
    (["--seed", "-1"], "seed must be at least 0, got -1"),
    (["--top-fraction", "2"], "top_fraction must be at most 1.0, got 2.0"),
    (["--epochs", "0"], "train.epochs must be at least 1"),
])
def test_cli_errors_are_one_line(argv, words, tmp_path, capsys):
    from distill.shell.cli import run_cli

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


def test_distillation_minutes_are_reported_apart_and_the_cache_is_shared(tmp_path):
    config = _config(proxy=["dm", "random"], cache_dir=str(tmp_path / "cache"),
                     distill={"iterations": 1, "batch_real": 2})
    first = experiment.run_search(config, tmp_path / "a", train=_tiny(4, 0), test=_tiny(2, 1),
                                  benchmark=load_benchmark())
    dm = first["summary"]["dm"]
    assert dm["distill_cached"] is False and dm["distill_minutes"] > 0
    assert dm["total_minutes"] == pytest.approx(dm["proxy_minutes"] + dm["distill_minutes"])
    assert first["summary"]["random"]["distill_minutes"] == 0
    other_space = _config(proxy=["dm", "random"], cache_dir=str(tmp_path / "cache"), space="full",
                          distill={"iterations": 1, "batch_real": 2})
    again = experiment.run_search(other_space, tmp_path / "b", train=_tiny(4, 0), test=_tiny(2, 1),
                                  benchmark=load_benchmark())
    assert again["summary"]["dm"]["distill_cached"] is True
    assert again["summary"]["dm"]["distill_minutes"] == pytest.approx(dm["distill_minutes"])


def test_images_seen_budget_sets_the_epochs_and_the_matched_subset():
    from nas.proxies import matched_budget, set_epochs

    assert set_epochs(_config(epochs=7), 100) == 7  # no budget: train.epochs
    assert set_epochs(_config(images_seen=4000), 100) == 40
    assert matched_budget(_config(ipc=10, epochs=40), 10) == 4000
    assert matched_budget(_config(ipc=10, images_seen=4000, epochs=3), 10) == 4000


def test_bootstrap_intervals_only_in_the_final_results(tmp_path, monkeypatch, tiny_synthetic):
    calls = []
    real = metrics.spearman_interval

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "spearman_interval", counting)
    config = _config(synthetic=[str(tiny_synthetic)], proxy=["datadam", "params"], num_archs=3)
    results = experiment.run_search(config, tmp_path / "run", train=_tiny(4, 0), test=_tiny(2, 1),
                                    benchmark=load_benchmark())
    assert len(calls) == 2  # one per proxy, in the final write; none after each of the 3 candidates
    assert results["summary"]["datadam"]["spearman_ci95"] is not None
