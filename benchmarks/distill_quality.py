"""DataDAM against DM at equal iterations: snapshots of one seeded run, each evaluated under both protocols.

Every arm (method, variant, batch_real, precision) distills CIFAR-10 once with seed 0; the images are
snapshotted at each listed iteration count and every snapshot is evaluated by training ``--nets`` fresh
ConvNet-3 under each evaluation protocol (``dm`` and ``official``, distill/core/evaluate.py), accuracy at the
END of training on the 10,000 real test images. All arms of one seed see the same real batches.

A snapshot at k is the run resumed from the snapshot before it (bit-identical to a run stopped at k,
tests/test_quality_benchmark.py), so the study checkpoints by construction: rerun the same command and
it continues where it stopped. Records are written (atomically) to ``--out`` as they land, with a plot.

Usage:
  python benchmarks/distill_quality.py --ipc 1 --arms datadam:paper:64,dm:paper:64,datadam:official:64 \\
      --snapshots 500,1000,2000,4000 --out benchmarks/results/quality-vs-iterations-ipc1.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from distill.core.data import ClassDataset, load_dataset  # noqa: E402
from distill.core.evaluate import EVAL_PROTOCOLS, TrainConfig, evaluate, protocol_setup  # noqa: E402
from distill.core.hardware import machine_info  # noqa: E402
from distill.core.io import write_json  # noqa: E402
from distill.methods import DistillConfig, distill  # noqa: E402
from distill.core.perf import tune_allocator  # noqa: E402
from distill.core.synthetic import SyntheticSet  # noqa: E402

#: Epochs of each protocol's evaluation nets (the public codes' values).
PROTOCOL_EPOCHS = {"dm": 1000, "official": 1800}


@dataclass(frozen=True)
class Arm:
    method: str
    variant: str
    batch_real: int
    precision: str = "auto"
    norm: str | None = None  # the encoder's norm where it is not the variant's (DM with a BatchNorm encoder)

    @classmethod
    def parse(cls, text: str) -> "Arm":
        parts = text.split(":")
        if not 3 <= len(parts) <= 5:
            raise SystemExit(f"error: arm {text!r} is not method:variant:batch_real[:precision[:norm]]")
        return cls(parts[0], parts[1], int(parts[2]), *parts[3:])

    @property
    def name(self) -> str:
        norm = f"-{self.norm}" if self.norm else ""
        return f"{self.method}-{self.variant}-b{self.batch_real}-{self.precision}{norm}"

    def config(self, ipc: int, iterations: int, **overrides) -> DistillConfig:
        return DistillConfig(**{"method": self.method, "variant": self.variant, "ipc": ipc, "iterations": iterations,
                                "batch_real": self.batch_real, "precision": self.precision, "norm": self.norm,
                                "checkpoint_minutes": 2.0, **overrides})


def snapshot(arm: Arm, ipc: int, iterations: int, train: ClassDataset, work: Path, *, seed: int = 0,
             progress: bool = True, **overrides) -> tuple[SyntheticSet, float]:
    """The arm's images after ``iterations`` steps, resumed from its checkpoint; and this call's seconds.

    ``overrides`` are further :class:`DistillConfig` fields (a small encoder in the tests).
    """
    path = work / arm.name / f"it{iterations:05d}.pt"
    if path.is_file():
        return SyntheticSet.load(path), 0.0
    started = time.perf_counter()
    synthetic = distill(train, arm.config(ipc, iterations, **overrides), seed=seed, progress=progress,
                        checkpoint=work / arm.name / "checkpoint.pt", resume=True)
    if synthetic.iterations != iterations:  # killed between the checkpoint at k and this save: start the arm over
        raise SystemExit(f"error: {arm.name}'s checkpoint is at {synthetic.iterations} iterations, past the missing "
                         f"snapshot at {iterations}; delete {work / arm.name} to redo that arm")
    synthetic.save(path)
    return synthetic, time.perf_counter() - started


def evaluate_snapshot(synthetic: SyntheticSet, test: ClassDataset, protocol: str, nets: int,
                      epochs: int) -> dict:
    config, net_kwargs = protocol_setup(protocol, TrainConfig(epochs=epochs))
    started = time.perf_counter()
    result = evaluate(synthetic.images, synthetic.labels, test, config=config, seeds=range(nets), **net_kwargs)
    return {"accuracy": dataclasses.asdict(result), "eval_seconds": time.perf_counter() - started,
            "eval": {"epochs": config.epochs, "batch_size": config.batch_size, "nets": nets, **net_kwargs}}


def _label(arm: str) -> str:
    """``datadam-official-b64-auto`` -> ``DataDAM official (BN, p=1), 64 real/class``."""
    method, variant, batch, precision, *norm = arm.split("-")
    name = {"datadam": "DataDAM", "dm": "DM"}.get(method, method)
    if method == "datadam":
        name += " official (BN, p=1)" if variant == "official" else " paper (IN, p=4)"
    if norm:
        name += " with a BatchNorm encoder" if norm[0] == "batchnorm" else f" ({norm[0]} encoder)"
    return f"{name}, {batch[1:]} real/class" + ("" if precision == "auto" else f", {precision}")


def plot(records: list[dict], path: Path, *, ipc: int) -> None:
    """Accuracy against iterations, one curve per arm with a ± std band, one panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.plot import save_figure

    protocols = [p for p in EVAL_PROTOCOLS if any(r["protocol"] == p for r in records)]
    fig, axes = plt.subplots(1, max(1, len(protocols)), figsize=(6 * max(1, len(protocols)), 4.2), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        arms = sorted({r["arm"] for r in records if r["protocol"] == protocol})
        for arm in arms:
            rows = sorted((r for r in records if r["arm"] == arm and r["protocol"] == protocol),
                          key=lambda r: r["iterations"])
            x = [r["iterations"] for r in rows]
            mean = [r["accuracy"]["mean"] for r in rows]
            std = [r["accuracy"]["std"] for r in rows]
            line, = ax.plot(x, mean, marker="o", lw=1.5, label=_label(arm))
            ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=line.get_color(), alpha=0.2)
        ax.set_xscale("log", base=2)
        ticks = sorted({r["iterations"] for r in records})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("distillation iterations (log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"CIFAR-10 ipc {ipc}, {protocol} protocol")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def markdown_table(records: list[dict]) -> str:
    """Accuracy per arm and snapshot, one column per protocol, with DataDAM − DM where both are there."""
    protocols = [p for p in EVAL_PROTOCOLS if any(r["protocol"] == p for r in records)]
    cell = {(r["arm"], r["iterations"], r["protocol"]): r["accuracy"] for r in records}
    lines = ["| arm | iterations | " + " | ".join(f"{p} protocol" for p in protocols) + " |",
             "|---|---|" + "---|" * len(protocols)]
    for arm in sorted({r["arm"] for r in records}):
        for k in sorted({r["iterations"] for r in records if r["arm"] == arm}):
            accs = [cell.get((arm, k, p)) for p in protocols]
            lines.append(f"| {arm} | {k} | " + " | ".join(f"{a['mean']:.2f} ± {a['std']:.2f}" if a else "—"
                                                         for a in accs) + " |")
    gaps = []
    for k in sorted({r["iterations"] for r in records}):
        for p in protocols:
            a, b = cell.get(("datadam-paper-b64-auto", k, p)), cell.get(("dm-paper-b64-auto", k, p))
            if a and b:
                gaps.append(f"{k} it, {p}: {a['mean'] - b['mean']:+.2f}")
    if gaps:
        lines.append("")
        lines.append("DataDAM (paper, b64) − DM (b64): " + "; ".join(gaps))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--arms", default="datadam:paper:64,dm:paper:64,datadam:official:64",
                        help="method:variant:batch_real[:precision], comma-separated")
    parser.add_argument("--snapshots", default="500,1000,2000,4000")
    parser.add_argument("--protocols", default="dm,official")
    parser.add_argument("--nets", type=int, default=3, help="evaluation nets per snapshot and protocol")
    parser.add_argument("--epochs", default="", help="protocol:epochs overrides, e.g. dm:300,official:500")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--work", type=Path, default=Path("runs/quality-study"), help="snapshots and checkpoints")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file; the PNG goes beside it")
    parser.add_argument("--stop-after-minutes", type=float, default=None,
                        help="start no new task after this long (rerun to continue)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--table", action="store_true",
                        help="redraw --out's plot, print its records as a Markdown table, and stop")
    args = parser.parse_args()
    if args.table:
        report = json.loads(args.out.read_text())
        plot(report["records"], args.out.with_suffix(".png"), ipc=report["ipc"])
        print(markdown_table(report["records"]))
        return
    tune_allocator()
    epochs = {**PROTOCOL_EPOCHS, **{k: int(v) for k, v in (p.split(":") for p in args.epochs.split(",") if p)}}
    arms = [Arm.parse(a) for a in args.arms.split(",")]
    snapshots = sorted(int(s) for s in args.snapshots.split(","))
    protocols = args.protocols.split(",")
    report = json.loads(args.out.read_text()) if args.out.is_file() else {"records": []}
    done = {(r["arm"], r["iterations"], r["protocol"]) for r in report["records"]}
    train = load_dataset("cifar10", "train", data_root=args.data_root)
    test = load_dataset("cifar10", "test", data_root=args.data_root)
    work = args.work / f"ipc{args.ipc}"
    began = time.monotonic()
    # Snapshots in increasing order for every arm, arm by arm within a snapshot: the cheapest complete
    # comparison lands first, and an interrupted study says where each arm stopped.
    for k in snapshots:
        for arm in arms:
            if all((arm.name, k, p) in done for p in protocols):
                continue
            if args.stop_after_minutes is not None and time.monotonic() - began > args.stop_after_minutes * 60:
                print(f"stopping before {arm.name} at {k} iterations (--stop-after-minutes); rerun to continue",
                      file=sys.stderr)
                return
            synthetic, seconds = snapshot(arm, args.ipc, k, train, work, progress=not args.quiet)
            for protocol in protocols:
                if (arm.name, k, protocol) in done:
                    continue
                row = {"arm": arm.name, **dataclasses.asdict(arm),
                       "resolved_precision": synthetic.config.get("precision"), "ipc": args.ipc,
                       "iterations": synthetic.iterations, "protocol": protocol,
                       "distill_seconds_since_last_snapshot": seconds,
                       **evaluate_snapshot(synthetic, test, protocol, args.nets, epochs[protocol])}
                report["records"].append(row)
                done.add((arm.name, k, protocol))
                report.update({"dataset": "cifar10 (shared JPEG copy)", "ipc": args.ipc, "seed": 0,
                               "machine": machine_info(), "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "stopped_at": {a.name: max([r["iterations"] for r in report["records"]
                                                           if r["arm"] == a.name] or [0]) for a in arms}})
                write_json(args.out, report)
                plot(report["records"], args.out.with_suffix(".png"), ipc=args.ipc)
                acc = row["accuracy"]
                print(f"{arm.name:32s} it {k:5d} {protocol:8s} {acc['mean']:6.2f} ± {acc['std']:.2f}  "
                      f"(eval {row['eval_seconds']:.0f} s)", flush=True)
    print(json.dumps(report["stopped_at"]))


if __name__ == "__main__":
    main()
