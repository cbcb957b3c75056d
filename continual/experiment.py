"""Run a whole comparison: protocols x memory methods x class orders, checkpointed step by step."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from distill.shell.distributed import resolve_device
from distill.core.data import ClassDataset, load_dataset
from distill.core.io import write_json

from continual.benchmark import class_order, experience_classes, first_per_class, make_benchmark
from continual.buffer import DistilledBuffer
from distill.core.errors import DistillError
from distill.methods import check_image_size, get_method
from distill.core.synthetic import SyntheticSet, set_path

from continual.config import CLASS_BALANCED, ContinualConfig, check_steps, comparable, read_progress, validate
from continual.metrics import summarise
from continual.plot import plot_accuracy
from continual.protocols import StepResult, make_class_balanced, network_factory, run_gdumb, run_replay

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"


def saved_sets(cfg: ContinualConfig) -> dict[str, SyntheticSet]:
    """``cfg.synthetic``'s sets by the memory method they serve (their own method); each is checked here,
    before any step runs: readable, a method of ``cfg.memory``, one set a method, ipc >= ``cfg.ipc``."""
    sets: dict[str, SyntheticSet] = {}
    for name in cfg.synthetic:
        synthetic = SyntheticSet.load(set_path(name))
        if synthetic.method not in cfg.memory:
            raise DistillError(f"--synthetic {name} is a {synthetic.method} set, but --memory is "
                               f"{','.join(cfg.memory)}; add {synthetic.method} to --memory or drop the file")
        if synthetic.method in sets:
            raise DistillError(f"--synthetic names two {synthetic.method} sets; pass one a method")
        if synthetic.ipc < cfg.ipc:
            raise DistillError(f"--synthetic {name} holds {synthetic.ipc} images per class, fewer than --ipc "
                               f"{cfg.ipc}; pass --ipc {synthetic.ipc} or a larger set")
        sets[synthetic.method] = synthetic
    return sets


class Progress:
    """Finished (protocol, method, seed, step) results, written atomically after every step."""

    def __init__(self, path: Path, cfg: ContinualConfig, *, resume: bool) -> None:
        self.path = path
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.seconds_before = 0.0  # wall seconds of the invocations this one resumes
        self.started = time.perf_counter()
        if resume and path.is_file():
            saved = read_progress(path, cfg)
            self.records = saved.get("records", {})
            self.seconds_before = float(saved.get("wall_seconds", 0.0))
        self.config = comparable(cfg)

    @staticmethod
    def key(protocol: str, method: str, seed: int) -> str:
        return f"{protocol}/{method}/{seed}"

    def done(self, protocol: str, method: str, seed: int) -> dict[int, StepResult]:
        stored = self.records.get(self.key(protocol, method, seed), {})
        return {int(step): StepResult(**r) for step, r in stored.items()}

    def add(self, protocol: str, method: str, seed: int, result: StepResult) -> None:
        self.records.setdefault(self.key(protocol, method, seed), {})[str(result.step)] = result.to_dict()
        write_json(self.path, {"config": self.config, "records": self.records, "wall_seconds": self.elapsed()})

    def elapsed(self) -> float:
        """Wall seconds of the whole run, summed over the invocations that resumed it."""
        return self.seconds_before + time.perf_counter() - self.started

    def forget(self, protocol: str, method: str, seed: int) -> None:
        self.records.pop(self.key(protocol, method, seed), None)


def methods_for(cfg: ContinualConfig, protocol: str) -> list[str]:
    methods = [m for m in cfg.memory if not (protocol == "gdumb" and m == CLASS_BALANCED)]
    if protocol == "replay" and cfg.replay.baseline and CLASS_BALANCED not in methods:
        methods.append(CLASS_BALANCED)
    return methods


def build_results(cfg: ContinualConfig, progress: Progress, *, num_classes: int, device: torch.device,
                  orders: dict[int, list[int]], splits: dict[int, list[list[int]]], seconds: float) -> dict[str, Any]:
    """The ``results.json`` document (keys documented in the README)."""
    protocols: dict[str, Any] = {}
    for protocol in cfg.protocols():
        protocols[protocol] = {}
        for method in methods_for(cfg, protocol):
            runs = {seed: progress.done(protocol, method, seed) for seed in cfg.seeds}
            runs = {seed: [r[s] for s in sorted(r)] for seed, r in runs.items() if r}
            curves = {seed: [r.accuracy for r in rs] for seed, rs in runs.items()}
            summary = summarise(curves, cfg.steps)
            if protocol == "replay":
                forgetting = summarise({seed: [r.forgetting or 0.0 for r in rs] for seed, rs in runs.items()},
                                       cfg.steps)
                summary["forgetting"] = {**forgetting["accuracy"], "final": forgetting["final_accuracy"]}
            else:
                summary["forgetting"] = None
            first = next(iter(runs.values()), [])
            summary["memory"] = {
                "images": [r.memory_images for r in first],
                "bytes": [r.memory_bytes for r in first],
                "images_per_class": [r.images_per_class for r in first],
            }
            summary["seconds"] = {
                "distill": sum(r.distill_seconds for rs in runs.values() for r in rs),
                "distill_cached": sum(r.distill_seconds_cached for rs in runs.values() for r in rs),
                "train": sum(r.train_seconds for rs in runs.values() for r in rs),
                "distill_per_seed": {str(s): sum(r.distill_seconds for r in rs) for s, rs in runs.items()},
                "train_per_seed": {str(s): sum(r.train_seconds for r in rs) for s, rs in runs.items()},
            }
            summary["engine"] = [r.engine for r in first]  # per step: precision, compiled, layout, steps
            summary["models_per_step"] = cfg.models_per_step if protocol == "gdumb" else 1
            protocols[protocol][method] = summary
    complete = all(len(m["seeds_complete"]) == len(cfg.seeds) for p in protocols.values() for m in p.values())
    return {
        "dataset": cfg.dataset, "num_classes": num_classes, "steps": cfg.steps, "ipc": cfg.ipc,
        "seeds": list(cfg.seeds), "class_orders": {str(s): o for s, o in orders.items()},
        "experience_classes": {str(s): e for s, e in splits.items()},
        "protocols": protocols, "device": str(device), "wall_seconds": seconds, "complete": complete,
    }


def load_data(cfg: ContinualConfig) -> tuple[ClassDataset, ClassDataset]:
    train = load_dataset(cfg.dataset, "train", data_root=cfg.data_root)
    test = load_dataset(cfg.dataset, "test", data_root=cfg.data_root)
    return first_per_class(train, cfg.train_per_class), first_per_class(test, cfg.test_per_class)


def run_experiment(cfg: ContinualConfig, out: Path, *, resume: bool = False, train: ClassDataset | None = None,
                   test: ClassDataset | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run every (protocol, seed, memory method) of ``cfg`` into ``out`` and return ``results.json``'s content.

    Writes ``progress.json`` and ``results.json`` after every step, and
    ``accuracy.png`` after every (protocol, method, seed). With ``resume``, finished steps are kept
    (GDumb continues at the next step; a replay run continues at its next unfinished seed) and
    distilled memories come from the cache.
    """
    validate(cfg)
    saved = saved_sets(cfg)  # read and checked before the data
    device = resolve_device(cfg.device)
    if train is None or test is None:
        train, test = load_data(cfg)
    num_classes = train.num_classes
    check_steps(cfg.steps, num_classes)
    if any(get_method(m).encoder for m in cfg.memory if m != CLASS_BALANCED):
        check_image_size(cfg.distill, train.image_shape)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(out / PROGRESS_FILE, cfg, resume=resume)
    orders = {seed: class_order(seed, num_classes) for seed in cfg.seeds}
    benchmarks = {seed: make_benchmark(train, test, steps=cfg.steps, order=orders[seed]) for seed in cfg.seeds}
    splits = {seed: experience_classes(b) for seed, b in benchmarks.items()}
    make_model = network_factory(cfg.network, num_classes=num_classes, channels=train.images.shape[1],
                                 image_size=train.images.shape[-1], width=cfg.width)
    mem_size = cfg.ipc * num_classes

    def write() -> dict[str, Any]:
        results = build_results(cfg, progress, num_classes=num_classes, device=device, orders=orders, splits=splits,
                                seconds=progress.elapsed())
        write_json(out / "results.json", results)
        return results

    last_plot = time.perf_counter()
    jobs = [(p, s, m) for p in cfg.protocols() for s in cfg.seeds for m in methods_for(cfg, p)]
    outer = tqdm(jobs, desc="runs", unit="run", disable=not show_progress)
    for protocol, seed, method in outer:
        outer.set_postfix_str(f"{protocol} {method} seed {seed}")
        done = progress.done(protocol, method, seed)
        if len(done) == cfg.steps:
            continue
        if method == CLASS_BALANCED:
            policy: Any = make_class_balanced(mem_size, num_classes)
        else:
            policy = DistilledBuffer(mem_size, method=method, synthetic=saved.get(method),
                                     distill_config=cfg.distill, ipc=cfg.ipc,
                                     seed=cfg.distill_seed if cfg.distill_seed is not None else seed,
                                     device=device, cache_dir=cfg.cache_dir, class_names=train.class_names,
                                     normalization=(train.mean, train.std), progress=show_progress)

        def bar(items: list) -> Any:
            return tqdm(items, desc=f"{protocol} {method} s{seed}", unit="step", leave=False,
                        disable=not show_progress)

        def on_step(result: StepResult, protocol: str = protocol, method: str = method, seed: int = seed) -> None:
            progress.add(protocol, method, seed, result)
            write()

        if protocol == "gdumb":
            run_gdumb(benchmarks[seed], test, policy, make_model=make_model, train=cfg.train,
                      models_per_step=cfg.models_per_step, seed=seed, device=device, done=done, on_step=on_step,
                      progress=bar)
        else:
            progress.forget(protocol, method, seed)  # a replay model cannot restart mid-stream
            run_replay(benchmarks[seed], policy, make_model=make_model, replay=cfg.replay, mem_size=mem_size,
                       seed=seed, device=device, on_step=on_step, progress=bar)
        if time.perf_counter() - last_plot > 120:  # plotting costs seconds; refresh it now and then
            plot_accuracy(write(), out / "accuracy.png")
            last_plot = time.perf_counter()
    results = write()
    plot_accuracy(results, out / "accuracy.png")
    return results


