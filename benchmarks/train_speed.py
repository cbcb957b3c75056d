"""The training engine against a plain fp32 eager loop, in one run: seconds per epoch, peak memory, accuracy.

The baseline is written here the way DM's ``evaluate_synset`` trains: a ``DataLoader`` over the set,
an epoch loop, DSA on every batch, SGD, the learning rate x0.1 at the midpoint, the loss and the
batch accuracy read on the host every step. The engine is ``distill.core.engine.fit`` with what ``plan()``
chooses for the run at its real length (an evaluation net at the protocol's 1000 or 1800 epochs is
compiled; a NAS candidate's short run is not), applied here to fewer epochs to keep the benchmark
short. Both arms train the same nets from the same initial weights on the same real images and are
tested on the same test images.

Each (case, arm) runs in its own subprocess, so that its peak RSS is its own. Prints JSON and writes
``--out`` as every pair lands; a rerun skips the pairs already measured.

Usage: python benchmarks/train_speed.py [--cases a,b] [--out benchmarks/results/train-speed-bf16cpu.json]
       [--profile]  (adds the torch profiler's op table of both arms of the evaluation cases)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.core.augment import DSA  # noqa: E402
from distill.core.data import load_dataset  # noqa: E402
from distill.core.engine import TrainConfig, fit, plan  # noqa: E402
from distill.core.evaluate import protocol_setup, test_accuracy  # noqa: E402
from distill.core.hardware import machine_info  # noqa: E402
from distill.core.io import open_records, write_json  # noqa: E402
from distill.core.networks import get_network, init_parameters  # noqa: E402
from distill.core.seeds import TRAIN, stream  # noqa: E402

#: The cases of the issue: (a) evaluation nets under the dm protocol at ipc 10 and 50, (b) the official
#: protocol at ipc 10, (c) NAS-Bench-201 candidates at the CPU preset's size and at full size, (d) one
#: continual step of the CPU preset (the last of 10 steps: 10 images of each of 10 classes).
#: ``epochs`` is what the benchmark trains; ``run_epochs`` the real run's length, which decides the plan.
CASES: dict[str, dict] = {
    "eval-dm-ipc10": {"kind": "eval", "protocol": "dm", "ipc": 10, "epochs": 300, "run_epochs": 1000, "nets": 3},
    "eval-dm-ipc50": {"kind": "eval", "protocol": "dm", "ipc": 50, "epochs": 60, "run_epochs": 1000, "nets": 3},
    "eval-official-ipc10": {"kind": "eval", "protocol": "official", "ipc": 10, "epochs": 300, "run_epochs": 1800,
                            "nets": 3},
    "nas-cpu-preset": {"kind": "nas", "channels": 8, "cells": 1, "resolution": 16, "ipc": 10, "batch": 50,
                       "epochs": 400, "run_epochs": 400, "nets": 3, "compile": False},  # as its preset says
    "nas-full-size": {"kind": "nas", "channels": 16, "cells": 5, "resolution": 32, "ipc": 50, "batch": 256,
                      "epochs": 6, "run_epochs": 200, "nets": 1},
    "continual-cpu-preset": {"kind": "continual", "ipc": 10, "width": 32, "batch": 32, "epochs": 50,
                             "run_epochs": 50, "nets": 3},
}
ARMS = ("baseline", "engine")
#: ``engine-fp32``: the engine as ``auto`` runs it on a CPU without native bf16 (fp32; compilation and layout
#: as planned), measured on this machine (``--arms baseline,engine-fp32``).
ALL_ARMS = (*ARMS, "engine-fp32")
NAS_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NAS_TEST_IMAGES = 2000


def baseline_train(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, *, seed: int) -> None:
    """DM's ``evaluate_synset`` loop, in fp32 and eagerly (no autocast, no compile, default layout)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    loader = DataLoader(TensorDataset(images, labels), batch_size=cfg.batch_size, shuffle=True, num_workers=0)
    optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                nesterov=cfg.nesterov)
    cosine = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * len(loader))
              if cfg.schedule == "cosine" else None)
    dsa, generator = DSA(cfg.dsa_strategy if cfg.dsa else "none"), torch.Generator().manual_seed(seed)
    criterion = nn.CrossEntropyLoss()
    net.train()
    for epoch in range(cfg.epochs):
        loss_sum, correct = 0.0, 0
        for x, y in loader:
            x = dsa(x, generator, siamese=False)
            out = net(x)
            loss = criterion(out, y)
            loss_sum += loss.item() * len(y)  # DM reads the loss and the accuracy every step
            correct += int(np.sum(np.argmax(out.detach().cpu().numpy(), axis=-1) == y.numpy()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if cosine is not None:
                cosine.step()
        if cosine is None and epoch + 1 == cfg.epochs // 2:
            for group in optimizer.param_groups:
                group["lr"] *= cfg.lr_decay


def _subset(data, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([data.indices_of(c)[torch.randperm(len(data.indices_of(c)), generator=g)[:per_class]]
                     for c in range(data.num_classes)])
    return data.images[idx], data.labels[idx]


def _setup(case: dict):  # noqa: ANN202 - (images, labels, test images, test labels, build(seed), TrainConfig)
    """The case's training set, test set, network builder and training config (before the engine's plan)."""
    train, test = load_dataset("cifar10", "train"), load_dataset("cifar10", "test")
    images, labels = _subset(train, case["ipc"], seed=0)
    test_images, test_labels = test.images, test.labels
    if case["kind"] == "eval":
        cfg, kwargs = protocol_setup(case["protocol"], TrainConfig(epochs=case["epochs"]))

        def build(seed: int) -> nn.Module:
            return init_parameters(get_network("convnet", num_classes=10, **kwargs), stream(seed, TRAIN))
    elif case["kind"] == "continual":
        cfg = TrainConfig(epochs=case["epochs"], batch_size=case["batch"])

        def build(seed: int) -> nn.Module:
            return init_parameters(get_network("convnet", num_classes=10, width=case["width"]), stream(seed, TRAIN))
    else:
        from nas.config import nb201_train_config
        from nas.network import resize_images
        from nas.proxies import make_candidate, seeded_subset

        cfg = nb201_train_config(epochs=case["epochs"], batch_size=case["batch"], compile=case.get("compile"))
        images = resize_images(images, case["resolution"])
        test_images, test_labels = seeded_subset(test, NAS_TEST_IMAGES, 0)
        test_images = resize_images(test_images, case["resolution"])

        def build(seed: int) -> nn.Module:
            return make_candidate(NAS_ARCH, 10, in_channels=3, seed=seed, channels=case["channels"],
                                  cells_per_stage=case["cells"])
    return images, labels, test_images, test_labels, build, cfg


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> float | None:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5) and return the current RSS in MB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """Peak RSS since :func:`_reset_peak_rss` (VmHWM), else since the process began."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _profile(train_one, epochs: int) -> list[dict]:  # noqa: ANN001
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train_one(epochs)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000, 1),
             "self_share": round(e.self_cpu_time_total / total, 3), "calls": e.count} for e in rows[:12]]


def run_pair(name: str, arm: str, profile: bool, nets: int | None = None) -> dict:
    """One (case, arm) in this process: warm-up, then ``nets`` nets trained and tested."""
    from distill.core.perf import tune_allocator

    case = {**CASES[name], **({"nets": nets} if nets else {})}
    images, labels, test_images, test_labels, build, cfg = _setup(case)
    setup_rss = _reset_peak_rss()  # from here the peak is training's (and testing's), not loading the dataset's
    record: dict = {"case": name, "arm": arm, "epochs": case["epochs"], "nets": case["nets"], **case}
    if arm.startswith("engine"):
        tune_allocator()  # fit() does this too; here it also covers the warm-up's first allocations
        if arm == "engine-fp32":
            cfg = replace(cfg, precision="fp32")
        chosen = plan(replace(cfg, epochs=case["run_epochs"]), len(images), "cpu")
        cfg = replace(cfg, precision=chosen.precision, compile=chosen.compiled, channels_last=chosen.channels_last)
        record["plan_at_run_length"] = chosen.to_dict()

        def train(net: nn.Module, c: TrainConfig, seed: int) -> None:
            fit(net, images, labels, c, seed=seed)
    else:
        record["plan_at_run_length"] = {"precision": "fp32", "compiled": False, "channels_last": False}

        def train(net: nn.Module, c: TrainConfig, seed: int) -> None:
            baseline_train(net, images, labels, c, seed=seed)
    started = time.perf_counter()
    train(build(99), replace(cfg, epochs=1), 99)  # kernel selection, and compilation for the engine
    record["warmup_seconds"] = time.perf_counter() - started
    seconds, runs = [], []
    for seed in range(case["nets"]):
        net = build(seed)
        started = time.perf_counter()
        train(net, cfg, seed)
        seconds.append(time.perf_counter() - started)
        runs.append(test_accuracy(net.eval(), test_images, test_labels))
    record.update(seconds=seconds, seconds_per_epoch=float(np.median(seconds)) / case["epochs"],
                  accuracy_runs=runs, accuracy=float(np.mean(runs)),
                  rss_after_setup_mb=setup_rss, peak_rss_mb=_peak_rss_mb())
    if profile and case["kind"] == "eval":
        record["profile"] = _profile(lambda e: train(build(7), replace(cfg, epochs=e), 7), 3)
    return record


def _above_setup(record: dict) -> int | None:
    setup = record.get("rss_after_setup_mb")
    return None if setup is None else round(record["peak_rss_mb"] - setup)


def summarise(records: list[dict], engine_arm: str = "engine") -> dict:
    """Per case: s/epoch of both arms, their ratio (baseline / engine), peak memory and accuracies."""
    table = {}
    for name in CASES:
        arms = {r["arm"]: r for r in records if r["case"] == name}
        if not {"baseline", engine_arm} <= set(arms):
            continue
        base, eng = arms["baseline"], arms[engine_arm]
        table[name] = {"baseline_s_per_epoch": round(base["seconds_per_epoch"], 4),
                       "engine_s_per_epoch": round(eng["seconds_per_epoch"], 4),
                       "speedup": round(base["seconds_per_epoch"] / eng["seconds_per_epoch"], 2),
                       "engine_warmup_seconds": round(eng["warmup_seconds"], 1),
                       "baseline_accuracy": round(base["accuracy"], 2), "engine_accuracy": round(eng["accuracy"], 2),
                       "accuracy_difference": round(eng["accuracy"] - base["accuracy"], 2),
                       "baseline_peak_rss_mb": round(base["peak_rss_mb"]), "engine_peak_rss_mb": round(eng["peak_rss_mb"]),
                       # the peak above what the data already held: training's (and testing's) own memory
                       "baseline_train_mb": _above_setup(base), "engine_train_mb": _above_setup(eng),
                       "engine": eng["plan_at_run_length"]}
    return table


LABELS = {"eval-dm-ipc10": "(a) evaluation net, `dm`, ipc 10", "eval-dm-ipc50": "(a) evaluation net, `dm`, ipc 50",
          "eval-official-ipc10": "(b) evaluation net, `official`, ipc 10",
          "nas-cpu-preset": "(c) NB201 candidate, CPU preset (C 8, N 1, 16 px, batch 50)",
          "nas-full-size": "(c) NB201 candidate, full size (C 16, N 5, 32 px)",
          "continual-cpu-preset": "(d) continual step, CPU preset (width 32, batch 32)"}


def render(report: dict) -> str:
    """The results document's table: one row per case, measured in one run of this script."""
    machine = report.get("machine", {})
    rows = ["| case | epochs × nets | plain fp32 s/epoch | engine s/epoch | speed-up | engine uses | "
            "accuracy plain → engine (%) | training memory plain / engine (MB) |", "|---|---|---|---|---|---|---|---|"]
    for name, row in report.get("summary", {}).items():
        case = CASES[name]
        engine = row["engine"]
        uses = f"{engine['precision']}{', compiled' if engine['compiled'] else ''}" \
               f"{', channels-last' if engine['channels_last'] else ''}"
        rows.append(f"| {LABELS[name]} | {case['epochs']} × {case['nets']} | {row['baseline_s_per_epoch']:.4f} | "
                    f"{row['engine_s_per_epoch']:.4f} | **{row['speedup']:.2f}×** | {uses} | "
                    f"{row['baseline_accuracy']:.2f} → {row['engine_accuracy']:.2f} | "
                    f"{row['baseline_train_mb']} / {row['engine_train_mb']} |")
    loads = [r["load_average_before"][0] for r in report.get("records", [])]
    note = (f"\nMeasured in one run of `python benchmarks/train_speed.py --profile` on {machine.get('cpu_model', '?')} "
            f"({machine.get('cpu_count')} cores, native bf16: {machine.get('native_bf16')}); 1-minute load average "
            f"before each pair {min(loads, default=0):.2f}–{max(loads, default=0):.2f}. s/epoch is the median "
            "net's training time over its epochs; the engine's one-off compilation is its warm-up "
            "(`engine_warmup_seconds` in the JSON), not in s/epoch. Accuracy: end of training, mean over the "
            "nets, same initial weights and images (the benchmark's epochs, not the protocol's).")
    return "\n".join(rows) + "\n" + note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ",".join(CASES))
    parser.add_argument("--out", default="benchmarks/results/train-speed-bf16cpu.json")
    parser.add_argument("--profile", action="store_true", help="add the profiler's op table (evaluation cases)")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated: " + ",".join(ALL_ARMS))
    parser.add_argument("--nets", type=int, default=None, help="nets per arm (default: each case's own)")
    parser.add_argument("--render", action="store_true", help="write the table into docs/RESULTS.md from --out")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "ARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_pair(*args.child, profile=args.profile, nets=args.nets)))
        return 0
    if args.render:
        from distill.core.io import write_section

        table = render(json.loads(Path(args.out).read_text()))
        write_section(Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md", "train-speed", table)
        print(table)
        return 0
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"error: unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    arms = [a for a in args.arms.split(",") if a]
    if [a for a in arms if a not in ALL_ARMS] or "baseline" not in arms:
        raise SystemExit(f"error: --arms {args.arms}: choose baseline and one or more of {', '.join(ALL_ARMS[1:])}")
    settings = {"cases": {c: CASES[c] for c in CASES}, "profile": args.profile}
    if args.arms != ",".join(ARMS) or args.nets:
        settings.update(arms=arms, nets=args.nets)
    report = open_records(args.out, settings)
    done = {(r["case"], r["arm"]) for r in report["records"]}
    for name in cases:
        for arm in arms:
            if (name, arm) in done:
                continue
            load = os.getloadavg()
            cmd = [sys.executable, __file__, "--child", name, arm] + (["--profile"] if args.profile else []) + \
                (["--nets", str(args.nets)] if args.nets else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"error: {name} {arm} failed:\n{proc.stderr[-3000:]}")
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            record["load_average_before"] = list(load)
            report["records"].append(record)
            report["machine"] = machine_info("cpu")
            report["summary"] = {arm: summarise(report["records"], arm) for arm in arms[1:]} if len(arms) > 2 or \
                arms[1] != "engine" else summarise(report["records"])
            write_json(args.out, report)
            print(f"{name:22s} {arm:8s} {record['seconds_per_epoch']:.4f} s/epoch  acc {record['accuracy']:.2f}  "
                  f"rss {record['peak_rss_mb']:.0f} MB  warm-up {record['warmup_seconds']:.1f} s", file=sys.stderr)
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
