"""A proxy search over NAS-Bench-201 candidates: sample, train on every proxy, rank, report.

Finished candidates are saved atomically as they finish (``progress/rank<r>.json``), so a search
resumes where it stopped; with ``torchrun`` the candidates are sharded over the processes and
rank 0 gathers the rows.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from distill.core.data import ClassDataset
from distill.shell.distributed import World, local_device, resolve_device
from distill.core.engine import plan as engine_plan
from distill.core.errors import DistillError
from distill.core.hardware import machine_info
from distill.core.io import write_json
from distill.core.settings import config_to_dict
from nas import metrics
from nas import proxies as proxies_module
from nas.benchmark import Benchmark
from nas.config import SearchConfig
from nas.network import FULL_CELLS_PER_STAGE, FULL_CHANNELS, resize_images
from nas.proxies import (ProxySet, build_proxy_sets, distilled_set, matched_budget, missing_from_cache,
                         proxy_resolution, run_proxy, seeded_subset, training_score)
from nas.sampling import CandidateSample, draw_candidates, top20_threshold

log = logging.getLogger(__name__)

PROGRESS_DIR = "progress"


def _candidate_seed(seed: int, benchmark_index: int) -> int:
    """Initialisation/training seed of a candidate: the same for every proxy, distinct per arch."""
    return seed * 100_003 + benchmark_index


_WARM_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


def _warm_up(proxies: dict[str, ProxySet], config: SearchConfig, *, num_classes: int, device: torch.device) -> None:
    """One throwaway run per kind of proxy, so that lazy kernel initialisation is not billed to the first candidate."""
    from dataclasses import replace

    training = [p for p in proxies.values() if p.trains]
    if training:
        warm = replace(training[0], images=training[0].images[:2], labels=training[0].labels[:2], epochs=1)
        proxies_module.run_proxy(_WARM_ARCH, warm, warm.images, warm.labels, config, num_classes=num_classes,
                                 seed=0, device=device)
    for proxy in proxies.values():
        if not proxy.trains:
            proxies_module.run_proxy(_WARM_ARCH, proxy, torch.empty(0), torch.empty(0), config,
                                     num_classes=num_classes, seed=0, device=device)
            break


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


#: The baselines every proxy is compared with by a paired bootstrap of ρ(proxy) − ρ(baseline): the baseline
#: method's set (random real images) and the two zero-cost proxies that rank well for free.
PAIRED_AGAINST = (*proxies_module.BASELINE_SETS, "synflow", "params")


def _paired_difference(mine: list[dict], other: list[dict], seed: int) -> list[float] | None:
    """Paired bootstrap interval of ρ(mine) − ρ(other) over the candidates both scored."""
    theirs = {r["arch"]: r["proxy_score"] for r in other}
    paired = [r for r in mine if r["arch"] in theirs]
    if len(paired) < 3:
        return None
    return metrics.spearman_difference_interval(
        metrics.rankable([r["proxy_score"] for r in paired]), metrics.rankable([theirs[r["arch"]] for r in paired]),
        [r["true_accuracy"] for r in paired], seed=seed)


def _correlations(rows: list[dict], key: Callable[[dict], float | None]) -> tuple[float | None, float | None]:
    """Spearman ρ and Kendall τ of ``key`` against true accuracy over ``rows`` (None-scored rows rank last)."""
    scores = metrics.rankable([key(r) for r in rows])
    true = [r["true_accuracy"] for r in rows]
    return metrics.spearman(scores, true), metrics.kendall(scores, true)


def _minus_tse(row: dict) -> float | None:
    return None if row["tse"] is None else -row["tse"]


def summarise(rows: Sequence[dict], proxies: dict[str, ProxySet], config: SearchConfig, *,
              whole_dataset_images: int, top20_threshold: float, full_network: bool,
              intervals: bool = True) -> dict[str, dict]:
    """Per-proxy ranking quality and cost over the candidates that every listed proxy finished.

    ρ and τ are reported on the whole sample, on its top-20 % part (true accuracy at or above the
    table's 80th percentile) and on its uniformly drawn part (oversampling bends ρ on the whole sample).
    ``intervals=False`` leaves the bootstrap intervals out (null): they cost seconds, too much to
    recompute after every candidate.
    """
    summary: dict[str, dict] = {}
    by_proxy = {name: [r for r in rows if r["proxy"] == name] for name in proxies}
    for name, proxy in proxies.items():
        mine = by_proxy[name]
        if not mine:
            continue
        scores = [r["proxy_score"] for r in mine]
        true_acc = [r["true_accuracy"] for r in mine]
        ranked = metrics.rankable(scores)
        top = [r for r in mine if r["true_accuracy"] >= top20_threshold]
        uniform = [r for r in mine if r.get("uniform", True)]
        rho, tau = _correlations(mine, lambda r: r["proxy_score"])
        rho_top, tau_top = _correlations(top, lambda r: r["proxy_score"])
        rho_uniform, tau_uniform = _correlations(uniform, lambda r: r["proxy_score"])
        entry = {
            "ranks_by": (config.rank_by if proxy.trains else "zero-cost score"),
            "candidates": len(mine),
            "diverged": sum(bool(r["diverged"]) for r in mine),
            "spearman": rho,
            "spearman_why": metrics.undefined_reason(scores, true_acc),
            "spearman_ci95": metrics.spearman_interval(ranked, true_acc, seed=config.seed) if intervals else None,
            "kendall": tau,
            "spearman_top20": rho_top,
            "kendall_top20": tau_top,
            "top20_candidates": len(top),
            "spearman_uniform": rho_uniform,
            "kendall_uniform": tau_uniform,
            "uniform_candidates": len(uniform),
            **{f"spearman_minus_{other}_ci95": (_paired_difference(mine, by_proxy[other], config.seed)
                                                 if intervals and name != other and by_proxy.get(other) else None)
               for other in PAIRED_AGAINST},
            "top1_true_accuracy": metrics.top1_true_accuracy(ranked, true_acc),
            "top1_arch": mine[metrics.top1(ranked, true_acc)]["arch"],
            "regret": metrics.regret(ranked, true_acc),
            "best_true_accuracy": max(true_acc),
            f"top{config.top_k}_overlap": metrics.top_k_overlap(ranked, true_acc, config.top_k),
            "proxy_minutes": sum(r["seconds"] for r in mine) / 60,
            "distill_minutes": proxy.distill_seconds / 60,
            "distill_cached": proxy.cached,
            "prepare_minutes": proxy.prepare_seconds / 60,
            "total_minutes": (sum(r["seconds"] for r in mine) + proxy.distill_seconds) / 60,
            "set": proxy.description,
        }
        if proxy.trains:
            rho_acc, tau_acc = _correlations(mine, lambda r: r["proxy_accuracy"])
            rho_tse, tau_tse = _correlations(mine, _minus_tse)
            rho_tse_top, _ = _correlations(top, _minus_tse)
            finished = [r for r in mine if not r["diverged"]]
            seconds_per_image = sum(r["train_seconds"] / r["train_images_seen"] for r in mine) / len(mine)
            entry.update({
                "spearman_accuracy": rho_acc, "kendall_accuracy": tau_acc,
                "spearman_tse": rho_tse, "kendall_tse": tau_tse, "spearman_tse_top20": rho_tse_top,
                "mean_proxy_accuracy": (sum(r["proxy_accuracy"] for r in finished) / len(finished)
                                        if finished else None),
                "seconds_per_train_image": seconds_per_image,
                "whole_dataset_minutes_estimate": (seconds_per_image * whole_dataset_images
                                                   * config.whole_dataset_epochs * len(mine) / 60
                                                   if full_network else None),
                "images": int(len(proxy.images)),
                "epochs": proxy.epochs,
                "images_seen": int(len(proxy.images)) * proxy.epochs,
            })
        summary[name] = entry
    return summary


def _write_results(out: Path, rows: list[dict], proxies: dict[str, ProxySet], config: SearchConfig,
                   sample: CandidateSample, benchmark: Benchmark, extra: dict[str, Any], *, complete: bool,
                   whole_dataset_images: int, full_network: bool, plot: bool) -> dict:
    candidates = sample.archs
    order = {arch: i for i, arch in enumerate(candidates)}
    uniform = dict(zip(candidates, sample.uniform))
    unique = {(r["arch"], r["proxy"]): {**r, "uniform": uniform.get(r["arch"], True)}
              for r in rows if r["arch"] in order and r["proxy"] in proxies}
    for r in unique.values():  # a search resumed with another --rank-by ranks its finished rows that way too
        if proxies[r["proxy"]].trains:
            r["proxy_score"] = training_score(r["proxy_accuracy"], r["tse"], config.rank_by)
    rows = sorted(unique.values(), key=lambda r: (order.get(r["arch"], len(order)), list(proxies).index(r["proxy"])))
    # Rank only candidates that every proxy has finished, so the proxies are compared on one set.
    done = {a for a in order if all((a, p) in unique for p in proxies)}
    ranked = [r for r in rows if r["arch"] in done]
    threshold = top20_threshold(benchmark, dataset=config.dataset)
    summary = summarise(ranked, proxies, config, whole_dataset_images=whole_dataset_images,
                        top20_threshold=threshold, full_network=full_network, intervals=complete)
    results = {
        "complete": complete,
        "space": config.space,
        "dataset": config.dataset,
        "num_candidates": len(candidates),
        "num_finished": len(done),
        "benchmark": benchmark.source,
        "top20_threshold": threshold,
        "sampling": {"seed": config.seed, "top_fraction": sample.top_fraction, "uniform": sample.num_uniform,
                     "oversampled": len(candidates) - sample.num_uniform,
                     "top20": sum(benchmark.true_accuracy(a, config.dataset) >= threshold for a in candidates)},
        **extra,
        "notes": {
            "proxy_score": "the value each proxy ranks by (higher = better); see summary.<proxy>.ranks_by. "
                           "Training proxies: test accuracy (%) at the end of training (rank_by = accuracy) or "
                           "minus tse (rank_by = tse); zero-cost proxies: their score. null when training diverged "
                           "(such candidates rank last)",
            "diverged": "the training loss, the trained weights or their outputs became NaN or infinite",
            "proxy_accuracy": "test accuracy (%) at the end of training, on the test images described by "
                              "test_images; null for zero-cost proxies and diverged runs",
            "tse": "sum of the training minibatch losses over the whole run (Ru et al. 2021); lower = better",
            "true_accuracy": "200-epoch whole-training-set test accuracy (%) from the benchmark table",
            "uniform": "the candidate belongs to the uniform draw (false: added by top-quintile oversampling)",
            "spearman_top20": "on the candidates whose true accuracy is at or above top20_threshold",
            "spearman_uniform": "on the uniformly drawn candidates only",
            "spearman_ci95": "bootstrap intervals are computed when the search is complete (null before)",
            "proxy_minutes": "measured wall time of scoring all candidates with the proxy (training, BatchNorm "
                             "pass, test; distillation not included, see distill_minutes)",
            "distill_minutes": "measured wall time of distilling the proxy's set when it was made (also when "
                               "it now came from the cache, see distill_cached)",
            "whole_dataset_minutes_estimate": "ESTIMATE, not measured: measured seconds per training image x "
                                              f"{whole_dataset_images} images x {config.whole_dataset_epochs} "
                                              "epochs x candidates; only for the full-size network at the "
                                              "dataset's resolution (null otherwise)",
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
    candidates = sample.archs
    true_acc = {a: benchmark.true_accuracy(a, config.dataset) for a in candidates}
    if train.num_classes != test.num_classes:
        raise DistillError("training and test sets have different classes; use one dataset")

    show = config.progress and world.rank == 0
    distilled_now = missing_from_cache(config, train)
    world.barrier()  # every rank knows which sets are missing before any is written
    # The missing sets are shared out over the processes (with two, DataDAM and DM distil side by side).
    for i, method in enumerate(m for m in config.proxy if m in distilled_now):
        if i % world.size == world.rank:
            distilled_set(config, method, train, device=device, progress=config.progress)
    world.barrier()  # every set is in the cache now
    proxies = build_proxy_sets(config, train, device=device, progress=show, distilled_now=distilled_now)
    test_images, test_labels = seeded_subset(test, config.test_images, config.seed)
    resolution = proxy_resolution(config, train)
    test_images = resize_images(test_images, resolution)
    full_network = (config.channels, config.cells_per_stage, resolution) == (
        FULL_CHANNELS, FULL_CELLS_PER_STAGE, int(train.images.shape[-1]))
    extra = {
        "test_images": int(len(test_images)),
        "world_size": world.size,
        "proxy_network": {"channels": config.channels, "cells_per_stage": config.cells_per_stage,
                          "resolution": resolution, "full_size": full_network,
                          "zero_cost_proxies_score": f"the full-size network (C={FULL_CHANNELS}, "
                                                     f"N={FULL_CELLS_PER_STAGE}) at the dataset's resolution"},
        "budget": {"small_set_images_seen": matched_budget(config, train.num_classes),
                   "images_seen": {name: int(len(p.images)) * p.epochs for name, p in proxies.items() if p.trains}},
        "proxy_sets": {name: p.description for name, p in proxies.items()},
        # what the training engine used for each training proxy's candidates (precision, compiled, layout, steps)
        "train_engine": {name: engine_plan(replace(config.train, epochs=p.epochs), len(p.images), device).to_dict()
                         for name, p in proxies.items() if p.trains},
        "machine": machine_info(device),
    }

    finished = {(r["arch"], r["proxy"]) for r in done_rows}
    # Rank 0 carries every finished row forward; the other ranks start their files afresh.
    mine_rows: list[dict] = list(done_rows) if world.rank == 0 else []
    my_candidates = [a for i, a in enumerate(candidates) if i % world.size == world.rank]
    todo = [a for a in my_candidates if any((a, p) not in finished for p in proxies)]
    rank_file = progress_dir / f"rank{world.rank}.json"
    write_json(rank_file, {"fingerprint": fingerprint, "rows": mine_rows})
    if todo:
        _warm_up(proxies, config, num_classes=train.num_classes, device=device)

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
                if outcome.diverged:
                    log.warning("%s diverged on %s (non-finite loss, weights or outputs); it ranks last", arch, name)
                mine_rows.append({
                    "arch": arch, "index": index, "proxy": name, "true_accuracy": true_acc[arch],
                    "proxy_score": outcome.score, "proxy_accuracy": outcome.accuracy, "tse": outcome.tse,
                    "diverged": outcome.diverged, "seconds": outcome.seconds,
                    "train_seconds": outcome.train_seconds, "train_images_seen": outcome.images_seen,
                })
                write_json(rank_file, {"fingerprint": fingerprint, "rows": mine_rows})
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"last {true_acc[arch]:.2f}% true")
            if world.size == 1:  # partial results stay readable while a long search runs
                _write_results(out, mine_rows, proxies, config, sample, benchmark, extra, complete=False,
                               whole_dataset_images=len(train), full_network=full_network, plot=False)
    world.barrier()
    if world.rank != 0:
        return {}
    rows = load_progress(out, fingerprint) if world.size > 1 else mine_rows
    return _write_results(out, rows, proxies, config, sample, benchmark, extra, complete=True,
                          whole_dataset_images=len(train), full_network=full_network, plot=True)


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_summary(results: dict) -> str:
    """The one-paragraph table printed on stdout, with a line for every ρ that is n/a and why."""
    def interval(values) -> str:
        return "n/a" if not values else f"[{values[0]:+.2f}, {values[1]:+.2f}]"

    lines = [f"{'proxy':<14} {'rho':>6} {'95% CI':>14} {'rho top20':>9} {'rho unif':>8} {'rho TSE':>7} "
             f"{'tau':>6} " + "".join(f"{'minus ' + other:>14} " for other in PAIRED_AGAINST) + f"{'top1 true':>9} {'regret':>6} "
             f"{'distill min':>11} {'proxy min':>9} {'diverged':>8}"]
    notes = []
    for name, s in results["summary"].items():
        lines.append(f"{name:<14} {_number(s['spearman']):>6} {interval(s.get('spearman_ci95')):>14} "
                     f"{_number(s.get('spearman_top20')):>9} {_number(s.get('spearman_uniform')):>8} "
                     f"{_number(s.get('spearman_tse')):>7} {_number(s['kendall']):>6} "
                     + "".join(f"{interval(s.get(f'spearman_minus_{other}_ci95')):>14} " for other in PAIRED_AGAINST) +
                     f"{s['top1_true_accuracy']:>9.2f} {s['regret']:>6.2f} {s['distill_minutes']:>11.1f} "
                     f"{s['proxy_minutes']:>9.1f} {s['diverged']:>8}")
        if s["spearman"] is None:
            notes.append(f"{name}: rho n/a ({s.get('spearman_why') or 'undefined'})")
        if s["diverged"]:
            notes.append(f"{name}: {s['diverged']} of {s['candidates']} candidates diverged (non-finite training "
                         "loss, weights or outputs; lower --lr); they rank last")
    sampling = results.get("sampling", {})
    training = [s["ranks_by"] for s in results["summary"].values() if s["ranks_by"] != "zero-cost score"]
    lines.append(f"{results['num_finished']} candidates ({sampling.get('uniform', '?')} uniform, "
                 f"{sampling.get('oversampled', 0)} added from the top quintile; {sampling.get('top20', '?')} in the "
                 f"top 20 %). rho ranks by proxy_score (training proxies: {training[0] if training else 'accuracy'}, "
                 "zero-cost ones: their score); rho TSE by minus the summed training loss.")
    lines.append(f"95% CI: bootstrap over candidates; minus {'/'.join(PAIRED_AGAINST)}: paired bootstrap of rho - rho(other) "
                 "(an interval holding 0 does not tell the two apart)")
    return "\n".join(lines + notes)


__all__ = ["PAIRED_AGAINST", "PROGRESS_DIR", "format_summary", "load_progress", "run_search", "summarise"]
