"""What a search reports: each proxy's ranking quality and cost (``results.json``), the table printed on
stdout and ``ranking.png``, from the rows that :func:`nas.experiment.run_search` finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from distill.core.io import write_json
from nas import metrics
from nas.benchmark import Benchmark
from nas.config import SearchConfig
from nas.proxies import BASELINE_SETS, ProxyBench, ProxySet, training_score
from nas.sampling import CandidateSample, top20_threshold


#: The baselines every proxy is compared with by a paired bootstrap of ρ(proxy) − ρ(baseline): the registry's
#: baseline sets (random real images, and DM, the paper's comparison) and the two zero-cost proxies that rank
#: well for free.
PAIRED_AGAINST = (*BASELINE_SETS, "synflow", "params")


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
        # Columns keyed by arch, built here; every statistic of them comes from nas.metrics.
        true = {r["arch"]: r["true_accuracy"] for r in mine}
        score = {r["arch"]: r["proxy_score"] for r in mine}
        top = [a for a in true if true[a] >= top20_threshold]
        uniform = [r["arch"] for r in mine if r.get("uniform", True)]
        paired = {other: ({r["arch"]: r["proxy_score"] for r in by_proxy[other]}
                          if intervals and name != other and by_proxy.get(other) else None) for other in PAIRED_AGAINST}
        seconds = sum(r["seconds"] for r in mine)
        entry = {
            "ranks_by": (config.rank_by if proxy.trains else "zero-cost score"),
            "candidates": len(mine),
            "diverged": sum(bool(r["diverged"]) for r in mine),
            **metrics.ranking_quality(score, true, top=top, uniform=uniform, paired=paired, top_k=config.top_k,
                                      seed=config.seed, intervals=intervals),
            "proxy_minutes": seconds / 60,
            "distill_minutes": proxy.distill_seconds / 60,
            "distill_cached": proxy.cached,
            "prepare_minutes": proxy.prepare_seconds / 60,
            "total_minutes": (seconds + proxy.distill_seconds) / 60,
            "set": proxy.description,
        }
        if proxy.trains:
            accuracy = {r["arch"]: r["proxy_accuracy"] for r in mine}
            minus_tse = {r["arch"]: None if r["tse"] is None else -r["tse"] for r in mine}
            rho_acc, tau_acc = metrics.correlations(list(accuracy.values()), list(true.values()))
            rho_tse, tau_tse = metrics.correlations(list(minus_tse.values()), list(true.values()))
            rho_tse_top, _ = metrics.correlations([minus_tse[a] for a in top], [true[a] for a in top])
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


def write_results(out: Path, rows: list[dict], bench: ProxyBench, config: SearchConfig, sample: CandidateSample,
                  benchmark: Benchmark, extra: dict[str, Any], *, complete: bool, whole_dataset_images: int,
                  plot: bool) -> dict:
    """``out/results.json`` (and ``ranking.png`` when ``plot``) from the finished ``rows``: every candidate's row,
    each proxy's summary over the candidates that every proxy finished, the sample and ``extra``."""
    proxies = bench.proxies
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
                        top20_threshold=threshold, full_network=bench.full_network, intervals=complete)
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
        plot_ranking(ranked, summary, out / "ranking.png",
                     title=f"NAS-Bench-201 {config.space}, {len(done)} candidates, {config.dataset}")
    return results


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


def plot_ranking(rows: Sequence[Mapping], summary: Mapping[str, Mapping], path: str | Path, *, title: str = "") -> None:
    """Scatter of every candidate (x: true accuracy, y: the score the proxy ranks by; diverged runs left
    out), Spearman rho in each title. Zero-cost scores are drawn on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.plot import save_figure

    proxies = list(summary)
    cols = min(4, max(1, len(proxies)))
    rows_of_panels = -(-max(1, len(proxies)) // cols)
    fig, axes = plt.subplots(rows_of_panels, cols, figsize=(4.2 * cols, 3.6 * rows_of_panels), squeeze=False)
    for ax in axes.flat[len(proxies):]:
        ax.set_visible(False)
    for ax, proxy in zip(axes.flat, proxies):
        mine = [r for r in rows if r["proxy"] == proxy and r.get("proxy_score") is not None]
        ax.scatter([r["true_accuracy"] for r in mine], [r["proxy_score"] for r in mine], s=14, alpha=0.8)
        ranks_by = summary[proxy].get("ranks_by", "accuracy")
        if ranks_by == "zero-cost score" and mine and min(r["proxy_score"] for r in mine) > 0:
            ax.set_yscale("log")
        rho = summary[proxy].get("spearman")
        tau = summary[proxy].get("kendall")
        ci = summary[proxy].get("spearman_ci95")
        rho_text = "n/a" if rho is None else f"{rho:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        tau_text = "n/a" if tau is None else f"{tau:.2f}"
        ax.set_title(f"{proxy}: ρ = {rho_text}, τ = {tau_text}", fontsize=10)
        ax.set_xlabel("true accuracy (%, 200 epochs, whole set)", fontsize=9)
        ax.set_ylabel({"accuracy": "proxy accuracy (%)", "tse": "minus TSE (summed training loss)"}.get(
            ranks_by, f"{proxy} score"), fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


__all__ = ["PAIRED_AGAINST", "format_summary", "plot_ranking", "summarise", "write_results"]
