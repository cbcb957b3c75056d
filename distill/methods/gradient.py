"""DC (gradient matching, Zhao et al. ICLR 2021) and DSA (DC with Siamese augmentation, Zhao & Bilen ICML 2021).

One iteration (the papers' outer iteration) takes a fresh randomly initialised ConvNet and repeats
``outer_loop`` times: for every class, move the synthetic images so that the gradient of the network's
loss on them points the way the gradient on a real batch of that class does; then train the network
on the synthetic set for ``inner_loop`` epochs (METHOD.md §8). DSA draws one augmentation per class and
step and applies it to the real and the synthetic batch alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.core.augment import DSA
from distill.core.data import ClassDataset
from distill.core.engine import TrainConfig, autocast, fit
from distill.core.errors import DistillError
from distill.methods import DistillConfig, MethodOutput, register_method
from distill.methods.loop import bilevel_start, run_loop
from distill.core.networks import init_parameters
from distill.core.seeds import INNER_TRAIN, NET, STEP, real_indices, seed_of, stream

#: (outer_loop, inner_loop) per ipc: DatasetCondensation utils.py ``get_loops`` (lines 275-291).
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
#: Minibatch of the inner-loop training: DatasetCondensation main.py ``--batch_train`` (line 27).
BATCH_TRAIN = 256
#: Added to the product of norms in the cosine, as the public code's ``distance_wb`` (utils.py line 233).
COSINE_EPS = 1e-6


def gradient_defaults(ipc: int) -> dict[str, Any]:
    """DatasetCondensation main.py's defaults (lines 24-26) and its loop counts for ``ipc`` (``LOOPS``)."""
    outer, inner = LOOPS.get(ipc, (None, None))
    return {"lr_img": 0.1, "lr_net": 0.01, "batch_real": 256, "outer_loop": outer, "inner_loop": inner}


#: The paper's 1000 iterations; on a CPU, sized by s/it measured with benchmarks/distill_cost.py, at the public
#: code's batch_real (the CPU preset files set 64 for DataDAM; this preset comes after them).
PRESETS = {"paper": {"iterations": 1000},
           "cpu": {"iterations": 20, "batch_real": 256},
           "smoke": {"iterations": 2, "width": 8, "depth": 2, "batch_real": 8, "outer_loop": 2, "inner_loop": 1}}
#: DC's ``paper`` run starts from Gaussian noise: main.py's ``--init`` default, which the README's DC command
#: keeps (its DSA command passes ``--init real``).
DC_PRESETS = {**PRESETS, "paper": {**PRESETS["paper"], "init": "noise"}}


def gradient_distance(real: Sequence[Tensor], syn: Sequence[Tensor]) -> Tensor:
    """Sum over layers and output channels of ``1 - cos`` between real and synthetic weight gradients.

    Each gradient is grouped by its first dimension (a conv's output channel, a linear layer's output
    unit); one-dimensional ones (biases, norm scales) are left out, as the public code does.
    """
    total = syn[0].new_zeros(())
    for gr, gs in zip(real, syn):
        if gr.ndim < 2:
            continue
        gr, gs = gr.flatten(1), gs.flatten(1)
        cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + COSINE_EPS)
        total = total + (1 - cos).sum()
    return total


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy in fp32 or wider: bf16 logits are promoted, float64 ones (gradient checks) kept."""
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)


def class_gradients(net: nn.Module, x: Tensor, label: int, *, create_graph: bool, precision: str) -> tuple[Tensor, ...]:
    """Gradients of the cross-entropy of ``x`` (all of class ``label``) with respect to ``net``'s parameters."""
    with autocast(precision, x.device):
        logits = net(x)
    loss = cross_entropy(logits, torch.full((len(x),), label, device=x.device))
    return torch.autograd.grad(loss, list(net.parameters()), create_graph=create_graph)


