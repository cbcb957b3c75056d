"""Command line: ``python -m distill.run --dataset cifar10 --ipc 10 --method datadam``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from distill.config import (add_config_args, checked, make_run_dir, pick_preset, resolve_config,
                            refuse_to_overwrite, resolve_device, run_cli, to_toml)
from distill.data import DATASETS, load_dataset
from distill.distributed import gather, local_device, shard, world
from distill.errors import DistillError
from distill.evaluate import EVAL_PROTOCOLS, TrainConfig, evaluate, protocol_setup
from distill.hardware import machine_info
from distill.io import atomic_write_text, write_json
from distill.methods import DistillConfig, check_image_size, distill
from distill.networks import list_networks
from distill.perf import tune_allocator
from distill.plot import downsample, plot_loss
from distill.progress import JobClock, minutes, probe_eval_seconds
from distill.synthetic import SyntheticSet


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
    eval_protocol: str = field(default="dm", metadata={
        "help": "dm (instancenorm ConvNet, batch 256) | official (the DataDAM code's: BatchNorm ConvNet, batch 64)",
        "choices": tuple(EVAL_PROTOCOLS)})
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --preset names configs/distill/<name>.toml: the first of these that exists ("none": no preset).
PRESET_NAMES = ("{dataset}-ipc{distill.ipc}-{preset}", "{dataset}-{preset}", "{preset}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distill.run", description=__doc__)
    parser.add_argument("--preset", help="smoke | cpu | cpu-long | paper | none: "
                                         "configs/distill/<dataset>-ipc<ipc>-<preset>.toml, else <preset>.toml "
                                         "(default: cpu on a CPU, paper on a GPU; none = the settings' defaults)")
    parser.add_argument("--config", type=Path, help="a TOML file of settings (applied after the preset)")
    parser.add_argument("--out", type=Path, help="output folder (default runs/distill-<timestamp>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out "
                                                              "(or the latest runs/distill-* folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--eval-epochs", type=int,
                        help=f"epochs of each evaluation network (default: {TrainConfig.epochs})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_args(parser, RunConfig, show_defaults=True)
    add_config_args(parser, DistillConfig, show_defaults=True)
    return parser


def load_config(args: argparse.Namespace) -> RunConfig:
    top = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if hasattr(args, f.name)}
    overrides = {k: v for k, v in top.items() if not dataclasses.is_dataclass(v)}
    overrides["distill"] = {f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig)}
    overrides["train"] = {"epochs": args.eval_epochs}
    preset = pick_preset("distill", args.preset, PRESET_NAMES, cls=RunConfig, flags=args, config_file=args.config)
    return resolve_config(RunConfig, preset_file=preset, config_file=args.config, overrides=overrides)


def default_preset(args: argparse.Namespace) -> str:
    """``cpu`` on a CPU and ``paper`` on a GPU: a run without ``--preset`` is sized for the machine."""
    return "paper" if resolve_device(args.device or RunConfig.device).type == "cuda" else "cpu"


def find_resume_dir(out: Path | None) -> Path:
    if out is not None:
        return out
    candidates = sorted(Path("runs").glob("distill-*/checkpoint.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise DistillError("--resume found no runs/distill-*/checkpoint.pt; pass --out DIR of the run to resume")
    return candidates[-1].parent


# What a run leaves in --out: a fresh run refuses to replace it without --resume or --overwrite.
_RUN_FILES = ("results.json", "synthetic.pt", "checkpoint.pt", "checkpoint-rank*.pt")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.resume and args.overwrite:
        raise DistillError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    tune_allocator()  # benchmarks/distill_speed.py: 1.1-2x per iteration on CPU
    out = find_resume_dir(args.out) if args.resume else args.out
    if args.resume and (out / "config.toml").is_file() and args.config is None and args.preset is None:
        args.config = out / "config.toml"  # same settings as the interrupted run unless told otherwise
    chosen = args.preset is None and args.config is None
    if chosen:
        args.preset = default_preset(args)
    cfg = load_config(args)
    previous = refuse_to_overwrite(out, _RUN_FILES, resume=args.resume, overwrite=args.overwrite)
    rank, size = world()
    device = local_device(resolve_device(cfg.device))
    if cfg.eval > 0 and cfg.eval_network not in list_networks():
        raise DistillError(f"unknown --eval-network {cfg.eval_network!r}; choose one of {', '.join(list_networks())}")
    # Everything the run needs is read before the first iteration, not after an hour of distilling.
    train = load_dataset(cfg.dataset, "train", data_root=cfg.data_root)
    test = load_dataset(cfg.dataset, "test", data_root=cfg.data_root) if cfg.eval > 0 else None
    check_image_size(cfg.distill.resolved(), train.image_shape)
    out = make_run_dir(out, "distill")
    if rank == 0:
        for path in previous if args.overwrite else []:
            if not path.name.startswith("checkpoint"):  # checkpoints are not read without --resume, only replaced
                path.unlink(missing_ok=True)
        if args.resume and not any(out.glob("checkpoint*.pt")):
            print(f"no checkpoint in {out}: starting fresh", file=sys.stderr)
        atomic_write_text(out / "config.toml", to_toml(cfg))

    note = f"preset {args.preset}" + (" (chosen for this machine; --preset NAME for another)" if chosen else "")
    clock = plan(cfg, train, test, device, out, note=note if args.preset else "") if rank == 0 else None
    synthetic = distill_sharded(train, cfg, device, out, rank=rank, size=size, resume=args.resume,
                                progress=not args.quiet and rank == 0, clock=clock)
    if rank != 0:
        return 0
    synthetic.save(out / "synthetic.pt")
    synthetic.to_png(out / "synthetic.png")
    curve = synthetic.config.get("loss_curve", [])
    if curve:
        plot_loss(curve, out / "loss.png", title=f"{cfg.distill.method} {cfg.dataset} ipc {cfg.distill.ipc}")

    results = {
        "dataset": cfg.dataset, "method": cfg.distill.method, "variant": cfg.distill.variant,
        "ipc": cfg.distill.ipc, "classes": synthetic.class_ids, "images": len(synthetic), "bytes": synthetic.num_bytes,
        "iterations": synthetic.iterations, "seconds": synthetic.seconds,  # summed over --resume
        "seconds_per_iteration": (synthetic.seconds / synthetic.iterations) if synthetic.iterations else None,
        "seed": cfg.seed, "device": str(device), "precision": synthetic.config.get("precision"),
        "compiled": synthetic.config.get("compile"), "machine": machine_info(device),
        "loss_curve": downsample(curve), "accuracy": None,
    }
    if test is not None:
        train_cfg, net_kwargs = _eval_setup(cfg)
        result = evaluate(synthetic.images, synthetic.labels, test, network=cfg.eval_network, config=train_cfg,
                          seeds=range(cfg.eval), device=device, num_classes=train.num_classes,
                          progress=not args.quiet, **net_kwargs)
        results["accuracy"] = {**dataclasses.asdict(result), "network": cfg.eval_network,
                               "protocol": cfg.eval_protocol, "epochs": train_cfg.epochs,
                               "batch_size": train_cfg.batch_size, **net_kwargs}
    write_json(out / "results.json", results)
    print(summary(results, out))
    return 0


def plan(cfg: RunConfig, train, test, device, out: Path, *, note: str = "") -> JobClock:
    """A clock of the whole job that prints the plan once the first iterations have been timed.

    The evaluation's share is measured up front on noise (:func:`probe_eval_seconds`), so the progress
    bar's ``job_left`` covers distilling, evaluating and testing.
    """
    d = cfg.distill.resolved(device)
    eval_seconds = 0.0
    if test is not None:
        train_cfg, net_kwargs = _eval_setup(cfg)
        eval_seconds = cfg.eval * probe_eval_seconds(d.ipc * train.num_classes, train.image_shape, train.num_classes,
                                                     train_cfg, test_images=len(test), network=cfg.eval_network,
                                                     device=device, **net_kwargs)
    if d.method in ("random", "herding"):
        return JobClock(0, eval_seconds)

    def announce(rate: float) -> None:
        evaluation = (f", then {cfg.eval} evaluation nets x {cfg.train.epochs} epochs ~ {minutes(eval_seconds)}"
                      if test is not None else "")
        tqdm.write(f"plan{f' ({note})' if note else ''}: {d.method} ipc {d.ipc}, {d.iterations} iterations at {rate:.2f} s/it ({d.precision}"
                   f"{', compiled' if d.compile else ''}) ~ {minutes(rate * d.iterations)}{evaluation}; "
                   f"results in {out}", file=sys.stderr)

    return JobClock(d.iterations, eval_seconds, announce=announce)


def _eval_setup(cfg: RunConfig) -> tuple[TrainConfig, dict]:
    train_cfg, net_kwargs = protocol_setup(cfg.eval_protocol, cfg.train)
    if not cfg.eval_network.startswith("convnet"):
        net_kwargs = {}  # the protocols' norm is the ConvNet's; other networks keep their own
    return train_cfg, net_kwargs


def distill_sharded(train, cfg: RunConfig, device, out: Path, *, rank: int, size: int, resume: bool,
                    progress: bool, clock: JobClock | None = None) -> SyntheticSet:
    """Distill on this process; under torchrun, each rank takes a share of the classes.

    Classes are independent except through a BatchNorm encoder, so the sharded result equals the
    single-process one; the BatchNorm variant runs whole on every rank's behalf on rank 0.
    """
    classes = list(range(train.num_classes))
    coupled = cfg.distill.resolved().norm == "batchnorm"
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
    rows = [("method", f"{results['method']} ({results['variant']})" if results["method"] == "datadam"
             else results["method"]), ("dataset / ipc", f"{results['dataset']} / {results['ipc']}"),
            ("iterations", str(results["iterations"])), ("seconds", f"{results['seconds']:.1f}"),
            ("test accuracy", acc_text), ("output", str(out))]
    return "\n".join(f"{k:<14} {v}" for k, v in rows)


if __name__ == "__main__":
    run_cli(main)
