"""Put one or more NAS searches (``results.json``, e.g. one per seed) beside the paper's NAS table, as markdown.

Usage: python benchmarks/nas_check.py benchmarks/results/nas-ipc50/full-s0/results.json full-s1/results.json ...

One table per space. Each proxy's row gives, per seed, Spearman ρ with its bootstrap interval, the paired
intervals of ρ(proxy) − ρ(random real), − ρ(DM) (the paper's claim) and − ρ(synflow), the true accuracy of
its top-1 pick ("performance"), its scoring process-minutes and its storage; then ρ's mean over the seeds and
the paper's figures. The paper's "early stopping" row is our ``early-stop`` proxy where a search ran it, and
the CPU presets' ``random-matched`` arm (whole-set images seen once, the same image passes as the small sets)
otherwise. The whole-dataset row is the benchmark's own ranking: ρ = 1 by definition, its pick the best
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
PAPER = {"random": (88.9, 0.70, 0.44), "dm": (87.2, 0.71, 0.51), "cafe": (83.6, 0.59, 0.36),
         "datadam": (89.0, 0.72, 0.69), "early-stop": (88.9, 0.69, 0.64), "random-matched": (88.9, 0.69, 0.64),
         "whole": (89.2, 1.00, 1.00)}
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
    seconds_per_image = case["engine_s_per_epoch"] / (record["ipc"] * 10)  # CIFAR-10: ipc x 10 classes
    return seconds_per_image * WHOLE_SET_IMAGES * WHOLE_SET_EPOCHS * candidates / 60


def _minus(text: str) -> str:
    return text.replace("-", "\u2212")  # the minus sign the results document writes


def _interval(pair) -> str:
    """A paired difference's interval, signed: [−0.13, +0.09]."""
    return "–" if not pair else _minus(f"[{pair[0]:+.2f}, {pair[1]:+.2f}]")


def _rho(s: dict) -> str:
    if s["spearman"] is None:
        return "n/a"
    low, high = s.get("spearman_ci95") or (float("nan"), float("nan"))
    return _minus(f"{s['spearman']:.2f} [{low:.2f}, {high:.2f}]")


HEADER = ("| proxy | ρ (95 % CI) | mean ρ | ρ top-20 % part | ρ − ρ(random) | ρ − ρ(DM) | ρ − ρ(synflow) "
          "| performance (top-1 true acc.) | process-min | images | paper: ρ, performance |")


def _proxy_row(name: str, runs: list[dict], space: str) -> str | None:
    """The proxy's row over ``runs`` (one per seed, a ' / ' between seeds); None unless every run has it."""
    rows = [r["summary"].get(name) for r in runs]
    if None in rows:
        return None
    rhos = [s["spearman"] for s in rows]
    per_seed = lambda cell: " / ".join(cell(s) for s in rows)  # noqa: E731
    paper = PAPER.get(name)
    cells = [LABELS.get(name, name), per_seed(_rho),
             "n/a" if None in rhos else f"{statistics.fmean(rhos):.2f}",
             per_seed(lambda s: _number(s.get("spearman_top20"))) if space == "full" else "–",
             per_seed(lambda s: _interval(s.get("spearman_minus_random_ci95"))) if name != "random" else "–",
             per_seed(lambda s: _interval(s.get("spearman_minus_dm_ci95"))) if name != "dm" else "–",
             per_seed(lambda s: _interval(s.get("spearman_minus_synflow_ci95"))) if name != "synflow" else "–",
             per_seed(lambda s: f"{s['top1_true_accuracy']:.2f}"), per_seed(lambda s: f"{s['proxy_minutes']:.1f}"),
             str(rows[0].get("images", "–")), _paper(paper, space) if paper else "–"]
    return "| " + " | ".join(cells) + " |"


def _paper(paper: tuple, space: str) -> str:
    """The paper's ρ for the space and its performance."""
    return f"{paper[1 if space == 'full' else 2]:.2f}, {paper[0]}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else _minus(f"{value:.2f}")


def _whole_dataset_row(runs: list[dict], space: str, train_speed: dict | None) -> str:
    estimate = whole_dataset_minutes(train_speed or {}, runs[0]["num_finished"])
    best = " / ".join(f"{next(iter(r['summary'].values()))['best_true_accuracy']:.2f}" for r in runs)
    cells = ["whole dataset (the benchmark)", "1.00", "1.00", "1.00" if space == "full" else "–", "–", "–", "–",
             best, "–" if estimate is None else f"≈{estimate:,.0f} (ESTIMATE)", f"{WHOLE_SET_IMAGES:,}",
             _paper(PAPER["whole"], space)]
    return "| " + " | ".join(cells) + " |"


def markdown(runs: list[dict], train_speed: dict | None = None) -> str:
    """One table per space over ``runs`` (results.json dicts); within a cell the seeds are joined by ' / '."""
    out = []
    for space in dict.fromkeys(r["space"] for r in runs):
        mine = sorted((r for r in runs if r["space"] == space), key=lambda r: r["sampling"]["seed"])
        seeds = [r["sampling"]["seed"] for r in mine]
        finished = " / ".join(f"seed {s}: {r['num_finished']} candidates" for s, r in zip(seeds, mine))
        rows = [_proxy_row(name, mine, space) for name in mine[0]["summary"]]
        out += [f"**{space}** ({finished}; cells list seed {' / '.join(map(str, seeds))})", "", HEADER,
                "|" + "---|" * HEADER.count(" | ") + "---|",
                *[row for row in rows if row], _whole_dataset_row(mine, space, train_speed), ""]
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
