"""Distillation methods behind one interface: ``distill(train, config, classes=...) -> SyntheticSet``."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import operator
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from distill.core.augment import DEFAULT_STRATEGY
from distill.core.cache import fingerprint
from distill.core.settings import checked, config_to_dict
from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.core.hardware import PRECISIONS, compile_available, resolve_precision
from distill.core.io import write_json
from distill.core.registry import Registry
from distill.core.store import discard
from distill.core.synthetic import SyntheticSet, git_revision

log = logging.getLogger(__name__)

#: What a method that runs a ConvNet encoder gets for the fields it leaves ``None``: the paper's setting
#: (METHOD.md §1). A method with ``variants`` (DataDAM) names its own bundles instead.
ENCODER_DEFAULTS: Mapping[str, Any] = {"norm": "instancenorm", "power": 4.0, "batch_real": 256,
                                       "lambda_mmd": 0.01, "loss_scale": 100.0}


@dataclass(frozen=True)
class MethodSpec:
    """A registered distillation method (see :func:`register_method`): everything the toolkit knows of it.

    The command lines, the continual buffer and the NAS proxies read what they need from here; no module
    outside ``distill/methods/`` names a method.
    """

    name: str
    run: Callable[..., "MethodOutput"]
    #: the DistillConfig fields that decide its images (its cache key); None: every field that changes a result
    reads: tuple[str, ...] | None = None
    #: it runs a ConvNet encoder, so images must survive ``depth`` poolings
    encoder: bool = True
    #: it iterates: ``run`` also takes ``progress``, ``checkpoint``, ``resume``, ``callback`` and ``postfix``
    iterates: bool = False
    #: a class's images depend on that class's data alone, so classes may be distilled apart (forgetting: no)
    per_class: bool = True
    #: the method's own values for the DistillConfig fields left ``None``, given the ipc (its public code's)
    defaults: Callable[[int], Mapping[str, Any]] | None = None
    #: named DistillConfig overrides: ``paper`` (the published run) and ``cpu``/``smoke`` (what a CPU affords)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: named bundles of defaults chosen by ``--variant`` (DataDAM: ``paper``, ``official``); none: ENCODER_DEFAULTS
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: how tables and plots name it, and its colour in plots
    label: str = ""
    color: str = "tab:olive"
    #: the paper's experiments that compare it by default: ``continual`` (replay memory), ``nas`` (proxy set)
    experiments: frozenset[str] = frozenset()
    #: a reference that other proxies are paired against (random real images; DM, which the paper improves on)
    baseline: bool = False

    @functools.cached_property
    def shows_progress(self) -> bool:
        """``run`` takes ``progress`` (every iterating method; a long selection such as forgetting's counting)."""
        return "progress" in inspect.signature(self.run).parameters

    def describe(self, variant: str) -> str:
        """Its name, with the variant where it has variants (``datadam (paper)``)."""
        return f"{self.name} ({variant})" if self.variants else self.name

    def bundle(self, variant: str) -> Mapping[str, Any]:
        """The defaults ``variant`` stands for (ENCODER_DEFAULTS for a method without variants)."""
        return {**ENCODER_DEFAULTS, **(self.variants.get(variant, {}) if self.variants else {})}


_REGISTRY: Registry[MethodSpec] = Registry("method")


def register_method(name: str, *, reads: Sequence[str] | None = None, encoder: bool = True,
                    iterates: bool = False, per_class: bool = True,
                    defaults: Callable[[int], Mapping[str, Any]] | None = None,
                    presets: Mapping[str, Mapping[str, Any]] | None = None,
                    variants: Mapping[str, Mapping[str, Any]] | None = None, label: str | None = None,
                    color: str = "tab:olive", experiments: Sequence[str] = (), baseline: bool = False,
                    ) -> Callable[[Callable[..., "MethodOutput"]], Callable[..., "MethodOutput"]]:
    """Decorator: register ``fn(train, classes, config, *, seed, device, ...) -> MethodOutput`` as ``name``; a
    selection that takes long (forgetting's counting) may also take ``progress`` and show a bar.

    Args:
        reads: the :class:`DistillConfig` fields the method reads (its cache key); ``None``: all of them.
        encoder: the method runs a ConvNet encoder (the image size is checked against its depth).
        iterates: the method is an optimisation loop that checkpoints and reports every step.
        per_class: a class's result depends on its own images only (False: the classes of a call are coupled).
        defaults: ``ipc -> {field: value}``, the method's values for the config fields left ``None``.
        presets: named config overrides (``paper``, ``cpu``, ``smoke``) that the method documents.
        variants: named bundles of defaults that ``--variant`` chooses between.
        label, color: how tables and plots show it (label: the name).
        experiments: the paper's experiments that compare it by default (``continual``, ``nas``).
        baseline: other proxies are paired against it.
    """
    if name in _REGISTRY:
        raise ValueError(f"method {name!r} is already registered")
    spec = {"reads": tuple(reads) if reads is not None else None, "encoder": encoder, "iterates": iterates,
            "per_class": per_class, "defaults": defaults, "presets": dict(presets or {}),
            "variants": dict(variants or {}), "label": label or name, "color": color,
            "experiments": frozenset(experiments), "baseline": baseline}
    return _REGISTRY.decorator(name, lambda fn: MethodSpec(name=name, run=fn, **spec))


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; :class:`DistillError` naming the registered ones if there is none."""
    return _REGISTRY.get(name)


def list_methods(experiment: str | None = None) -> list[str]:
    """The registered methods, in registration order; with ``experiment``, those the paper compares in it."""
    return [m for m in _REGISTRY if experiment is None or experiment in _REGISTRY.get(m).experiments]


def list_variants() -> list[str]:
    """Every ``--variant`` a registered method knows."""
    return list(dict.fromkeys(v for spec in _REGISTRY.entries() for v in spec.variants))


def default_method() -> str:
    """The method a run distils when none is named (:class:`DistillConfig`'s default)."""
    return DistillConfig.method


@dataclass
@checked
class DistillConfig:
    """Every knob of a distillation run; ``None`` means "the method's or variant's default"."""

    method: str = field(default="datadam", metadata={"help": "a registered method (datadam, dm, random, herding, ...)",
                                                     "choices": list_methods})
    variant: str = field(default="paper", metadata={"help": "datadam variant: paper (instancenorm, p=4) or "
                                                            "official (batchnorm, p=1, batch_real 64)",
                                                    "choices": list_variants})
    ipc: int = field(default=10, metadata={"help": "synthetic images per class", "min": 1})
    # The help keeps its text (tests/test_bad_inputs.py reads it); for dc/dsa an iteration is a fresh network,
    # for mtt an expert segment.
    iterations: int = field(default=8000, metadata={"help": "optimisation steps (datadam, dm)", "min": 1})
    batch_real: int | None = field(default=None, metadata={"help": "real images per class per step "
                                                                   "(256 paper, 64 official)", "min": 1})
    lr_img: float | None = field(default=None, metadata={"help": "image learning rate (1.0 for ipc<=50, else 10)",
                                                         "above": 0})
    momentum: float = field(default=0.5, metadata={"help": "SGD momentum on the images", "min": 0, "max": 1})
    power: float | None = field(default=None, metadata={"help": "attention power p (4 paper, 1 official)", "above": 0})
    norm: str | None = field(default=None, metadata={"help": "encoder norm: instancenorm (paper) | "
                                                             "batchnorm (official)"})
    lambda_mmd: float | None = field(default=None, metadata={"help": "weight of the MMD term (0.01 datadam, 1 dm)",
                                                             "min": 0})
    loss_scale: float | None = field(default=None, metadata={"help": "overall loss factor (100 datadam, 1 dm)",
                                                             "above": 0})
    zca: bool | None = field(default=None, metadata={"key": "when set", 
        "help": "ZCA-whiten the real images (fit on the training set) before distilling; the set then holds "
                "whitened images and the statistics to whiten test images alike (unset: mtt per ipc, else off)"})
    outer_loop: int | None = field(default=None, metadata={"key": "when set", 
        "help": "dc, dsa: image updates per fresh network (1/10/50 at ipc 1/10/50)", "min": 1})
    inner_loop: int | None = field(default=None, metadata={"key": "when set", 
        "help": "dc, dsa: epochs training the network on the synthetic set between updates (1/50/10)", "min": 0})
    lr_net: float | None = field(default=None, metadata={"key": "when set", "help": "dc, dsa: inner-loop learning rate (0.01)",
                                                         "above": 0})
    syn_steps: int | None = field(default=None, metadata={"key": "when set", "help": "mtt: student steps on the synthetic set",
                                                          "min": 1})
    expert_epochs: int | None = field(default=None, metadata={"key": "when set", "help": "mtt: expert epochs the student must cover",
                                                              "min": 1})
    max_start_epoch: int | None = field(default=None, metadata={"key": "when set", 
        "help": "mtt: segments start at an expert epoch below this", "min": 1})
    lr_lr: float | None = field(default=None, metadata={"key": "when set", "help": "mtt: learning rate of the learnable student lr",
                                                        "min": 0})
    lr_teacher: float | None = field(default=None, metadata={"key": "when set", "help": "mtt: initial student learning rate",
                                                             "above": 0})
    num_experts: int | None = field(default=None, metadata={"key": "when set", "help": "mtt: expert trajectories trained (100)",
                                                            "min": 1})
    expert_train_epochs: int | None = field(default=None, metadata={"key": "when set", "help": "mtt: epochs per expert (50)",
                                                                    "min": 1})
    counting_epochs: int | None = field(default=None, metadata={"key": "when set",
        "help": "forgetting: epochs of the network whose forgetting events are counted (200, as Toneva et al.)",
        "min": 1})
    init: str = field(default="real", metadata={
        "help": "real (random real images) | noise | PATH of a saved set to start from: a synthetic.pt (say a "
                "herding selection), an {images, labels} file, or the DataDAM code's X_images.pt beside X_labels.pt"})
    depth: int = field(default=3, metadata={"help": "encoder ConvNet depth (at most 5 for 32x32 images)", "min": 1})
    width: int = field(default=128, metadata={"help": "encoder ConvNet width", "min": 1})
    dsa_strategy: str = field(default=DEFAULT_STRATEGY, metadata={"help": "DSA groups, or none"})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 autocast where the CPU or GPU has native bf16, else fp32) | fp32 | bf16",
        "choices": PRECISIONS})
    compile: bool | None = field(default=None, metadata={
        "help": "torch.compile the encoder statistics (same math, fused kernels); unset: where a C++ compiler "
                "or a GPU is present", "result": False})
    channels_last: bool = field(default=True, metadata={"help": "channels-last layout (same math, faster on CPU)",
                                                                   "result": False})
    max_minutes: float | None = field(default=None, metadata={"help": "stop early after this many minutes "
                                                                        "(a wall-clock budget; not reproducible)",
                                                                        "above": 0})
    checkpoint_minutes: float = field(default=5.0, metadata={"help": "minutes between checkpoints", "min": 0,
                                                                           "result": False})

    def resolved(self, device: torch.device | str | None = None) -> "DistillConfig":
        """A copy with every ``None`` (and ``auto``) replaced by the method's, variant's or machine's value.

        ``device`` decides ``precision = "auto"`` and ``compile = None``: the GPU if one is visible, else the CPU.
        """
        spec = get_method(self.method)  # an unknown one fails here, naming the registered ones
        if self.variant not in list_variants():
            raise DistillError(f"unknown variant {self.variant!r}; choose {' or '.join(list_variants())}")
        own = spec.defaults(self.ipc) if spec.defaults is not None else {}
        cfg = replace(self, **{k: v for k, v in own.items() if getattr(self, k) is None})  # the method's values first
        bundle = spec.bundle(cfg.variant)  # then its variant's (or every encoder method's) values
        cfg = replace(cfg, **{k: v for k, v in bundle.items() if getattr(cfg, k) is None})
        device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        return replace(
            cfg,
            lr_img=cfg.lr_img if cfg.lr_img is not None else (1.0 if cfg.ipc <= 50 else 10.0),
            precision=resolve_precision(cfg.precision, device),
            compile=cfg.compile if cfg.compile is not None else compile_available(device.type),
            zca=bool(cfg.zca),
        )


