"""benchmarks/accuracy_vs_ipc.py: one record per (method, ipc), resumable, one budget per file, a plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("accuracy_vs_ipc", REPO / "benchmarks" / "accuracy_vs_ipc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_records_every_method_and_resumes(cifar_tree, tmp_path):
    script = _script()
    out = tmp_path / "acc.json"
    common = ["--smoke", "--data-root", str(cifar_tree), "--out", str(out), "--quiet"]
    assert script.main([*common, "--methods", "kcenter,random"]) == 0
    report = json.loads(out.read_text())
    assert {(r["method"], r["ipc"]) for r in report["records"]} == {(m, i) for m in ("kcenter", "random")
                                                                       for i in (1, 2)}
    assert report["whole_dataset"]["epochs"] == 1 and report["machine"]
    assert (tmp_path / "acc.png").stat().st_size > 10_000
    before = report["records"]
    assert script.main([*common, "--methods", "kcenter,random,herding"]) == 0  # continues: adds herding only
    after = json.loads(out.read_text())["records"]
    assert after[:len(before)] == before and {r["method"] for r in after[len(before):]} == {"herding"}
    with pytest.raises(SystemExit, match="one budget"):
        script.main(["--data-root", str(cifar_tree), "--out", str(out), "--epochs", "5", "--quiet"])
