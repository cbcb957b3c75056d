"""A proxy search over NAS-Bench-201 candidates: sample, train on every proxy, rank, report.

Finished candidates are saved atomically as they finish (``progress/rank<r>.json``), so a search
resumes where it stopped; with ``torchrun`` the candidates are sharded over the processes and
rank 0 gathers the rows.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from distill.config import config_to_dict, resolve_device, to_toml
from distill.data import ClassDataset
from distill.errors import DistillError
from distill.io import atomic_write_text, write_json
from nas import metrics
from nas import proxies as proxies_module
from nas.benchmark import Benchmark
from nas.config import SearchConfig
from nas.proxies import ProxySet, build_proxy_sets, run_proxy, seeded_subset
from nas.sampling import sample_candidates, top20_threshold

log = logging.getLogger(__name__)

PROGRESS_DIR = "progress"


@dataclass(frozen=True)
class World:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @staticmethod
    def from_env() -> "World":
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return World()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return World(dist.get_rank(), dist.get_world_size())

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()


def _candidate_seed(seed: int, benchmark_index: int) -> int:
    """Initialisation/training seed of a candidate: the same for every proxy, distinct per arch."""
    return seed * 100_003 + benchmark_index


def _warm_up(proxy: ProxySet, config: SearchConfig, *, num_classes: int, device: torch.device) -> None:
    """One throwaway training step, so that lazy kernel initialisation is not billed to the first candidate."""
    from dataclasses import replace

    warm = replace(proxy, images=proxy.images[:2], labels=proxy.labels[:2], epochs=1)
    proxies_module.run_proxy("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|", warm,
              proxy.images[:2], proxy.labels[:2], config, num_classes=num_classes, seed=0, device=device)


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


def summarise(rows: Sequence[dict], proxies: dict[str, ProxySet], config: SearchConfig, *,
              whole_dataset_images: int) -> dict[str, dict]:
    """Per-proxy ranking quality and cost over the candidates that every listed proxy finished."""
    summary: dict[str, dict] = {}
    by_arch = {name: {r["arch"]: r["proxy_accuracy"] for r in rows if r["proxy"] == name} for name in proxies}
    for name, proxy in proxies.items():
        mine = [r for r in rows if r["proxy"] == name]
        if not mine:
            continue
        proxy_acc = [r["proxy_accuracy"] for r in mine]
        true_acc = [r["true_accuracy"] for r in mine]
        versus_random = None
        if name != "random" and by_arch.get("random"):
            paired = [r for r in mine if r["arch"] in by_arch["random"]]
            versus_random = metrics.spearman_difference_interval(
                [r["proxy_accuracy"] for r in paired], [by_arch["random"][r["arch"]] for r in paired],
                [r["true_accuracy"] for r in paired], seed=config.seed)
        seconds_per_image = sum(r["train_seconds"] / r["train_images_seen"] for r in mine) / len(mine)
        whole = seconds_per_image * whole_dataset_images * config.whole_dataset_epochs * len(mine) / 60
        summary[name] = {
            "spearman": metrics.spearman(proxy_acc, true_acc),
            "spearman_ci95": metrics.spearman_interval(proxy_acc, true_acc, seed=config.seed),
            "spearman_minus_random_ci95": versus_random,
            "kendall": metrics.kendall(proxy_acc, true_acc),
            "top1_true_accuracy": metrics.top1_true_accuracy(proxy_acc, true_acc),
            "top1_arch": mine[metrics.top1(proxy_acc, true_acc)]["arch"],
            "regret": metrics.regret(proxy_acc, true_acc),
            "best_true_accuracy": max(true_acc),
            f"top{config.top_k}_overlap": metrics.top_k_overlap(proxy_acc, true_acc, config.top_k),
            "mean_proxy_accuracy": sum(proxy_acc) / len(proxy_acc),
            "candidates": len(mine),
            "proxy_minutes": sum(r["seconds"] for r in mine) / 60,
            "prepare_minutes": proxy.prepare_seconds / 60,
            "whole_dataset_minutes_estimate": whole,
            "seconds_per_train_image": seconds_per_image,
            "images": int(len(proxy.images)),
            "epochs": proxy.epochs,
            "set": proxy.description,
        }
    return summary


def _write_results(out: Path, rows: list[dict], proxies: dict[str, ProxySet], config: SearchConfig,
                   candidates: list[str], benchmark: Benchmark, extra: dict[str, Any], *, complete: bool,
                   whole_dataset_images: int, plot: bool) -> dict:
    order = {arch: i for i, arch in enumerate(candidates)}
    unique = {(r["arch"], r["proxy"]): r for r in rows if r["arch"] in order and r["proxy"] in proxies}
    rows = sorted(unique.values(), key=lambda r: (order.get(r["arch"], len(order)), list(proxies).index(r["proxy"])))
    # Rank only candidates that every proxy has finished, so the proxies are compared on one set.
    done = {a for a in order if all(any(r["arch"] == a and r["proxy"] == p for r in rows) for p in proxies)}
    ranked = [r for r in rows if r["arch"] in done]
    summary = summarise(ranked, proxies, config, whole_dataset_images=whole_dataset_images)
    results = {
        "complete": complete,
        "space": config.space,
        "dataset": config.dataset,
        "num_candidates": len(candidates),
        "num_finished": len(done),
        "benchmark": benchmark.source,
        **extra,
        "notes": {
            "proxy_accuracy": "test accuracy (%) at the end of training, on the test images described by test_images",
            "true_accuracy": "200-epoch whole-training-set test accuracy (%) from the benchmark table",
            "proxy_minutes": "measured wall time of training and testing all candidates on the proxy "
                             "(distillation not included; see prepare_minutes)",
            "whole_dataset_minutes_estimate": "ESTIMATE, not measured: measured seconds per training image x "
                                              f"{whole_dataset_images} images x {config.whole_dataset_epochs} "
                                              "epochs x candidates",
        },
        "summary": summary,
        "candidates": rows,
    }
    write_json(out / "results.json", results)
    if plot and summary:
        from nas.plot import plot_ranking

        plot_ranking(ranked, summary, out / "ranking.png",
                     title=f"NAS-Bench-201 {config.space}, {len(done)} candidates, {config.dataset}")
    return results


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
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(out)
    fingerprint = config_to_dict(config.fingerprint())
    progress_dir = out / PROGRESS_DIR
    if not resume and any(progress_dir.glob("rank*.json")):
        raise DistillError(f"{out} already holds a search; pass --resume to continue it or a fresh --out")
    done_rows = load_progress(out, fingerprint) if resume else []
    world.barrier()  # every rank has read the old progress before anyone rewrites it

    candidates = sample_candidates(benchmark, config.space, config.num_archs, seed=config.seed,
                                   dataset=config.dataset)
    true_acc = {a: benchmark.true_accuracy(a, config.dataset) for a in candidates}
    if train.num_classes != test.num_classes:
        raise DistillError("training and test sets have different classes; use one dataset")

    show = config.progress and world.rank == 0
    if world.rank == 0:
        atomic_write_text(out / "config.toml", to_toml(config))
        proxies = build_proxy_sets(config, train, device=device, progress=show)
    world.barrier()  # rank 0 distilled and cached the sets; the others now read them from the cache
    if world.rank != 0:
        proxies = build_proxy_sets(config, train, device=device, progress=False)
    test_images, test_labels = seeded_subset(test, config.test_images, config.seed)
    extra = {
        "test_images": int(len(test_images)),
        "top20_threshold": top20_threshold(benchmark, dataset=config.dataset) if config.space == "top20" else None,
        "world_size": world.size,
        "proxy_sets": {name: p.description for name, p in proxies.items()},
    }

    finished = {(r["arch"], r["proxy"]) for r in done_rows}
    # Rank 0 carries every finished row forward; the other ranks start their files afresh.
    mine_rows: list[dict] = list(done_rows) if world.rank == 0 else []
    my_candidates = [a for i, a in enumerate(candidates) if i % world.size == world.rank]
    todo = [a for a in my_candidates if any((a, p) not in finished for p in proxies)]
    rank_file = progress_dir / f"rank{world.rank}.json"
    write_json(rank_file, {"fingerprint": fingerprint, "rows": mine_rows})
    if todo:
        _warm_up(next(iter(proxies.values())), config, num_classes=train.num_classes, device=device)

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
            for name, proxy in proxies.items():
                if (arch, name) in finished:
                    continue
                outcome = run_proxy(arch, proxy, test_images, test_labels, config, num_classes=train.num_classes,
                                    seed=_candidate_seed(config.seed, index), device=device)
                mine_rows.append({
                    "arch": arch, "index": index, "proxy": name,
                    "proxy_accuracy": outcome.accuracy, "true_accuracy": true_acc[arch],
                    "seconds": outcome.seconds, "train_seconds": outcome.train_seconds,
                    "train_images_seen": outcome.images_seen,
                })
                write_json(rank_file, {"fingerprint": fingerprint, "rows": mine_rows})
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"last {true_acc[arch]:.2f}% true")
            if world.size == 1:  # partial results stay readable while a long search runs
                _write_results(out, mine_rows, proxies, config, candidates, benchmark, extra, complete=False,
                               whole_dataset_images=len(train), plot=False)
    world.barrier()
    if world.rank != 0:
        return {}
    rows = load_progress(out, fingerprint) if world.size > 1 else mine_rows
    return _write_results(out, rows, proxies, config, candidates, benchmark, extra, complete=True,
                          whole_dataset_images=len(train), plot=True)


def format_summary(results: dict) -> str:
    """The one-paragraph table printed on stdout."""
    def interval(values) -> str:
        return "n/a" if not values else f"[{values[0]:+.2f}, {values[1]:+.2f}]"

    lines = [f"{'proxy':<11} {'spearman':>8} {'95% CI':>14} {'minus random':>14} {'kendall':>8} {'top1 true':>9} "
             f"{'regret':>6} {'proxy min':>9} {'whole-set min (est.)':>20} {'images':>7}"]
    for name, s in results["summary"].items():
        rho = "n/a" if s["spearman"] is None else f"{s['spearman']:.3f}"
        tau = "n/a" if s["kendall"] is None else f"{s['kendall']:.3f}"
        lines.append(f"{name:<11} {rho:>8} {interval(s.get('spearman_ci95')):>14} "
                     f"{interval(s.get('spearman_minus_random_ci95')):>14} {tau:>8} "
                     f"{s['top1_true_accuracy']:>9.2f} {s['regret']:>6.2f} "
                     f"{s['proxy_minutes']:>9.1f} {s['whole_dataset_minutes_estimate']:>20.0f} {s['images']:>7}")
    lines.append("95% CI: bootstrap over candidates; minus random: paired bootstrap of rho - rho(random) "
                 "(an interval holding 0 does not tell the two apart)")
    return "\n".join(lines)