@dataclass
class MethodOutput:
    images: torch.Tensor
    iterations: int = 0
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    #: what else the method learned, recorded in the set's config (MTT's learned student lr)
    extra: dict[str, Any] = field(default_factory=dict)


# Knobs that scale the loss or its gradient: the first suspects when it becomes NaN or inf.
_LOSS_KNOBS = ("lr_img", "momentum", "power", "lambda_mmd", "loss_scale", "precision")


def nan_hint(config: DistillConfig) -> str:
    """What to change when the loss is no longer finite: the loss knobs that differ from their defaults.

    Blaming the image learning rate when ``--power 200`` overflowed would send a user the wrong way.
    """
    cfg = config.resolved()
    default = replace(DistillConfig(), method=cfg.method, variant=cfg.variant, ipc=cfg.ipc).resolved()
    unusual = [f"{k} {getattr(cfg, k)} (default {getattr(default, k)})" for k in _LOSS_KNOBS
               if getattr(cfg, k) != getattr(default, k)]
    if unusual:
        return f"unusual settings: {', '.join(unusual)}; move them towards their defaults"
    return "lower --lr-img or use --precision fp32"


def result_key(config: DistillConfig, device: torch.device | str | None = None) -> dict:
    """The resolved settings that determine a method's images: what a cache entry or a checkpoint must match."""
    record = fingerprint(config.resolved(device))  # without the fields marked result=False
    reads = get_method(config.method).reads
    return record if reads is None else {k: record[k] for k in reads}


