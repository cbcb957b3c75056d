"""Train a fresh network on a small set and test it on real images (METHOD.md §2)."""

from __future__ import annotations

import math
import statistics as stats
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from distill.augment import DEFAULT_STRATEGY, DSA
from distill.settings import checked
from distill.data import ClassDataset
from distill.errors import DistillError
from distill.ensemble import ConvNetEnsemble, stackable
from distill.networks import get_network, init_parameters
from distill.seeds import AUGMENT, SHUFFLE, TRAIN, stream

#: How a synthetic set is evaluated (METHOD.md §2). ``dm``: DM's code, instancenorm ConvNet, batch 256.
#: ``official``: the public DataDAM code, BatchNorm ConvNet, batch 64 (its paper runs train 1800 epochs).
#: Both train with SGD lr 0.01, momentum 0.9, wd 5e-4, lr x0.1 at the midpoint, DSA per image, and
#: report the accuracy at the end of training; the epochs come from ``TrainConfig.epochs``.
EVAL_PROTOCOLS: dict[str, dict] = {
    "dm": {"network": {"norm": "instancenorm"}, "train": {"batch_size": 256}},
    "official": {"network": {"norm": "batchnorm"}, "train": {"batch_size": 64}},
}


@dataclass
@checked
class TrainConfig:
    """How an evaluation network is trained (defaults: the paper protocol, METHOD.md §2)."""

    epochs: int = field(default=1000, metadata={"help": "training epochs", "min": 1})
    batch_size: int = field(default=256, metadata={"help": "minibatch size", "min": 1})
    lr: float = field(default=0.01, metadata={"help": "SGD learning rate", "above": 0})
    momentum: float = field(default=0.9, metadata={"min": 0, "max": 1})
    weight_decay: float = field(default=5e-4, metadata={"min": 0})
    nesterov: bool = False
    schedule: str = field(default="step", metadata={"help": "step (x lr_decay at the midpoint) | cosine",
                                                    "choices": ("step", "cosine")})
    lr_decay: float = field(default=0.1, metadata={"above": 0})
    dsa: bool = field(default=True, metadata={"help": "DSA on every batch"})
    dsa_strategy: str = DEFAULT_STRATEGY
    channels_last: bool = field(default=False, metadata={
        "help": "channels-last memory format (faster for batchnorm nets such as NAS-Bench-201 cells on CPU)"})


def protocol_setup(protocol: str, config: TrainConfig) -> tuple[TrainConfig, dict]:
    """The training config and ConvNet keyword arguments of an evaluation protocol (see ``EVAL_PROTOCOLS``)."""
    if protocol not in EVAL_PROTOCOLS:
        raise DistillError(f"unknown evaluation protocol {protocol!r}; use {' or '.join(EVAL_PROTOCOLS)}")
    spec = EVAL_PROTOCOLS[protocol]
    return replace(config, **spec["train"]), dict(spec["network"])


@dataclass
class EvalResult:
    """Test accuracy (%) at the end of training, over seeds."""

    mean: float
    std: float
    runs: list[float]

    @classmethod
    def of(cls, runs: Sequence[float]) -> "EvalResult":
        runs = [float(r) for r in runs]
        return cls(stats.fmean(runs), stats.pstdev(runs) if len(runs) > 1 else 0.0, runs)


def _check_set(images: Tensor, labels: Tensor) -> None:
    if len(images) == 0:
        raise DistillError("cannot train on an empty set; the memory or synthetic set holds no images")
    if len(images) != len(labels):
        raise DistillError(f"{len(images)} images but {len(labels)} labels; pass one label per image")


def _sgd(params, config: TrainConfig, num_images: int):  # noqa: ANN001, ANN202 - parameters in, (optimizer, scheduler) out
    """The SGD optimizer and the per-step learning-rate schedule of ``config``."""
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov)
    steps_per_epoch = math.ceil(num_images / config.batch_size)
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * steps_per_epoch))
    elif config.schedule == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [config.epochs // 2 * steps_per_epoch],
                                                         gamma=config.lr_decay)
    else:
        raise DistillError(f"unknown schedule {config.schedule!r}; use step or cosine")
    return optimizer, scheduler


def _descend(loss: Tensor, optimizer: torch.optim.Optimizer, scheduler) -> None:  # noqa: ANN001
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


def _check_finite(loss: Tensor) -> None:
    if not torch.isfinite(loss):
        raise DistillError(f"training loss became {float(loss)}; lower the learning rate (--lr)")


