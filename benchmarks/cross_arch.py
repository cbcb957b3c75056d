"""Cross-architecture evaluation: sets made with the ConvNet, trained on AlexNet, VGG-11 and ResNet-18.

The sets are the ones ``benchmarks/accuracy_vs_ipc.py`` built (``--sets``: its ``--work``/ipc<N> folder),
so this table and the accuracy-against-ipc table evaluate the same images; or, with ``--study DIR --ipc N``,
the paper-table study's committed sets (each method's own cell at that ipc: DataDAM's paper variant and DM at
8000 iterations, DC/DSA/MTT/CAFE at the iterations their cells state). Every (method, network) pair
trains ``--nets`` fresh networks for ``--epochs`` epochs under the ``dm`` protocol's recipe
(distill/core/evaluate.py; the ConvNet keeps the protocol's instance norm, the other networks their own) and
tests them on the 10,000 real test images. Records land in ``--out`` (atomically) as each pair finishes;
rerun the same command and it continues.

Usage:
  python benchmarks/accuracy_vs_ipc.py --ipcs 10 --methods datadam,dm,herding,random   # makes the sets
  python benchmarks/cross_arch.py --sets runs/accuracy-vs-ipc/ipc10 --methods datadam,dm,herding,random \\
      --networks convnet,alexnet,vgg11,resnet18 --nets 1 --epochs 100 --out benchmarks/results/cross-arch-ipc10.json
  python benchmarks/cross_arch.py --study benchmarks/results/paper-table --ipc 10 \\
      --methods datadam,dm,dc,dsa,mtt,herding,random --nets 3 --out benchmarks/results/cross-arch-study-ipc10.json
  python benchmarks/cross_arch.py --table --out benchmarks/results/cross-arch-ipc10.json   # print the table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.accuracy_vs_ipc import PAPER  # noqa: E402
from distill.core.data import load_dataset  # noqa: E402
from distill.core.errors import DistillError  # noqa: E402
from distill.core.evaluate import TrainConfig, evaluate_networks  # noqa: E402
from distill.core.zca import whitened_like  # noqa: E402
from distill.core.hardware import machine_info  # noqa: E402
from distill.core.io import open_records, write_json  # noqa: E402
from distill.job import RunConfig, eval_setup  # noqa: E402
from distill.core.networks import list_networks  # noqa: E402
from distill.core.perf import tune_allocator  # noqa: E402
from distill.core.synthetic import SyntheticSet  # noqa: E402
from distill.methods import get_method, list_methods  # noqa: E402

PROTOCOL = "dm"
#: The DataDAM paper's cross-architecture table, CIFAR-10 ipc 50 (ConvNet-distilled, 1000+ epochs on a GPU);
#: its ConvNet column is the accuracy table's.
PAPER_IPC50 = {"datadam": {"convnet": PAPER["datadam"][50][0], "alexnet": 63.9, "vgg11": 64.8, "resnet18": 60.2},
               "dm": {"convnet": PAPER["dm"][50][0], "alexnet": 60.1, "vgg11": 57.4, "resnet18": 52.9}}
BUDGET = ("nets", "epochs")


def table(report: dict) -> str:
    """A Markdown table: one row per method, one column per network, mean ± std (test %), paper's ipc 50 after."""
    networks = list(dict.fromkeys(r["network"] for r in report["records"]))
    methods = list(dict.fromkeys(r["method"] for r in report["records"]))
    found = {(r["method"], r["network"]): r for r in report["records"]}
    lines = ["| set (ipc %s) | " % report.get("ipc", "?") + " | ".join(networks) + " | paper ipc 50 |",
             "|" + "---|" * (len(networks) + 2)]
    for m in methods:
        cells = []
        for n in networks:
            r = found.get((m, n))
            cells.append(f"{r['mean']:.1f} ± {r['std']:.1f}" if r else "-")
        paper = PAPER_IPC50.get(m)
        cells.append(" / ".join(f"{paper[n]}" for n in networks if n in paper) if paper else "-")
        lines.append(f"| {get_method(m).label if m in list_methods() else m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def set_files(args: argparse.Namespace, methods: list[str]) -> dict[str, Path]:
    """Each method's set file: ``<sets>/<method>.pt``, or its own cell of the study under ``--study``."""
    if args.study is None:
        files = {m: args.sets / f"{m}.pt" for m in methods}
        hint = (f"make them with benchmarks/accuracy_vs_ipc.py --ipcs N --methods {args.methods} (its --work folder "
                f"holds ipc<N>/<method>.pt)")
    else:
        from benchmarks.paper_table import CELLS, headline_cell, set_file

        try:
            cells = {m: headline_cell(m, args.ipc) for m in methods}
        except DistillError as exc:
            raise SystemExit(f"error: {exc}") from None
        absent = [c.name for c in cells.values() if c not in CELLS]
        if absent:
            raise SystemExit(f"error: the study has no cell {', '.join(absent)}; pick an ipc it runs (1, 10 or 50)")
        files = {m: set_file(args.study, c) for m, c in cells.items()}
        hint = (f"run those cells first: python benchmarks/paper_table.py --only "
                f"{','.join(c.name for m, c in cells.items() if not files[m].is_file())}")
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise SystemExit(f"error: no set at {', '.join(missing)}; {hint}")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=Path, default=Path("runs/accuracy-vs-ipc/ipc10"),
                        help="folder of <method>.pt sets (accuracy_vs_ipc.py's --work/ipc<N>)")
    parser.add_argument("--study", type=Path, default=None,
                        help="read the paper-table study's sets from this folder instead of --sets (with --ipc)")
    parser.add_argument("--ipc", type=int, default=10, help="with --study: the cells' ipc")
    parser.add_argument("--methods", default="datadam,dm,herding,random", help="comma-separated set names")
    parser.add_argument("--networks", default="convnet,alexnet,vgg11,resnet18", help="comma-separated")
    parser.add_argument("--nets", type=int, default=1, help="networks trained per (set, network)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of every network")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cross-arch-ipc10.json"))
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return 0
    networks = [n for n in args.networks.split(",") if n]
    unknown = [n for n in networks if n not in list_networks()]
    if unknown:
        raise SystemExit(f"error: unknown network(s) {unknown}; choose from {', '.join(list_networks())}")
    methods = [m for m in args.methods.split(",") if m]
    files = set_files(args, methods)
    tune_allocator()
    report = open_records(args.out, {k: getattr(args, k) for k in BUDGET})
    done = {(r["method"], r["network"]) for r in report["records"]}
    test = load_dataset("cifar10", "test", data_root=args.data_root)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    run = RunConfig(eval_protocol=PROTOCOL, train=TrainConfig(epochs=args.epochs))  # the ConvNet keeps its norm
    for method in methods:
        synthetic = SyntheticSet.load(files[method])
        if report["records"] and report.get("ipc") not in (None, synthetic.ipc):
            raise SystemExit(f"error: {args.out} holds ipc-{report['ipc']} records and {files[method]} is an "
                             f"ipc-{synthetic.ipc} set; pass another --out")
        report["ipc"] = synthetic.ipc
        for network in networks:
            if (method, network) in done:
                continue
            row = evaluate_networks(synthetic.images, synthetic.labels, whitened_like(test, synthetic), [network],
                                    setup=partial(eval_setup, run, synthetic=synthetic),
                                    seeds=range(args.nets), device=device)[network]
            report["records"].append({"method": method, "set": str(files[method]), "iterations": synthetic.iterations,
                                      "device": device, "protocol": PROTOCOL, **row})
            report.update({"dataset": "cifar10", "sets": str(args.study or args.sets),
                           "machine": machine_info(device), "updated": time.strftime("%Y-%m-%d %H:%M:%S")})
            write_json(args.out, report)
            print(f"{method:10s} {network:9s} {row['mean']:6.2f} ± {row['std']:.2f}  ({row['seconds']:.0f} s)",
                  flush=True)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
