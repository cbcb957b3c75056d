"""The one typed configuration of a continual-learning run; presets and CLI flags override its fields."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from distill.core.cache import fingerprint

from distill.core.errors import DistillError
from distill.core.settings import checked
from distill.core.engine import SGDConfig
from distill.core.evaluate import TrainConfig
from distill.methods import METHODS, DistillConfig, list_methods
from distill.core.networks import list_networks

PROTOCOLS = ("gdumb", "replay", "both")
# Avalanche's own class-balanced reservoir memory; only meaningful in the replay protocol.
CLASS_BALANCED = "class_balanced"


@dataclass
@checked
class ReplayConfig(SGDConfig):
    """The replay protocol's recipe: one model trained through the stream (Avalanche ``Naive``).

    Plain SGD (``epochs`` over each experience, ``batch_size`` real images per minibatch, ``lr``,
    ``momentum``, ``weight_decay``, ``nesterov``: all Avalanche's ``Naive`` reads, no schedule, DSA or
    engine settings) plus the memory's share of a minibatch. The presets in ``configs/continual/`` size it.
    """

    batch_size_mem: int = field(default=128, metadata={"help": "memory images added to every minibatch", "min": 1})
    baseline: bool = field(default=True, metadata={"help": "also run Avalanche's ClassBalancedBuffer"})


@dataclass
@checked
class ContinualConfig:
    """Everything a ``python -m continual.run`` needs; the presets in ``configs/continual/`` size it."""

    dataset: str = field(default="cifar10", metadata={"help": "cifar10 | cifar100 | imagefolder"})
    data_root: str | None = field(default=None, metadata={"help": "dataset folder (else $DISTILL_DATA_ROOT)",
                                                          "result": False})
    steps: int = field(default=5, metadata={"help": "number of experiences; must divide the class count", "min": 1})
    protocol: str = field(default="gdumb", metadata={"help": "gdumb | replay | both", "choices": PROTOCOLS,
                                                     "resume": "extend"})
    memory: tuple[str, ...] = field(default=tuple(list_methods("continual")), metadata={
        "help": f"memory methods, of {','.join(list_methods())} (default: the paper's "
                f"{','.join(list_methods('continual'))}; replay also: class_balanced)", "resume": "extend"})
    ipc: int = field(default=10, metadata={"help": "memory images per class", "min": 1})
    seeds: tuple[int, ...] = field(default=(0, 1), metadata={"help": "class orders s (numpy.random.seed(s); "
                                                                      "permutation), also the run seeds", "min": 0,
                                                                      "resume": "extend"})
    distill_seed: int | None = field(default=None, metadata={"help": "seed of every distillation (default: the "
                                                                       "class-order seed)", "min": 0})
    network: str = field(default="convnet", metadata={"help": "network trained on the memory"})
    width: int = field(default=128, metadata={"help": "width of the ConvNet trained on the memory", "min": 1})
    models_per_step: int = field(default=1, metadata={"help": "gdumb: fresh models trained per step", "min": 1})
    train_per_class: int | None = field(default=None, metadata={"help": "use only the first N training images "
                                                                          "per class (default: all)", "min": 1})
    test_per_class: int | None = field(default=None, metadata={"help": "test on the first N test images per "
                                                                         "class (default: all)", "min": 1})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda", "result": False})
    threads: int | None = field(default=None, metadata={"help": "CPU threads for torch (default: torch's choice; "
                                                                  "1 is fastest on a busy machine)", "min": 1,
                                                                  "result": False})
    cache_dir: str | None = field(default=None, metadata={"help": "where distilled memories are cached "
                                                                    "(default: $DISTILL_CACHE_DIR/continual)",
                                                                    "result": False})
    synthetic: tuple[str, ...] = field(default=(), metadata={
        "help": "saved sets (synthetic.pt) that serve the memory named by their method instead of distilling it, "
                "taken class by class (e.g. benchmarks/paper_table.py's 8000-iteration sets); relative paths "
                "are read from the repository root"})
    distill: DistillConfig = field(default_factory=DistillConfig, metadata={"shares": ("ipc",)})
    train: TrainConfig = field(default_factory=TrainConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def protocols(self) -> list[str]:
        return ["gdumb", "replay"] if self.protocol == "both" else [self.protocol]


def check_steps(steps: int, num_classes: int) -> None:
    """Refuse a number of experiences that does not split the classes evenly."""
    if steps < 1 or num_classes % steps:
        raise DistillError(f"--steps {steps} does not divide the {num_classes} classes into equal experiences; "
                           f"use one of {', '.join(str(d) for d in range(1, num_classes + 1) if num_classes % d == 0)}")


def validate(cfg: ContinualConfig) -> None:
    """Raise :class:`DistillError` for any setting that cannot work, before anything expensive runs.

    Kept here, beside the settings, so that a command line checks them without importing Avalanche.
    """
    if cfg.protocol not in PROTOCOLS:
        raise DistillError(f"unknown --protocol {cfg.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    known = (*list_methods(), CLASS_BALANCED)
    if not cfg.memory:
        raise DistillError(f"--memory is empty; pass some of {', '.join(known)}")
    for method in cfg.memory:
        if method not in known:
            raise DistillError(f"unknown memory method {method!r}; choose from {', '.join(known)}")
    if len(set(cfg.memory)) != len(cfg.memory):
        raise DistillError(f"--memory {','.join(cfg.memory)} repeats a method; list each once")
    if CLASS_BALANCED in cfg.memory and cfg.protocol == "gdumb":
        raise DistillError(f"memory {CLASS_BALANCED} is Avalanche's replay buffer; use it with --protocol replay or both")
    if not cfg.seeds:
        raise DistillError("--seeds is empty; pass e.g. --seeds 0,1")
    if len(set(cfg.seeds)) != len(cfg.seeds):  # bounds are checked where the config is built
        raise DistillError(f"--seeds {cfg.seeds} repeats a seed; list each once")
    if cfg.network not in list_networks():  # else it fails after the first step's distillation
        raise DistillError(f"unknown --network {cfg.network!r}; choose one of {', '.join(list_networks())}")


def comparable(cfg: ContinualConfig) -> dict:
    """What a --resume must keep: more seeds, methods or another protocol extend a run (fields marked so)."""
    return fingerprint(cfg, resume=True)


def read_progress(path: Path, cfg: ContinualConfig) -> dict:
    """The saved ``progress.json`` of a run that ``cfg`` resumes; :class:`DistillError` if it is unreadable or was
    made with other settings (read by the pre-flight too, before any image is decoded)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise DistillError(f"{path} is unreadable; rerun without --resume (or with a new --out)") from None
    if saved.get("config") != comparable(cfg):
        raise DistillError(f"the settings differ from the run saved in {path.parent} (only seeds, memory, "
                           f"protocol and device may change on --resume); drop --resume or use a new --out")
    return saved


__all__ = ["CLASS_BALANCED", "ContinualConfig", "METHODS", "PROTOCOLS", "ReplayConfig", "check_steps", "comparable", "read_progress", "validate"]
