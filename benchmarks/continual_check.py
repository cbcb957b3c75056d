"""Check a continual run's results.json against the issue's claims and print them as JSON.

Usage: python benchmarks/continual_check.py runs/continual-.../results.json [--protocol gdumb] [--markdown]

Claims: DataDAM's accuracy on the seen classes is above random and herding at every step after the
first, and its final accuracy beats random by at least 5 points. Margins are differences of the
mean over seeds (percentage points). Every method sees the same class order at a seed, so each margin
also gets a paired t interval over the seeds both finished (95 %; with 3 orders, df = 2, so it is wide).
``--markdown`` prints the accuracy table (mean ± std per step, then AIA) and the margin rows instead, with
minus signs as the documents write them (−).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path


def paired_interval(diffs: list[float], level: float = 0.95) -> list[float] | None:
    """The mean of paired differences and its t interval, [mean, low, high]; None with fewer than two pairs."""
    from scipy import stats

    if len(diffs) < 2:
        return None
    mean = statistics.fmean(diffs)
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return [mean, mean - half, mean + half]


def step_intervals(mine: dict, other: dict) -> list[list[float] | None]:
    """Per step, then for the AIA, the paired interval of ``mine`` − ``other`` over the seeds both have it for."""
    a, b = mine["accuracy"]["per_seed"], other["accuracy"]["per_seed"]
    seeds = [s for s in a if s in b]
    steps = max((len(a[s]) for s in seeds), default=0)
    intervals = [paired_interval([a[s][k] - b[s][k] for s in seeds
                                  if k < min(len(a[s]), len(b[s])) and None not in (a[s][k], b[s][k])])
                 for k in range(steps)]
    aia_a, aia_b = mine["average_incremental_accuracy"]["per_seed"], other["average_incremental_accuracy"]["per_seed"]
    return intervals + [paired_interval([aia_a[s] - aia_b[s] for s in aia_a if None not in (aia_a[s], aia_b.get(s))])]


def check(results: dict, protocol: str = "gdumb", method: str = "datadam",
          baselines: tuple[str, ...] = ("random", "herding", "dm")) -> dict:
    methods = results["protocols"][protocol]
    if method not in methods:
        raise SystemExit(f"error: {method} is not in the {protocol} results; run it with --memory {method},...")
    ours = methods[method]["accuracy"]["mean"]
    out: dict = {"protocol": protocol, "steps": results["steps"], "seeds": results["seeds"],
                 "complete": results["complete"], method: {"accuracy": ours,
                 "final": methods[method]["final_accuracy"]["mean"],
                 "aia": methods[method]["average_incremental_accuracy"]["mean"]}, "versus": {}}
    for other in baselines:
        if other not in methods:
            continue
        theirs = methods[other]["accuracy"]["mean"]
        margins = [None if a is None or b is None else a - b for a, b in zip(ours, theirs)]
        after_first = [m for m in margins[1:] if m is not None]
        out["versus"][other] = {
            "margin_per_step": margins,
            "above_at_every_step_after_first": bool(after_first) and all(m > 0 for m in after_first),
            "final_margin": margins[-1],
            "interval_per_step_then_aia": step_intervals(methods[method], methods[other]),
            "aia_margin": (methods[method]["average_incremental_accuracy"]["mean"] or 0)
                          - (methods[other]["average_incremental_accuracy"]["mean"] or 0),
        }
    final_vs_random = out["versus"].get("random", {}).get("final_margin")
    out["final_beats_random_by_5"] = final_vs_random is not None and final_vs_random >= 5.0
    return out


def markdown(results: dict, protocol: str = "gdumb", method: str = "datadam") -> str:
    """The accuracy table (mean ± std over seeds per step, then AIA), then one row per margin of ``method`` over
    another memory: the mean difference and its paired interval at each step and for the AIA."""
    methods = results["protocols"][protocol]
    steps = results["steps"]
    head = ["method"] + [str(k + 1) for k in range(steps)] + ["AIA"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(mean, std):
        return "–" if mean is None else f"{mean:.2f}" if not std else f"{mean:.2f} ± {std:.2f}"

    for name, m in methods.items():
        acc, aia = m["accuracy"], m["average_incremental_accuracy"]
        lines.append("| " + " | ".join([name] + [cell(a, s) for a, s in zip(acc["mean"], acc["std"])]
                                        + [cell(aia["mean"], aia["std"])]) + " |")
    if method in methods:
        for other in methods:
            if other == method:
                continue
            row = [f"{method} − {other}"]
            for interval in step_intervals(methods[method], methods[other]):
                row.append("–" if interval is None
                           else "{:+.2f} [{:+.2f}, {:+.2f}]".format(*interval).replace("-", "\u2212"))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--protocol", default="gdumb")
    parser.add_argument("--markdown", action="store_true", help="print the accuracy and margin tables")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    print(markdown(results, args.protocol) if args.markdown else json.dumps(check(results, args.protocol), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
