import pytest
import torch

from distill.core.errors import DistillError
from distill.core.networks import ConvNet, get_network, init_parameters, list_networks, register_network


@pytest.mark.parametrize("name", list_networks())
def test_every_network_has_right_shape_and_gradients(name):
    torch.manual_seed(0)
    net = get_network(name, num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    out = net(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "none"])
@pytest.mark.parametrize("depth", [1, 3, 4])
def test_convnet_exposes_block_activations_and_embedding(norm, depth):
    net = ConvNet(num_classes=10, depth=depth, width=16, norm=norm)
    activations, embedding = net.features(torch.randn(2, 3, 32, 32))
    assert [a.shape[-1] for a in activations] == [32 // 2**d for d in range(depth)]
    assert all(a.shape[1] == 16 for a in activations)
    assert embedding.shape == (2, net.embedding_dim) == (2, 16 * (32 // 2**depth) ** 2)


def test_convnet_forward_equals_classifier_of_embedding():
    net = ConvNet(num_classes=10, width=8)
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(net(x), net.classifier(net.features(x)[1]))


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ValueError):
        register_network("convnet")(lambda **kw: None)
    with pytest.raises(DistillError, match="unknown network 'lenet'"):
        get_network("lenet", num_classes=10)


def test_init_parameters_is_seeded_and_matches_default_init_range():
    a = init_parameters(ConvNet(num_classes=10, width=8), torch.Generator().manual_seed(3))
    b = init_parameters(ConvNet(num_classes=10, width=8), torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    w = a.blocks[1].conv.weight
    bound = 1 / (w[0].numel() ** 0.5)
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
