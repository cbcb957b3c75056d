"""benchmarks/cross_arch.py: one record per (set, network) from accuracy_vs_ipc.py's sets, resumable, a table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_set_on_every_network_resumes_and_tabulates(cifar_tree, tmp_path, capsys):
    acc_out = tmp_path / "acc.json"
    assert _script("accuracy_vs_ipc").main(["--smoke", "--data-root", str(cifar_tree), "--out", str(acc_out),
                                           "--methods", "random,herding", "--quiet"]) == 0
    sets = tmp_path / "acc-work" / "ipc2"  # the smoke run's sets: ipc 1 and 2
    cross = _script("cross_arch")
    out = tmp_path / "cross.json"
    common = ["--sets", str(sets), "--data-root", str(cifar_tree), "--epochs", "1", "--out", str(out)]
    assert cross.main([*common, "--methods", "random", "--networks", "convnet,alexnet"]) == 0
    report = json.loads(out.read_text())
    assert [(r["method"], r["network"]) for r in report["records"]] == [("random", "convnet"), ("random", "alexnet")]
    assert report["ipc"] == 2 and all(len(r["runs"]) == 1 and 0 <= r["mean"] <= 100 for r in report["records"])
    first = report["records"]
    assert cross.main([*common, "--methods", "random,herding", "--networks", "convnet,alexnet"]) == 0
    after = json.loads(out.read_text())["records"]
    assert after[:2] == first and {(r["method"], r["network"]) for r in after[2:]} == {("herding", "convnet"),
                                                                                       ("herding", "alexnet")}
    capsys.readouterr()
    assert cross.main(["--table", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| set (ipc 2) | convnet | alexnet |") and len(lines) == 4
    with pytest.raises(SystemExit, match="no set at"):
        cross.main([*common, "--methods", "datadam"])
    with pytest.raises(SystemExit, match="unknown network"):
        cross.main([*common, "--networks", "lenet9"])
    with pytest.raises(SystemExit, match="made with"):
        cross.main([*common, "--methods", "random", "--epochs", "2"])


def test_study_sets_are_each_methods_own_cell(cifar_tree, tmp_path):
    """--study reads the set of the method's headline cell of the paper table, and names the cell to run when
    it is missing or when the study has none at that ipc."""
    from distill import distill, load_dataset
    from distill.methods import DistillConfig

    cross = _script("cross_arch")  # puts the repository on sys.path, as running the script does
    table = importlib.import_module("benchmarks.paper_table")
    study = tmp_path / "study"
    study.mkdir()
    cell = table.headline_cell("random", 1)
    assert cell.name == "random-ipc1-s0" and cell in table.CELLS
    assert table.headline_cell("dc", 10).name == "dc-ipc10-it100-br256-initnoise-s0"  # DC at its CPU budget
    train = load_dataset("cifar10", "train", data_root=str(cifar_tree))
    distill(train, DistillConfig(method="random", ipc=1), progress=False).save(study / f"{cell.name}.pt")
    out = tmp_path / "cross.json"
    common = ["--study", str(study), "--data-root", str(cifar_tree), "--epochs", "1", "--out", str(out),
              "--networks", "convnet"]
    assert cross.main([*common, "--ipc", "1", "--methods", "random"]) == 0
    (record,) = json.loads(out.read_text())["records"]
    assert record["method"] == "random" and record["set"] == str(study / "random-ipc1-s0.pt")
    with pytest.raises(SystemExit, match="paper_table.py --only dm-ipc1-it8000-br256-s0"):
        cross.main([*common, "--ipc", "1", "--methods", "random,dm"])
    herding = table.headline_cell("herding", 10)
    distill(train, DistillConfig(method="herding", ipc=10), progress=False).save(study / f"{herding.name}.pt")
    with pytest.raises(SystemExit, match="holds ipc-1 records and .* is an ipc-10 set; pass another --out"):
        cross.main([*common, "--ipc", "10", "--methods", "herding"])  # one table, one ipc
    with pytest.raises(SystemExit, match="has no cell random-ipc3-s0"):
        cross.main([*common, "--ipc", "3", "--methods", "random"])
    with pytest.raises(SystemExit, match="unknown method 'lenet'"):
        cross.main([*common, "--ipc", "1", "--methods", "lenet"])
