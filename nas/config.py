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

from distill.cache import fingerprint
from distill.settings import config_to_dict, from_dict, resolve_config, share_fields
from distill.errors import DistillError
from distill.evaluate import TrainConfig
from distill.methods import DistillConfig
from nas.sampling import SPACES

#: The default proxies: every registered one (see ``nas.proxies.list_proxies``).
DEFAULT_PROXIES = ("datadam", "dm", "random", "random-matched", "early-stop", "synflow", "params", "naswot")

#: What a training proxy ranks candidates by (zero-cost proxies rank by their own score).
RANK_BY = ("accuracy", "tse")


def nb201_train_config(**overrides: Any) -> TrainConfig:
    """NAS-Bench-201's training recipe (SGD Nesterov, lr 0.1 cosine to 0, wd 5e-4, batch 256, 200
    epochs) with DSA and channels-last, as a :class:`TrainConfig`; ``overrides`` replace fields."""
    base = TrainConfig(epochs=200, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True,
                       schedule="cosine", dsa=True, channels_last=True)
    return dataclasses.replace(base, **overrides)


@dataclass
class SearchConfig:
    space: str = field(default="top20", metadata={"help": "candidate space: full | top20"})
    num_archs: int = field(default=100, metadata={"help": "candidates (distinct up to isomorphism)",
                                                  "resume": "extend"})
    top_fraction: float = field(default=0.0, metadata={
        "help": "at least this fraction of the candidates comes from the top quintile of true accuracy: a "
                "uniform draw topped up with seeded top-quintile draws (0 = uniform only)", "resume": "extend"})
    proxy: list[str] = field(default_factory=lambda: list(DEFAULT_PROXIES), metadata={
        "help": "proxies to rank with: " + ",".join(DEFAULT_PROXIES), "resume": "extend"})
    seed: int = field(default=0, metadata={"help": "seed of the candidate sample, subsets, distillation, training"})
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
        "help": "channels C of the first stage of the network that training proxies train (benchmark: 16)"})
    cells_per_stage: int = field(default=5, metadata={
        "help": "cells N per stage of the network that training proxies train (benchmark: 5)"})
    resolution: int = field(default=0, metadata={
        "help": "image side that training proxies train and test at, images resized (0 = the dataset's own)"})
    images_seen: int = field(default=0, metadata={
        "help": "training-image passes per candidate on the small sets, setting their epochs and the "
                "random-matched subset (0 = set size x train.epochs)"})
    probe_images: int = field(default=128, metadata={
        "help": "real training images (a seeded batch) that data-dependent zero-cost proxies (naswot) read"})
    rank_by: str = field(default="accuracy", metadata={
        "help": "what training proxies rank by: accuracy (test accuracy) | tse (minus the summed training loss)",
        "choices": RANK_BY, "resume": "extend"})
    bn_recalibrate: bool = field(default=True, metadata={
        "help": "recompute BatchNorm statistics on the proxy's training images after training, before testing"})
    bn_recalibrate_images: int = field(default=500, metadata={
        "help": "at most this many of the proxy's training images, evenly spread, feed the BatchNorm recalibration "
                "(0 = all)"})
    early_stop_epochs: int = field(default=2, metadata={
        "help": "epochs of the early-stop proxy on real training images (2 x 50,000 = the images seen by "
                "200 epochs on 500 images)"})
    early_stop_images: int = field(default=0, metadata={
        "help": "real training images of the early-stop proxy, a seeded subset (0 = the whole training set)"})
    test_images: int = field(default=0, metadata={
        "help": "real test images that score a candidate, a seeded subset (0 = the whole test set)"})
    whole_dataset_epochs: int = field(default=200, metadata={
        "help": "epochs of whole-dataset training, for the estimated cost (NAS-Bench-201: 200)"})
    top_k: int = field(default=5, metadata={"help": "k of the top-k overlap"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda", "result": False})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)", "result": False})
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
        from nas.proxies import list_proxies

        # Tables given as dicts (from a notebook) fill in from the same defaults as the presets.
        if isinstance(self.train, dict):
            self.train = from_dict(TrainConfig, {**config_to_dict(nb201_train_config()), **self.train},
                                   where="[train]")
        if isinstance(self.distill, dict):
            self.distill = from_dict(DistillConfig, self.distill, where="[distill]")
        share_fields(self)

        known = list_proxies()
        unknown = [p for p in self.proxy if p not in known]
        if unknown or not self.proxy:
            raise DistillError(f"unknown proxy {', '.join(unknown) or '(none given)'}; use one or more of "
                               f"{', '.join(known)}, comma-separated")
        if self.space not in SPACES:
            raise DistillError(f"unknown search space {self.space!r}; use one of {', '.join(SPACES)}")
        if len(set(self.proxy)) != len(self.proxy):
            raise DistillError(f"--proxy lists a proxy twice ({','.join(self.proxy)}); name each once")
        if self.rank_by not in RANK_BY:
            raise DistillError(f"unknown --rank-by {self.rank_by!r}; use one of {', '.join(RANK_BY)}")
        for name in ("num_archs", "ipc", "early_stop_epochs", "top_k", "channels", "cells_per_stage", "probe_images"):
            if getattr(self, name) < 1:
                raise DistillError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("seed", "early_stop_images", "test_images", "bn_recalibrate_images", "threads", "images_seen",
                     "resolution"):
            if getattr(self, name) < 0:
                raise DistillError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if not 0.0 <= self.top_fraction <= 1.0:
            raise DistillError(f"--top-fraction must be between 0 and 1, got {self.top_fraction}")
        for name in ("epochs", "batch_size"):
            if getattr(self.train, name) < 1:
                raise DistillError(f"--{name.replace('_', '-')} ([train] {name}) must be at least 1, "
                                   f"got {getattr(self.train, name)}")

    def fingerprint(self) -> dict:
        """The settings that change a candidate's row (a resumed search must match them)."""
        return fingerprint(self, resume=True)  # more proxies or candidates, another ranking extend a search


def resolve_search_config(*, preset_file: str | Path | None = None, config_file: str | Path | None = None,
                          overrides: dict[str, Any] | None = None) -> SearchConfig:
    """:class:`SearchConfig` from its defaults, then the preset TOML, then ``--config``, then the non-None
    ``overrides`` (``train``/``distill`` as nested dicts): :func:`distill.settings.resolve_config`.

    A partial ``[train]`` table keeps the NB201 recipe (the field's default) for the fields it leaves out.
    """
    return resolve_config(SearchConfig, preset_file=preset_file, config_file=config_file, overrides=overrides)


def namespace_overrides(args: argparse.Namespace, *, distill_prefix: str = "distill__") -> dict[str, Any]:
    """The CLI flags of ``args`` as overrides: SearchConfig fields at the top, TrainConfig fields under
    ``train`` and the ``--distill-*`` flags under ``distill``."""
    values = vars(args)
    top = {f.name: values.get(f.name) for f in dataclasses.fields(SearchConfig) if f.name not in ("train", "distill")}
    train = {f.name: values.get(f.name) for f in dataclasses.fields(TrainConfig)}
    distill = {k[len(distill_prefix):]: v for k, v in values.items() if k.startswith(distill_prefix)}
    return {**top, "train": train, "distill": distill}


__all__ = ["DEFAULT_PROXIES", "RANK_BY", "namespace_overrides", "nb201_train_config", "resolve_search_config",
           "SearchConfig"]
