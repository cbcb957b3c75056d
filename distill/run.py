"""Command line: ``python -m distill.run --dataset cifar10 --ipc 10 --method datadam``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from functools import partial
from pathlib import Path

from distill.cli import joined, make_run_dir, refuse_to_overwrite, run_cli, run_parser, write_settings
from distill.data import load_dataset
from distill.distributed import leave_now, local_device, resolve_device
from distill.errors import DistillError
from distill.evaluate import TrainConfig, evaluate_networks
from distill.hardware import machine_info
from distill.zca import whiten_dataset, zca_of
from distill.io import write_json
from distill.job import RunConfig, distill_sharded, eval_networks, eval_setup, plan, summary
from distill.methods import DistillConfig, check_image_size, get_method
from distill.perf import tune_allocator
from distill.plot import downsample, plot_loss
from distill.preflight import preflight_distill
from distill.settings import add_config_args, pick_preset, read_toml, resolve_config

__all__ = ["RunConfig", "build_parser", "distill_sharded", "load_config", "main"]

# --preset names configs/distill/<name>.toml: the first of these that exists ("none": no preset).
PRESET_NAMES = ("{dataset}-ipc{distill.ipc}-{preset}", "{dataset}-{preset}", "{preset}")


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("distill.run", "distill", __doc__, preset_default=None,
                        presets="smoke | cpu | cpu-long | paper | none: configs/distill/<dataset>-ipc<ipc>-"
                                "<preset>.toml, else <preset>.toml (default: cpu on a CPU, paper on a GPU; none = the "
                                "settings' defaults)",
                        resume="continue from the checkpoint in --out (or the latest runs/distill-* folder)")
    parser.add_argument("--eval-epochs", type=int,
                        help=f"epochs of each evaluation network (default: {TrainConfig.epochs})")
    add_config_args(parser, RunConfig, show_defaults=True)
    add_config_args(parser, DistillConfig, show_defaults=True)
    return parser


def load_config(args: argparse.Namespace) -> RunConfig:
    top = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if hasattr(args, f.name)}
    overrides = {k: v for k, v in top.items() if not dataclasses.is_dataclass(v)}
    overrides["distill"] = {f.name: getattr(args, f.name) for f in dataclasses.fields(DistillConfig)}
    overrides["train"] = {"epochs": args.eval_epochs}
    preset = pick_preset("distill", args.preset, PRESET_NAMES, cls=RunConfig, flags=args, config_file=args.config)
    return resolve_config(RunConfig, preset_file=preset, config_file=args.config, overrides=overrides,
                          preset_extra=method_preset(args, preset))


def method_preset(args: argparse.Namespace, preset_file: Path | None) -> dict | None:
    """What ``--preset`` means for the chosen method (its registry entry's ``presets``: MTT's ``cpu`` trains
    2 experts, not 100), layered over the preset file and under ``--config`` and the flags."""
    if not args.preset or args.preset == "none":
        return None
    method = args.method
    for path in (args.config, preset_file):
        if method is None and path is not None:
            method = read_toml(path).get("distill", {}).get("method")
    spec = get_method(method or DistillConfig.method)
    values = dict(spec.presets.get(args.preset, {}))
    if not values and args.preset == "cpu-long":  # cpu's knobs, with the preset file's longer run
        values = {k: v for k, v in spec.presets.get("cpu", {}).items() if k != "iterations"}
    return {"distill": values} if values else None


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
    preflight_distill(cfg, out, device=local_device(resolve_device(cfg.device)))  # before any image is decoded
    with joined() as world:  # no threads(...) here: RunConfig leaves torch's choice alone
        return _run(args, cfg, out, previous, chosen=chosen, rank=world.rank, size=world.size)


def _run(args: argparse.Namespace, cfg: RunConfig, out: Path | None, previous: list[Path], *, chosen: bool,
         rank: int, size: int) -> int:
    """Everything after the settings: data, the run folder and its config.toml, distillation, evaluation."""
    device = local_device(resolve_device(cfg.device))
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
        write_settings(out, cfg)

    note = f"preset {args.preset}" + (" (chosen for this machine; --preset NAME for another)" if chosen else "")
    clock = plan(cfg, train, test, device, out, note=note if args.preset else "") if rank == 0 else None
    synthetic = distill_sharded(train, cfg, device, out, rank=rank, size=size, resume=args.resume,
                                progress=not args.quiet and rank == 0, clock=clock)
    if rank != 0:
        leave_now(0)  # its share is gathered on rank 0; nothing of its own to write
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
    results["zca"] = zca_of(synthetic) is not None
    if test is not None:
        if results["zca"]:  # a whitened set is tested on test images whitened with the training statistics
            test = whiten_dataset(test, zca_of(synthetic))
        table = evaluate_networks(synthetic.images, synthetic.labels, test, eval_networks(cfg),
                                  setup=lambda name: eval_setup(cfg, name), seeds=range(cfg.eval), device=device,
                                  num_classes=train.num_classes, progress=not args.quiet)
        for row in table.values():
            row["protocol"] = cfg.eval_protocol
        results["accuracy"] = next(iter(table.values()))
        results["accuracy_by_network"] = table
    write_json(out / "results.json", results)
    print(summary(results, out))
    return 0


cli = partial(run_cli, main)  # the console script distill-run

if __name__ == "__main__":
    cli()