def summary_table(results: dict[str, Any]) -> str:
    """A plain-text table: accuracy after each step (mean +- std), AIA and final accuracy per method."""
    lines = []
    steps = results["steps"]
    for protocol, methods in results["protocols"].items():
        head = f"{protocol} ({results['dataset']}, {steps} steps, ipc {results['ipc']}, seeds {results['seeds']})"
        lines.append(head)
        lines.append(f"{'method':<15}" + "".join(f"{'step ' + str(i + 1):>13}" for i in range(steps))
                     + f"{'AIA':>13}{'final':>13}")
        for method, s in methods.items():
            cells = []
            for m, sd in zip(s["accuracy"]["mean"], s["accuracy"]["std"]):
                cells.append(f"{m:7.2f}+-{sd:4.2f}" if m is not None else "-")
            aia, fin = s["average_incremental_accuracy"], s["final_accuracy"]
            cells.append(f"{aia['mean']:7.2f}+-{aia['std']:4.2f}" if aia["mean"] is not None else "-")
            cells.append(f"{fin['mean']:7.2f}+-{fin['std']:4.2f}" if fin["mean"] is not None else "-")
            lines.append(f"{method:<15}" + "".join(f"{c:>13}" for c in cells))
        lines.append("")
    return "\n".join(lines)


__all__ = ["Progress", "build_results", "load_data", "methods_for", "run_experiment", "summary_table", "validate"]
