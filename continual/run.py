"""Command line: ``python -m continual.run --steps 5|10`` compares distilled and selected replay memories."""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from pathlib import Path

from continual.config import ContinualConfig
from distill.shell.cli import report, run_cli
from distill.shell.runner import Job, JobSpec, build_parser as _build_parser, run_job

__all__ = ["PRESET_NAMES", "PRESETS", "SPEC", "build_parser", "main"]

PRESETS = ("cpu", "ipc50-cpu", "paper", "smoke", "none")  # shipped in configs/continual/
# --preset names configs/continual/<name>.toml: the first of these that exists.
PRESET_NAMES = ("cifar10-{steps}step-{preset}", "cifar10-5step-{preset}", "{preset}")


def _run(job: Job) -> dict:
    from continual.experiment import run_experiment  # Avalanche: after the checks, not before

    # The device the runner resolved: this rank's GPU under torchrun (config.toml keeps the setting as given).
    cfg = dataclasses.replace(job.cfg, device=str(job.device))
    return run_experiment(cfg, job.out, resume=job.resume, show_progress=job.progress)


def _report(results: dict, out: Path) -> None:
    from continual.experiment import summary_table

    report(summary_table(results), out, results="results.json", plot="accuracy.png", config="config.toml")


def main(argv: list[str] | None = None) -> int:
    return run_job(SPEC, argv)


def preflight(cfg, out: Path | None, *, device, resume: bool = False) -> None:
    """Every check of the run that needs no decoded image (:mod:`distill.shell.preflight`): the settings, the data
    root's classes and class sizes against ``--steps`` and ``--ipc``, the output, memory and disk."""
    from continual.config import CLASS_BALANCED, check_steps, read_progress, validate
    from distill.methods import check_image_size, get_method
    from distill.shell.preflight import (check_disk, check_ipc, check_memory, check_names, check_output, data_memory,
                                   data_writes, encoder_memory, read_listing)

    validate(cfg)
    d = cfg.distill.resolved(device)
    check_names(norm=d.norm, dsa_strategy=d.dsa_strategy, networks={cfg.network: "--network"})
    check_output(out)
    if resume and out is not None and (out / "progress.json").is_file():
        read_progress(out / "progress.json", cfg)  # a resume with other settings is refused now, not after decoding
    listing = read_listing(cfg.dataset, cfg.data_root)
    check_steps(cfg.steps, listing.num_classes)
    if any(get_method(m).encoder for m in cfg.memory if m != CLASS_BALANCED):
        check_image_size(d, listing.image_shape)
    check_ipc(cfg.ipc, listing, per_class=cfg.train_per_class)
    # A memory is distilled one experience (classes / steps) at a time.
    check_memory({**data_memory(listing, test=True),
                  **encoder_memory(d, listing.image_shape, listing.num_classes // cfg.steps)}, device=device)
    check_disk(data_writes(listing))


SPEC = JobSpec(
    module="continual.run", job="continual", config=ContinualConfig, work=_run, preflight=preflight,
    report=_report,
    description="Class-incremental learning with distilled memories (DataDAM, DM) against herding and random "
                "memories, in the GDumb-style protocol and/or Avalanche replay.",
    presets=f"{' | '.join(PRESETS)}: configs/continual/cifar10-<steps>step-<preset>.toml, else <preset>.toml",
    preset_names=PRESET_NAMES, preset_default="cpu",
    # What a run leaves in --out: a fresh run refuses to replace it without --resume or --overwrite.
    run_files=("results.json", "progress.json"), resume_marker="progress.json",
    resume_help="continue the run in --out, skipping finished steps",
    no_flags=frozenset({"distill.method"}),  # each memory is distilled by its own method (--memory)
    logging=(logging.WARNING, "%(levelname)s %(name)s: %(message)s"))


build_parser = partial(_build_parser, SPEC)  # the parser alone (tests, docs)


cli = partial(run_cli, main)  # the console script continual-run

if __name__ == "__main__":
    cli()