def inner_train_config(cfg: DistillConfig, *, epochs: int, dsa: bool) -> TrainConfig:
    """The public code's inner loop: plain SGD at ``lr_net`` (no momentum, no decay), DSA per image if ``dsa``."""
    return TrainConfig(epochs=epochs, batch_size=BATCH_TRAIN, lr=cfg.lr_net, momentum=0.0, weight_decay=0.0,
                       lr_decay=1.0, dsa=dsa, dsa_strategy=cfg.dsa_strategy, precision=cfg.precision,
                       compile=False, channels_last=False)


def run_gradient_matching(train: ClassDataset, classes: Sequence[int], cfg: DistillConfig, *, seed: int,
                          device: torch.device, progress: bool = True, checkpoint: Path | None = None,
                          resume: bool = False, callback: Callable[[int, float], None] | None = None,
                          postfix: Callable[[], dict[str, str]] | None = None) -> MethodOutput:
    """Optimise ``cfg.ipc`` images per class by gradient matching; see the module docstring."""
    if cfg.outer_loop is None or cfg.inner_loop is None:
        raise DistillError(f"{cfg.method} has loop counts for ipc {', '.join(map(str, LOOPS))} only; pass "
                           f"--outer-loop and --inner-loop for ipc {cfg.ipc}")
    if cfg.norm == "batchnorm":
        raise DistillError(f"{cfg.method} matches per-class gradients, which batch statistics would couple; "
                           f"use --norm instancenorm (the public code's ConvNet)")
    k, ipc = len(classes), cfg.ipc
    syn, labels, optimizer, net, real_by_class = bilevel_start(train, classes, cfg, seed=seed, device=device)
    dsa = DSA(cfg.dsa_strategy if cfg.method == "dsa" else "none")
    inner = inner_train_config(cfg, epochs=cfg.inner_loop, dsa=bool(dsa.groups)) if cfg.inner_loop > 0 else None

    def step(it: int) -> float:
        init_parameters(net, stream(seed, NET, it))
        total = 0.0
        for ol in range(cfg.outer_loop):
            net.train()
            optimizer.zero_grad(set_to_none=True)
            for i, c in enumerate(classes):
                g = stream(seed, STEP, it, ol, c)
                real = real_by_class[i][real_indices(len(real_by_class[i]), cfg.batch_real, g).to(device)]
                params = dsa.sample(g)  # one draw for the real and the synthetic batch: the Siamese part
                g_real = [t.detach() for t in class_gradients(net, dsa.apply(real, params), c, create_graph=False,
                                                               precision=cfg.precision)]
                g_syn = class_gradients(net, dsa.apply(syn[i * ipc:(i + 1) * ipc], params), c, create_graph=True,
                                        precision=cfg.precision)
                loss = gradient_distance(g_real, g_syn)
                loss.backward(inputs=[syn])  # per class: one class's graph alive at a time
                total += float(loss.detach())
            optimizer.step()
            if ol < cfg.outer_loop - 1 and inner is not None:
                fit(net, syn.detach(), labels, inner, seed=seed_of(stream(seed, INNER_TRAIN, it, ol)), device=device)
        return total / (k * cfg.outer_loop)  # the mean over classes and updates, as the public code prints it

    done, curve = run_loop(cfg, step, tensors=[syn], optimizers=[optimizer], classes=classes, seed=seed,
                           shape=tuple(syn.shape), progress=progress, checkpoint=checkpoint, resume=resume,
                           callback=callback, postfix=postfix)
    return MethodOutput(syn.detach().cpu(), done, curve)


@register_method("dsa", iterates=True, defaults=gradient_defaults, presets=PRESETS, label="DSA", color="tab:cyan")
@register_method("dc", iterates=True, defaults=gradient_defaults, presets=DC_PRESETS, label="DC", color="tab:pink")
def gradient_matching(train: ClassDataset, classes: Sequence[int], config: DistillConfig, **kwargs) -> MethodOutput:
    """DC and DSA: :func:`run_gradient_matching`."""
    return run_gradient_matching(train, classes, config, **kwargs)


__all__ = ["BATCH_TRAIN", "LOOPS", "PRESETS", "class_gradients", "cross_entropy", "gradient_defaults",
           "gradient_distance", "inner_train_config", "run_gradient_matching"]
