"""The paper's cost table: seconds per outer iteration and peak memory of DC, DSA, DM, MTT, CAFE, DataDAM by ipc.

Every (method, ipc) runs in its own subprocess, so that its peak memory (RSS, and the CUDA peak on a GPU)
is its own. An iteration is one outer iteration as the papers count them: a fresh network with its
``outer_loop`` updates for DC/DSA (its watched, variable-length loops for CAFE), one expert segment for
MTT (the experts' training, the buffer step, is not timed), one encoder for DM/DataDAM. The seconds are
the median gap between consecutive iterations after the first. The paper's GPU figures stand beside
ours, and both as ratios to DM, since the machines differ. Images are random tensors of CIFAR-10's
shape: the cost of a fixed-length iteration does not depend on the pixels. CAFE's does (its loops stop on
a watched accuracy), so its row is measured on CIFAR-10 itself (``--data cifar10``: the first
``--per-class`` training images of each class), beside DM's there for the ratio.

Usage: python benchmarks/distill_cost.py [--ipcs 1,10,50] [--methods dc,dsa,dm,mtt,cafe,datadam] [--iters 3]
                                         [--device cpu|cuda] [--smoke | --preset cpu] [--data cifar10] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.core.hardware import machine_info  # noqa: E402
from distill.core.io import write_json  # noqa: E402
from distill.methods import DistillConfig, distill, get_method  # noqa: E402
from distill.core.testing import tiny_dataset  # noqa: E402

#: The paper's "run time (sec)" per iteration on a GPU, by ipc (None: out of memory). DM: one figure given.
PAPER_SECONDS = {
    "dc": {1: 0.16, 10: 3.31, 50: 15.74},
    "dsa": {1: 0.22, 10: 4.47, 50: 20.13},
    "dm": {1: 0.08, 10: 0.08, 50: 0.08},
    "mtt": {1: 0.36, 10: 0.40, 50: None},
    "datadam": {1: 0.09, 10: 0.08, 50: 0.16},
    "cafe": {1: None, 10: None, 50: None},  # not in the paper's cost table
}
#: A tiny setting that checks the script end to end in seconds (never a figure to compare).
SMOKE = {"classes": 3, "per_class": 20, "size": 32, "depth": 2, "width": 8, "batch_real": 8,
         "mtt": {"num_experts": 1, "expert_train_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1,
                 "syn_steps": 2, "zca": False}}


def _child(spec: dict) -> dict:
    """Distill ``spec['iters'] + 1`` iterations of one method and ipc; the seconds between iterations and the peak."""
    torch.set_num_threads(spec["threads"])
    data = _data(spec)
    overrides = dict(spec["overrides"])
    cfg = DistillConfig(method=spec["method"], ipc=spec["ipc"], iterations=spec["iters"] + 1, **overrides)
    stamps: list[float] = []
    if spec["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synthetic = distill(data, cfg, seed=0, device=spec["device"], progress=False,
                        callback=lambda it, loss: stamps.append(time.perf_counter()))
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"seconds_per_iteration": statistics.median(gaps), "iterations_timed": len(gaps),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cuda_peak_mb": (torch.cuda.max_memory_allocated() / 2**20 if spec["device"] == "cuda" else None),
            "precision": synthetic.config["precision"], "resolved": {k: synthetic.config.get(k) for k in (
                "outer_loop", "inner_loop", "syn_steps", "batch_real", "width", "depth", "zca")},
            **({"cafe_loops": synthetic.config["cafe_loops"]} if "cafe_loops" in synthetic.config else {})}


def _data(spec: dict):
    """Random tensors of CIFAR-10's shape, or (``data = cifar10``) the first ``per_class`` training images of
    each CIFAR-10 class."""
    if spec.get("data", "random") == "random":
        return tiny_dataset(spec["classes"], spec["per_class"], size=spec["size"])
    from distill.core.data import from_tensors, load_dataset

    train = load_dataset(spec["data"], "train")
    keep = torch.cat([torch.nonzero(train.labels == c).flatten()[:spec["per_class"]]
                      for c in range(train.num_classes)])
    return from_tensors(train.images[keep], train.labels[keep], train.class_names, mean=train.mean, std=train.std)


#: ``--preset cost``: what leaves an iteration's cost as the paper's and trims only what is not timed. MTT
#: trains one expert just long enough to cover one segment (the buffer step is not timed, and the start
#: epoch does not change what a segment costs); every other method runs at its paper settings.
COST = {"mtt": {"num_experts": 1, "max_start_epoch": 1, "expert_train_epochs": 3}}


def _overrides(method: str, ipc: int, smoke: bool, preset: str | None) -> dict:
    """The smoke setting, or a method's own named preset (its iterations aside: the benchmark sets those)."""
    if preset == "cost":
        return dict(COST.get(method, {}))
    if preset is not None:
        return {k: v for k, v in get_method(method).presets.get(preset, {}).items() if k != "iterations"}
    if not smoke:
        return {}
    out = {k: SMOKE[k] for k in ("depth", "width", "batch_real")}
    if method in ("dc", "dsa") and ipc not in (1, 10, 50):
        out.update(outer_loop=ipc, inner_loop=1)
    if method == "mtt":
        out.update(SMOKE["mtt"])
    return out


