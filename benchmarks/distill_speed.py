"""Seconds per DataDAM iteration and peak memory: the public loop's way against ours, in one run.

Prints JSON. Each configuration runs in its own subprocess so that its peak RSS is its own.
Also times the evaluation: 3 nets trained one by one against together (distill/core/ensemble.py).
Usage: python benchmarks/distill_speed.py [--ipcs 1,10,50] [--batches 64,256] [--iters 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.core.data import from_tensors  # noqa: E402
from distill.core.hardware import machine_info  # noqa: E402
from distill.core.io import write_json  # noqa: E402
from distill.methods import DistillConfig  # noqa: E402


# --------------------------------------------------------------------------------------------
# The baseline: the public DataDAM loop as it is written (see the issue): per-class Python loop
# that concatenates batches, forward hooks cloning every ReLU output, the real batch through the
# same autograd-enabled forward, DSA parameters built element by element in Python lists.
# --------------------------------------------------------------------------------------------
def _baseline_dsa(x: torch.Tensor, seed: int) -> torch.Tensor:
    import random

    rng = random.Random(seed)
    group = rng.choice(["color", "crop", "cutout", "flip", "scale", "rotate"])
    n = x.shape[0]
    if group == "scale":
        sx = [rng.uniform(1 / 1.2, 1.2)] * n
        sy = [rng.uniform(1 / 1.2, 1.2)] * n
        theta = torch.tensor([[[sx[i], 0, 0], [0, sy[i], 0]] for i in range(n)], dtype=torch.float)
        return torch.nn.functional.grid_sample(x, torch.nn.functional.affine_grid(theta, list(x.shape), True), align_corners=True)
    if group == "rotate":
        a = (rng.random() - 0.5) * 2 * 15 / 180 * np.pi
        theta = torch.tensor([[[np.cos(a), np.sin(-a), 0], [np.sin(a), np.cos(a), 0]] for _ in range(n)], dtype=torch.float)
        return torch.nn.functional.grid_sample(x, torch.nn.functional.affine_grid(theta, list(x.shape), True), align_corners=True)
    if group == "flip":
        return x.flip(3) if rng.random() < 0.5 else x
    if group == "color":
        x = x + (torch.tensor([rng.random()] * n).view(-1, 1, 1, 1) - 0.5)
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (torch.tensor([rng.random()] * n).view(-1, 1, 1, 1) * 2) + m
        m = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - m) * (torch.tensor([rng.random()] * n).view(-1, 1, 1, 1) + 0.5) + m
    if group == "crop":
        tx, ty = rng.randint(-4, 4), rng.randint(-4, 4)
        gb, gx, gy = torch.meshgrid(torch.arange(n), torch.arange(x.size(2)), torch.arange(x.size(3)), indexing="ij")
        gx = torch.clamp(gx + tx + 1, 0, x.size(2) + 1)
        gy = torch.clamp(gy + ty + 1, 0, x.size(3) + 1)
        xp = torch.nn.functional.pad(x, [1, 1, 1, 1])
        return xp.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)
    ox, oy = rng.randint(0, 32), rng.randint(0, 32)
    mask = torch.ones(n, x.size(2), x.size(3))
    for i in range(n):
        mask[i, max(0, ox - 8):ox + 8, max(0, oy - 8):oy + 8] = 0
    return x * mask.unsqueeze(1)


class _BaselineNet(nn.Module):
    def __init__(self, norm: str, width: int = 128, depth: int = 3, num_classes: int = 10):
        super().__init__()
        layers, c = [], 3
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1),
                       nn.GroupNorm(width, width, affine=True) if norm == "instancenorm" else nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            c = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * 4 * 4, num_classes)

    def forward(self, x):
        emb = self.features(x).view(x.size(0), -1)
        return emb, self.classifier(emb)


def baseline_iteration(images_all, indices_class, image_syn, optimizer, cfg, num_classes):
    net = _BaselineNet(cfg.norm)
    net.train()
    for p in net.parameters():
        p.requires_grad = False
    activations = {}

    def hook(name):
        def fn(m, i, o):
            activations[name] = o.clone()
        return fn

    hooks = [m.register_forward_hook(hook(f"relu{i}")) for i, m in
             enumerate(x for x in net.features if isinstance(x, nn.ReLU))]
    reals, syns = [], []
    for c in range(num_classes):
        idx = np.random.permutation(indices_class[c])[:cfg.batch_real]
        seed = int(time.time() * 1000) % 100000
        reals.append(_baseline_dsa(images_all[idx], seed))
        syns.append(_baseline_dsa(image_syn[c * cfg.ipc:(c + 1) * cfg.ipc], seed))
    out_real = net(torch.cat(reals))[0].detach()
    act_real = [activations[k] for k in sorted(activations)]
    activations.clear()
    out_syn = net(torch.cat(syns))[0]
    act_syn = [activations[k] for k in sorted(activations)]
    for h in hooks:
        h.remove()

    def att(f):
        a = torch.sum(torch.abs(f) ** cfg.power, dim=1)
        return torch.nn.functional.normalize(a.view(f.size(0), -1), p=2.0)

    def err(r, s, br):
        return torch.sum((r.reshape(num_classes, br, -1).mean(1) - s.reshape(num_classes, cfg.ipc, -1).mean(1)) ** 2)

    br = out_real.shape[0] // num_classes
    loss = torch.tensor(0.0)
    for layer in range(len(act_real) - 1):
        loss = loss + 100 * err(att(act_real[layer].detach()), att(act_syn[layer]), br)
    loss = loss + 100 * cfg.lambda_mmd * err(out_real, out_syn, br)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _fake_cifar(per_class: int = 600):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(per_class)
    return from_tensors(torch.randn(len(labels), 3, 32, 32, generator=g), labels)


def _parse_impl(impl: str) -> dict:
    """``exact`` (fp32 eager), ``exact-nchw``, ``compiled`` (fp32, torch.compile), ``bf16``, ``bf16+compiled``,
    ``auto`` (what the loop picks on this machine); ``+alloc`` keeps freed buffers (distill.core.perf)."""
    parts = set(impl.split("+"))
    if "auto" in parts:
        return {"precision": "auto", "compile": None, "channels_last": True}
    return {"precision": "bf16" if "bf16" in parts else "fp32", "compile": "compiled" in parts,
            "channels_last": "exact-nchw" not in parts}


def run_one(impl: str, ipc: int, batch: int, variant: str, iters: int) -> dict:
    """Time ``iters`` iterations after warm-up, in this process."""
    from distill.methods.matching import run_matching
    from distill.core.perf import tune_allocator

    if impl.endswith("+alloc") or impl == "auto":
        tune_allocator()
    train = _fake_cifar(max(batch, ipc) + 10)
    times = []
    if impl == "baseline":
        cfg = DistillConfig(method="datadam", variant=variant, ipc=ipc, batch_real=batch).resolved()
        images_all = train.images
        indices = [train.indices_of(c).tolist() for c in range(10)]
        syn = train.images[torch.cat([train.indices_of(c)[:ipc] for c in range(10)])].clone().requires_grad_(True)
        opt = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
        for i in range(iters + 1):
            t = time.perf_counter()
            baseline_iteration(images_all, indices, syn, opt, cfg, 10)
            if i:
                times.append(time.perf_counter() - t)
    else:
        cfg = DistillConfig(method="datadam", variant=variant, ipc=ipc, batch_real=batch,
                            **_parse_impl(impl.replace("+alloc", ""))).resolved()
        stamps = []
        cfg.iterations = iters + (4 if cfg.compile else 2)  # the first steps pay for compilation and kernel choice
        run_matching(train, list(range(10)), cfg, seed=0, device=torch.device("cpu"), progress=False,
                     callback=lambda it, loss: stamps.append(time.perf_counter()))
        times = list(np.diff(stamps))[-iters:]
    flops = _flops_per_iteration(train, cfg) if impl.startswith("exact") else None
    ours = impl != "baseline"  # the baseline loop is fp32 eager whatever the config resolves to
    return {"impl": impl, "ipc": ipc, "batch_real": batch, "variant": variant,
            "precision": cfg.precision if ours else "fp32", "compiled": bool(cfg.compile) and ours,
            "seconds_per_iteration": statistics.median(times), "times": times,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "flops": flops}


def eval_one(ipc: int, epochs: int, nets: int, protocol: str) -> dict:
    """Seconds to train ``nets`` evaluation ConvNets on an ipc-``ipc`` CIFAR-sized set: one by one, then together."""
    from distill.core.evaluate import TrainConfig, protocol_setup, train_network, train_networks
    from distill.core.seeds import stream
    from distill.core.networks import ConvNet, init_parameters

    train = _fake_cifar(ipc)
    config, net_kwargs = protocol_setup(protocol, TrainConfig(epochs=epochs))

    def fresh() -> list:
        return [init_parameters(ConvNet(num_classes=10, **net_kwargs), stream(s, 10)) for s in range(nets)]

    train_networks(fresh(), train.images, train.labels, dataclasses.replace(config, epochs=1),
                   seeds=range(nets))  # warm-up
    t = time.perf_counter()
    for s, model in enumerate(fresh()):
        train_network(model, train.images, train.labels, config, seed=s)
    alone = time.perf_counter() - t
    t = time.perf_counter()
    train_networks(fresh(), train.images, train.labels, config, seeds=range(nets))
    together = time.perf_counter() - t
    return {"eval": protocol, "ipc": ipc, "nets": nets, "epochs": epochs, "one_by_one_seconds": alone,
            "together_seconds": together, "speedup": alone / together}


def _flops_per_iteration(train, cfg) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from distill.methods.matching import run_matching

    cfg2 = DistillConfig(**{**cfg.__dict__, "iterations": 1, "compile": False})
    with FlopCounterMode(display=False) as counter:
        run_matching(train, list(range(10)), cfg2, seed=0, device=torch.device("cpu"), progress=False)
    return float(counter.get_total_flops())


def machine_peak_gflops() -> float:
    """The physical limit, measured: a large 3x3 convolution forward in fp32."""
    conv = nn.Conv2d(128, 128, 3, padding=1).requires_grad_(False).to(memory_format=torch.channels_last)
    x = torch.randn(256, 128, 16, 16).contiguous(memory_format=torch.channels_last)
    flops = 2 * 256 * 128 * 128 * 9 * 16 * 16
    with torch.no_grad():
        conv(x)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            conv(x)
            times.append(time.perf_counter() - t)
    return flops / min(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ipcs", default="1,10,50")
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--variants", default="official,paper")
    parser.add_argument("--impls", default="baseline,exact+alloc,compiled+alloc,auto")
    parser.add_argument("--compiled", default="", help="ipc:batch pairs also timed with compiled+alloc only")
    parser.add_argument("--eval", default="1:1000,10:100", help="ipc:epochs pairs of the evaluation timing "
                                                               "(3 nets, dm protocol); empty to skip")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--one", nargs=4, metavar=("IMPL", "IPC", "BATCH", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.one and args.one[0] == "eval":
        print(json.dumps(eval_one(int(args.one[1]), int(args.one[2]), 3, args.one[3])))
        return
    if args.one:
        impl, ipc, batch, variant = args.one
        print(json.dumps(run_one(impl, int(ipc), int(batch), variant, args.iters)))
        return
    jobs = [(impl, ipc, batch, v) for v in args.variants.split(",") for ipc in args.ipcs.split(",")
            for batch in args.batches.split(",") for impl in args.impls.split(",")]
    for pair in filter(None, args.compiled.split(",")):
        ipc, batch = pair.split(":")
        jobs += [("compiled+alloc", ipc, batch, v) for v in args.variants.split(",")]
    rows = []
    for job in jobs:
        proc = subprocess.run([sys.executable, __file__, "--one", *map(str, job), "--iters", str(args.iters)],
                              capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            rows.append({"impl": job[0], "ipc": int(job[1]), "batch_real": int(job[2]), "variant": job[3],
                         "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    peak = machine_peak_gflops()
    base = {(r["ipc"], r["batch_real"], r["variant"]): r for r in rows if r["impl"] == "baseline" and "error" not in r}
    for r in rows:
        b = base.get((r["ipc"], r["batch_real"], r["variant"]))
        if b and "error" not in r:
            r["speedup_vs_baseline"] = b["seconds_per_iteration"] / r["seconds_per_iteration"]
            r["memory_vs_baseline"] = r["peak_rss_mb"] / b["peak_rss_mb"]
        exact = next((e for e in rows if e.get("flops") and
                      (e["ipc"], e["batch_real"], e["variant"]) == (r["ipc"], r["batch_real"], r["variant"])), None)
        if exact and "error" not in r:
            r["achieved_gflops"] = exact["flops"] / r["seconds_per_iteration"] / 1e9
            r["fraction_of_peak"] = r["achieved_gflops"] / peak
    evals = []
    for pair in filter(None, args.eval.split(",")):
        ipc, epochs = pair.split(":")
        proc = subprocess.run([sys.executable, __file__, "--one", "eval", ipc, epochs, "dm"], capture_output=True,
                              text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        evals.append(json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                     else {"ipc": int(ipc), "error": proc.stderr.strip().splitlines()[-1:]})
        print(json.dumps(evals[-1]), file=sys.stderr, flush=True)
    report = {"machine": {**machine_info(), "peak_conv_gflops": peak}, "rows": rows, "evaluation": evals}
    if args.out:
        write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
