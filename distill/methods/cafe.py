"""CAFE (Wang et al., CVPR 2022): layer-wise feature alignment plus a discrimination loss, with bi-level updates.

One iteration takes a fresh ConvNet and alternates, as the public code (kaiwang960112/CAFE, distill.py) does:

- an image update: the class means of every block's feature map (and of the pooled output) of the
  synthetic images are pulled towards the real ones (weighted squared distances), the synthetic class
  centres towards the real ones, and real images are classified by their inner products with the
  synthetic centres (the discrimination loss); DSA draws one augmentation per class for both;
- training the network on the synthetic set, epoch by epoch.

Neither loop has a fixed length: the updates stop once the network's accuracy on real images has moved
less than ``LAMBDA_1`` over the last ``WATCH`` updates, and each training phase once it has moved more
than ``LAMBDA_2`` over the last ``WATCH`` epochs. The caps ``MAX_UPDATES``/``MAX_EPOCHS`` are ours:
the public code's ``while True`` loops have none; the set's ``cafe_loops`` says how often they cut a loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.core.augment import DSA
from distill.core.data import ClassDataset
from distill.core.engine import autocast, fit
from distill.core.errors import DistillError
from distill.methods import DistillConfig, MethodOutput, register_method
from distill.methods.gradient import inner_train_config
from distill.methods.loop import bilevel_start, run_loop
from distill.core.networks import ConvNet, init_parameters
from distill.core.seeds import INNER_TRAIN, NET, PROBE, STEP, real_indices, seed_of, stream

#: Weights of the feature maps, deepest first: the pooled output, then each block's activation
#: (distill.py ``--first_weight`` 1, ``--second_weight`` 1, ``--third_weight`` 0.1, ``--fourth_weight`` 0.1).
LAYER_WEIGHTS = (1.0, 1.0, 0.1, 0.1)
#: Weight of the discrimination loss (``--inner_weight``).
INNER_WEIGHT = 0.01
#: The updates stop when the probe accuracy of the last WATCH updates spans less than this (``--lambda_1``).
LAMBDA_1 = 0.04
#: A training phase stops when the probe accuracy of its last WATCH epochs spans more than this (``--lambda_2``).
LAMBDA_2 = 0.03
WATCH = 10
#: Real images per class in each accuracy probe (distill.py's ``get_images(c, 128)``).
PROBE_IMAGES = 128
#: lr_img is halved at these iterations (distill.py ``adjust_learning_rate``).
LR_MILESTONES = (1200, 1600, 1800)
#: Our caps on the two adaptive loops (the public code has none).
MAX_UPDATES = 100
MAX_EPOCHS = 100


def cafe_defaults(ipc: int) -> dict[str, Any]:
    """distill.py's argparse defaults: lr_img 0.1, lr_net 0.01, batch_real 256 (its 2000 iterations: ``paper``)."""
    return {"lr_img": 0.1, "lr_net": 0.01, "batch_real": 256}


#: ``paper``: distill.py's 2000 iterations, from Gaussian noise (its ``--init`` default; run.sh passes none).
PRESETS = {"paper": {"iterations": 2000, "init": "noise"},
           "cpu": {"iterations": 20, "batch_real": 256},  # the public code's batch_real, over the preset files' 64
           "smoke": {"iterations": 1, "width": 8, "depth": 2, "batch_real": 8}}


def feature_maps(net: ConvNet, x: Tensor) -> list[Tensor]:
    """The maps CAFE aligns, deepest first: the last block's pooled output, then every block's activation."""
    acts, embedding = net.features(x)
    return [embedding, *reversed(acts)]


def class_means(t: Tensor, groups: int) -> Tensor:
    return t.view(groups, -1, *t.shape[1:]).mean(1)