def train_network(model: nn.Module, images: Tensor, labels: Tensor, config: TrainConfig, *, seed: int,
                  device: torch.device | str = "cpu", progress: bool = False,
                  loss_callback: Callable[[float], None] | None = None) -> nn.Module:
    """Train ``model`` in place from the weights it has; returns it in eval mode.

    Shuffling and augmentation come from ``seed``; the end-of-training weights are returned (no
    early stopping on test data). ``loss_callback`` is called with every minibatch's training loss.
    """
    _check_set(images, labels)
    device = torch.device(device)
    model.to(device).train()
    images, labels = images.to(device), labels.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer, scheduler = _sgd(model.parameters(), config, len(images))
    dsa = DSA(config.dsa_strategy if config.dsa else "none")
    shuffle, augment = stream(seed, SHUFFLE), stream(seed, AUGMENT)
    loss_fn = nn.CrossEntropyLoss()
    for _ in tqdm(range(config.epochs), disable=not progress, desc="train", unit="ep", leave=False):
        order = torch.randperm(len(images), generator=shuffle).to(device)
        for start in range(0, len(images), config.batch_size):
            idx = order[start:start + config.batch_size]
            x = dsa(images[idx], augment, siamese=False)
            loss = loss_fn(model(x), labels[idx])
            if loss_callback is not None:
                loss_callback(float(loss.detach()))
            _descend(loss, optimizer, scheduler)
        _check_finite(loss)
    return model.eval()


def train_networks(models: Sequence[nn.Module], images: Tensor, labels: Tensor, config: TrainConfig, *,
                   seeds: Sequence[int], device: torch.device | str = "cpu", progress: bool = False) -> list[nn.Module]:
    """Train ``models[i]`` in place as ``train_network(models[i], ..., seed=seeds[i])`` would, all at once.

    ConvNets of one architecture train as one :class:`~distill.ensemble.ConvNetEnsemble` (the same math
    per net; tests/test_ensemble.py checks the weights against one-by-one training); other models are
    trained one by one. Returns the models in eval mode.
    """
    seeds = list(seeds)
    if len(seeds) != len(models):
        raise DistillError(f"{len(models)} models but {len(seeds)} seeds; pass one seed per model")
    if not stackable(models):
        return [train_network(m, images, labels, config, seed=s, device=device, progress=progress)
                for m, s in zip(models, seeds)]
    _check_set(images, labels)
    device = torch.device(device)
    ensemble = ConvNetEnsemble([m.to(device) for m in models]).to(device).train()
    images, labels = images.to(device), labels.to(device)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    ensemble.to(memory_format=layout)
    optimizer, scheduler = _sgd(ensemble.parameters(), config, len(images))
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
            out = ensemble(x.contiguous(memory_format=layout))
            # The sum's gradient with respect to net i's weights is net i's own loss gradient.
            loss = sum(loss_fn(out[:, i], labels[idx]) for i, idx in enumerate(batches))
            _descend(loss, optimizer, scheduler)
        _check_finite(loss)
    ensemble.write_back(models)
    return [m.to(memory_format=torch.contiguous_format).eval() for m in models]


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


def evaluate(images: Tensor, labels: Tensor, test: ClassDataset, *, network: str | Callable[[], nn.Module] = "convnet",
             config: TrainConfig, seeds: Sequence[int], device: torch.device | str = "cpu",
             num_classes: int | None = None, progress: bool = False, together: bool | None = None,
             **network_kwargs) -> EvalResult:
    """Train one fresh network per seed on ``images`` and report test accuracy at the end of training.

    ``together``: train ConvNets of one evaluation at once (:func:`train_networks`; the same math per
    net). By default only on a GPU: on a quiet 2-core CPU the grouped convolutions were slower than
    one net after another (0.74x at ipc 1, 0.92x at ipc 10; benchmarks/distill_speed.py).
    """
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
        return EvalResult.of([test_accuracy(m, test.images, test.labels, device=device) for m in iterator])
    runs = []
    for seed, model in tqdm(list(zip(seeds, models)), disable=not progress, desc="evaluate", unit="net"):
        train_network(model, images, labels, config, seed=seed, device=device, progress=progress)
        runs.append(test_accuracy(model, test.images, test.labels, device=device))
    return EvalResult.of(runs)


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
                       "epochs": train_cfg.epochs, "batch_size": train_cfg.batch_size, **net_kwargs,
                       "seconds": time.perf_counter() - start}
    return table


__all__ = ["EVAL_PROTOCOLS", "EvalResult", "evaluate", "evaluate_networks", "protocol_setup", "test_accuracy",
           "train_network", "train_networks", "TrainConfig"]
