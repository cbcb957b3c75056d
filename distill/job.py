"""A distillation job: its settings (:class:`RunConfig`) and its run, sharded over torchrun's processes."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from distill.core.data import DATASETS
from distill.shell.distributed import gather, shard
from distill.core.errors import DistillError
from distill.core.evaluate import EVAL_PROTOCOLS, TrainConfig, protocol_setup
from distill.methods import DistillConfig, check_image_size, distill, get_method
from distill.shell.preflight import (DataListing, check_disk, check_ipc, check_memory, check_names, check_output,
                               data_memory, data_writes, encoder_memory, read_listing)
from distill.shell.progress import JobClock, minutes, probe_eval_seconds
from distill.core.settings import checked
from distill.core.synthetic import SyntheticSet


@dataclass
@checked
class RunConfig:
    """A distillation job: what to distill, how, and how to evaluate the result."""

    dataset: str = field(default="cifar10", metadata={"help": "cifar10 | cifar100 | imagefolder",
                                                      "choices": DATASETS})
    data_root: str | None = field(default=None, metadata={"help": "dataset folder (else $DISTILL_DATA_ROOT)",
                                                          "result": False})
    seed: int = field(default=0, metadata={"help": "distillation seed", "min": 0})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda", "result": False})
    eval: int = field(default=0, metadata={"help": "evaluate with this many freshly trained networks", "min": 0})
    eval_network: str = field(default="convnet", metadata={"help": "network trained for evaluation"})
    eval_networks: tuple[str, ...] = field(default=(), metadata={
        "help": "cross-architecture evaluation: networks trained on the same set, comma-separated, e.g. "
                "convnet,alexnet,vgg11,resnet18; one table each in results.json (accuracy_by_network), "
                "the first also as accuracy (default: --eval-network only)"})
    eval_protocol: str = field(default="dm", metadata={
        "help": "dm (instancenorm ConvNet, batch 256) | official (the DataDAM code's: BatchNorm ConvNet, batch 64)",
        "choices": tuple(EVAL_PROTOCOLS)})
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def plan(cfg: RunConfig, train, test, device, out: Path, *, note: str = "") -> JobClock:
    """A clock of the whole job that prints the plan once the first iterations have been timed.

    The evaluation's share is measured up front on noise (:func:`probe_eval_seconds`), so the progress
    bar's ``job_left`` covers distilling, evaluating and testing.
    """
    d = cfg.distill.resolved(device)
    eval_seconds = 0.0
    for name in eval_networks(cfg) if test is not None else []:
        train_cfg, net_kwargs = eval_setup(cfg, name)
        eval_seconds += cfg.eval * probe_eval_seconds(d.ipc * train.num_classes, train.image_shape, train.num_classes,
                                                      train_cfg, test_images=len(test), network=name,
                                                      device=device, **net_kwargs)
    if not get_method(d.method).iterates:
        return JobClock(0, eval_seconds)

    def announce(rate: float) -> None:
        nets = cfg.eval * len(eval_networks(cfg))
        evaluation = (f", then {nets} evaluation nets x {cfg.train.epochs} epochs ~ {minutes(eval_seconds)}"
                      if test is not None else "")
        tqdm.write(f"plan{f' ({note})' if note else ''}: {d.method} ipc {d.ipc}, {d.iterations} iterations at {rate:.2f} s/it ({d.precision}"
                   f"{', compiled' if d.compile else ''}) ~ {minutes(rate * d.iterations)}{evaluation}; "
                   f"results in {out}", file=sys.stderr)

    return JobClock(d.iterations, eval_seconds, announce=announce)


def eval_networks(cfg: RunConfig) -> list[str]:
    """The networks evaluated: ``eval_networks`` when given, else ``eval_network``."""
    return list(cfg.eval_networks) or [cfg.eval_network]


def eval_setup(cfg: RunConfig, network: str | None = None, synthetic: SyntheticSet | None = None
               ) -> tuple[TrainConfig, dict]:
    """The training config and network keyword arguments of ``network`` under the run's evaluation protocol
    (at the lr ``synthetic`` learned, if it learned one: :func:`~distill.core.evaluate.at_learned_lr`)."""
    train_cfg, net_kwargs = protocol_setup(cfg.eval_protocol, cfg.train, synthetic)
    if not (network or cfg.eval_network).startswith("convnet"):
        net_kwargs = {}  # the protocols' norm is the ConvNet's; other networks keep their own
    return train_cfg, net_kwargs


def distill_sharded(train, cfg: RunConfig, device, out: Path, *, rank: int, size: int, resume: bool,
                    progress: bool, clock: JobClock | None = None) -> SyntheticSet:
    """Distill on this process; under torchrun, each rank takes a share of the classes.

    Classes are independent except through a BatchNorm encoder or a method that couples them
    (forgetting trains one classifier on all of them), so the sharded result equals the single-process
    one; coupled runs go whole on rank 0 on every rank's behalf.
    """
    classes = list(range(train.num_classes))
    coupled = cfg.distill.resolved().norm == "batchnorm" or not get_method(cfg.distill.method).per_class
    if size == 1 or coupled:
        if rank != 0:
            return None  # type: ignore[return-value]
        return distill(train, cfg.distill, seed=cfg.seed, device=device, progress=progress,
                       checkpoint=out / "checkpoint.pt", resume=resume, **_clock_hooks(clock))
    mine = shard(classes, rank, size)
    part = distill(train, cfg.distill, classes=mine, seed=cfg.seed, device=device, progress=progress,
                   checkpoint=out / f"checkpoint-rank{rank}.pt", resume=resume,
                   **_clock_hooks(clock)) if mine else None
    parts = [p for p in gather(part, size) if p is not None]
    merged = SyntheticSet.merge(parts).subset(classes)
    merged.config["loss_curve"] = [[it, sum(p.config["loss_curve"][i][1] for p in parts)]
                                   for i, (it, _) in enumerate(parts[0].config["loss_curve"])]
    merged.seconds = max(p.seconds for p in parts)
    return merged


def _clock_hooks(clock: JobClock | None) -> dict:
    if clock is None:
        return {}
    return {"callback": lambda it, loss: clock.step(it), "postfix": clock.postfix}


def summary(results: dict, out: Path) -> str:
    acc = results["accuracy"]
    acc_text = f"{acc['mean']:.2f} ± {acc['std']:.2f} % ({len(acc['runs'])} nets)" if acc else "not evaluated (--eval N)"
    rows = [("method", get_method(results["method"]).describe(results["variant"])), ("dataset / ipc", f"{results['dataset']} / {results['ipc']}"),
            ("iterations", str(results["iterations"])), ("seconds", f"{results['seconds']:.1f}"),
            ("test accuracy", acc_text)]
    by_network = results.get("accuracy_by_network") or {}
    if len(by_network) > 1:
        rows += [(f"  {name}", f"{row['mean']:.2f} ± {row['std']:.2f} %") for name, row in by_network.items()]
    rows.append(("output", str(out)))
    return "\n".join(f"{k:<14} {v}" for k, v in rows)


def preflight_distill(cfg, out: Path | None, *, device) -> DataListing:
    """Every check of a ``python -m distill.run`` job that needs no decoded image.

    Args:
        cfg: the resolved :class:`distill.job.RunConfig`.
        device: the resolved torch device.
    """
    d = cfg.distill.resolved(device)
    networks = {name: "--eval-networks" if cfg.eval_networks else "--eval-network"
                for name in (eval_networks(cfg) if cfg.eval > 0 else [])}
    check_names(norm=d.norm, dsa_strategy=d.dsa_strategy, networks=networks)
    if len(set(cfg.eval_networks)) != len(cfg.eval_networks):
        raise DistillError(f"--eval-networks {','.join(cfg.eval_networks)} repeats a network; list each once")
    check_output(out)
    listing = read_listing(cfg.dataset, cfg.data_root, test=cfg.eval > 0)
    if get_method(d.method).encoder:
        check_image_size(d, listing.image_shape)
    check_ipc(d.ipc, listing)
    check_memory({**data_memory(listing, test=cfg.eval > 0),
                  **encoder_memory(d, listing.image_shape, listing.num_classes)}, device=device)
    synthetic_bytes = d.ipc * listing.num_classes * math.prod(listing.image_shape) * 4
    check_disk([*data_writes(listing), (out or Path("runs"), 2 * synthetic_bytes, "synthetic set and checkpoint")])
    return listing


__all__ = ["RunConfig", "distill_sharded", "eval_networks", "eval_setup", "plan", "preflight_distill", "summary"]
