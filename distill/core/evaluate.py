"""Train a fresh network on a small set and test it on real images (METHOD.md §2)."""

from __future__ import annotations

import statistics as stats
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from distill.core.augment import DSA
from distill.core.data import ClassDataset
from distill.core.errors import DistillError
from distill.core.engine import (EnginePlan, TrainConfig, autocast, check_finite, check_set, fit, plan, sgd,
                            train_network)
from distill.core.ensemble import ConvNetEnsemble, stackable
from distill.core.networks import get_network, init_parameters
from distill.core.seeds import AUGMENT, SHUFFLE, TRAIN, stream

#: How a synthetic set is evaluated (METHOD.md §2). ``dm``: DM's code, instancenorm ConvNet, batch 256.
#: ``official``: the public DataDAM code, BatchNorm ConvNet, batch 64 (its paper runs train 1800 epochs).
#: Both train with SGD lr 0.01, momentum 0.9, wd 5e-4, lr x0.1 at the midpoint, DSA per image, and
#: report the accuracy at the end of training; the epochs come from ``TrainConfig.epochs``.
EVAL_PROTOCOLS: dict[str, dict] = {
    "dm": {"network": {"norm": "instancenorm"}, "train": {"batch_size": 256}},
    "official": {"network": {"norm": "batchnorm"}, "train": {"batch_size": 64}},
}


def protocol_setup(protocol: str, config: TrainConfig, synthetic=None) -> tuple[TrainConfig, dict]:
    """The training config and ConvNet keyword arguments of an evaluation protocol (see ``EVAL_PROTOCOLS``),
    for ``synthetic`` at the lr it learned if it learned one (:func:`at_learned_lr`)."""
    if protocol not in EVAL_PROTOCOLS:
        raise DistillError(f"unknown evaluation protocol {protocol!r}; use {' or '.join(EVAL_PROTOCOLS)}")
    spec = EVAL_PROTOCOLS[protocol]
    return at_learned_lr(replace(config, **spec["train"]), synthetic), dict(spec["network"])


def at_learned_lr(config: TrainConfig, synthetic) -> TrainConfig:
    """``config`` at the learning rate that ``synthetic`` learned with its images, if it learned one (MTT's
    sets: MTT trains its evaluation nets at it), else unchanged. Every evaluation of a set goes through this."""
    lr = (getattr(synthetic, "config", None) or {}).get("learned_lr")
    return config if lr is None else replace(config, lr=float(lr))


@dataclass
class EvalResult:
    """Test accuracy (%) at the end of training, over seeds."""

    mean: float
    std: float
    runs: list[float]
    #: what the training engine used (precision, compiled, layout, steps; :class:`~distill.core.engine.EnginePlan`)
    engine: dict = field(default_factory=dict)

    @classmethod
    def of(cls, runs: Sequence[float], engine: EnginePlan | None = None) -> "EvalResult":
        runs = [float(r) for r in runs]
        return cls(stats.fmean(runs), stats.pstdev(runs) if len(runs) > 1 else 0.0, runs,
                   engine.to_dict() if engine is not None else {})


def train_networks(models: Sequence[nn.Module], images: Tensor, labels: Tensor, config: TrainConfig, *,
                   seeds: Sequence[int], device: torch.device | str = "cpu", progress: bool = False) -> list[nn.Module]:
    """Train ``models[i]`` in place as ``train_network(models[i], ..., seed=seeds[i])`` would, all at once.

    ConvNets of one architecture train as one :class:`~distill.core.ensemble.ConvNetEnsemble` (the same math
    per net; tests/test_ensemble.py checks the weights against one-by-one training); other models are
    trained one by one. Returns the models in eval mode.
    """
    seeds = list(seeds)
    if len(seeds) != len(models):
        raise DistillError(f"{len(models)} models but {len(seeds)} seeds; pass one seed per model")
    if not stackable(models):
        return [train_network(m, images, labels, config, seed=s, device=device, progress=progress)
                for m, s in zip(models, seeds)]
    check_set(images, labels)
    device = torch.device(device)
    run = ensemble_plan(config, len(images), device)
    ensemble = ConvNetEnsemble([m.to(device) for m in models]).to(device).train()
    images, labels = images.to(device), labels.to(device)
    layout = torch.channels_last if run.channels_last else torch.contiguous_format
    ensemble.to(memory_format=layout)
    optimizer, scheduler = sgd(ensemble.parameters(), config, len(images))
    dsa = DSA(config.dsa_strategy if config.dsa else "none")
    shuffles = [stream(s, SHUFFLE) for s in seeds]
    augments = [stream(s, AUGMENT) for s in seeds]
    loss_fn = nn.CrossEntropyLoss()
    for _ in tqdm(range(config.epochs), disable=not progress, desc=f"train {len(models)} nets", unit="ep",
                  leave=False):
        orders = [torch.randperm(len(images), generator=g).to(device) for g in shuffles]
        for start in range(0, len(images), config.batch_size):
            batches = [order[start:start + config.batch_size] for order in orders]
            x = torch.cat([dsa(images[idx], g, siamese=False) for idx, g in zip(batches, augments)], dim=1)
            with autocast(run.precision, device):
                out = ensemble(x.contiguous(memory_format=layout))
            # The sum's gradient with respect to net i's weights is net i's own loss gradient.
            loss = sum(loss_fn(out[:, i].float(), labels[idx]) for i, idx in enumerate(batches))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        check_finite(loss.detach())
    ensemble.write_back(models)
    return [m.to(memory_format=torch.contiguous_format).eval() for m in models]


