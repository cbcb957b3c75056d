"""benchmarks/nas_check.py: several searches (seeds) of one space become one table beside the paper's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from nas_check import main, markdown, whole_dataset_minutes  # noqa: E402


def _summary(rho: float, top1: float, *, images: int | None = 500) -> dict:
    entry = {"spearman": rho, "spearman_ci95": [rho - 0.1, rho + 0.05], "spearman_top20": rho / 2,
             "spearman_minus_random_ci95": [-0.2, 0.1], "spearman_minus_synflow_ci95": [-0.3, -0.01],
             "top1_true_accuracy": top1, "best_true_accuracy": 94.0, "proxy_minutes": 12.5}
    return entry | ({"images": images} if images else {})


def _run(seed: int, space: str = "full", rho: float = 0.7) -> dict:
    return {"space": space, "num_finished": 80, "sampling": {"seed": seed},
            "summary": {"datadam": _summary(rho, 93.1), "random-matched": _summary(0.5, 92.0, images=40000),
                        "synflow": _summary(0.8, 93.5, images=None)}}


def _row(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_seeds_share_a_row_and_the_mean_is_over_seeds():
    table = markdown([_run(1, rho=0.6), _run(0, rho=0.8)])
    row = _row(table, "datadam")
    assert row[1] == "0.80 [0.70, 0.85] / 0.60 [0.50, 0.65]"  # seed 0 first, whatever the argument order
    assert row[2] == "0.70"
    assert row[4] == "[−0.20, +0.10] / [−0.20, +0.10]"
    assert row[-1] == "0.72, 89.0"  # the paper's full-space ρ and performance
    assert _row(table, "early stopping (random-matched)")[-1] == "0.69, 88.9"
    assert _row(table, "synflow")[4] == "[−0.20, +0.10] / [−0.20, +0.10]" and _row(table, "synflow")[6] == "–"


def test_each_space_gets_its_table_with_its_paper_column():
    table = markdown([_run(0), _run(0, space="top20", rho=0.4)])
    assert table.count("| proxy |") == 2
    top20 = table[table.index("**top20**"):]
    assert _row(top20, "datadam")[-1] == "0.69, 89.0" and _row(top20, "datadam")[3] == "–"
    assert _row(markdown([_run(0, rho=0.05)]), "datadam")[1] == "0.05 [−0.05, 0.10]"


def test_whole_dataset_row_is_an_estimate_from_the_measured_speed():
    speed = {"summary": {"nas-full-size": {"engine_s_per_epoch": 1.5}},
             "records": [{"case": "nas-full-size", "ipc": 50}]}
    assert whole_dataset_minutes(speed, 80) == pytest.approx(1.5 / 500 * 50_000 * 200 * 80 / 60)
    assert whole_dataset_minutes({}, 80) is None
    row = _row(markdown([_run(0)], speed), "whole dataset (the benchmark)")
    assert row[1] == "1.00" and row[7] == "94.00" and "ESTIMATE" in row[8] and row[9] == "50,000"


def test_a_missing_results_file_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="does not exist; run python -m nas.search"):
        main([str(tmp_path / "full-s0" / "results.json")])


def test_the_dm_column_reads_each_seeds_paired_interval_and_is_empty_without_one():
    with_dm = _run(0)
    with_dm["summary"]["datadam"] |= {"spearman_minus_dm_ci95": [-0.05, 0.39]}
    with_dm["summary"]["dm"] = _summary(0.41, 92.5) | {"spearman_minus_dm_ci95": None}
    without = _run(1)  # a search that ran no DM arm
    table = markdown([without, with_dm])
    assert _row(table, "datadam")[5] == "[−0.05, +0.39] / –"  # seed 0 first
    assert _row(markdown([with_dm]), "dm")[5] == "–"
