"""Test accuracy of DataDAM and the baselines on real CIFAR-10 under one budget and one protocol.

Prints JSON (and writes it to --out). Every method distills (or selects) with the same seed and,
for the optimising methods, the same wall-clock budget; every set is evaluated by training
ConvNet-3 from scratch with DSA for --epochs epochs, over --seeds networks, accuracy at the END
of training on the 10,000 real test images.

Usage: python benchmarks/distill_quality.py --ipc 1 --minutes 20 [--methods datadam,dm,random,herding]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from distill.data import load_dataset  # noqa: E402
from distill.evaluate import TrainConfig, evaluate  # noqa: E402
from distill.io import write_json  # noqa: E402
from distill.methods import DistillConfig, distill  # noqa: E402
from distill.perf import tune_allocator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget per optimising method")
    parser.add_argument("--iterations", type=int, default=100000, help="cap on iterations inside the budget")
    parser.add_argument("--methods", default="datadam,dm,random,herding")
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder (same math, faster)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--save-sets", type=Path, default=None, help="folder to keep the synthetic sets in")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()
    train = load_dataset("cifar10", "train", data_root=args.data_root)
    test = load_dataset("cifar10", "test", data_root=args.data_root)
    protocol = TrainConfig(epochs=args.epochs)
    rows = []
    for method in args.methods.split(","):
        cfg = DistillConfig(method=method, variant=args.variant, ipc=args.ipc, iterations=args.iterations,
                            batch_real=args.batch_real, max_minutes=args.minutes, checkpoint_minutes=1e9,
                            compile=args.compile)
        t = time.perf_counter()
        synthetic = distill(train, cfg, seed=0, progress=False)
        distill_seconds = time.perf_counter() - t
        if args.save_sets:
            synthetic.save(args.save_sets / f"{method}-ipc{args.ipc}.pt")
        t = time.perf_counter()
        result = evaluate(synthetic.images, synthetic.labels, test, config=protocol, seeds=range(args.seeds))
        rows.append({"method": method, "variant": args.variant if method == "datadam" else None,
                     "iterations": synthetic.iterations, "distill_seconds": distill_seconds,
                     "eval_seconds": time.perf_counter() - t, **asdict(result)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report = {"dataset": "cifar10 (shared JPEG copy)", "ipc": args.ipc, "budget_minutes": args.minutes,
              "batch_real": args.batch_real, "threads": torch.get_num_threads(),
              "load_average_at_end": os.getloadavg(), "eval": {"network": "convnet3", "epochs": args.epochs,
                                                      "seeds": args.seeds, "protocol": asdict(protocol)},
              "rows": rows}
    if args.out:
        write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