def load_or_distill(path: str | Path | None, train: ClassDataset, config: DistillConfig, *,
                    classes: Sequence[int] | None = None, seed: int = 0, device: torch.device | str = "cpu",
                    progress: bool = True) -> tuple[SyntheticSet, bool]:
    """The set cached at ``path`` if it is readable, else :func:`distill` it and cache it there.

    The caller names ``path`` from :func:`result_key` and whatever else identifies its data. A damaged
    entry is recomputed, never trusted; an unwritable cache costs a distillation next time, nothing else.

    Returns:
        The set, and whether it came from the cache.
    """
    if path is not None and Path(path).is_file():
        try:
            return SyntheticSet.load(path, require_digest=True), True
        except DistillError as exc:  # damaged, foreign or without a digest: deleted (one line) and made again
            discard(path, str(exc))
    synthetic = distill(train, config, classes=classes, seed=seed, device=device, progress=progress)
    if path is not None:
        try:
            synthetic.save(path)
        except OSError as exc:
            log.warning("could not cache the set in %s: %s", path, exc)
    return synthetic, False


def check_image_size(config: DistillConfig, image_shape: Sequence[int]) -> None:
    """Raise :class:`DistillError` if the encoder's pooling would shrink ``(C, H, W)`` images to nothing."""
    size = min(int(s) for s in image_shape[-2:])
    if size >> config.depth < 1:
        raise DistillError(f"depth {config.depth} is too deep for {image_shape[-2]}x{image_shape[-1]} images: every "
                           f"block halves them; use --depth {size.bit_length() - 1} or less")


