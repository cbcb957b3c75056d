"""K-Center and Forgetting: real images of their class, the farthest point, forgetting events counted right."""

from __future__ import annotations

import time

import pytest
import torch

from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill, result_key
from distill.methods.coreset import (ForgettingCounter, forgetting_order, forgetting_scores, kcenter_select)


def _cfg(method: str, ipc: int = 4) -> DistillConfig:
    return DistillConfig(method=method, ipc=ipc, depth=2, width=8)


@pytest.mark.parametrize("method", ["kcenter", "forgetting"])
def test_every_selected_image_is_a_real_image_of_its_class(tiny_dataset, method):
    synthetic = distill(tiny_dataset, _cfg(method), seed=0, progress=False)
    assert synthetic.images.shape == (12, 3, 32, 32)
    for image, label in zip(synthetic.images, synthetic.labels):
        own = tiny_dataset.images_of(int(label))
        assert (own == image).flatten(1).all(1).sum() == 1  # a training image of this class, not of another
    for c in range(3):  # no image twice
        picked = synthetic.images_of(c).flatten(1)
        assert len(torch.unique(picked, dim=0)) == len(picked)


@pytest.mark.parametrize("method", ["kcenter", "forgetting"])
def test_selection_is_seeded(tiny_dataset, method):
    a = distill(tiny_dataset, _cfg(method), seed=1, progress=False)
    b = distill(tiny_dataset, _cfg(method), seed=1, progress=False)
    assert torch.equal(a.images, b.images)


def test_kcenter_picks_the_farthest_point():
    # From (0, 0): the farthest is (10, 0); then the point farthest from both centres, (0, 6).
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 6.0], [9.0, 1.0], [0.5, 0.5]])
    assert kcenter_select(points, 3, first=0).tolist() == [0, 2, 3]
    assert kcenter_select(points, 1, first=4).tolist() == [4]


def test_kcenter_never_repeats_duplicates():
    points = torch.zeros(5, 3)
    assert sorted(kcenter_select(points, 5).tolist()) == [0, 1, 2, 3, 4]


def test_forgetting_events_on_a_scripted_sequence():
    # Presentations of 4 examples; 1 = classified correctly at that presentation.
    script = [
        [1, 0, 0, 1],
        [0, 1, 0, 1],   # example 0 forgotten
        [1, 0, 0, 1],   # example 1 forgotten
        [0, 1, 0, 1],   # example 0 forgotten again
        [1, 1, 0, 1],
    ]
    counter = ForgettingCounter(4)
    for row in script:
        counter.update(torch.arange(4), torch.tensor(row, dtype=torch.bool))
    assert counter.events.tolist() == [2, 1, 0, 0]
    assert counter.learned.tolist() == [True, True, False, True]
    assert counter.scores().tolist() == [2.0, 1.0, float("inf"), 0.0]


def test_forgetting_counts_follow_each_example_across_minibatches():
    counter = ForgettingCounter(3)
    counter.update(torch.tensor([2, 0]), torch.tensor([True, True]))
    counter.update(torch.tensor([1]), torch.tensor([False]))
    counter.update(torch.tensor([0, 1, 2]), torch.tensor([False, True, True]))
    assert counter.events.tolist() == [1, 0, 0]


def test_forgetting_order_puts_never_learned_first_and_breaks_ties_by_seed():
    scores = torch.tensor([1.0, float("inf"), 0.0, 3.0, 1.0, 1.0])
    order = forgetting_order(scores, torch.Generator().manual_seed(0)).tolist()
    assert order[:2] == [1, 3] and order[-1] == 2 and sorted(order[2:5]) == [0, 4, 5]
    again = forgetting_order(scores, torch.Generator().manual_seed(0)).tolist()
    assert order == again