def cafe_loss(real_maps: Sequence[Tensor], syn_maps: Sequence[Tensor], groups: int) -> Tensor:
    """Layer-wise alignment of class means, the centres' distance, and the discrimination loss.

    The images of both lists form ``groups`` equal consecutive groups (classes); the real images of
    group i are classified among the synthetic centres, labelled i.
    """
    align = sum(w * ((class_means(r, groups) - class_means(s, groups)) ** 2).sum()
                for w, r, s in zip(LAYER_WEIGHTS, real_maps, syn_maps))
    real_emb, syn_centres = real_maps[0], class_means(syn_maps[0], groups)
    centres = ((class_means(real_emb, groups) - syn_centres) ** 2).sum()
    labels = torch.arange(groups, device=real_emb.device).repeat_interleave(len(real_emb) // groups)
    discrimination = F.cross_entropy(real_emb @ syn_centres.T, labels, reduction="sum")
    return align + centres + INNER_WEIGHT * discrimination


@torch.no_grad()
def probe_accuracy(net: ConvNet, real_by_class: Sequence[Tensor], classes: Sequence[int], previous: float,
                   generator_of: Callable[[int], torch.Generator]) -> float:
    """The public code's watched accuracy: ``(previous + sum over classes of accuracy) / classes``.

    It never resets ``previous`` within a loop, so the value is a running blend; kept as it is, since
    the thresholds were tuned on it.
    """
    net.eval()
    total = previous
    for i, c in enumerate(classes):
        real = real_by_class[i][real_indices(len(real_by_class[i]), PROBE_IMAGES, generator_of(c))]
        total += float((net(real).argmax(1) == c).float().mean())
    net.train()
    return total / len(classes)


def _settled(history: list[float], *, below: float | None = None, above: float | None = None) -> bool:
    """Whether the last WATCH values span less than ``below`` (or more than ``above``)."""
    if len(history) < WATCH:
        return False
    span = max(history[-WATCH:]) - min(history[-WATCH:])
    return span < below if below is not None else span > above


def run_cafe(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int, device: torch.device,
             progress: bool = True, checkpoint: Path | None = None, resume: bool = False,
             callback: Callable[[int, float], None] | None = None,
             postfix: Callable[[], dict[str, str]] | None = None) -> MethodOutput:
    """Optimise ``cfg.ipc`` images per class with CAFE; see the module docstring."""
    if cfg.depth + 1 > len(LAYER_WEIGHTS):
        raise DistillError(f"cafe weights {len(LAYER_WEIGHTS)} feature maps (ConvNet-3's); use --depth 3 or less")
    if cfg.norm == "batchnorm":
        raise DistillError("cafe aligns per-class statistics, which batch statistics would couple; "
                           "use --norm instancenorm")
    k, ipc = len(classes), cfg.ipc
    syn, labels, optimizer, net, real_by_class = bilevel_start(train, classes, cfg, seed=seed, device=device)
    dsa = DSA(cfg.dsa_strategy)
    # One epoch per call (the watcher decides how many); DSA as in the matching: CAFE+DSA, the paper's rows.
    inner = inner_train_config(cfg, epochs=1, dsa=bool(dsa.groups))
    # How long the adaptive loops ran, and how often our caps cut them (iterations run by this process).
    loops = dict.fromkeys(("iterations", "iterations_capped", "updates", "phases", "phases_capped", "epochs"), 0)

    def update(it: int, u: int) -> float:
        reals, fakes = [], []
        for i, c in enumerate(classes):
            g = stream(seed, STEP, it, u, c)
            real = real_by_class[i][real_indices(len(real_by_class[i]), cfg.batch_real, g)]
            params = dsa.sample(g)
            reals.append(dsa.apply(real, params))
            fakes.append(dsa.apply(syn[i * ipc:(i + 1) * ipc], params))
        n = min(len(r) for r in reals)  # equal groups, as the public code's reshape assumes
        with autocast(cfg.precision, device):
            with torch.no_grad():
                real_maps = feature_maps(net, torch.cat([r[:n] for r in reals]))
            syn_maps = feature_maps(net, torch.cat(fakes))
        loss = cafe_loss([m.float() for m in real_maps], [m.float() for m in syn_maps], k)
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[syn])
        optimizer.step()
        return float(loss.detach())

    def step(it: int) -> float:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_img * 0.5 ** sum(it >= m for m in LR_MILESTONES)
        init_parameters(net, stream(seed, NET, it))
        net.train()
        losses, watched, acc = [], [], 0.0
        loops["iterations"] += 1
        for u in range(MAX_UPDATES):
            losses.append(update(it, u))
            acc = probe_accuracy(net, real_by_class, classes, acc, lambda c: stream(seed, PROBE, it, u, c))
            watched.append(acc)
            if _settled(watched, below=LAMBDA_1):
                break
            inner_watched, inner_acc = [], 0.0
            loops["phases"] += 1
            for e in range(MAX_EPOCHS):
                fit(net, syn.detach(), labels, inner, seed=seed_of(stream(seed, INNER_TRAIN, it, u, e)), device=device)
                net.train()
                inner_acc = probe_accuracy(net, real_by_class, classes, inner_acc,
                                           lambda c: stream(seed, PROBE, it, u, e, c))
                inner_watched.append(inner_acc)
                if _settled(inner_watched, above=LAMBDA_2):
                    break
            else:
                loops["phases_capped"] += 1
            loops["epochs"] += len(inner_watched)
        else:
            loops["iterations_capped"] += 1
        loops["updates"] += len(losses)
        return sum(losses) / len(losses)

    done, curve = run_loop(cfg, step, tensors=[syn], optimizers=[optimizer], classes=classes, seed=seed,
                           shape=tuple(syn.shape), progress=progress, checkpoint=checkpoint, resume=resume,
                           callback=callback, postfix=postfix)
    return MethodOutput(syn.detach().cpu(), done, curve, extra={"cafe_loops": loops})


@register_method("cafe", iterates=True, per_class=False, defaults=cafe_defaults, presets=PRESETS, label="CAFE",
                 color="olive")
def cafe(train: ClassDataset, classes: Sequence[int], config: DistillConfig, **kwargs) -> MethodOutput:
    """CAFE: :func:`run_cafe` (its discrimination loss compares every class of the call with the others)."""
    return run_cafe(train, classes, config, **kwargs)


__all__ = ["INNER_WEIGHT", "LAMBDA_1", "LAMBDA_2", "LAYER_WEIGHTS", "PRESETS", "cafe_defaults", "cafe_loss",
           "feature_maps", "probe_accuracy", "run_cafe"]