def _ratios(records: list[dict]) -> None:
    """Each record's seconds divided by DM's at the same ipc, measured and in the paper."""
    dm = {r["ipc"]: r for r in records if r["method"] == "dm" and r.get("seconds_per_iteration")}
    for r in records:
        base = dm.get(r["ipc"])
        r["ratio_to_dm"] = (r["seconds_per_iteration"] / base["seconds_per_iteration"]
                            if base and r.get("seconds_per_iteration") else None)
        paper, paper_dm = r["paper_seconds"], PAPER_SECONDS["dm"].get(r["ipc"])
        r["paper_ratio_to_dm"] = paper / paper_dm if paper is not None and paper_dm else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ipcs", default="1,10,50")
    parser.add_argument("--methods", default="dc,dsa,dm,mtt,cafe,datadam")
    parser.add_argument("--iters", type=int, default=3, help="timed iterations (after one untimed)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--per-class", type=int, default=500, help="real images per class")
    parser.add_argument("--data", default="random", choices=("random", "cifar10"),
                        help="random tensors of CIFAR-10's shape (default), or CIFAR-10's training images")
    parser.add_argument("--smoke", action="store_true", help="a tiny setting that checks the script in seconds")
    parser.add_argument("--preset", default=None, help="cost: the paper's settings, MTT with one short expert (the "
                        "untimed buffer step); or each method's own preset (e.g. cpu: MTT with 2 experts x 4 epochs, "
                        "20 student steps); default: the paper's settings")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per (method, ipc) before it is skipped")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/distill-cost[-smoke].json)")
    parser.add_argument("--render", default=None, metavar="FILE", help="print FILE's table as markdown and stop")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render is not None:
        print(render(json.loads(Path(args.render).read_text())))
        return
    if args.child is not None:
        print(json.dumps(_child(json.loads(args.child))))
        return
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        get_method(m)  # an unknown one fails here, naming the registered ones
    ipcs = [int(i) for i in args.ipcs.split(",")]
    classes, per_class, size = (SMOKE["classes"], SMOKE["per_class"], SMOKE["size"]) if args.smoke \
        else (10, args.per_class, 32)
    data = "" if args.data == "random" else f"-{args.data}"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / (
        "distill-cost-smoke.json" if args.smoke else f"distill-cost-{args.device}{data}.json")
    settings = {"ipcs": ipcs, "methods": methods, "iters": args.iters, "device": args.device, "threads": args.threads,
                "classes": classes, "per_class": per_class, "smoke": args.smoke, "preset": args.preset}
    if args.data != "random":  # a key only where it is not the default, so that earlier files still match
        settings["data"] = args.data
    # A rerun with the same settings keeps the rows measured (each is written as it lands) and adds the rest.
    earlier = json.loads(out.read_text()) if out.is_file() else {}
    # Ratios compare rows of one machine: rows measured on another CPU model are left behind (their file is kept
    # by git), not mixed in.
    same = {k: v for k, v in earlier.get("settings", {}).items() if k not in ("ipcs", "methods")} == \
        {k: v for k, v in settings.items() if k not in ("ipcs", "methods")} and \
        earlier.get("machine", {}).get("cpu_model") == machine_info(args.device).get("cpu_model")
    # A failed row is tried again when this run measures its (method, ipc); the others' failures are kept.
    records = [r for r in earlier.get("records", []) if same and ("error" not in r or r["method"] not in methods
                                                                  or r["ipc"] not in ipcs)]
    loads = [earlier["machine"].get("load_average")] if same and records else []
    for ipc in ipcs:
        for method in methods:
            if any(r["method"] == method and r["ipc"] == ipc and "error" not in r for r in records):
                continue
            records = [r for r in records if not (r["method"] == method and r["ipc"] == ipc)]
            spec = {"method": method, "ipc": ipc, "iters": args.iters, "device": args.device, "data": args.data,
                    "threads": args.threads, "classes": classes, "per_class": per_class, "size": size,
                    "overrides": _overrides(method, ipc, args.smoke, args.preset)}
            record = {"method": method, "ipc": ipc, "paper_seconds": PAPER_SECONDS.get(method, {}).get(ipc)}
            try:
                done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                      text=True, timeout=args.timeout)
                if done.returncode == 0:
                    record.update(json.loads(done.stdout.strip().splitlines()[-1]))
                elif done.returncode == -signal.SIGKILL:  # the kernel's out-of-memory killer, as a rule
                    record["error"] = "killed (SIGKILL: out of memory?)"
                else:
                    record["error"] = (done.stderr.strip().splitlines() or ["failed"])[-1]
            except subprocess.TimeoutExpired:
                record["error"] = f"over {args.timeout:.0f} s"
            records.append(record)
            print(json.dumps(record), flush=True)
            _write(out, settings, records, args.device, loads)
    _write(out, settings, records, args.device, loads)
    print(f"wrote {out}")