def test_forgetting_counts_are_cached_for_every_ipc(tiny_dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path))
    cfg = _cfg("forgetting").resolved("cpu")
    first = forgetting_scores(tiny_dataset, [0, 1, 2], cfg, seed=0, device=torch.device("cpu"), epochs=2)
    assert len(list((tmp_path / "forgetting").glob("*.pt"))) == 1 and first.seconds > 0
    import distill.methods.coreset as coreset

    monkeypatch.setattr(coreset, "_train_and_count", lambda *a, **k: pytest.fail("the cached counts were not used"))
    for ipc in (1, 5):
        again = forgetting_scores(tiny_dataset, [0, 1, 2], _cfg("forgetting", ipc).resolved("cpu"), seed=0,
                                  device=torch.device("cpu"), epochs=2)
        assert torch.equal(first.scores, again.scores) and again.seconds == first.seconds  # the counting's cost


def test_interrupted_counting_continues_to_the_same_counts(tiny_dataset, monkeypatch, tmp_path):
    """The counting run checkpoints beside its cache entry; stopped and called again, it gives the counts of
    a run that never stopped and leaves only the entry. Its seconds add those of the call that was stopped."""
    import functools

    import distill.methods.coreset as coreset

    cfg, cpu = _cfg("forgetting").resolved("cpu"), torch.device("cpu")
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "whole"))
    whole = forgetting_scores(tiny_dataset, [0, 1, 2], cfg, seed=0, device=cpu, epochs=4)

    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "parts"))
    fit, calls = coreset.fit, []

    def fit_that_stops(*args, batch_callback, **kwargs):
        def count(idx, correct):
            calls.append(1)
            if len(calls) == 3:  # 60 images in batches of 128: the third epoch's one batch
                time.sleep(1.0)  # time the checkpoint of epoch 2 (saved before this batch) does not hold
                raise KeyboardInterrupt
            if len(calls) == 2:
                time.sleep(1.0)  # the stopped call's time, which the checkpoint after epoch 2 holds
            batch_callback(idx, correct)
        return fit(*args, batch_callback=count, **{**kwargs, "checkpoint_minutes": 0})

    monkeypatch.setattr(coreset, "fit", fit_that_stops)
    with pytest.raises(KeyboardInterrupt):
        forgetting_scores(tiny_dataset, [0, 1, 2], cfg, seed=0, device=cpu, epochs=4)
    (partial,) = (tmp_path / "parts" / "forgetting").glob("*.checkpoint.pt")
    monkeypatch.setattr(coreset, "fit", functools.partial(fit, checkpoint_minutes=0))
    started = time.perf_counter()
    again = forgetting_scores(tiny_dataset, [0, 1, 2], cfg, seed=0, device=cpu, epochs=4)
    assert torch.equal(again.scores, whole.scores)
    assert again.seconds > time.perf_counter() - started + 0.5  # the stopped call's second, through its checkpoint
    assert not partial.exists() and len(list(partial.parent.glob("*.pt"))) == 1


def test_the_counting_shows_a_bar_when_the_run_does(tiny_dataset, monkeypatch, tmp_path, capsys):
    """Forgetting's counting is the one selection that takes long (an hour and more on CIFAR-10)."""
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path))
    for progress, seed in ((False, 0), (True, 1)):  # another seed: not the cached counts
        capsys.readouterr()
        made = distill(tiny_dataset, DistillConfig(method="forgetting", ipc=2, depth=2, width=8, counting_epochs=3),
                       seed=seed, progress=progress)
        assert ("train:   0%| " in capsys.readouterr().err) == progress  # drawn at its start, whatever the speed
        assert made.config["counting_images"] == len(tiny_dataset.labels)  # every class's images were counted


def test_forgetting_needs_two_classes(tiny_dataset):
    with pytest.raises(DistillError, match="two classes"):
        distill(tiny_dataset, _cfg("forgetting"), classes=[1], progress=False)


def test_too_few_images_is_a_clear_error(tiny_dataset):
    with pytest.raises(DistillError, match="fewer than ipc"):
        distill(tiny_dataset, _cfg("kcenter", ipc=21), progress=False)


def test_cache_key_reads_only_what_selection_reads():
    a = result_key(DistillConfig(method="kcenter", iterations=5))
    b = result_key(DistillConfig(method="kcenter", iterations=500))
    assert a == b and a["method"] == "kcenter"
