"""Command line: ``python -m distill.run --dataset cifar10 --ipc 10 --method datadam``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from distill.shell.cli import run_cli
from distill.core.data import load_dataset
from distill.shell.distributed import leave_now, resolve_device
from distill.core.evaluate import evaluate_networks
from distill.core.hardware import machine_info
from distill.core.zca import whitened_like, zca_of
from distill.core.io import write_json
from distill.job import RunConfig, distill_sharded, eval_networks, eval_setup, plan, preflight_distill, summary
from distill.methods import DistillConfig, check_image_size, get_method
from distill.core.perf import tune_allocator
from distill.plot import downsample, plot_loss
from distill.shell.runner import Job, JobSpec, build_parser as _build_parser, resolve, run_job
from distill.core.settings import read_toml

__all__ = ["RunConfig", "SPEC", "build_parser", "distill_sharded", "load_config", "main"]

# --preset names configs/distill/<name>.toml: the first of these that exists ("none": no preset).
PRESET_NAMES = ("{dataset}-ipc{distill.ipc}-{preset}", "{dataset}-{preset}", "{preset}")


def method_preset(preset: str | None, flags: dict, config_file: Path | None, preset_file: Path | None) -> dict | None:
    """What ``--preset`` means for the chosen method (its registry entry's ``presets``: MTT's ``cpu`` trains
    2 experts, not 100), layered over the preset file and under ``--config`` and the flags."""
    if not preset or preset == "none":
        return None
    method = flags["distill"].get("method")
    for path in (config_file, preset_file):
        if method is None and path is not None:
            method = read_toml(path).get("distill", {}).get("method")
    spec = get_method(method or DistillConfig.method)
    values = dict(spec.presets.get(preset, {}))
    if not values and preset == "cpu-long":  # cpu's knobs, with the preset file's longer run
        values = {k: v for k, v in spec.presets.get("cpu", {}).items() if k != "iterations"}
    return {"distill": values} if values else None


def default_preset(flags: dict) -> str:
    """``cpu`` on a CPU and ``paper`` on a GPU: a run without ``--preset`` is sized for the machine."""
    return "paper" if resolve_device(flags["device"] or RunConfig.device).type == "cuda" else "cpu"


def _run(job: Job) -> dict | None:
    """Everything after the settings: data, distillation, evaluation."""
    cfg, out, device, rank = job.cfg, job.out, job.device, job.world.rank
    # Everything the run needs is read before the first iteration, not after an hour of distilling.
    train = load_dataset(cfg.dataset, "train", data_root=cfg.data_root)
    test = load_dataset(cfg.dataset, "test", data_root=cfg.data_root) if cfg.eval > 0 else None
    check_image_size(cfg.distill.resolved(), train.image_shape)
    note = f"preset {job.preset}" + (" (chosen for this machine; --preset NAME for another)" if job.preset_chosen else "")
    clock = plan(cfg, train, test, device, out, note=note if job.preset else "") if rank == 0 else None
    synthetic = distill_sharded(train, cfg, device, out, rank=rank, size=job.world.size, resume=job.resume,
                                progress=job.progress, clock=clock)
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
        # a whitened set is tested on test images whitened with the training statistics
        table = evaluate_networks(synthetic.images, synthetic.labels, whitened_like(test, synthetic),
                                  eval_networks(cfg),
                                  setup=lambda name: eval_setup(cfg, name, synthetic), seeds=range(cfg.eval),
                                  device=device,
                                  num_classes=train.num_classes, progress=job.progress)
        for row in table.values():
            row["protocol"] = cfg.eval_protocol
        results["accuracy"] = next(iter(table.values()))
        results["accuracy_by_network"] = table
    write_json(out / "results.json", results)
    return results


SPEC = JobSpec(
    module="distill.run", job="distill", description=__doc__, config=RunConfig, work=_run,
    preflight=lambda cfg, out, *, device, resume: preflight_distill(cfg, out, device=device),
    report=lambda results, out: print(summary(results, out)),
    presets="smoke | cpu | cpu-long | paper | none: configs/distill/<dataset>-ipc<ipc>-<preset>.toml, else "
            "<preset>.toml (default: cpu on a CPU, paper on a GPU; none = the settings' defaults)",
    preset_names=PRESET_NAMES, preset_default=default_preset, preset_extra=method_preset,
    # What a run leaves in --out: a fresh run refuses to replace it without --resume or --overwrite.
    run_files=("results.json", "synthetic.pt", "checkpoint.pt", "checkpoint-rank*.pt"),
    keep_on_overwrite=("checkpoint*",),  # checkpoints are not read without --resume, only replaced
    resume_help="continue from the checkpoint in --out (or the latest runs/distill-* folder)",
    resume_marker="checkpoint*.pt", fresh_note="no checkpoint in {out}: starting fresh",
    latest_run="checkpoint.pt", resume_settings=True,
    flat_tables=("distill",), aliases={"train.epochs": ("--eval-epochs",)}, show_defaults=True,
    setup=tune_allocator)  # benchmarks/distill_speed.py: 1.1-2x per iteration on CPU


build_parser = partial(_build_parser, SPEC)  # the parser alone (tests, docs)


def load_config(args) -> RunConfig:
    """The settings of parsed ``args``: the preset, ``--config``, then the flags."""
    return resolve(SPEC, args)[0]


def main(argv: list[str] | None = None) -> int:
    return run_job(SPEC, argv)


cli = partial(run_cli, main)  # the console script distill-run

if __name__ == "__main__":
    cli()
