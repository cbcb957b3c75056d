"""The typed settings of a NAS-Bench-201 proxy search: the single source of defaults.

Defaults follow the paper protocol (DM/DataDAM: 50 images per class, 200 epochs per
candidate; NAS-Bench-201's recipe: SGD Nesterov, lr 0.1 cosine, weight decay 5e-4). The TOML
presets in ``configs/nas/`` and the command-line flags override single fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.augment import DEFAULT_STRATEGY
from distill.errors import DistillError
from nas.sampling import SPACES

PROXIES = ("datadam", "dm", "random", "early-stop")

#: Proxies that train on a small set of ``ipc`` images per class (the rest train on real data).
SET_PROXIES = ("datadam", "dm", "random")


@dataclass
class SearchConfig:
    space: str = field(default="top20", metadata={"help": "candidate space: full | top20"})
    num_archs: int = field(default=100, metadata={"help": "candidates (distinct up to isomorphism)"})
    proxy: list[str] = field(default_factory=lambda: list(PROXIES),
                             metadata={"help": "proxies to rank with: datadam,dm,random,early-stop"})
    seed: int = field(default=0, metadata={"help": "seed of the candidate sample, subsets, distillation, training"})
    dataset: str = field(default="cifar10", metadata={"help": "cifar10 | cifar100 (true accuracies from the table)"})
    data_root: str | None = field(default=None, metadata={"help": "dataset folder (else $DISTILL_DATA_ROOT)"})
    benchmark_file: str | None = field(default=None, metadata={
        "help": "official NAS-Bench-201 .pth (read with nas_201_api) or a NATS CSV; default: bundled table"})
    synthetic: list[str] = field(default_factory=list, metadata={
        "help": "synthetic set file(s) to use instead of distilling; each serves the proxy named by its method"})
    ipc: int = field(default=50, metadata={"help": "images per class of the datadam/dm/random proxy sets"})
    epochs: int = field(default=200, metadata={"help": "training epochs of a candidate on a proxy set"})
    batch_size: int = field(default=256, metadata={"help": "training batch size"})
    lr: float = field(default=0.1, metadata={"help": "initial learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=5e-4, metadata={"help": "SGD weight decay"})
    nesterov: bool = field(default=True, metadata={"help": "Nesterov momentum"})
    schedule: str = field(default="cosine", metadata={"help": "learning-rate schedule: cosine | step",
                                                      "choices": ("cosine", "step")})
    dsa: bool = field(default=True, metadata={"help": "DSA augmentation while training candidates"})
    dsa_strategy: str = field(default=DEFAULT_STRATEGY, metadata={"help": "DSA groups"})
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
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "where distilled proxy sets are cached (default: $DISTILL_CACHE_DIR or ~/.cache/distill, /nas-sets)"})
    progress: bool = field(default=True, metadata={"help": "progress bars on stderr"})
    distill: dict = field(default_factory=dict, metadata={
        "help": "[distill] table: DistillConfig fields used when distilling the datadam/dm sets"})

    def __post_init__(self) -> None:
        unknown = [p for p in self.proxy if p not in PROXIES]
        if unknown or not self.proxy:
            raise DistillError(f"unknown proxy {', '.join(unknown) or '(none given)'}; use one or more of "
                               f"{', '.join(PROXIES)}, comma-separated")
        if self.space not in SPACES:
            raise DistillError(f"unknown search space {self.space!r}; use one of {', '.join(SPACES)}")
        if len(set(self.proxy)) != len(self.proxy):
            raise DistillError(f"--proxy lists a proxy twice ({','.join(self.proxy)}); name each once")
        for name in ("num_archs", "ipc", "epochs", "batch_size", "early_stop_epochs", "top_k"):
            if getattr(self, name) < 1:
                raise DistillError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("early_stop_images", "test_images", "bn_recalibrate_images", "threads"):
            if getattr(self, name) < 0:
                raise DistillError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")

    def fingerprint(self) -> dict:
        """The settings that change results (a resumed search must match them)."""
        from distill.config import config_to_dict

        ignore = {"device", "threads", "progress", "cache_dir", "data_root", "proxy", "num_archs"}
        return {k: v for k, v in config_to_dict(self).items() if k not in ignore}
