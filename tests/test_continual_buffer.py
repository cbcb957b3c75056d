"""DistilledBuffer: exact class-balanced contents, stream item format, no future classes, caching."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
from avalanche.benchmarks.utils import as_classification_dataset

from continual import DistilledBuffer
from continual.buffer import _canonical_order
from continual.benchmark import make_benchmark
from continual.testing import tiny_dataset
from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill as real_distill

ORDER = [2, 0, 3, 1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread avoids thread-pool overhead on a busy machine (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(4, 12, seed=0), tiny_dataset(4, 4, seed=1)


@pytest.fixture(scope="module")
def bench(data):
    train, test = data
    return make_benchmark(train, test, steps=2, order=ORDER)


def label_counts(buffer) -> Counter:
    return Counter(int(buffer.buffer[i][1]) for i in range(len(buffer.buffer)))


def test_holds_exactly_ipc_per_seen_class_and_none_for_unseen(bench):
    buffer = DistilledBuffer(8, method="random", ipc=2, cache_dir=False)
    assert len(buffer.buffer) == 0
    seen: set[int] = set()
    for exp in bench.train_stream:
        buffer.post_adapt(None, exp)
        seen |= set(exp.classes_in_this_experience)
        counts = label_counts(buffer)
        assert counts == {c: 2 for c in seen}
        assert len(buffer.buffer) == 2 * len(seen) == buffer.num_images
        assert buffer.num_bytes == 2 * len(seen) * 3 * 8 * 8 * 4


def test_capacity_smaller_than_ipc_times_classes_stays_balanced(bench):
    buffer = DistilledBuffer(6, method="random", ipc=3, cache_dir=False)
    buffer.post_adapt(None, bench.train_stream[0])
    assert label_counts(buffer) == {0: 3, 2: 3}
    buffer.post_adapt(None, bench.train_stream[1])
    assert label_counts(buffer) == {0: 1, 1: 1, 2: 1, 3: 1}  # 6 // 4 classes


def test_resize_keeps_class_balance(bench):
    buffer = DistilledBuffer(12, method="herding", ipc=3, cache_dir=False,
                             distill_config=DistillConfig(width=8))
    for exp in bench.train_stream:
        buffer.post_adapt(None, exp)
    full = {c: buffer.tensors()[0][buffer.tensors()[1] == c] for c in range(4)}
    buffer.resize(None, 9)
    assert buffer.max_size == 9 and label_counts(buffer) == {c: 2 for c in range(4)}
    # a smaller memory keeps each class's first (for herding: first-selected) images
    images, labels = buffer.tensors()
    for c in range(4):
        assert torch.equal(images[labels == c], full[c][:2])
    buffer.resize(None, 4)
    assert label_counts(buffer) == {c: 1 for c in range(4)}
    buffer.resize(None, 40)
    assert label_counts(buffer) == {c: 3 for c in range(4)}  # never more than ipc
    with pytest.raises(DistillError, match="cannot hold one image"):
        buffer.resize(None, 3)


def test_items_match_stream_format_labels_and_transform_groups(bench, data):
    buffer = DistilledBuffer(8, method="random", ipc=2, cache_dir=False, transform=lambda x: x + 100.0)
    exp = bench.train_stream[0]
    buffer.post_adapt(None, exp)
    item, stream_item = buffer.buffer[0], exp.dataset[0]
    assert len(item) == len(stream_item) == 3
    assert item[2] == stream_item[2] == 0
    assert item[0].shape == stream_item[0].shape and item[0].dtype == stream_item[0].dtype
    # train group applies the transform, eval group shows the stored memory
    raw = buffer.buffer.eval()[0][0]
    assert torch.allclose(item[0], raw + 100.0)

    # an (x, y) stream gets (x, y) memory items
    train, _ = data
    plain = TensorDataset(train.images, train.labels)
    plain.targets = train.labels.tolist()
    ds = as_classification_dataset(plain)
    xy = class_incremental_benchmark({"train": ds, "test": ds}, class_order=ORDER, num_experiences=2)
    buffer2 = DistilledBuffer(8, method="random", ipc=2, cache_dir=False)
    buffer2.post_adapt(None, xy.train_stream[0])
    assert len(xy.train_stream[0].dataset[0]) == 2 and len(buffer2.buffer[0]) == 2
    assert {int(buffer2.buffer[i][1]) for i in range(len(buffer2.buffer))} == {0, 2}


def test_memories_come_from_the_experience_only(bench, data, monkeypatch):
    train, _ = data
    calls = []

    def spy(real, cfg, *, classes, **kwargs):
        calls.append((list(classes), sorted(set(real.labels.tolist())), real.images.clone()))
        return real_distill(real, cfg, classes=classes, **kwargs)

    monkeypatch.setattr("distill.methods.distill", spy)
    buffer = DistilledBuffer(8, method="random", ipc=2, cache_dir=False)
    buffer.post_adapt(None, bench.train_stream[0])
    assert [c for c, _, _ in calls] == [[0], [2]]
    for (c,), labels, images in calls:
        assert labels == [c]
        # exactly that class's data of this experience (in a canonical order)
        assert torch.equal(images, _canonical_order(train.images_of(c)))
    # nothing of classes 1 and 3 (the next experience) is in the memory
    memory, _ = buffer.tensors()
    future = torch.cat([train.images_of(1), train.images_of(3)])
    assert not any(torch.equal(m, f) for m in memory for f in future)
    assert all(any(torch.equal(m, r) for r in train.images) for m in memory)


def test_distilled_method_changes_images_and_cache_skips_second_distillation(bench, tmp_path, monkeypatch):
    cfg = DistillConfig(iterations=3, batch_real=4, width=8)
    first = DistilledBuffer(8, method="datadam", ipc=2, distill_config=cfg, cache_dir=tmp_path)
    first.post_adapt(None, bench.train_stream[0])
    assert len(list(tmp_path.glob("datadam-class*-ipc2-seed0-*.pt"))) == 2
    random_buffer = DistilledBuffer(8, method="random", ipc=2, cache_dir=False)
    random_buffer.post_adapt(None, bench.train_stream[0])
    assert not torch.equal(first.tensors()[0], random_buffer.tensors()[0])  # init=real, then optimised

    def fail(*args, **kwargs):
        raise AssertionError("distilled again despite the cache")

    monkeypatch.setattr("distill.methods.distill", fail)
    second = DistilledBuffer(8, method="datadam", ipc=2, distill_config=cfg, cache_dir=tmp_path)
    second.post_adapt(None, bench.train_stream[0])
    assert second.cache_hits == 2 and torch.equal(first.tensors()[0], second.tensors()[0])
    # another seed is another memory
    third = DistilledBuffer(8, method="datadam", ipc=2, distill_config=cfg, cache_dir=tmp_path, seed=1)
    with pytest.raises(AssertionError, match="distilled again"):
        third.post_adapt(None, bench.train_stream[0])


def test_memory_of_a_class_does_not_depend_on_class_order_or_steps(data, tmp_path):
    train, test = data
    cfg = DistillConfig(iterations=2, batch_real=4, width=8)
    memories = []
    for steps, order in ((2, ORDER), (4, [1, 3, 0, 2]), (2, [3, 1, 2, 0])):
        bench = make_benchmark(train, test, steps=steps, order=order)
        buffer = DistilledBuffer(8, method="dm", ipc=2, distill_config=cfg, cache_dir=tmp_path)
        for exp in bench.train_stream:
            buffer.post_adapt(None, exp)
        memories.append(buffer)
    for c in range(4):
        assert torch.equal(memories[0].memories[c], memories[1].memories[c])
    assert memories[1].cache_hits == memories[2].cache_hits == 4  # one distillation per class in all


def test_precomputed_synthetic_set(bench, data):
    train, _ = data
    synthetic = real_distill(train, DistillConfig(method="random", ipc=3), seed=0, progress=False)
    buffer = DistilledBuffer(8, synthetic=synthetic, ipc=2)
    buffer.post_adapt(None, bench.train_stream[0])
    images, labels = buffer.tensors()
    assert torch.equal(images[labels == 2], synthetic.images_of(2)[:2])

    # a stream normalised differently gets the images re-normalised into its space
    renorm = DistilledBuffer(8, synthetic=synthetic, ipc=2, normalization=((0.0,) * 3, (1.0,) * 3))
    renorm.post_adapt(None, bench.train_stream[0])
    assert torch.allclose(renorm.tensors()[0][:2], synthetic.images_of(0)[:2] * 0.25 + 0.5)

    partial = synthetic.subset([0, 2])
    buffer = DistilledBuffer(8, synthetic=partial)
    buffer.post_adapt(None, bench.train_stream[0])
    with pytest.raises(DistillError) as info:
        buffer.post_adapt(None, bench.train_stream[1])
    assert "no images for class 1" in str(info.value) and "\n" not in str(info.value)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(DistillError, match="unknown memory method 'nope'"):
        DistilledBuffer(8, method="nope")
    with pytest.raises(DistillError, match="ipc must be at least 1"):
        DistilledBuffer(8, ipc=0)


def _tiny_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))


def test_drop_in_with_plain_avalanche_naive_and_replay_plugin(bench, tmp_path):
    """An ordinary Avalanche experiment, not driven by this project, with the buffer plugged in."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.supervised import Naive

    storage = DistilledBuffer(8, method="dm", ipc=2, distill_config=DistillConfig(iterations=2, batch_real=4, width=8),
                              cache_dir=tmp_path)
    model = _tiny_model()
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=8, eval_mb_size=16, train_epochs=1,
                     plugins=[ReplayPlugin(mem_size=8, storage_policy=storage)],
                     evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
    seen: set[int] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # update() must not take the deprecated path
        for i, exp in enumerate(bench.train_stream):
            strategy.train(exp, num_workers=0)
            seen |= set(exp.classes_in_this_experience)
            assert label_counts(storage) == {c: 2 for c in seen}
            metrics = strategy.eval(bench.test_stream[:i + 1], num_workers=0)
            assert 0.0 <= metrics["Top1_Acc_Stream/eval_phase/test_stream"] <= 1.0
    assert storage.distill_seconds > 0


