"""Command line: ``python -m continual.run --steps 5|10`` compares distilled and selected replay memories."""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from pathlib import Path

from distill.cli import joined, make_run_dir, refuse_to_overwrite, report, run_cli, run_parser, threads, write_settings
from distill.errors import DistillError
from distill.settings import add_config_args, pick_preset, resolve_config

__all__ = ["PRESET_NAMES", "PRESETS", "build_parser", "main"]

PRESETS = ("cpu", "ipc50-cpu", "paper", "smoke", "none")  # shipped in configs/continual/
# --preset names configs/continual/<name>.toml: the first of these that exists.
PRESET_NAMES = ("cifar10-{steps}step-{preset}", "cifar10-5step-{preset}", "{preset}")
# What a run leaves in --out: a fresh run refuses to replace it without --resume or --overwrite.
_RUN_FILES = ("results.json", "progress.json")


def build_parser() -> argparse.ArgumentParser:
    from continual.config import ContinualConfig

    parser = run_parser("continual.run", "continual", "Class-incremental learning with distilled memories (DataDAM, "
                        "DM) against herding and random memories, in the GDumb-style protocol and/or Avalanche replay.",
                        presets=f"{' | '.join(PRESETS)}: configs/continual/cifar10-<steps>step-<preset>.toml, else "
                                "<preset>.toml", preset_default="cpu",
                        resume="continue the run in --out, skipping finished steps")
    add_config_args(parser, ContinualConfig)  # no defaults shown: the preset decides them
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from continual.config import ContinualConfig

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    preset = pick_preset("continual", args.preset, PRESET_NAMES, cls=ContinualConfig, flags=args,
                         config_file=args.config)
    cfg = resolve_config(ContinualConfig, preset_file=preset, config_file=args.config, overrides=args)
    if args.resume and args.out is None:
        raise DistillError("--resume needs --out DIR naming the run to continue")
    if args.resume and args.overwrite:
        raise DistillError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    previous = refuse_to_overwrite(Path(args.out) if args.out else None, _RUN_FILES, resume=args.resume,
                                   overwrite=args.overwrite)
    preflight(cfg, Path(args.out) if args.out else None, resume=args.resume)
    out = make_run_dir(args.out, "continual")
    for path in previous if args.overwrite else []:
        path.unlink(missing_ok=True)
    if args.resume and not (out / "progress.json").is_file():
        print(f"no earlier run in {out} (no progress.json): starting fresh", file=sys.stderr)
    write_settings(out, cfg)
    from continual.experiment import run_experiment, summary_table  # Avalanche: after the checks, not before

    with threads(cfg.threads), joined():
        results = run_experiment(cfg, out, resume=args.resume, show_progress=not args.quiet)
    report(summary_table(results), out, results="results.json", plot="accuracy.png", config="config.toml")
    return 0


def preflight(cfg, out: Path | None, *, resume: bool = False) -> None:
    """Every check of the run that needs no decoded image (:mod:`distill.preflight`): the settings, the data
    root's classes and class sizes against ``--steps`` and ``--ipc``, the output, memory and disk."""
    from continual.config import CLASS_BALANCED, check_steps, read_progress, validate
    from distill.distributed import local_device, resolve_device
    from distill.methods import check_image_size, get_method
    from distill.preflight import (check_disk, check_ipc, check_memory, check_names, check_output, data_memory,
                                   data_writes, encoder_memory, read_listing)

    validate(cfg)
    device = local_device(resolve_device(cfg.device))
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


cli = partial(run_cli, main)  # the console script continual-run

if __name__ == "__main__":
    cli()
