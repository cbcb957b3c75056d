"""benchmarks/continual_check.py: margins over class orders come with paired t intervals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from continual_check import check, markdown, paired_interval  # noqa: E402


def _method(per_seed: dict[str, list[float]]) -> dict:
    seeds = list(per_seed)
    steps = len(per_seed[seeds[0]])
    means = [sum(per_seed[s][k] for s in seeds) / len(seeds) for k in range(steps)]
    aia = {s: sum(v) / len(v) for s, v in per_seed.items()}
    return {"accuracy": {"mean": means, "std": [1.0] * steps, "per_seed": per_seed},
            "average_incremental_accuracy": {"mean": sum(aia.values()) / len(aia), "std": 0.5, "per_seed": aia},
            "final_accuracy": {"mean": means[-1], "std": 0.0, "per_seed": {s: v[-1] for s, v in per_seed.items()}}}


def _results() -> dict:
    ours = {"0": [80.0, 60.0], "1": [82.0, 57.0], "2": [79.0, 61.0]}
    dm = {"0": [79.0, 58.0], "1": [81.5, 58.0], "2": [77.0, 57.5]}
    return {"steps": 2, "seeds": [0, 1, 2], "complete": True,
            "protocols": {"gdumb": {"datadam": _method(ours), "dm": _method(dm)}}}


def test_paired_interval_is_scipys_paired_t_interval():
    a, b = [80.0, 82.0, 79.0, 75.5], [79.0, 81.5, 77.0, 76.0]
    diff, low, high = paired_interval([x - y for x, y in zip(a, b)])
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert diff == pytest.approx(sum(x - y for x, y in zip(a, b)) / 4)
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert paired_interval([1.0]) is None


def test_margins_pair_each_step_and_the_aia_by_class_order():
    versus = check(_results(), baselines=("dm",))["versus"]["dm"]
    step1, step2, aia = versus["interval_per_step_then_aia"]
    assert step1 == pytest.approx(paired_interval([1.0, 0.5, 2.0]))
    assert step2 == pytest.approx(paired_interval([2.0, -1.0, 3.5]))
    assert aia == pytest.approx(paired_interval([1.5, -0.25, 2.75]))
    # a seed that one method has not finished is left out of that step's pairs
    results = _results()
    results["protocols"]["gdumb"]["dm"]["accuracy"]["per_seed"]["2"] = [77.0]
    step2_two_seeds = check(results, baselines=("dm",))["versus"]["dm"]["interval_per_step_then_aia"][1]
    assert step2_two_seeds == pytest.approx(paired_interval([2.0, -1.0]))


def test_markdown_has_one_row_per_method_and_one_per_margin():
    lines = markdown(_results()).splitlines()
    assert lines[0] == "| method | 1 | 2 | AIA |"
    assert lines[2].startswith("| datadam | 80.33 ± 1.00 | 59.33 ± 1.00 | 69.83 ± 0.50 |")
    diff, low, high = paired_interval([2.0, -1.0, 3.5])
    assert lines[4].split(" | ")[2] == f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]".replace("-", "\u2212")
    assert low < 0 and "−" in lines[4]
    assert len(lines) == 5
