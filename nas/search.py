"""Command line: rank NAS-Bench-201 candidates by proxy training (``python -m nas.search --space top20``)."""

from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path

from distill.cli import joined, make_run_dir, refuse_to_overwrite, report, run_cli, run_parser, threads, write_settings
from distill.settings import add_config_args, config_to_dict, pick_preset
from distill.data import load_dataset
from distill.errors import DistillError
from distill.evaluate import TrainConfig
from distill.methods import DistillConfig
from nas.benchmark import load_benchmark
from nas.config import SearchConfig, namespace_overrides, resolve_search_config
from nas.experiment import format_summary, load_progress, run_search
from nas.sampling import SPACES

__all__ = ["PRESET_NAMES", "PRESETS", "build_parser", "main"]

PRESETS = ("cpu", "ipc50-cpu", "paper", "smoke", "none")  # shipped in configs/nas/
# What a search leaves in --out: a fresh one refuses to replace it without --resume or --overwrite.
_RUN_FILES = ("results.json", "progress/rank*.json")
# The NAS-Bench-201 network halves its input twice; an image side that does not divide by 4 breaks its residual sums.
_REDUCTION = 4
# --preset names configs/nas/<name>.toml: the first of these that exists ("none": no preset).
PRESET_NAMES = ("nb201-{space}-{preset}", "{preset}")


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("nas.search", "nas", "Rank NAS-Bench-201 architectures by training them on a distilled set "
                        "(DataDAM, DM), a random real subset, or briefly on the whole set, and compare with their "
                        "true accuracy.", presets=f"{' | '.join(PRESETS)}: configs/nas/nb201-<space>-<preset>.toml, "
                        "else <preset>.toml", preset_default="cpu", resume="continue the search already in --out",
                        quiet=False)  # progress bars are a setting (--no-progress)
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
    if args.resume and args.out is None:
        raise DistillError("--resume needs --out DIR naming the search to continue")
    if args.resume and args.overwrite:
        raise DistillError("--resume continues the search in --out and --overwrite replaces it; pass one of them")
    previous = refuse_to_overwrite(args.out, _RUN_FILES, resume=args.resume, overwrite=args.overwrite)
    benchmark = load_benchmark(config.benchmark_file)
    preflight(config, args.out, benchmark, resume=args.resume)
    out = make_run_dir(args.out, "nas")
    for path in previous if args.overwrite else []:
        path.unlink(missing_ok=True)
    with threads(config.threads), joined() as world:
        if world.rank == 0:
            write_settings(out, config)
        train = load_dataset(config.dataset, "train", data_root=config.data_root)
        test = load_dataset(config.dataset, "test", data_root=config.data_root)
        results = run_search(config, out, train=train, test=test, benchmark=benchmark, resume=args.resume)
    if results:  # rank 0
        report(format_summary(results), out, results="results.json", plot="ranking.png")
    return 0


def preflight(config: SearchConfig, out: Path | None, benchmark, *, resume: bool = False) -> None:
    """Every check of the search that needs no decoded image (:mod:`distill.preflight`): the candidates against
    the space, the proxy resolution, the ``--synthetic`` sets and ``--ipc`` against the data root's listing,
    the output, memory and disk."""
    from dataclasses import replace

    from distill.data import STATS
    from distill.distributed import local_device, resolve_device
    from distill.preflight import (check_disk, check_ipc, check_memory, check_names, check_output, data_memory,
                                   data_writes, encoder_memory, read_listing)
    from nas.proxies import load_synthetic_files
    from nas.sampling import draw_candidates

    # The search's own draw (a fraction of a second): --num-archs and --top-fraction against the space.
    draw_candidates(benchmark, config.space, config.num_archs, seed=config.seed, top_fraction=config.top_fraction,
                    dataset=config.dataset)
    device = local_device(resolve_device(config.device))
    d = replace(config.distill, method="datadam", ipc=config.ipc).resolved(device)
    check_names(norm=d.norm, dsa_strategy=d.dsa_strategy, prefix="--distill-")
    check_names(dsa_strategy=config.train.dsa_strategy)
    check_output(out)
    if resume and out is not None:
        load_progress(Path(out), config_to_dict(config.fingerprint()))  # other settings: refused before decoding
    listing = read_listing(config.dataset, config.data_root)
    resolution = config.resolution or listing.image_shape[-1]
    if resolution % _REDUCTION:
        fit = max(_REDUCTION, resolution // _REDUCTION * _REDUCTION)
        raise DistillError(f"{'--resolution' if config.resolution else 'the image side'} {resolution} does not halve "
                           f"twice evenly (the NAS-Bench-201 network has two reduction cells); pass --resolution {fit}")
    for synthetic, path in load_synthetic_files(config.synthetic, config.proxy).values():
        synthetic.check_compatible(listing.classes, listing.image_shape, source=f"{listing.root} ({config.dataset})")
        if sorted(synthetic.class_ids) != list(range(listing.num_classes)):
            raise DistillError(f"synthetic set {path} holds {len(synthetic.class_ids)} of the {listing.num_classes} "
                               f"classes; distill all classes of the dataset")
        stats = STATS.get(config.dataset)
        if stats is not None and (synthetic.mean, synthetic.std) != stats:
            raise DistillError(f"synthetic set {path} is normalised with mean/std {synthetic.mean}/{synthetic.std}, "
                               f"not {config.dataset}'s {stats[0]}/{stats[1]}; distill it from {config.dataset}")
    if any(p in ("datadam", "dm", "random") for p in config.proxy):
        check_ipc(config.ipc, listing)
    check_memory({**data_memory(listing, test=True), **encoder_memory(d, listing.image_shape, listing.num_classes)},
                 device=device)
    check_disk(data_writes(listing))


cli = partial(run_cli, main)  # the console script nas-search

if __name__ == "__main__":
    cli()
