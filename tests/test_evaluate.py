import torch

from distill.core.data import from_tensors
from distill.core.evaluate import EvalResult, TrainConfig, evaluate


def _separable(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat(n // 2)
    images = torch.randn(n, 3, 32, 32, generator=g) * 0.5
    images[labels == 1, 0] += 1.5  # class 1 is redder
    return images, labels


def test_training_learns_and_is_reproducible_per_seed():
    x, y = _separable(40, 0)
    test = from_tensors(*_separable(200, 1), ["blue", "red"])
    cfg = TrainConfig(epochs=15, batch_size=20, lr=0.01, dsa=True)
    a = evaluate(x, y, test, network="convnet", config=cfg, seeds=[0, 1], width=16)
    b = evaluate(x, y, test, network="convnet", config=cfg, seeds=[0, 1], width=16)
    assert a.runs == b.runs
    assert a.mean > 90
    assert isinstance(a, EvalResult) and len(a.runs) == 2
