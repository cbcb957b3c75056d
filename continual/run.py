"""Command line: ``python -m continual.run --steps 5|10`` compares distilled and selected replay memories."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from distill.config import (add_config_args, make_run_dir, preset_path, read_toml, refuse_to_overwrite,
                            resolve_config)
from distill.errors import DistillError

PRESETS = ("cpu", "paper", "smoke")
# What a run leaves in --out: a fresh run refuses to replace it without --resume or --overwrite.
_RUN_FILES = ("results.json", "progress.json")
_OWN_FLAGS = {"steps", "protocol", "memory", "ipc", "seeds", "data_root", "device"}


def build_parser() -> argparse.ArgumentParser:
    from continual.config import ContinualConfig

    parser = argparse.ArgumentParser(
        prog="python -m continual.run",
        description="Class-incremental learning with distilled memories (DataDAM, DM) against herding and "
                    "random memories, in the GDumb-style protocol and/or Avalanche replay.")
    parser.add_argument("--steps", type=int, default=None, help="experiences: 5 or 10 for CIFAR-10 (default 5)")
    parser.add_argument("--protocol", default=None, help="gdumb | replay | both (default gdumb)")
    parser.add_argument("--memory", default=None, type=lambda s: tuple(p for p in s.split(",") if p),
                        metavar="A,B,...", help="memory methods: datadam,dm,herding,random (replay also: "
                                                "class_balanced)")
    parser.add_argument("--ipc", type=int, default=None, help="memory images per class (default 10)")
    parser.add_argument("--seeds", default=None, metavar="0,1,...",
                        type=lambda s: tuple(int(p) for p in s.split(",") if p.strip()),
                        help="class orders s = numpy.random.seed(s); permutation (default 0,1)")
    parser.add_argument("--preset", default="cpu", help="cpu | paper | smoke (default cpu): "
                                                        "configs/continual/cifar10-<steps>step-<preset>.toml")
    parser.add_argument("--config", type=Path, default=None, help="TOML file overriding the preset")
    parser.add_argument("--data-root", dest="data_root", default=None, help="dataset folder")
    parser.add_argument("--out", default=None, help="output folder (default runs/continual-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished steps")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_args(parser, ContinualConfig, skip=_OWN_FLAGS)
    return parser


def _preset_file(preset: str, steps: int | None, config_file: Path | None) -> Path:
    if preset not in PRESETS:
        raise DistillError(f"unknown --preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if preset == "smoke":
        return preset_path("continual", "smoke")
    if steps is None and config_file is not None:
        steps = read_toml(config_file).get("steps")
    steps = steps or 5
    # Other step counts start from the 5-step preset; --steps then overrides its value.
    return preset_path("continual", f"cifar10-{steps}step-{preset}", f"cifar10-5step-{preset}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from continual.config import ContinualConfig
    from continual.experiment import run_experiment, summary_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    preset = _preset_file(args.preset, args.steps, args.config)
    cfg = resolve_config(ContinualConfig, preset_file=preset, config_file=args.config, overrides=args)
    if args.resume and args.out is None:
        raise DistillError("--resume needs --out DIR naming the run to continue")
    if args.resume and args.overwrite:
        raise DistillError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    previous = refuse_to_overwrite(Path(args.out) if args.out else None, _RUN_FILES, resume=args.resume,
                                   overwrite=args.overwrite)
    out = make_run_dir(args.out, "continual")
    for path in previous if args.overwrite else []:
        path.unlink(missing_ok=True)
    if args.resume and not (out / "progress.json").is_file():
        print(f"no earlier run in {out} (no progress.json): starting fresh", file=sys.stderr)
    import torch

    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(max(1, cfg.threads))
    try:
        results = run_experiment(cfg, out, resume=args.resume, show_progress=not args.quiet)
    finally:
        torch.set_num_threads(threads)  # main() may run inside another program (tests, notebooks)
    print(summary_table(results))
    print(f"results: {out / 'results.json'}  plot: {out / 'accuracy.png'}  config: {out / 'config.toml'}")
    return 0


def cli() -> None:
    """Console-script entry point (``continual-run``)."""
    from distill.config import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
