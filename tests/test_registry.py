"""One registry type, methods that carry their own knowledge, and the one content key (issue 21)."""

import hashlib
import json

import pytest
import torch

from distill.core.cache import content_key
from distill.core.errors import DistillError
from distill.methods import DistillConfig, MethodOutput, get_method, list_methods, register_method
from distill.core.registry import Registry


def test_registry_refuses_a_taken_name_and_names_the_known_ones():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    reg.decorator("b")(lambda: None)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.add("a", 2)
    with pytest.raises(DistillError, match=r"unknown widget 'c'; choose one of a, b"):
        reg.get("c")
    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
    reg.remove("a")
    assert reg.names() == ["b"]


@pytest.fixture
def plugin_method():
    """A method registered the way a user would, removed afterwards."""
    from distill import methods

    @register_method("first-images", reads=("method", "ipc"), encoder=False, label="First", color="black",
                     experiments=("continual", "nas"))
    def first_images(train, classes, config, *, seed, device):
        return MethodOutput(torch.cat([train.images_of(c)[:config.ipc] for c in classes]))

    yield "first-images"
    methods._REGISTRY.remove("first-images")


def test_a_registered_method_reaches_continual_and_nas_without_touching_them(plugin_method, tiny_dataset):
    from continual.plot import style
    from nas.config import SearchConfig
    from nas.proxies import SetContext, get_proxy, list_proxies

    assert plugin_method in list_methods("continual") and plugin_method in list_methods("nas")
    assert style(plugin_method) == ("black", "First")
    assert plugin_method in list_proxies()
    # The NAS proxy of the method trains candidates on the method's own set, made on the spot.
    config = SearchConfig(proxy=[plugin_method], ipc=2, images_seen=12)
    made = get_proxy(plugin_method).build_set(config, tiny_dataset, SetContext({}), torch.device("cpu"), False)
    expected = torch.cat([tiny_dataset.images_of(c)[:2] for c in range(3)])
    assert made.images.equal(expected) and made.epochs == 2
    with pytest.raises(DistillError, match="unknown proxy 'nope'"):
        get_proxy("nope")


def test_methods_say_how_they_are_shown_and_what_they_default_to():
    assert get_method("datadam").describe("official") == "datadam (official)"
    assert get_method("dm").describe("paper") == "dm"  # no variants: the variant is not its to show
    assert get_method("random").baseline and get_method("dm").baseline and not get_method("datadam").baseline
    official = DistillConfig(method="datadam", variant="official").resolved("cpu")
    assert (official.norm, official.power, official.batch_real) == ("batchnorm", 1.0, 64)
    dm = DistillConfig(method="dm", variant="official").resolved("cpu")  # DM has no variants: the encoder's own
    assert (dm.norm, dm.batch_real, dm.lambda_mmd, dm.loss_scale) == ("instancenorm", 256, 1.0, 1.0)
    with pytest.raises(DistillError, match="unknown variant 'fast'; choose paper or official"):
        DistillConfig(variant="fast").resolved("cpu")


def test_content_key_reads_content_and_keeps_the_keys_already_written():
    record = {"b": [1, 2], "a": "x"}
    # A settings record keys as its canonical JSON did before the helper existed: checkpoints stay resumable.
    assert content_key(record, length=None) == hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
    assert content_key({"a": "x", "b": [1, 2]}) == content_key(record)
    images = torch.zeros(2, 3, 4, 4)
    changed = images.clone()
    changed[1, 2, 3, 3] = 1e-3
    assert content_key(images) != content_key(changed)
    assert content_key(images) != content_key(images.reshape(4, 3, 2, 4))  # same bytes, another shape
    assert content_key(record, images) != content_key(record, changed)
