"""Command line: rank NAS-Bench-201 candidates by proxy training (``python -m nas.search --space top20``)."""

from __future__ import annotations

import argparse
import logging
from functools import partial

from distill.cli import joined, make_run_dir, report, run_cli, run_parser, threads, write_settings
from distill.settings import add_config_args, pick_preset
from distill.data import load_dataset
from distill.errors import DistillError
from distill.evaluate import TrainConfig
from distill.methods import DistillConfig
from nas.benchmark import load_benchmark
from nas.config import SearchConfig, namespace_overrides, resolve_search_config
from nas.experiment import format_summary, run_search
from nas.sampling import SPACES

__all__ = ["PRESET_NAMES", "PRESETS", "build_parser", "main"]

PRESETS = ("cpu", "ipc50-cpu", "paper", "smoke", "none")  # shipped in configs/nas/
# --preset names configs/nas/<name>.toml: the first of these that exists ("none": no preset).
PRESET_NAMES = ("nb201-{space}-{preset}", "{preset}")


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("nas.search", "nas", "Rank NAS-Bench-201 architectures by training them on a distilled set "
                        "(DataDAM, DM), a random real subset, or briefly on the whole set, and compare with their "
                        "true accuracy.", presets=f"{' | '.join(PRESETS)}: configs/nas/nb201-<space>-<preset>.toml, "
                        "else <preset>.toml", preset_default="cpu", resume="continue the search already in --out",
                        overwrite=False, quiet=False)  # progress bars are a setting (--no-progress)
    add_config_args(parser, SearchConfig)
    add_config_args(parser, TrainConfig)  # the [train] table: --epochs, --lr, --batch-size, ...
    _add_prefixed_args(parser, DistillConfig, "distill", skip={"method", "ipc"})
    return parser


def _add_prefixed_args(parser: argparse.ArgumentParser, cls: type, prefix: str, *, skip: set[str]) -> None:
    """``--<prefix>-<field>`` flags for the fields of ``cls`` (a TOML table whose names clash with the
    top-level flags), stored as ``<prefix>__<field>``; built from ``add_config_args``'s own flags."""
    own = argparse.ArgumentParser(add_help=False)
    add_config_args(own, cls, skip=skip)
    for action in own._actions:
        kwargs = {"dest": f"{prefix}__{action.dest}", "default": None, "help": f"[{prefix}] {action.help}"}
        flag = f"--{prefix}-{action.option_strings[0][2:]}"
        if isinstance(action, argparse.BooleanOptionalAction):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            parser.add_argument(flag, type=action.type, choices=action.choices,
                                metavar=action.metavar or action.dest.upper(), **kwargs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.space is not None and args.space not in SPACES:  # before it names a preset file
        raise DistillError(f"unknown search space {args.space!r}; use one of {', '.join(SPACES)}")
    preset = pick_preset("nas", args.preset, PRESET_NAMES, cls=SearchConfig, flags=args, config_file=args.config)
    config = resolve_search_config(preset_file=preset, config_file=args.config, overrides=namespace_overrides(args))
    benchmark = load_benchmark(config.benchmark_file)
    if args.resume and args.out is None:
        raise DistillError("--resume needs --out DIR naming the search to continue")
    out = make_run_dir(args.out, "nas")
    with threads(config.threads), joined() as world:
        if world.rank == 0:
            write_settings(out, config)
        train = load_dataset(config.dataset, "train", data_root=config.data_root)
        test = load_dataset(config.dataset, "test", data_root=config.data_root)
        results = run_search(config, out, train=train, test=test, benchmark=benchmark, resume=args.resume)
    if results:  # rank 0
        report(format_summary(results), out, results="results.json", plot="ranking.png")
    return 0


cli = partial(run_cli, main)  # the console script nas-search

if __name__ == "__main__":
    cli()
