"""The training engine (distill/core/engine.py): the same math as a plain loop, what ``auto`` means, bf16 kept in bounds."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import pytest
import torch
from torch import nn

from distill.core import hardware
from distill.core.augment import DSA
from distill.core.engine import COMPILE_MIN_STEPS, TrainConfig, fit, plan
from distill.core.networks import get_network, init_parameters
from distill.core.seeds import AUGMENT, SHUFFLE, TRAIN, stream


def _net(norm: str = "instancenorm", seed: int = 0) -> nn.Module:
    return init_parameters(get_network("convnet", num_classes=3, width=8, norm=norm), stream(seed, TRAIN))


def _plain_loop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, seed: int) -> None:
    """The loop the engine replaces, written out: the same streams, SGD, step schedule and DSA."""
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(images) / cfg.batch_size)
    decay_at = max(1, cfg.epochs // 2) * per_epoch
    dsa, shuffle, augment = DSA(cfg.dsa_strategy), stream(seed, SHUFFLE), stream(seed, AUGMENT)
    step = 0
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(images), generator=shuffle)
        for start in range(0, len(images), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            # contiguous: DSA's crop returns a strided view, for which convolutions choose other kernels
            x = dsa(images[idx], augment, siamese=False).contiguous()
            loss = nn.functional.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == decay_at:
                for group in optimizer.param_groups:
                    group["lr"] *= cfg.lr_decay


@pytest.mark.parametrize("norm,epochs", [("instancenorm", 4), ("batchnorm", 4), ("instancenorm", 1)])
def test_fp32_engine_gives_the_plain_loops_weights(tiny_dataset, norm, epochs):
    cfg = TrainConfig(epochs=epochs, batch_size=16, precision="fp32", compile=False, channels_last=False)
    images, labels = tiny_dataset.images, tiny_dataset.labels
    engine, plain = _net(norm), _net(norm)
    fit(engine, images, labels, cfg, seed=3)
    _plain_loop(plain, images, labels, cfg, seed=3)
    moved = False
    for (name, a), b, start in zip(engine.state_dict().items(), plain.state_dict().values(), _net(norm).state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
        moved |= not torch.equal(a, start)
    assert moved  # and the nets did train


def test_auto_precision_follows_the_cpu(monkeypatch):
    cfg = TrainConfig(epochs=10)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert plan(cfg, 100, "cpu").precision == "fp32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert plan(cfg, 100, "cpu").precision == "bf16"
    assert plan(replace(cfg, precision="fp32"), 100, "cpu").precision == "fp32"  # an explicit choice stays


def test_auto_compiles_long_runs_only_and_lays_them_out_channels_last(monkeypatch):
    monkeypatch.setattr(hardware, "compile_available", lambda device_type="cpu": True)
    monkeypatch.setattr("distill.core.engine.compile_available", hardware.compile_available)
    # 100 images at batch 256: one step per epoch, so the epochs are the steps
    short, long = plan(TrainConfig(epochs=COMPILE_MIN_STEPS - 1), 100), plan(TrainConfig(epochs=COMPILE_MIN_STEPS), 100)
    assert (short.compiled, short.channels_last, short.steps) == (False, False, COMPILE_MIN_STEPS - 1)
    assert (long.compiled, long.channels_last, long.steps) == (True, True, COMPILE_MIN_STEPS)
    assert plan(TrainConfig(epochs=COMPILE_MIN_STEPS, compile=False), 100).compiled is False
    monkeypatch.setattr("distill.core.engine.compile_available", lambda device_type="cpu": False)
    assert plan(TrainConfig(epochs=10 * COMPILE_MIN_STEPS), 100).compiled is False  # no compiler: eager


@pytest.mark.skipif(not hardware.native_bf16("cpu"), reason="bf16 is emulated (slow) on this CPU")
def test_bf16_keeps_fp32_master_weights_and_batchnorm_statistics(tiny_dataset):
    cfg = TrainConfig(epochs=3, batch_size=16, precision="bf16", compile=False)
    model = _net("batchnorm")
    used = fit(model, tiny_dataset.images, tiny_dataset.labels, cfg, seed=0).plan
    assert used.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    bn = model.blocks[0].norm
    assert bn.running_mean.dtype == bn.running_var.dtype == torch.float32
    assert int(bn.num_batches_tracked) == 3 * math.ceil(len(tiny_dataset.images) / 16)
    # and bf16 trains the same net as fp32 to within bf16 rounding, not to something else
    fp32 = _net("batchnorm")
    fit(fp32, tiny_dataset.images, tiny_dataset.labels, replace(cfg, precision="fp32"), seed=0)
    assert torch.allclose(model.classifier.weight, fp32.classifier.weight, atol=2e-2)
    assert not torch.equal(model.classifier.weight, fp32.classifier.weight)


def test_training_lowers_the_loss(tiny_dataset):
    losses: list[float] = []
    fit(_net(), tiny_dataset.images, tiny_dataset.labels, TrainConfig(epochs=30, batch_size=20, dsa=False),
        seed=0, loss_callback=losses.append)
    assert len(losses) == 30 * 3 and sum(losses[-3:]) < 0.5 * sum(losses[:3])


@pytest.mark.slow
def test_compiled_fp32_step_equals_eager(tiny_dataset):
    """The compiled step is the same math: fused kernels round differently, by far less than 1e-4 here."""
    if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        pytest.skip("no C++ compiler for torch.compile")
    cfg = TrainConfig(epochs=2, batch_size=30, precision="fp32", channels_last=True)
    eager, compiled = _net(), _net()
    fit(eager, tiny_dataset.images, tiny_dataset.labels, replace(cfg, compile=False), seed=1)
    used = fit(compiled, tiny_dataset.images, tiny_dataset.labels, replace(cfg, compile=True), seed=1).plan
    assert used.compiled
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_bf16_compiled_step_trains(tiny_dataset):
    losses: list[float] = []
    used = fit(_net(), tiny_dataset.images, tiny_dataset.labels, TrainConfig(epochs=20, batch_size=20, compile=True),
               seed=0, device="cuda", loss_callback=losses.append).plan
    assert used.precision == "bf16" and used.compiled
    assert sum(losses[-3:]) < sum(losses[:3])


def test_batch_callback_sees_every_image_once_per_epoch_with_its_prediction(tiny_dataset):
    from distill.core.engine import TrainConfig, fit
    from distill.core.networks import ConvNet

    seen: list[torch.Tensor] = []
    right: list[torch.Tensor] = []

    def record(idx: torch.Tensor, correct: torch.Tensor) -> None:
        assert correct.dtype == torch.bool and correct.shape == idx.shape
        seen.append(idx.clone())
        right.append(correct.clone())

    net = ConvNet(num_classes=3, channels=3, image_size=32, depth=2, width=8)
    config = TrainConfig(epochs=3, batch_size=16, lr=0.01, dsa=False, precision="fp32", compile=False)
    fit(net, tiny_dataset.images, tiny_dataset.labels, config, seed=0, batch_callback=record)
    per_epoch = -(-len(tiny_dataset) // 16)
    assert len(seen) == 3 * per_epoch
    for epoch in range(3):
        positions = torch.cat(seen[epoch * per_epoch:(epoch + 1) * per_epoch])
        assert sorted(positions.tolist()) == list(range(len(tiny_dataset)))
    # the trained net classifies these separable classes better at the end than at the start
    assert torch.cat(right[-per_epoch:]).float().mean() > torch.cat(right[:per_epoch]).float().mean()


class _Stop(Exception):
    pass


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm"])
def test_a_run_stopped_after_a_checkpoint_continues_bit_for_bit(tiny_dataset, tmp_path, norm):
    """Stopped in its fourth epoch and called again, a run ends on the weights and kept tensors of one that
    never stopped: DSA, the step decay at the midpoint and momentum all continue from the checkpoint."""
    cfg = TrainConfig(epochs=6, batch_size=16, lr_decay=0.1, precision="fp32", compile=False, channels_last=False)
    images, labels = tiny_dataset.images, tiny_dataset.labels
    per_epoch = -(-len(images) // 16)

    def counting(kept: torch.Tensor, stop_at: int | None):
        def count(idx: torch.Tensor, correct: torch.Tensor) -> None:
            kept[0] += 1
            kept[1:][idx] += correct.long()
            if stop_at is not None and int(kept[0]) == stop_at:
                raise _Stop
        return count

    whole, whole_kept = _net(norm), torch.zeros(len(images) + 1, dtype=torch.long)
    fit(whole, images, labels, cfg, seed=3, batch_callback=counting(whole_kept, None))

    path, kept = tmp_path / "run.ckpt.pt", torch.zeros(len(images) + 1, dtype=torch.long)
    with pytest.raises(_Stop):
        fit(_net(norm), images, labels, cfg, seed=3, batch_callback=counting(kept, 3 * per_epoch + 2),
            checkpoint=path, keep={"kept": kept}, checkpoint_minutes=0)
    assert path.is_file()
    kept.zero_()  # a new process: only the checkpoint knows the counts
    resumed = _net(norm)
    fit(resumed, images, labels, cfg, seed=3, batch_callback=counting(kept, None), checkpoint=path,
        keep={"kept": kept}, checkpoint_minutes=0)
    assert torch.equal(kept, whole_kept) and int(kept[0]) == 6 * per_epoch
    for (name, a), b in zip(resumed.state_dict().items(), whole.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_damaged_checkpoint_is_named_and_the_run_starts_over(tiny_dataset, tmp_path, capsys):
    cfg = TrainConfig(epochs=2, batch_size=16, precision="fp32", compile=False, channels_last=False)
    path = tmp_path / "run.ckpt.pt"
    path.write_bytes(b"\x00not a checkpoint" * 10)
    started, whole = _net(), _net()
    fit(started, tiny_dataset.images, tiny_dataset.labels, cfg, seed=3, checkpoint=path)
    fit(whole, tiny_dataset.images, tiny_dataset.labels, cfg, seed=3)
    assert "run.ckpt.pt is unreadable" in capsys.readouterr().err
    assert all(torch.equal(a, b) for a, b in zip(started.state_dict().values(), whole.state_dict().values()))


def test_a_checkpoint_of_another_network_is_refused_in_one_line(tiny_dataset, tmp_path):
    from distill.core.errors import DistillError

    cfg = TrainConfig(epochs=3, batch_size=16, precision="fp32", compile=False, channels_last=False)
    path = tmp_path / "run.ckpt.pt"

    def stop_once_saved(idx: torch.Tensor, correct: torch.Tensor) -> None:
        if path.is_file():
            raise _Stop

    with pytest.raises(_Stop):
        fit(_net(), tiny_dataset.images, tiny_dataset.labels, cfg, seed=3, checkpoint=path, checkpoint_minutes=0,
            batch_callback=stop_once_saved)
    wider = init_parameters(get_network("convnet", num_classes=3, width=16), stream(0, TRAIN))
    with pytest.raises(DistillError, match="belongs to another training run .*; delete it to start over"):
        fit(wider, tiny_dataset.images, tiny_dataset.labels, cfg, seed=3, checkpoint=path)
