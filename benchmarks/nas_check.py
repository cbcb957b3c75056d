"""Put one or more NAS searches (``results.json``, e.g. one per seed) beside the paper's NAS table, as markdown.

Usage: python benchmarks/nas_check.py benchmarks/results/nas-ipc50/full-s0/results.json full-s1/results.json ...

One table per space. Each proxy's row gives, per seed, Spearman ρ with its bootstrap interval, the paired
interval of ρ(proxy) − ρ(random real) and − ρ(synflow), the true accuracy of its top-1 pick ("performance"),
its scoring process-minutes and its storage; then ρ's mean over the seeds and the paper's figures. The paper's
"early stopping" row is our ``early-stop`` proxy where a search ran it, and the CPU presets' ``random-matched`` arm
(whole-set images seen once, the same image passes as the small sets) otherwise. The whole-dataset row is the benchmark's own ranking: ρ = 1 by definition, its pick the best
candidate, and its cost an ESTIMATE (NB201's 200 epochs on 50,000 images at the measured seconds per image of
the full-size network, ``--train-speed``), not a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

#: The paper's NAS table (CIFAR-10, 500-image sets; docs/METHOD.md §7): performance, ρ full space, ρ top 20 %.
#: Its space is DM's 720 ConvNet variants, not NAS-Bench-201, so its performance column is not comparable.
PAPER = {"random": ("random real", 88.9, 0.70, 0.44), "dm": ("DM", 87.2, 0.71, 0.51),
         "cafe": ("CAFE", 83.6, 0.59, 0.36), "datadam": ("DataDAM", 89.0, 0.72, 0.69),
         "early-stop": ("early stopping", 88.9, 0.69, 0.64), "random-matched": ("early stopping", 88.9, 0.69, 0.64),
         "whole": ("whole dataset", 89.2, 1.00, 1.00)}
LABELS = {"random-matched": "early stopping (random-matched)", "early-stop": "early stopping (early-stop)",
          "params": "#params"}
WHOLE_SET_IMAGES, WHOLE_SET_EPOCHS = 50_000, 200


def whole_dataset_minutes(train_speed: dict, candidates: int) -> float | None:
    """ESTIMATE of training ``candidates`` full-size networks for NB201's 200 epochs on 50,000 images, from the
    engine's measured seconds per epoch of the ``nas-full-size`` case (an ipc-50 set, 500 images)."""
    case = train_speed.get("summary", {}).get("nas-full-size")
    record = next((r for r in train_speed.get("records", []) if r.get("case") == "nas-full-size"), None)
    if not case or not record:
        return None
    seconds_per_image = case["engine_s_per_epoch"] / (record["ipc"] * 10)
    return seconds_per_image * WHOLE_SET_IMAGES * WHOLE_SET_EPOCHS * candidates / 60


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "\u2212")


def _interval(pair) -> str:
    """A paired difference's interval, signed as the results document writes them: [−0.13, +0.09]."""
    return "–" if not pair else f"[{_signed(pair[0])}, {_signed(pair[1])}]"


def markdown(runs: list[dict], train_speed: dict | None = None) -> str:
    """One table per space over ``runs`` (results.json dicts); seeds are columns within a cell, joined by ' / '."""
    out = []
    for space in dict.fromkeys(r["space"] for r in runs):
        mine = sorted((r for r in runs if r["space"] == space), key=lambda r: r["sampling"]["seed"])
        seeds = [r["sampling"]["seed"] for r in mine]
        paper_col = 2 if space == "full" else 3
        finished = " / ".join(f"seed {s}: {r['num_finished']} candidates" for s, r in zip(seeds, mine))
        out.append(f"**{space}** ({finished}; cells list seed {' / '.join(map(str, seeds))})")
        out.append("")
        out.append("| proxy | ρ (95 % CI) | mean ρ | ρ top-20 % part | ρ − ρ(random) | ρ − ρ(synflow) | performance "
                   "(top-1 true acc.) | process-min | images | paper: ρ, performance |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for name in mine[0]["summary"]:
            rows = [r["summary"].get(name) for r in mine]
            if any(s is None for s in rows):
                continue
            rhos = [s["spearman"] for s in rows]
            paper = PAPER.get(name)
            out.append("| " + " | ".join([
                LABELS.get(name, name),
                " / ".join("n/a" if s["spearman"] is None
                           else "{:.2f} [{:.2f}, {:.2f}]".format(s["spearman"], *(s.get("spearman_ci95") or (float("nan"),) * 2))
                           for s in rows),
                "n/a" if None in rhos else f"{statistics.fmean(rhos):.2f}",
                "–" if space != "full" else
                " / ".join("n/a" if s.get("spearman_top20") is None else f"{s['spearman_top20']:.2f}" for s in rows),
                " / ".join(_interval(s.get("spearman_minus_random_ci95")) for s in rows) if name != "random" else "–",
                " / ".join(_interval(s.get("spearman_minus_synflow_ci95")) for s in rows) if name != "synflow" else "–",
                " / ".join(f"{s['top1_true_accuracy']:.2f}" for s in rows),
                " / ".join(f"{s['proxy_minutes']:.1f}" for s in rows),
                str(rows[0].get("images", "–")),
                f"{paper[paper_col]:.2f}, {paper[1]}" if paper else "–"]) + " |")
        estimate = whole_dataset_minutes(train_speed or {}, mine[0]["num_finished"])
        out.append("| " + " | ".join([
            "whole dataset (the benchmark)", "1.00", "1.00", "1.00", "–", "–",
            " / ".join(f"{r['summary'][next(iter(r['summary']))]['best_true_accuracy']:.2f}" for r in mine),
            "–" if estimate is None else f"≈{estimate:,.0f} (ESTIMATE)", f"{WHOLE_SET_IMAGES:,}",
            f"{PAPER['whole'][paper_col]:.2f}, {PAPER['whole'][1]}"]) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.json of each search")
    parser.add_argument("--train-speed", type=Path, default=Path("benchmarks/results/train-speed-bf16cpu.json"),
                        help="train_speed.py JSON whose nas-full-size case prices the whole-dataset row")
    args = parser.parse_args(argv)
    runs = []
    for path in args.results:
        if not path.is_file():
            raise SystemExit(f"error: {path} does not exist; run python -m nas.search --out {path.parent} first")
        runs.append(json.loads(path.read_text()))
    speed = json.loads(args.train_speed.read_text()) if args.train_speed.is_file() else None
    print(markdown(runs, speed), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
