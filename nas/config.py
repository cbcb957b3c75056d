"""The typed settings of a NAS-Bench-201 proxy search: the single source of defaults.

Defaults follow the paper protocol (DM/DataDAM: 50 images per class, 200 epochs per candidate on the
benchmark's full-size network; NAS-Bench-201's recipe: SGD Nesterov, lr 0.1 cosine, weight decay 5e-4,
batch 256). The TOML presets in ``configs/nas/`` (with ``[train]`` and ``[distill]`` tables) and the
command-line flags override single fields; :func:`resolve_search_config` applies them in that order.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.core.cache import fingerprint
from distill.core.settings import checked, resolve_config
from distill.core.errors import DistillError
from distill.core.evaluate import TrainConfig
from distill.methods import DistillConfig, list_methods
from nas.sampling import SPACES

#: The default proxies besides the methods' sets: the real-data and zero-cost ones.
OTHER_PROXIES = ("random-matched", "early-stop", "synflow", "params", "naswot")


def default_proxies() -> list[str]:
    """The sets of the methods the paper's NAS table compares (the registry's "nas" entries, read now, so that a
    method registered later counts), then the real-data and zero-cost proxies (``nas.proxies.list_proxies``
    lists every one)."""
    return [*list_methods("nas"), *OTHER_PROXIES]

#: What a training proxy ranks candidates by (zero-cost proxies rank by their own score).
RANK_BY = ("accuracy", "tse")


def nb201_train_config(**overrides: Any) -> TrainConfig:
    """NAS-Bench-201's training recipe (SGD Nesterov, lr 0.1 cosine to 0, wd 5e-4, batch 256, 200
    epochs) with DSA and channels-last, as a :class:`TrainConfig`; ``overrides`` replace fields."""
    base = TrainConfig(epochs=200, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True,
                       schedule="cosine", dsa=True, channels_last=True)
    return dataclasses.replace(base, **overrides)


@dataclass
@checked
class SearchConfig:
    """A NAS-Bench-201 proxy search; every bound of a value sits in its field's metadata."""

    space: str = field(default="top20", metadata={"help": "candidate space: full | top20", "choices": SPACES,
                                                  "what": "search space"})
    num_archs: int = field(default=100, metadata={"help": "candidates (distinct up to isomorphism)", "min": 1,
                                                  "resume": "extend"})
    top_fraction: float = field(default=0.0, metadata={
        "help": "at least this fraction of the candidates comes from the top quintile of true accuracy: a "
                "uniform draw topped up with seeded top-quintile draws (0 = uniform only)", "min": 0.0, "max": 1.0,
        "resume": "extend"})
    proxy: list[str] = field(default_factory=default_proxies, metadata={
        "help": "proxies to rank with (default: " + ",".join(default_proxies()) + ")", "resume": "extend"})
    seed: int = field(default=0, metadata={"help": "seed of the candidate sample, subsets, distillation, training",
                                           "min": 0})
    dataset: str = field(default="cifar10", metadata={"help": "cifar10 | cifar100 (true accuracies from the table)"})
    data_root: str | None = field(default=None, metadata={"help": "dataset folder (else $DISTILL_DATA_ROOT)",
                                                          "result": False})
    benchmark_file: str | None = field(default=None, metadata={
        "help": "official NAS-Bench-201 .pth (read with nas_201_api) or a NATS CSV; default: bundled table"})
    synthetic: list[str] = field(default_factory=list, metadata={
        "help": "synthetic set file(s) to use instead of distilling; each serves the proxy named by its method"})
    ipc: int = field(default=50, metadata={"help": "images per class of the datadam/dm/random proxy sets"})
    # The proxy network and its budget (EcoNAS: resolution 16, C = 8, N = 5).
    channels: int = field(default=16, metadata={
        "help": "channels C of the first stage of the network that training proxies train (benchmark: 16)",
        "min": 1})
    cells_per_stage: int = field(default=5, metadata={
        "help": "cells N per stage of the network that training proxies train (benchmark: 5)", "min": 1})
    resolution: int = field(default=0, metadata={
        "help": "image side that training proxies train and test at, images resized (0 = the dataset's own)",
        "min": 0})
    images_seen: int = field(default=0, metadata={
        "help": "training-image passes per candidate on the small sets, setting their epochs and the "
                "random-matched subset (0 = set size x train.epochs)", "min": 0})
    probe_images: int = field(default=128, metadata={
        "help": "real training images (a seeded batch) that data-dependent zero-cost proxies (naswot) read",
        "min": 1})
    rank_by: str = field(default="accuracy", metadata={
        "help": "what training proxies rank by: accuracy (test accuracy) | tse (minus the summed training loss)",
        "choices": RANK_BY, "resume": "extend"})
    bn_recalibrate: bool = field(default=True, metadata={
        "help": "recompute BatchNorm statistics on the proxy's training images after training, before testing"})
    bn_recalibrate_images: int = field(default=500, metadata={
        "help": "at most this many of the proxy's training images, evenly spread, feed the BatchNorm recalibration "
                "(0 = all)", "min": 0})
    early_stop_epochs: int = field(default=2, metadata={
        "help": "epochs of the early-stop proxy on real training images (2 x 50,000 = the images seen by "
                "200 epochs on 500 images)", "min": 1})
    early_stop_images: int = field(default=0, metadata={
        "help": "real training images of the early-stop proxy, a seeded subset (0 = the whole training set)",
        "min": 0})
    test_images: int = field(default=0, metadata={
        "help": "real test images that score a candidate, a seeded subset (0 = the whole test set)", "min": 0})
    whole_dataset_epochs: int = field(default=200, metadata={
        "help": "epochs of whole-dataset training, for the estimated cost (NAS-Bench-201: 200)", "min": 1})
    top_k: int = field(default=5, metadata={"help": "k of the top-k overlap", "min": 1})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda", "result": False})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)", "min": 0,
                                              "result": False})
    cache_dir: str | None = field(default=None, metadata={
        "help": "where distilled proxy sets are cached (default: $DISTILL_CACHE_DIR or ~/.cache/distill, /nas-sets)",
        "result": False})
    progress: bool = field(default=True, metadata={"help": "progress bars on stderr", "result": False})
    train: TrainConfig = field(default_factory=nb201_train_config, metadata={
        "help": "[train] table: how every training proxy trains a candidate (epochs = epochs on the small sets)"})
    distill: DistillConfig = field(default_factory=DistillConfig, metadata={
        "help": "[distill] table: how the datadam/dm sets are distilled (method and ipc come from the proxy "
                "and --ipc)", "shares": ("ipc",)})

    def __post_init__(self) -> None:
        """What no single field's metadata can say (the bounds are checked by ``@checked`` before this)."""
        from nas.proxies import list_proxies

        known = list_proxies()  # a registry, read when the settings are made: a proxy registered later counts
        unknown = [p for p in self.proxy if p not in known]
        if unknown or not self.proxy:
            raise DistillError(f"unknown proxy {', '.join(unknown) or '(none given)'}; use one or more of "
                               f"{', '.join(known)}, comma-separated")
        if len(set(self.proxy)) != len(self.proxy):
            raise DistillError(f"--proxy lists a proxy twice ({','.join(self.proxy)}); name each once")

    def fingerprint(self) -> dict:
        """The settings that change a candidate's row (a resumed search must match them)."""
        return fingerprint(self, resume=True)  # more proxies or candidates, another ranking extend a search


def resolve_search_config(*, preset_file: str | Path | None = None, config_file: str | Path | None = None,
                          overrides: dict[str, Any] | None = None) -> SearchConfig:
    """:class:`SearchConfig` from its defaults, then the preset TOML, then ``--config``, then the non-None
    ``overrides`` (``train``/``distill`` as nested dicts): :func:`distill.core.settings.resolve_config`.

    A partial ``[train]`` table keeps the NB201 recipe (the field's default) for the fields it leaves out.
    """
    return resolve_config(SearchConfig, preset_file=preset_file, config_file=config_file, overrides=overrides)


def namespace_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The CLI flags of ``args`` (``nas.search``'s parser) as overrides: SearchConfig fields at the top, the
    ``[train]`` and ``[distill]`` tables' flags under ``train`` and ``distill``."""
    from distill.shell.runner import flag_values

    return flag_values(args, SearchConfig)


__all__ = ["OTHER_PROXIES", "RANK_BY", "default_proxies", "namespace_overrides", "nb201_train_config",
           "resolve_search_config",
           "SearchConfig"]