def class_ids(classes: Sequence[Any], num_classes: int) -> list[int]:
    """``classes`` as ints; :class:`DistillError` for one that is not an integer (0.7 is not class 0) or out of range."""
    ids = []
    for c in classes:
        try:
            ids.append(operator.index(c))  # ints, numpy and torch integers; never a float, str or bool
        except TypeError:
            ids.append(None)
        if ids[-1] is None or isinstance(c, bool) or not 0 <= ids[-1] < num_classes:
            raise DistillError(f"class {c!r} is not a class id; pass integers from 0 to {num_classes - 1}")
    return ids


def distill(train: ClassDataset, config: DistillConfig, *, classes: Sequence[int] | None = None, seed: int = 0,
            device: torch.device | str = "cpu", progress: bool = True, checkpoint: str | Path | None = None,
            resume: bool = False, callback: Callable[[int, float], None] | None = None,
            postfix: Callable[[], dict[str, str]] | None = None) -> SyntheticSet:
    """Distill ``config.ipc`` images for each class in ``classes`` (all classes if ``None``).

    All randomness derives from ``(seed, class id, iteration)``, so a class gets the same images
    whichever other classes are distilled with it (exactly so for per-class encoders, i.e. not batchnorm).

    Args:
        train: the real training images.
        checkpoint: file to checkpoint to (every ``checkpoint_minutes`` and on Ctrl-C) and resume from.
        resume: continue from ``checkpoint`` if it exists.
        callback: called as ``callback(iteration, loss)`` after every optimisation step.
        postfix: extra fields for the progress bar (the job's time left, say), read after every step.

    Returns:
        The :class:`SyntheticSet`, with the loss curve in ``config["loss_curve"]``.
    """
    device = torch.device(device)
    cfg = config.resolved(device)
    method = get_method(cfg.method)
    if method.encoder:
        check_image_size(cfg, train.image_shape)
    classes = list(range(train.num_classes)) if classes is None else class_ids(classes, train.num_classes)
    if not classes:
        raise DistillError("no classes to distill; pass at least one class id")
    bad = [c for c in classes if not 0 <= c < train.num_classes or len(train.indices_of(c)) == 0]
    if bad:
        raise DistillError(f"class(es) {bad} have no training images in this dataset "
                           f"({train.num_classes} classes); pass classes that are present")
    if len(set(classes)) != len(classes):
        raise DistillError(f"classes {classes} repeat; pass each class once")
    zca = None
    if cfg.zca:  # every method sees whitened images; the set records the statistics to whiten test images
        from distill.core.zca import fit_zca_cached, whiten_dataset

        zca = fit_zca_cached(train)
        train = whiten_dataset(train, zca)
    checkpoint = Path(checkpoint) if checkpoint else None
    before = _seconds_before(checkpoint) if resume and checkpoint is not None else 0.0
    start = time.perf_counter()
    if not method.iterates:
        output = method.run(train, classes, cfg, seed=seed, device=device,
                            **({"progress": progress} if method.shows_progress else {}))
    else:
        def record_seconds() -> None:
            if checkpoint is not None and checkpoint.is_file():
                write_json(_seconds_file(checkpoint), {"seconds": before + time.perf_counter() - start})

        saved = [_mtime(checkpoint)]

        def step_done(it: int, loss: float) -> None:
            # The checkpoint is written after this call; a new one seen here came from the step before.
            if checkpoint is not None and _mtime(checkpoint) != saved[0]:
                saved[0] = _mtime(checkpoint)
                record_seconds()
            if callback is not None:
                callback(it, loss)

        try:
            output = method.run(train, classes, cfg, seed=seed, device=device, progress=progress,
                                checkpoint=checkpoint, resume=resume, callback=step_done, postfix=postfix)
        finally:  # also on Ctrl-C, so that a resumed run reports the time of all its parts
            record_seconds()
    record = config_to_dict(cfg)
    record["loss_curve"] = [list(p) for p in output.loss_curve]
    record.update(output.extra)
    if zca is not None:
        record["zca_statistics"] = zca.state_dict()
    return SyntheticSet(images=output.images, labels=torch.tensor(classes).repeat_interleave(cfg.ipc),
                        class_ids=classes, class_names=train.class_names, mean=train.mean, std=train.std,
                        ipc=cfg.ipc, method=cfg.method, config=record, seed=seed, iterations=output.iterations,
                        seconds=before + time.perf_counter() - start, git_revision=git_revision())


