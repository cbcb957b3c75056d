"""MTT: dataset distillation by matching training trajectories (Cazenavette et al., CVPR 2022).

A buffer step trains expert ConvNets on the real set and keeps their parameters after every epoch
(cached on disk, keyed by the images and settings they read). One iteration picks an expert and a
start epoch t, unrolls ``syn_steps`` SGD steps of a student from the expert's theta*_t on the synthetic
images with a learnable step size, and moves images and step size to shrink

    ||theta_hat - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2,   M = expert_epochs

(METHOD.md §8). The gradient flows back through every student step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from distill.core.augment import DSA
from distill.core.cache import cache_dir, content_key
from distill.core.data import ClassDataset
from distill.core.engine import TrainConfig, autocast, fit
from distill.core.errors import DistillError
from distill.core.store import load_entry, save_entry
from distill.methods import DistillConfig, MethodOutput, register_method
from distill.methods.gradient import cross_entropy
from distill.methods.loop import run_loop
from distill.methods.selection import initial_images
from distill.core.networks import ConvNet, init_parameters
from distill.core.seeds import EXPERT_EPOCH, EXPERT_NET, STEP, seed_of, stream

log = logging.getLogger(__name__)

#: CIFAR-10 settings per ipc: (syn_steps, expert_epochs, max_start_epoch, lr_img, lr_lr, lr_teacher, zca).
#: The public repository's hyper-parameter table is an image (readme.md line 95, commit aed322d "corrected
#: hyper-parameters"); these are the values METHOD.md §8 took from it, which a public listing of the
#: per-setting commands repeats. Other ipc take the nearest row.
SETTINGS = {
    1: {"syn_steps": 50, "expert_epochs": 2, "max_start_epoch": 2, "lr_img": 100.0, "lr_lr": 1e-7,
        "lr_teacher": 0.01, "zca": True},
    10: {"syn_steps": 30, "expert_epochs": 2, "max_start_epoch": 20, "lr_img": 100.0, "lr_lr": 1e-5,
         "lr_teacher": 0.001, "zca": True},
    50: {"syn_steps": 30, "expert_epochs": 2, "max_start_epoch": 40, "lr_img": 1000.0, "lr_lr": 1e-5,
         "lr_teacher": 0.001, "zca": False},
}
#: The experts of buffer.py (lines 116-131): 100 ConvNets, 50 epochs, SGD lr 0.01 without momentum or weight
#: decay, batch 256, DSA on every batch.
EXPERTS = {"num_experts": 100, "expert_train_epochs": 50}
EXPERT_LR = 0.01
EXPERT_BATCH = 256
#: Bump when expert training changes, so that stale cached trajectories are not reused.
_EXPERT_VERSION = 1


def mtt_defaults(ipc: int) -> dict[str, Any]:
    """The CIFAR-10 row of ``SETTINGS`` nearest to ``ipc``, and the experts of buffer.py."""
    nearest = min(SETTINGS, key=lambda row: (abs(row - ipc), row))
    return {**SETTINGS[nearest], **EXPERTS}


#: The paper distils for 5000 iterations (distill.py ``--Iteration``, line 431). A CPU affords a few experts
#: and epochs: ``cpu`` trains 2 experts of 4 epochs on CIFAR-10 (expert_epochs 2 from start epochs 0-1).
PRESETS = {"paper": {"iterations": 5000},
           "cpu": {"iterations": 100, "num_experts": 2, "expert_train_epochs": 4, "max_start_epoch": 2,
                   "syn_steps": 20},
           "smoke": {"iterations": 2, "width": 8, "depth": 2, "num_experts": 1, "expert_train_epochs": 2,
                     "max_start_epoch": 1, "expert_epochs": 1, "syn_steps": 2, "zca": False}}


# ------------------------------------------------------------------------------------------- parameters
def flat_parameters(net: nn.Module) -> Tensor:
    """All parameters of ``net`` as one detached vector, in ``named_parameters`` order."""
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def unflatten(net: nn.Module, flat: Tensor) -> dict[str, Tensor]:
    """``flat`` cut into ``net``'s named parameter shapes (views that keep ``flat``'s graph)."""
    out, start = {}, 0
    for name, p in net.named_parameters():
        out[name] = flat[start:start + p.numel()].view_as(p)
        start += p.numel()
    return out


# -------------------------------------------------------------------------------------------- the loss
def trajectory_loss(net: nn.Module, start: Tensor, target: Tensor, images: Tensor, labels: Tensor, lr: Tensor, *,
                    syn_steps: int, dsa: DSA, generator: torch.Generator, precision: str = "fp32") -> Tensor:
    """The normalised parameter distance after ``syn_steps`` student SGD steps from ``start`` on ``images``.

    Every step sees all synthetic images (the public code's ``batch_syn`` default) with a fresh DSA draw per
    image; the student's graph is kept, so the result is differentiable in ``images`` and ``lr``.
    """
    with torch.enable_grad():  # the student's steps need their gradients, also under no_grad (a loss probe)
        theta = start.detach().clone().requires_grad_(True)
        for _ in range(syn_steps):
            x = dsa(images, generator, siamese=False)
            with autocast(precision, x.device):
                logits = functional_call(net, unflatten(net, theta), (x,))
            ce = cross_entropy(logits, labels)
            grad = torch.autograd.grad(ce, theta, create_graph=True)[0]
            theta = theta - lr * grad
        return ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()


# --------------------------------------------------------------------------------------------- experts
def expert_net(train: ClassDataset, cfg: DistillConfig) -> ConvNet:
    return ConvNet(num_classes=train.num_classes, channels=train.image_shape[0], image_size=train.image_shape[-1],
                   depth=cfg.depth, width=cfg.width, norm=cfg.norm)


def expert_train_config(cfg: DistillConfig) -> TrainConfig:
    """One epoch of buffer.py's expert training (momentum-free SGD: epoch-by-epoch calls are one run)."""
    return TrainConfig(epochs=1, batch_size=EXPERT_BATCH, lr=EXPERT_LR, momentum=0.0, weight_decay=0.0, lr_decay=1.0,
                       dsa=cfg.dsa_strategy not in ("", "none"), dsa_strategy=cfg.dsa_strategy,
                       precision=cfg.precision, compile=False, channels_last=False)


def expert_folder(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, seed: int) -> Path:
    """``$DISTILL_CACHE_DIR/mtt-experts/<key>``: keyed by the images of ``classes`` (content) and the training.

    The number of experts is not in the key: asking for more trains the missing ones only.
    """
    key = content_key({"v": _EXPERT_VERSION, "seed": seed, "epochs": cfg.expert_train_epochs,
                                 "depth": cfg.depth, "width": cfg.width, "norm": cfg.norm, "lr": EXPERT_LR,
                                 "batch": EXPERT_BATCH, "dsa": cfg.dsa_strategy, "precision": cfg.precision,
                                 "classes": list(classes), "num_classes": train.num_classes,
                                 "shape": list(train.image_shape)},
                      *(train.images_of(c) for c in classes), length=16)  # and the images' content
    return cache_dir() / "mtt-experts" / key


def train_expert(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, index: int, *, seed: int,
                 device: torch.device) -> Tensor:
    """Expert ``index``'s trajectory: its flat parameters at epoch 0 (initial) .. ``expert_train_epochs``."""
    net = init_parameters(expert_net(train, cfg), stream(seed, EXPERT_NET, index)).to(device)
    subset = train.subset(classes)
    config = expert_train_config(cfg)
    snapshots = [flat_parameters(net).cpu()]
    for epoch in range(cfg.expert_train_epochs):
        fit(net, subset.images, subset.labels, config, seed=seed_of(stream(seed, EXPERT_EPOCH, index, epoch)),
            device=device)
        snapshots.append(flat_parameters(net).cpu())
    return torch.stack(snapshots)


def expert_trajectories(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                        device: torch.device, progress: bool = False) -> list[Tensor]:
    """The ``num_experts`` trajectories, each ``(expert_train_epochs + 1, num_params)``: cached, else trained."""
    from tqdm.auto import tqdm

    folder = expert_folder(train, classes, cfg, seed)
    out = []
    for i in tqdm(range(cfg.num_experts), disable=not progress, desc="mtt experts", unit="expert", leave=False):
        path = folder / f"expert-{i}.pt"
        trajectory = load_entry(path)  # checked against its digest; a damaged expert is named and retrained
        if not isinstance(trajectory, Tensor) or len(trajectory) != cfg.expert_train_epochs + 1:
            trajectory = train_expert(train, classes, cfg, i, seed=seed, device=device)
            try:
                save_entry(trajectory, path)
            except OSError as exc:
                log.warning("could not cache expert %s: %s", path, exc)
        out.append(trajectory)
    return out


# ------------------------------------------------------------------------------------------ distillation
def run_trajectory_matching(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                            device: torch.device, progress: bool = True, checkpoint: Path | None = None,
                            resume: bool = False, callback: Callable[[int, float], None] | None = None,
                            postfix: Callable[[], dict[str, str]] | None = None) -> MethodOutput:
    """Optimise ``cfg.ipc`` images per class and the student lr by trajectory matching; see the module docstring."""
    # Start epochs are drawn from 0 .. max_start_epoch - 1, so the latest target is that + expert_epochs.
    if cfg.max_start_epoch - 1 + cfg.expert_epochs > cfg.expert_train_epochs:
        raise DistillError(f"mtt starts below epoch {cfg.max_start_epoch} and matches {cfg.expert_epochs} epochs "
                           f"later, but experts train {cfg.expert_train_epochs} epochs; raise --expert-train-epochs "
                           f"to {cfg.max_start_epoch - 1 + cfg.expert_epochs} or lower --max-start-epoch")
    if cfg.norm == "batchnorm":
        raise DistillError("mtt unrolls a functional student, which batchnorm's running statistics would break; "
                           "use --norm instancenorm (the public code's ConvNet)")
    experts = expert_trajectories(train, classes, cfg, seed=seed, device=device, progress=progress)
    syn = torch.nn.Parameter(initial_images(train, classes, cfg, seed=seed, device=device))
    syn_lr = torch.nn.Parameter(torch.tensor(cfg.lr_teacher, device=device))
    labels = torch.tensor(classes, device=device).repeat_interleave(cfg.ipc)
    opt_img = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum)
    opt_lr = torch.optim.SGD([syn_lr], lr=cfg.lr_lr, momentum=0.5)  # distill.py line 139
    net = expert_net(train, cfg).to(device).train()
    dsa = DSA(cfg.dsa_strategy)

    def step(it: int) -> float:
        g = stream(seed, STEP, it)
        trajectory = experts[int(torch.randint(len(experts), (1,), generator=g))]
        t = int(torch.randint(cfg.max_start_epoch, (1,), generator=g))  # below max_start_epoch, as distill.py
        start, target = trajectory[t].to(device), trajectory[t + cfg.expert_epochs].to(device)
        loss = trajectory_loss(net, start, target, syn, labels, syn_lr, syn_steps=cfg.syn_steps, dsa=dsa,
                               generator=g, precision=cfg.precision)
        opt_img.zero_grad(set_to_none=True)
        opt_lr.zero_grad(set_to_none=True)
        loss.backward(inputs=[syn, syn_lr])
        opt_img.step()
        opt_lr.step()
        return float(loss.detach())

    done, curve = run_loop(cfg, step, tensors=[syn, syn_lr], optimizers=[opt_img, opt_lr], classes=classes,
                           seed=seed, shape=tuple(syn.shape), progress=progress, checkpoint=checkpoint,
                           resume=resume, callback=callback, postfix=postfix)
    return MethodOutput(syn.detach().cpu(), done, curve, extra={"learned_lr": float(syn_lr.detach())})


@register_method("mtt", iterates=True, per_class=False, defaults=mtt_defaults, presets=PRESETS, label="MTT",
                 color="tab:orange")
def mtt(train: ClassDataset, classes: Sequence[int], config: DistillConfig, **kwargs) -> MethodOutput:
    """MTT: :func:`run_trajectory_matching` (its experts learn all classes of the call together)."""
    return run_trajectory_matching(train, classes, config, **kwargs)


__all__ = ["EXPERTS", "PRESETS", "SETTINGS", "expert_trajectories", "flat_parameters", "mtt_defaults",
           "run_trajectory_matching", "trajectory_loss", "unflatten"]
