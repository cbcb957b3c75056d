"""Nets trained together (one grouped ConvNet) end with the weights of nets trained one by one."""

import pytest
import torch

from distill.core.ensemble import ConvNetEnsemble, stackable
from distill.core.evaluate import TrainConfig, evaluate, train_network, train_networks
from distill.core.seeds import stream
from distill.core.networks import ConvNet, get_network, init_parameters


def _nets(norm, n=3, width=8):
    return [init_parameters(ConvNet(num_classes=3, width=width, norm=norm), stream(s, 10)) for s in range(n)]


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm"])
def test_ensemble_forward_equals_each_net(norm):
    nets = _nets(norm)
    ensemble = ConvNetEnsemble(nets).train()
    xs = [torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    out = ensemble(torch.cat(xs, dim=1))
    for i, (net, x) in enumerate(zip(nets, xs)):
        assert torch.allclose(out[:, i], net.train()(x), atol=1e-5)


# Grouped convolutions sum in another order, so the nets differ by float rounding (1e-7 a step), which
# DSA and BatchNorm on batches of 8 amplify over steps: a few steps keep that well under 1e-5.
@pytest.mark.parametrize("norm,batch,epochs", [("instancenorm", 256, 3), ("instancenorm", 8, 1), ("batchnorm", 8, 1)])
def test_training_together_equals_training_one_by_one(tiny_dataset, norm, batch, epochs):
    config = TrainConfig(epochs=epochs, batch_size=batch, precision="fp32")
    images, labels = tiny_dataset.images[::2], tiny_dataset.labels[::2]  # 30 images: several batches at batch 8
    alone = [train_network(net, images, labels, config, seed=s) for s, net in enumerate(_nets(norm))]
    together = train_networks(_nets(norm), images, labels, config, seeds=[0, 1, 2])
    for a, b in zip(alone, together):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(p.float(), q.float(), atol=1e-5), name
    # and the nets really trained: their weights moved away from the initialisation
    assert not torch.allclose(together[0].classifier.weight, _nets(norm)[0].classifier.weight)


def test_evaluate_together_reports_what_one_by_one_reports(tiny_dataset):
    config = TrainConfig(epochs=2, precision="fp32")
    kwargs = dict(config=config, seeds=[0, 1], width=8)
    together = evaluate(tiny_dataset.images, tiny_dataset.labels, tiny_dataset, together=True, **kwargs)
    alone = evaluate(tiny_dataset.images, tiny_dataset.labels, tiny_dataset, together=False, **kwargs)
    assert together.runs == pytest.approx(alone.runs, abs=1e-9)


def test_only_convnets_of_one_shape_stack():
    assert stackable(_nets("instancenorm", n=2))
    assert not stackable(_nets("instancenorm", n=1))
    assert not stackable([ConvNet(num_classes=3, width=8), ConvNet(num_classes=3, width=16)])
    assert not stackable([get_network("alexnet", num_classes=3), get_network("alexnet", num_classes=3)])