def _mtime(path: Path | None) -> int | None:
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


def _seconds_file(checkpoint: Path) -> Path:
    """Beside the checkpoint: the seconds spent up to it, summed over every invocation that resumed it.

    Kept out of the checkpoint itself: that is written by the matching loop (:func:`distill.methods.loop.run_loop`),
    which does not see what a call spends before it (MTT's experts, the ZCA fit, the start images), while these
    seconds are the whole call's (a training run resumed through :func:`distill.core.engine.fit` keeps its
    own seconds in its checkpoint). Brought up to date one step after every checkpoint and when the run ends
    or is interrupted.
    """
    return checkpoint.with_name(checkpoint.stem + ".seconds.json")


def _seconds_before(checkpoint: Path) -> float:
    """Seconds the earlier invocations spent on ``checkpoint``'s run (0 when there is none to resume)."""
    path = _seconds_file(checkpoint)
    if not checkpoint.is_file() or not path.is_file():
        return 0.0
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable %s: the reported seconds count this invocation only", path)
        return 0.0


@register_method("dm", iterates=True, label="DM", color="tab:blue", experiments=("continual", "nas"),
                 baseline=True,  # the method DataDAM's paper improves on: its NAS claim is ρ(DataDAM) > ρ(DM)
                 defaults=lambda ipc: {"lambda_mmd": 1.0, "loss_scale": 1.0})  # the embedding's MMD alone
@register_method("datadam", iterates=True, label="DataDAM", color="tab:red", experiments=("continual", "nas"),
                 variants={  # METHOD.md §1: the paper's table, and the public code (BatchNorm, p = 1, batch_real 64)
                     "paper": {"norm": "instancenorm", "power": 4.0, "batch_real": 256},
                     "official": {"norm": "batchnorm", "power": 1.0, "batch_real": 64}})
def _matching(train: ClassDataset, classes: Sequence[int], config: DistillConfig, **kwargs) -> MethodOutput:
    """DataDAM (attention matching + MMD) and DM (MMD only), in ``distill/methods/matching.py``."""
    from distill.methods.matching import run_matching

    return run_matching(train, classes, config, **kwargs)


from distill.methods import coreset, selection  # noqa: E402,F401  (register random, herding, kcenter, forgetting)
from distill.methods import cafe, gradient, trajectory  # noqa: E402,F401  (register dc, dsa, mtt, cafe)

#: The methods registered when this module loads (call :func:`list_methods` for the current ones).
METHODS = tuple(list_methods())
#: Of those, the ones that pick real images rather than learn them.
SELECTION_METHODS = tuple(m for m in METHODS if not get_method(m).iterates)

__all__ = ["DistillConfig", "MethodOutput", "MethodSpec", "METHODS", "SELECTION_METHODS", "ENCODER_DEFAULTS",
           "check_image_size", "class_ids", "distill", "get_method", "list_methods", "load_or_distill", "nan_hint", "register_method", "result_key"]
