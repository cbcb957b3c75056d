"""A proxy search over NAS-Bench-201 candidates: sample, score on every proxy, report.

Four stages, each in its own module: the candidates (:mod:`nas.sampling`), the proxies' sets and recipe
(:func:`nas.proxies.prepare_bench`), the scoring loop (here) and the report (:mod:`nas.report`). Finished
candidates are saved atomically as they finish (``progress/rank<r>.json``), so a search resumes where it
stopped; with ``torchrun`` the candidates are sharded over the processes and rank 0 gathers the rows.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from pathlib import Path

from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.core.hardware import machine_info
from distill.core.io import write_json
from distill.core.settings import config_to_dict
from distill.shell.distributed import World, local_device, resolve_device
from nas.benchmark import Benchmark
from nas.config import SearchConfig
from nas.proxies import prepare_bench
from nas.report import PAIRED_AGAINST, format_summary, write_results
from nas.sampling import draw_candidates

log = logging.getLogger(__name__)

PROGRESS_DIR = "progress"


def _candidate_seed(seed: int, benchmark_index: int) -> int:
    """Initialisation/training seed of a candidate: the same for every proxy, distinct per arch."""
    return seed * 100_003 + benchmark_index


def load_progress(out: Path, fingerprint: dict) -> list[dict]:
    """Rows already finished in ``out`` (every rank's file); DistillError if they used other settings."""
    rows: list[dict] = []
    for path in sorted((out / PROGRESS_DIR).glob("rank*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise DistillError(f"cannot read {path}; delete it to recompute those candidates") from None
        if data.get("fingerprint") != fingerprint:
            raise DistillError(f"{out} holds a search with other settings ({path}); resume with the same settings "
                               "or use a fresh --out")
        rows.extend(data["rows"])
    return rows


def run_search(config: SearchConfig, out: Path, *, train: ClassDataset, test: ClassDataset, benchmark: Benchmark,
               resume: bool = False) -> dict:
    """Run (or resume) the search described by ``config``, writing results into ``out``.

    Args:
        train, test: the real dataset (normalised); proxies train on ``train`` or sets made from it.
        benchmark: the ground-truth table.
        resume: continue the search already in ``out`` (else ``out`` must not hold one).

    Returns:
        the results dict also written to ``out/results.json`` (on rank 0; other ranks get ``{}``).
    """
    world = World.from_env()
    device = local_device(resolve_device(config.device))  # one GPU per rank under torchrun
    out = Path(out)
    fingerprint = config_to_dict(config.fingerprint())
    progress_dir = out / PROGRESS_DIR
    if not resume and any(progress_dir.glob("rank*.json")):
        raise DistillError(f"{out} already holds a search; pass --resume to continue it or a fresh --out")
    done_rows = load_progress(out, fingerprint) if resume else []
    world.barrier()  # every rank has read the old progress before anyone rewrites it

    sample = draw_candidates(benchmark, config.space, config.num_archs, seed=config.seed,
                             top_fraction=config.top_fraction, dataset=config.dataset)
    show = config.progress and world.rank == 0
    bench = prepare_bench(config, train, test, world=world, device=device, progress=show)
    extra = {**bench.describe(device), "world_size": world.size, "machine": machine_info(device)}

    def report(rows: list[dict], *, complete: bool) -> dict:
        return write_results(out, rows, bench, config, sample, benchmark, extra, complete=complete,
                             whole_dataset_images=len(train), plot=complete)

    finished = {(r["arch"], r["proxy"]) for r in done_rows}
    # Rank 0 carries every finished row forward; the other ranks start their files afresh.
    mine_rows: list[dict] = list(done_rows) if world.rank == 0 else []
    my_candidates = [a for i, a in enumerate(sample.archs) if i % world.size == world.rank]
    todo = [a for a in my_candidates if any((a, p) not in finished for p in bench.proxies)]
    rank_file = progress_dir / f"rank{world.rank}.json"
    write_json(rank_file, {"fingerprint": fingerprint, "rows": mine_rows})
    if todo:
        bench.warm_up(device)

    bar_context = nullcontext()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=len(my_candidates), initial=len(my_candidates) - len(todo), desc="candidates",
                   unit="arch", dynamic_ncols=True)
        bar_context = bar
    with bar_context:
        for arch in todo:
            index = benchmark.index_of(arch)
            true_accuracy = benchmark.true_accuracy(arch, config.dataset)
            for name in bench.proxies:
                if (arch, name) in finished:
                    continue
                outcome = bench.score(arch, name, seed=_candidate_seed(config.seed, index), device=device)
                if outcome.diverged:
                    log.warning("%s diverged on %s (non-finite loss, weights or outputs); it ranks last", arch, name)
                mine_rows.append({
                    "arch": arch, "index": index, "proxy": name, "true_accuracy": true_accuracy,
                    "proxy_score": outcome.score, "proxy_accuracy": outcome.accuracy, "tse": outcome.tse,
                    "diverged": outcome.diverged, "seconds": outcome.seconds,
                    "train_seconds": outcome.train_seconds, "train_images_seen": outcome.images_seen,
                })
                write_json(rank_file, {"fingerprint": fingerprint, "rows": mine_rows})
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"last {true_accuracy:.2f}% true")
            if world.size == 1:  # partial results stay readable while a long search runs
                report(mine_rows, complete=False)
    world.barrier()
    if world.rank != 0:
        return {}
    return report(load_progress(out, fingerprint) if world.size > 1 else mine_rows, complete=True)


__all__ = ["PAIRED_AGAINST", "PROGRESS_DIR", "format_summary", "load_progress", "run_search"]
