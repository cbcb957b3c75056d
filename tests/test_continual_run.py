"""python -m continual.run end to end on a tiny ImageFolder: results.json keys, resume, seeds, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from continual import protocols
from continual.benchmark import class_order
from continual.run import main
from distill.core.errors import DistillError

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """4 classes of 8x8 PNGs (10 train, 4 test each); class c has bright rows 2c and 2c+1."""
    from torchvision.io import write_png

    root = tmp_path_factory.mktemp("tiny")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 10), ("test", 4)):
        for c in range(NUM_CLASSES):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                base = torch.full((3, 8, 8), 40)
                base[:, 2 * c:2 * c + 2] = 220
                img = (base + torch.randint(-30, 30, (3, 8, 8), generator=g)).clamp(0, 255).to(torch.uint8)
                write_png(img, str(folder / f"{i}.png"))
    return root


@pytest.fixture(autouse=True)
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))


TINY_TOML = """
width = 8
[distill]
iterations = 3
batch_real = 8
width = 8
[train]
epochs = 30
batch_size = 8
lr = 0.05
[replay]
epochs = 10
batch_size = 8
batch_size_mem = 8
lr = 0.05
"""


def args(root: Path, out: Path, *extra: str) -> list[str]:
    config = root / "tiny.toml"
    if not config.exists():
        config.write_text(TINY_TOML)
    return ["--preset", "smoke", "--config", str(config), "--dataset", "imagefolder", "--data-root", str(root),
            "--steps", "2", "--device", "cpu", "--out", str(out), "--quiet", "--train-per-class", "10",
            "--test-per-class", "4", "--threads", "1", *extra]


def test_tiny_two_step_run_writes_every_key(tiny_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args(tiny_root, out, "--protocol", "both", "--memory", "dm,random", "--seeds", "0,1")) == 0
    results = json.loads((out / "results.json").read_text())
    assert (out / "accuracy.png").stat().st_size > 1000
    assert "ipc = 2" in (out / "config.toml").read_text() and "width = 8" in (out / "config.toml").read_text()
    assert results["steps"] == 2 and results["num_classes"] == NUM_CLASSES and results["complete"] is True
    assert results["class_orders"] == {"0": class_order(0, 4), "1": class_order(1, 4)}
    assert set(results["protocols"]) == {"gdumb", "replay"}
    assert set(results["protocols"]["gdumb"]) == {"dm", "random"}
    engine = results["protocols"]["gdumb"]["dm"]["engine"]  # one per step: what the training engine used
    assert len(engine) == 2 and {e["precision"] for e in engine} <= {"fp32", "bf16"}
    assert all(e["compiled"] is False for e in engine)  # compilation is off in the tests (conftest)
    assert results["protocols"]["replay"]["dm"]["engine"][0]["loop"] == "avalanche Naive"
    assert set(results["protocols"]["replay"]) == {"dm", "random", "class_balanced"}
    for protocol, methods in results["protocols"].items():
        for method, r in methods.items():
            acc = r["accuracy"]
            assert len(acc["mean"]) == len(acc["std"]) == 2
            assert set(acc["per_seed"]) == {"0", "1"} and all(len(v) == 2 for v in acc["per_seed"].values())
            assert all(0.0 <= a <= 100.0 for v in acc["per_seed"].values() for a in v)
            for key in ("average_incremental_accuracy", "final_accuracy"):
                assert set(r[key]) == {"mean", "std", "per_seed"} and r[key]["mean"] is not None
            assert r["final_accuracy"]["per_seed"]["0"] == acc["per_seed"]["0"][-1]
            assert r["memory"]["images"] == [2 * 2, 2 * 4]  # ipc 2 x classes seen
            assert r["memory"]["bytes"] == [4 * 3 * 8 * 8 * 4, 8 * 3 * 8 * 8 * 4]
            assert set(r["seconds"]) >= {"distill", "train"} and r["seconds"]["train"] > 0
            assert r["seeds_complete"] == [0, 1]
            if protocol == "replay":
                assert len(r["forgetting"]["mean"]) == 2 and r["forgetting"]["final"]["mean"] is not None
            else:
                assert r["forgetting"] is None
    assert results["protocols"]["gdumb"]["dm"]["seconds"]["distill"] > 0
    # the models really learn: after step 1 (2 classes, 8 test images) far above chance
    for protocol in ("gdumb", "replay"):
        assert results["protocols"][protocol]["random"]["accuracy"]["mean"][0] >= 75.0
    assert all(0.0 <= f <= 100.0 for f in results["protocols"]["replay"]["dm"]["forgetting"]["mean"])
    assert "gdumb" in capsys.readouterr().out  # the summary table


def test_seeded_runs_are_reproducible_and_resume_skips_finished_steps(tiny_root, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    main(args(tiny_root, a, "--memory", "herding,random", "--seeds", "0"))
    main(args(tiny_root, b, "--memory", "herding,random", "--seeds", "0"))
    ra, rb = (json.loads((p / "results.json").read_text()) for p in (a, b))
    for method in ("herding", "random"):
        assert ra["protocols"]["gdumb"][method]["accuracy"]["per_seed"] == \
            rb["protocols"]["gdumb"][method]["accuracy"]["per_seed"]

    def no_training(*_, **__):
        raise AssertionError("trained a finished step again")

    monkeypatch.setattr(protocols, "train_network", no_training)
    main(args(tiny_root, a, "--memory", "herding,random", "--seeds", "0", "--resume"))
    assert json.loads((a / "results.json").read_text())["protocols"] == ra["protocols"]


def test_gdumb_trains_a_fresh_model_at_every_step(tiny_root, tmp_path, monkeypatch):
    seen = []
    real_train = protocols.train_network

    def spy(model, images, labels, config, *, seed, device, **kw):
        seen.append((id(model), [p.detach().clone() for p in model.parameters()], sorted(set(labels.tolist())), seed))
        return real_train(model, images, labels, config, seed=seed, device=device, **kw)

    monkeypatch.setattr(protocols, "train_network", spy)
    main(args(tiny_root, tmp_path / "run", "--memory", "random", "--seeds", "0"))
    assert len(seen) == 2
    (id1, p1, labels1, s1), (id2, p2, labels2, s2) = seen
    order = class_order(0, NUM_CLASSES)
    assert labels1 == sorted(order[:2]) and labels2 == list(range(NUM_CLASSES))
    # each step starts from freshly initialised weights, not from the previous step's trained model
    make = protocols.network_factory("convnet", num_classes=NUM_CLASSES, channels=3, image_size=8, width=8)
    for params, s in ((p1, s1), (p2, s2)):
        fresh = list(make(s).parameters())
        assert all(torch.equal(a, b) for a, b in zip(params, fresh))
    assert s1 != s2 and not all(torch.equal(a, b) for a, b in zip(p1, p2))


def run_cli_with(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from distill.shell.cli import run_cli

    monkeypatch.setattr(sys, "argv", ["continual.run", *argv])
    with pytest.raises(SystemExit) as info:
        run_cli(main)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--steps", "3"], "--steps 3 does not divide the 4 classes"),
    (["--memory", "datadam,nope"], "unknown memory method 'nope'"),
    (["--protocol", "gdumb", "--memory", "class_balanced"], "use it with --protocol replay"),
    (["--preset", "huge"], "unknown --preset 'huge'"),
    (["--ipc", "0"], "ipc must be at least 1, got 0"),
    (["--seeds", "0,-1"], "seeds must be at least 0, got -1"),
    (["--network", "resnet"], "unknown --network 'resnet'"),
])
def test_user_errors_are_one_line(tiny_root, tmp_path, monkeypatch, capsys, extra, message):
    argv = args(tiny_root, tmp_path / "err")
    for i in range(0, len(extra), 2):  # later flags win in argparse
        argv += extra[i:i + 2]
    code, err = run_cli_with(argv, monkeypatch, capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err


def test_finished_run_is_not_replaced_silently_and_resume_sums_wall_seconds(tiny_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args(tiny_root, out, "--memory", "random", "--seeds", "0", "--ipc", "2", "--resume")) == 0
    assert f"no earlier run in {out} (no progress.json): starting fresh" in capsys.readouterr().err
    config = (out / "config.toml").read_text()
    assert "[distill]" in config and config.split("[distill]")[1].split("[")[0].count("ipc = 2") == 1

    stamp = (out / "results.json").stat().st_mtime_ns
    with pytest.raises(DistillError, match="already holds a run .*--resume.*--overwrite"):
        main(args(tiny_root, out, "--memory", "random", "--seeds", "0", "--ipc", "2"))
    assert (out / "results.json").stat().st_mtime_ns == stamp

    progress = json.loads((out / "progress.json").read_text())
    progress["wall_seconds"] = 1000.0  # as if the first invocation had taken that long
    (out / "progress.json").write_text(json.dumps(progress))
    assert main(args(tiny_root, out, "--memory", "random", "--seeds", "0,1", "--ipc", "2", "--resume")) == 0
    assert 1000.0 < json.loads((out / "results.json").read_text())["wall_seconds"] < 1000.0 + 120

    assert main(args(tiny_root, out, "--memory", "random", "--seeds", "0", "--ipc", "2", "--overwrite")) == 0
    assert json.loads((out / "results.json").read_text())["wall_seconds"] < 120


def test_saved_sets_serve_their_memory_class_by_class(tiny_root, tmp_path):
    """--synthetic: a saved dm set is the dm memory, taken class by class; nothing is distilled."""
    from distill.core.data import load_dataset
    from distill.methods import DistillConfig, distill

    train = load_dataset("imagefolder", "train", data_root=tiny_root)
    saved = distill(train, DistillConfig(method="dm", ipc=2, iterations=2, batch_real=8, width=8), seed=5,
                    progress=False)
    saved.save(tmp_path / "dm.pt")
    out = tmp_path / "run"
    assert main(args(tiny_root, out, "--memory", "dm", "--seeds", "0", "--synthetic", str(tmp_path / "dm.pt"))) == 0
    results = json.loads((out / "results.json").read_text())
    dm = results["protocols"]["gdumb"]["dm"]
    assert dm["seconds"]["distill"] == 0 and dm["memory"]["images"] == [4, 8]
    # a set of a method that is not a memory of the run is refused before any step, in one line
    with pytest.raises(DistillError, match="is a dm set, but --memory is random"):
        main(args(tiny_root, tmp_path / "other", "--memory", "random", "--synthetic", str(tmp_path / "dm.pt"),
                  "--quiet"))


@pytest.mark.parametrize("steps", [5, 10])
def test_ipc50_presets_use_the_studys_sets_and_fit_the_paper_network(steps):
    from distill.core.settings import preset_path
    from distill.core.settings import resolve_config
    from continual.config import ContinualConfig

    cfg = resolve_config(ContinualConfig, preset_file=preset_path("continual", f"cifar10-{steps}step-ipc50-cpu"))
    assert (cfg.ipc, cfg.steps, cfg.width, len(cfg.seeds)) == (50, steps, 128, 3)
    assert set(cfg.memory) == {"datadam", "dm", "herding", "random"}
    assert [Path(p).name for p in cfg.synthetic] == ["datadam-paper-ipc50-it8000-br256-s0.pt",
                                                    "dm-ipc50-it8000-br256-s0.pt"]
    assert {Path(p).parent for p in cfg.synthetic} == {Path("benchmarks/results/paper-table")}  # the study's
    assert cfg.distill.iterations == 8000 and cfg.distill.batch_real == 256  # what the study's sets were made with


def test_study_sets_are_found_from_any_folder_and_a_missing_one_names_its_command(tmp_path, monkeypatch):
    """Presets name the study's sets by their path in the repository: continual and NAS find them from any working
    folder, and a set that is not there (ipc-50 sets are not committed) is refused naming the command that makes it."""
    import dataclasses

    from continual.config import ContinualConfig
    from continual.experiment import saved_sets
    from distill.core.settings import preset_path, resolve_config
    from nas.proxies import load_synthetic_files

    monkeypatch.chdir(tmp_path)
    cfg = resolve_config(ContinualConfig, preset_file=preset_path("continual", "cifar10-5step-ipc50-cpu"))
    committed = "benchmarks/results/paper-table/dm-ipc1-it8000-br256-s0.pt"
    assert saved_sets(dataclasses.replace(cfg, ipc=1, synthetic=[committed]))["dm"].ipc == 1
    assert load_synthetic_files([committed], ["dm"])["dm"][0].ipc == 1
    missing = "benchmarks/results/paper-table/dm-ipc50-it9999-br256-s0.pt"
    command = "python benchmarks/paper_table.py --only dm-ipc50-it9999-br256-s0"
    with pytest.raises(DistillError, match=command):
        saved_sets(dataclasses.replace(cfg, synthetic=[missing]))
    with pytest.raises(DistillError, match=command):
        load_synthetic_files([missing], ["dm"])
