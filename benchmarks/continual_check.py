"""Check a continual run's results.json against the issue's claims and print them as JSON.

Usage: python benchmarks/continual_check.py runs/continual-.../results.json [--protocol gdumb]

Claims: DataDAM's accuracy on the seen classes is above random and herding at every step after the
first, and its final accuracy beats random by at least 5 points. Margins are differences of the
mean over seeds (percentage points).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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
            "aia_margin": (methods[method]["average_incremental_accuracy"]["mean"] or 0)
                          - (methods[other]["average_incremental_accuracy"]["mean"] or 0),
        }
    final_vs_random = out["versus"].get("random", {}).get("final_margin")
    out["final_beats_random_by_5"] = final_vs_random is not None and final_vs_random >= 5.0
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--protocol", default="gdumb")
    args = parser.parse_args(argv)
    print(json.dumps(check(json.loads(args.results.read_text()), args.protocol), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
