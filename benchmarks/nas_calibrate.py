"""Calibrate the reduced proxy network of ``nas.search``: cost and ranking quality per setting; prints JSON.

    python benchmarks/nas_calibrate.py --settings 8,5,16,2000 4,2,16,2000 --archs 12 --threads 1 --out FILE.json

Each setting is ``C,N,resolution,images_seen``: every candidate (a seeded uniform sample of the full
NAS-Bench-201 space) trains the reduced network (C channels, N cells per stage) on ``images_seen``
seeded real training images seen once at ``resolution`` (the ``random-matched`` arm), with the search's
recipe (NB201 SGD, cosine over the run, DSA, BatchNorm recalibration), and is tested on seeded real test
images. Reported per setting: measured seconds per training image (training alone) and per candidate
(training + BatchNorm pass + test), Spearman ρ of test accuracy and of minus TSE against the true
accuracy, and the seconds of the same candidates' synflow, #params and naswot on the full-size network.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from distill.core.data import load_dataset
from distill.core.hardware import machine_info
from distill.core.io import write_json
from nas import metrics
from nas.benchmark import load_benchmark
from nas.config import SearchConfig, nb201_train_config
from nas.network import resize_images
from nas.proxies import ProxySet, Recipe, run_proxy, seeded_subset
from nas.sampling import sample_candidates


def parse_setting(text: str) -> tuple[int, int, int, int]:
    channels, cells, resolution, images = (int(v) for v in text.split(","))
    return channels, cells, resolution, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", type=parse_setting, default=[(8, 5, 16, 2000)],
                        metavar="C,N,RES,IMAGES")
    parser.add_argument("--archs", type=int, default=12, help="candidates per setting (the same for every setting)")
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the JSON here (atomically); progress lines go to stderr")
    parser.add_argument("--zero-cost", action="store_true",
                        help="also time synflow, #params and naswot on the candidates")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    train = load_dataset("cifar10", "train", data_root=args.data_root)
    test = load_dataset("cifar10", "test", data_root=args.data_root)
    table = load_benchmark()
    archs = sample_candidates(table, "full", args.archs, seed=args.seed)
    true = [table.true_accuracy(a) for a in archs]
    test_images, test_labels = seeded_subset(test, args.test_images, args.seed)
    out = {"threads": args.threads, "candidates": len(archs), "test_images": len(test_images),
           "batch_size": args.batch_size, "settings": []}
    for channels, cells, resolution, images_seen in args.settings:
        recipe = Recipe.of(SearchConfig(proxy=["random-matched"], channels=channels, cells_per_stage=cells,
                                        resolution=resolution, device="cpu", progress=False,
                                        train=nb201_train_config(epochs=1, batch_size=args.batch_size)))
        images, labels = seeded_subset(train, images_seen, args.seed)
        proxy = ProxySet("random-matched", resize_images(images, resolution), labels, epochs=1)
        tests = resize_images(test_images, resolution)
        warm = replace(proxy, images=proxy.images[:2], labels=proxy.labels[:2])
        run_proxy(archs[0], warm, tests[:2], test_labels[:2], recipe, num_classes=10, seed=0, device=device)
        outcomes = []
        for i, arch in enumerate(archs):
            outcomes.append(run_proxy(arch, proxy, tests, test_labels, recipe, num_classes=10,
                                      seed=args.seed * 100_003 + table.index_of(arch), device=device))
        accuracy = [o.accuracy for o in outcomes]
        tse = [None if o.tse is None else -o.tse for o in outcomes]
        out["settings"].append({
            "channels": channels, "cells_per_stage": cells, "resolution": resolution, "images_seen": images_seen,
            "seconds_per_train_image": sum(o.train_seconds for o in outcomes) / (images_seen * len(outcomes)),
            "seconds_per_candidate": sum(o.seconds for o in outcomes) / len(outcomes),
            "spearman_accuracy": metrics.spearman(metrics.rankable(accuracy), true),
            "spearman_tse": metrics.spearman(metrics.rankable(tse), true),
            "mean_accuracy": sum(a for a in accuracy if a is not None) / max(1, sum(a is not None for a in accuracy)),
            "diverged": sum(o.diverged for o in outcomes),
        })
        print(json.dumps(out["settings"][-1]), file=sys.stderr, flush=True)
    if args.zero_cost:
        config = SearchConfig(proxy=["synflow"], device="cpu", progress=False)
        recipe = Recipe.of(config)
        probe, _ = seeded_subset(train, config.probe_images, args.seed)
        for name in ("synflow", "params", "naswot"):
            proxy = ProxySet(name, None, None, 0, probe=probe)
            start = time.perf_counter()
            scores = [run_proxy(a, proxy, test_images, test_labels, recipe, num_classes=10, seed=i,
                                device=device).score for i, a in enumerate(archs)]
            out[name] = {"spearman": metrics.spearman(scores, true),
                         "seconds_per_candidate": (time.perf_counter() - start) / len(archs)}
    out["machine"] = machine_info("cpu")
    if args.out is not None:
        write_json(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