def ensemble_plan(config: TrainConfig, num_images: int, device: torch.device | str) -> EnginePlan:
    """The engine's plan for an ensemble: its precision and layout, never compiled (grouped convolutions)."""
    return plan(replace(config, compile=False), num_images, device)


@torch.no_grad()
def test_accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, device: torch.device | str = "cpu",
                  batch_size: int = 1000) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        correct += int((model(x).argmax(1).cpu() == labels[start:start + batch_size]).sum())
    return 100.0 * correct / max(1, len(images))


def check_against_test(images: Tensor, labels: Tensor, test: ClassDataset) -> None:
    """:class:`DistillError` unless the training set's labels are test classes and its images are shaped as the
    test images: else the mismatch surfaces as an index or matrix-shape error deep inside training."""
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(test.image_shape):
        raise DistillError(f"the training images are {tuple(images.shape[1:])} (C, H, W) but the test images are "
                           f"{tuple(test.image_shape)}; train on images of the test set's size and channels")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < test.num_classes:
        raise DistillError(f"the training labels run from {int(labels.min())} to {int(labels.max())} but the test set "
                           f"has {test.num_classes} classes (0 to {test.num_classes - 1}); pass labels of its classes")


def evaluate(images: Tensor, labels: Tensor, test: ClassDataset, *, network: str | Callable[[], nn.Module] = "convnet",
             config: TrainConfig, seeds: Sequence[int], device: torch.device | str = "cpu",
             num_classes: int | None = None, progress: bool = False, together: bool | None = None,
             **network_kwargs) -> EvalResult:
    """Train one fresh network per seed on ``images`` and report test accuracy at the end of training.

    The nets train through the engine (:func:`distill.core.engine.fit`); the result names what it used.

    ``together``: train ConvNets of one evaluation at once (:func:`train_networks`; the same math per
    net). By default only on a GPU: on a quiet 2-core CPU the grouped convolutions were slower than
    one net after another (0.74x at ipc 1, 0.92x at ipc 10; benchmarks/distill_speed.py).
    """
    check_against_test(images, labels, test)
    if together is None:
        together = torch.device(device).type == "cuda"
    num_classes = num_classes or test.num_classes
    seeds = list(seeds)
    if not seeds:
        raise DistillError("evaluate() got no seeds; pass e.g. seeds=[0, 1, 2] (one network is trained per seed)")
    def build(seed: int) -> nn.Module:
        model = network() if callable(network) else get_network(
            network, num_classes=num_classes, channels=images.shape[1], image_size=images.shape[-1], **network_kwargs)
        return init_parameters(model, stream(seed, TRAIN))

    models = [build(seed) for seed in seeds]
    if together and stackable(models):  # the same math, trained at once (train_networks)
        train_networks(models, images, labels, config, seeds=seeds, device=device, progress=progress)
        iterator = tqdm(models, disable=not progress, desc="test", unit="net")
        return EvalResult.of([test_accuracy(m, test.images, test.labels, device=device) for m in iterator],
                             ensemble_plan(config, len(images), device))
    runs, used = [], None
    for seed, model in tqdm(list(zip(seeds, models)), disable=not progress, desc="evaluate", unit="net"):
        used = fit(model, images, labels, config, seed=seed, device=device, progress=progress).plan
        runs.append(test_accuracy(model, test.images, test.labels, device=device))
    return EvalResult.of(runs, used)


def evaluate_networks(images: Tensor, labels: Tensor, test: ClassDataset, networks: Sequence[str], *,
                      setup: Callable[[str], tuple[TrainConfig, dict]], seeds: Sequence[int],
                      device: torch.device | str = "cpu", num_classes: int | None = None,
                      progress: bool = False) -> dict[str, dict]:
    """Cross-architecture evaluation: :func:`evaluate` the same set with each of ``networks``.

    Args:
        networks: registry names, e.g. ``["convnet", "alexnet", "vgg11", "resnet18"]`` (METHOD.md §2).
        setup: a network's training config and keyword arguments (the ConvNet's protocol norm, say).

    Returns:
        Per network, in order: ``mean``, ``std``, ``runs`` (test %), ``network``, ``epochs``,
        ``batch_size``, the network keyword arguments and ``seconds`` (training and testing).
    """
    import time

    if not networks:
        raise DistillError("evaluate_networks() got no networks; pass e.g. ['convnet', 'alexnet']")
    if len(set(networks)) != len(networks):
        raise DistillError(f"networks {list(networks)} repeat; list each once")
    table = {}
    for name in networks:
        train_cfg, net_kwargs = setup(name)
        start = time.perf_counter()
        result = evaluate(images, labels, test, network=name, config=train_cfg, seeds=seeds, device=device,
                          num_classes=num_classes, progress=progress, **net_kwargs)
        table[name] = {"mean": result.mean, "std": result.std, "runs": result.runs, "network": name,
                       "engine": result.engine,
                       "epochs": train_cfg.epochs, "batch_size": train_cfg.batch_size, "lr": train_cfg.lr, **net_kwargs,
                       "seconds": time.perf_counter() - start}
    return table


__all__ = ["at_learned_lr", "EVAL_PROTOCOLS", "EvalResult", "check_against_test", "evaluate", "evaluate_networks", "protocol_setup", "test_accuracy",
           "train_network", "train_networks", "TrainConfig"]
