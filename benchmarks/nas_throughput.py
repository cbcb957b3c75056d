"""Measure NAS-Bench-201 network cost: parameters, training and test throughput; prints JSON.

    python benchmarks/nas_throughput.py [--device cpu] [--threads 1] [--batch 20] [--steps 5]

The training throughput is what ``nas.search`` multiplies by 50,000 images x 200 epochs for its
whole-dataset time estimate.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from nas.archs import uniform_arch
from nas.network import build_network, count_parameters

ARCHS = {
    "best_cifar10 (row 6111)": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "all_nor_conv_3x3": uniform_arch("nor_conv_3x3"),
    "all_avg_pool_3x3": uniform_arch("avg_pool_3x3"),
    "all_none": uniform_arch("none"),
}


def measure(arch: str, *, device: torch.device, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_network(arch).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    train = (time.perf_counter() - start) / (steps * batch)
    model.eval()
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    test = (time.perf_counter() - start) / (steps * batch)
    return {"params": count_parameters(model), "train_ms_per_image": 1000 * train, "test_ms_per_image": 1000 * test,
            "whole_dataset_minutes_estimate": train * 50_000 * 200 / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {name: measure(arch, device=device, batch=args.batch, steps=args.steps) for name, arch in ARCHS.items()}
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(), "batch": args.batch,
                      "archs": results}, indent=2))


if __name__ == "__main__":
    main()
