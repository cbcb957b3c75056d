"""Command line: rank NAS-Bench-201 candidates by proxy training (``python -m nas.search --space top20``)."""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from pathlib import Path

from distill.shell.cli import report, run_cli
from distill.core.settings import config_to_dict
from distill.core.data import load_dataset
from distill.core.errors import DistillError
from distill.shell.runner import Job, JobSpec, build_parser as _build_parser, run_job
from nas.benchmark import load_benchmark
from nas.config import SearchConfig
from nas.experiment import load_progress, run_search
from nas.report import format_summary

__all__ = ["PRESET_NAMES", "PRESETS", "SPEC", "build_parser", "main"]

PRESETS = ("cpu", "ipc50-cpu", "paper", "smoke", "none")  # shipped in configs/nas/
# The NAS-Bench-201 network halves its input twice; an image side that does not divide by 4 breaks its residual sums.
_REDUCTION = 4
# --preset names configs/nas/<name>.toml: the first of these that exists ("none": no preset).
PRESET_NAMES = ("nb201-{space}-{preset}", "{preset}")


def _run(job: Job) -> dict:
    """The search itself; ``{}`` on ranks other than 0."""
    config = dataclasses.replace(job.cfg, device=str(job.device))  # this rank's GPU under torchrun
    train = load_dataset(config.dataset, "train", data_root=config.data_root)
    test = load_dataset(config.dataset, "test", data_root=config.data_root)
    return run_search(config, job.out, train=train, test=test, benchmark=job.checked, resume=job.resume)


def main(argv: list[str] | None = None) -> int:
    return run_job(SPEC, argv)


def preflight(config: SearchConfig, out: Path | None, *, device, resume: bool = False):
    """Every check of the search that needs no decoded image (:mod:`distill.shell.preflight`): the proxy resolution,
    the ``--synthetic`` sets and ``--ipc`` against the data root's listing, the output, memory and disk, and
    then the candidates against the space. Returns the benchmark table it read (the search's ground truth)."""
    from dataclasses import replace

    from distill.core.data import STATS
    from distill.methods import default_method, get_method, list_methods
    from distill.shell.preflight import (check_disk, check_ipc, check_memory, check_names, check_output, data_memory,
                                   data_writes, encoder_memory, read_listing)
    from nas.proxies import load_synthetic_files
    from nas.sampling import draw_candidates

    sets = [p for p in config.proxy if p in list_methods()]  # the proxies that train on a method's set
    encoder = next((m for m in sets if get_method(m).encoder), default_method())  # sizes the memory estimate
    d = replace(config.distill, method=encoder, ipc=config.ipc).resolved(device)
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
    if sets:
        check_ipc(config.ipc, listing)
    check_memory({**data_memory(listing, test=True), **encoder_memory(d, listing.image_shape, listing.num_classes)},
                 device=device)
    check_disk(data_writes(listing))
    # Last, as the dearest check (reading the table costs ~1 s of CPU, more than all the others):
    # --num-archs and --top-fraction against the space, by the search's own draw.
    benchmark = load_benchmark(config.benchmark_file)
    draw_candidates(benchmark, config.space, config.num_archs, seed=config.seed, top_fraction=config.top_fraction,
                    dataset=config.dataset)
    return benchmark


SPEC = JobSpec(
    module="nas.search", job="nas", config=SearchConfig, work=_run, preflight=preflight,
    report=lambda results, out: report(format_summary(results), out, results="results.json", plot="ranking.png"),
    description="Rank NAS-Bench-201 architectures by training them on a distilled set "
                "(DataDAM, DM, any registered method), a random real subset, or briefly on the whole set, and compare with their "
                "true accuracy.",
    presets=f"{' | '.join(PRESETS)}: configs/nas/nb201-<space>-<preset>.toml, else <preset>.toml",
    preset_names=PRESET_NAMES, preset_default="cpu",
    # What a search leaves in --out: a fresh one refuses to replace it without --resume or --overwrite.
    run_files=("results.json", "progress/rank*.json"), resume_marker="progress/rank*.json",
    resume_help="continue the search already in --out",
    flat_tables=("train",),  # the [train] table also takes --epochs, --lr, --batch-size, ...
    no_flags=frozenset({"distill.method"}),  # the proxy names the method
    quiet=False,  # progress bars are a setting (--no-progress)
    logging=(logging.INFO, "%(message)s"))


build_parser = partial(_build_parser, SPEC)  # the parser alone (tests, docs)


cli = partial(run_cli, main)  # the console script nas-search

if __name__ == "__main__":
    cli()