def render(data: dict) -> str:
    """The table as markdown: per method and ipc, seconds per iteration, its ratio to DM and the paper's ratio."""
    ipcs = sorted({r["ipc"] for r in data["records"]})
    order = list(PAPER_SECONDS)  # the paper's rows first, in its order
    methods = sorted(dict.fromkeys(r["method"] for r in data["records"]),
                     key=lambda m: order.index(m) if m in order else len(order))
    machine = data["machine"]
    lines = [f"{machine.get('cpu_model', '?')}, {data['settings']['threads']} threads, "
             f"{'native' if machine.get('native_bf16') else 'no native'} bf16; load average "
             f"{', '.join(f'{x:.1f}' for x in machine.get('load_average') or [])}; "
             f"{data['settings']['iters']} timed iterations after one untimed, preset {data['settings']['preset']}; "
             f"images: {data['settings'].get('data', 'random tensors')}.",
             "", "| method | " + " | ".join(f"ipc {i}: s/it (× DM) [paper × DM] | peak RSS MB" for i in ipcs) + " |",
             "|---|" + "---|---|" * len(ipcs)]
    for m in methods:
        cells = []
        for i in ipcs:
            r = next((r for r in data["records"] if r["method"] == m and r["ipc"] == i), None)
            if r is None:
                cells += ["—", "—"]
                continue
            paper = "" if r.get("paper_ratio_to_dm") is None else f" [{r['paper_ratio_to_dm']:.2f}]"
            if r.get("seconds_per_iteration") is None:
                cells += [f"{r.get('error', 'failed')}{paper}", "—"]
                continue
            ratio = "" if r.get("ratio_to_dm") is None else f" ({r['ratio_to_dm']:.2f}×)"
            cells += [f"{r['seconds_per_iteration']:.2f}{ratio}{paper}", f"{r['peak_rss_mb']:.0f}"]
        lines.append(f"| {get_method(m).label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(out: Path, settings: dict, records: list[dict], device: str, loads: list) -> None:
    """The table so far, atomically, with the machine and its load average now (and at earlier sittings)."""
    _ratios(records)
    machine = machine_info(device)
    machine["load_average_earlier_sittings"] = loads
    write_json(out, {"settings": {**settings, "ipcs": sorted({r["ipc"] for r in records}),
                                  "methods": list(dict.fromkeys(r["method"] for r in records))},
                     "machine": machine, "records": records,
                     "paper": {"seconds": PAPER_SECONDS, "note": "GPU figures of the DataDAM paper's cost table; "
                               "compare ratios to DM, not seconds, across machines"}})


if __name__ == "__main__":
    main()