def test_works_as_gdumb_plugin_storage(bench):
    from avalanche.training.plugins import EvaluationPlugin, GDumbPlugin
    from avalanche.training.supervised import Naive

    from avalanche.training.plugins import SupervisedPlugin

    class Spy(SupervisedPlugin):
        sizes: list[int] = []

        def before_training_exp(self, strategy, **kwargs):
            self.sizes.append(len(strategy.adapted_dataset))

    plugin = GDumbPlugin(mem_size=8)
    plugin.storage_policy = DistilledBuffer(8, method="random", ipc=2, cache_dir=False)
    model = _tiny_model()
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=8, eval_mb_size=16, train_epochs=1,
                     plugins=[plugin, Spy()], evaluator=EvaluationPlugin(loggers=[]))
    for exp in bench.train_stream:
        strategy.train(exp, num_workers=0)
    # GDumb trains on the memory only, which the buffer filled before training: 2 then 4 classes x 2
    assert Spy.sizes == [4, 8]
    assert label_counts(plugin.storage_policy) == {c: 2 for c in range(4)}


@pytest.mark.parametrize("method", ["kcenter", "forgetting"])
def test_coreset_memories_are_real_images_of_their_class(bench, method, tmp_path):
    buffer = DistilledBuffer(8, method=method, ipc=2, cache_dir=tmp_path, distill_config=DistillConfig(width=8))
    for exp in bench.train_stream:
        buffer.post_adapt(None, exp)
        real = {int(c): torch.stack([x for x, y, *_ in exp.dataset.eval() if int(y) == c])
                for c in exp.classes_in_this_experience}
        for c, own in real.items():
            for image in buffer.memories[c]:
                assert (own == image).flatten(1).all(1).any()
    assert label_counts(buffer) == {c: 2 for c in range(4)}
    again = DistilledBuffer(8, method=method, ipc=2, cache_dir=tmp_path, distill_config=DistillConfig(width=8))
    for exp in bench.train_stream:
        again.post_adapt(None, exp)
    assert again.cache_hits == len(bench.train_stream) if method == "forgetting" else again.cache_hits == 4
    assert all(torch.equal(buffer.memories[c], again.memories[c]) for c in range(4))
