"""benchmarks/distill_cost.py: the cost table lands row by row and a rerun adds only what is missing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distill_cost.py"


def _run(out: Path, methods: str) -> list[dict]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--ipcs", "1", "--methods", methods, "--iters", "2",
                           "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())["records"]


@pytest.mark.slow
def test_cost_rows_are_ratios_to_dm_and_a_rerun_keeps_what_was_measured(tmp_path):
    out = tmp_path / "cost.json"
    first = _run(out, "dm")
    assert [(r["method"], r["ipc"]) for r in first] == [("dm", 1)]
    assert first[0]["seconds_per_iteration"] > 0 and first[0]["ratio_to_dm"] == 1.0
    assert first[0]["iterations_timed"] == 2 and first[0]["peak_rss_mb"] > 0
    data = json.loads(out.read_text())  # a failure at another ipc (say an OOM at ipc 50) outlives reruns at ipc 1
    data["records"].append({"method": "mtt", "ipc": 50, "paper_seconds": None,
                            "error": "killed (SIGKILL: out of memory?)"})
    out.write_text(json.dumps(data))
    second = _run(out, "dm,datadam")
    assert second[0] == first[0]  # measured once, kept
    kept = [r for r in second if r["method"] == "mtt"]
    assert len(kept) == 1 and {k: kept[0][k] for k in data["records"][-1]} == data["records"][-1]
    second = [r for r in second if r["method"] != "mtt"]
    datadam = second[1]
    assert datadam["method"] == "datadam" and datadam["ratio_to_dm"] == pytest.approx(
        datadam["seconds_per_iteration"] / first[0]["seconds_per_iteration"])
    assert datadam["paper_ratio_to_dm"] == pytest.approx(0.09 / 0.08)
    table = subprocess.run([sys.executable, str(SCRIPT), "--render", str(out)], capture_output=True, text=True,
                           timeout=120).stdout
    assert f"| DataDAM | {datadam['seconds_per_iteration']:.2f} ({datadam['ratio_to_dm']:.2f}×) [1.12] |" in table
    assert "| DM | " in table and "(1.00×) [1.00]" in table


def test_real_images_are_the_first_of_each_cifar10_class(cifar_tree, monkeypatch, tmp_path):
    """--data cifar10 (CAFE's cost depends on the pixels): the first per_class training images of every class."""
    sys.path.insert(0, str(SCRIPT.parent))
    import distill_cost
    from distill.core.data import load_dataset

    monkeypatch.setenv("DISTILL_DATA_ROOT", str(cifar_tree))
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path))
    data = distill_cost._data({"data": "cifar10", "per_class": 3, "classes": 10, "size": 32})
    train = load_dataset("cifar10", "train")
    assert data.labels.tolist() == [c for c in range(10) for _ in range(3)]
    for c in range(10):
        assert torch.equal(data.images[3 * c:3 * c + 3], train.images[train.labels == c][:3])
    assert (data.mean, data.std, data.class_names) == (train.mean, train.std, train.class_names)
