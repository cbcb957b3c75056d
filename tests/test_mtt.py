"""MTT: the matching loss's gradient against finite differences, the experts' cache, the public code's settings."""

import pytest
import torch

from distill.core.augment import DSA
from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill, get_method, list_methods
from distill.methods import trajectory
from distill.methods.trajectory import expert_trajectories, flat_parameters, trajectory_loss
from distill.core.networks import ConvNet, init_parameters


def _tiny_problem(strategy: str):
    torch.manual_seed(0)
    net = init_parameters(ConvNet(num_classes=3, channels=1, image_size=4, depth=1, width=2),
                          torch.Generator().manual_seed(0)).double()
    start = flat_parameters(net)
    target = start + 0.05 * torch.randn(start.shape, dtype=torch.float64)
    images = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])

    def loss(x, lr):
        return trajectory_loss(net, start, target, x, labels, lr, syn_steps=3, dsa=DSA(strategy),
                               generator=torch.Generator().manual_seed(5))

    return images, loss


@pytest.mark.parametrize("strategy", ["none", "scale_rotate"])
def test_gradient_in_images_and_lr_agrees_with_finite_differences(strategy):
    images, loss = _tiny_problem(strategy)
    x = images.clone().requires_grad_(True)
    lr = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    g_x, g_lr = torch.autograd.grad(loss(x, lr), [x, lr])
    h = 1e-6
    with torch.no_grad():
        d = torch.randn(images.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        numeric_x = (loss(images + h * d, lr) - loss(images - h * d, lr)) / (2 * h)
        numeric_lr = (loss(images, lr + h) - loss(images, lr - h)) / (2 * h)
    assert float((g_x * d).sum()) == pytest.approx(float(numeric_x), rel=1e-3)
    assert float(g_lr) == pytest.approx(float(numeric_lr), rel=1e-3)


def test_loss_is_one_where_the_student_does_not_move():
    images, loss = _tiny_problem("none")
    assert float(loss(images, torch.tensor(0.0, dtype=torch.float64)).detach()) == pytest.approx(1.0)


def test_defaults_are_the_public_codes_cifar10_rows():
    one = DistillConfig(method="mtt", ipc=1).resolved("cpu")
    assert (one.syn_steps, one.expert_epochs, one.max_start_epoch, one.lr_img, one.lr_lr, one.lr_teacher,
            one.zca) == (50, 2, 2, 100.0, 1e-7, 0.01, True)
    ten = DistillConfig(method="mtt", ipc=10).resolved("cpu")
    assert (ten.syn_steps, ten.max_start_epoch, ten.zca) == (30, 20, True)
    fifty = DistillConfig(method="mtt", ipc=50).resolved("cpu")
    assert (fifty.max_start_epoch, fifty.lr_img, fifty.zca) == (40, 1000.0, False)
    assert (one.num_experts, one.expert_train_epochs) == (100, 50)
    assert get_method("mtt").presets["paper"]["iterations"] == 5000
    assert not get_method("mtt").per_class  # experts learn all classes of the call together


def _smoke(**changes) -> DistillConfig:
    return DistillConfig(method="mtt", ipc=2, precision="fp32", **{**get_method("mtt").presets["smoke"], **changes})


def test_experts_are_cached_by_what_they_read(tiny_dataset, monkeypatch):
    cfg = _smoke().resolved("cpu")
    first = expert_trajectories(tiny_dataset, [0, 1, 2], cfg, seed=7, device=torch.device("cpu"))
    assert len(first) == 1 and first[0].shape[0] == cfg.expert_train_epochs + 1
    net = init_parameters(ConvNet(num_classes=3, depth=2, width=8), trajectory.stream(7, trajectory.EXPERT_NET, 0))
    assert torch.equal(first[0][0], flat_parameters(net))  # epoch 0 is the initial network
    assert not torch.equal(first[0][0], first[0][-1])

    def no_training(*args, **kwargs):
        raise AssertionError("a cached expert was trained again")

    monkeypatch.setattr(trajectory, "train_expert", no_training)
    again = expert_trajectories(tiny_dataset, [0, 1, 2], cfg, seed=7, device=torch.device("cpu"))
    assert torch.equal(first[0], again[0])
    with pytest.raises(AssertionError, match="trained again"):  # other data: another key
        expert_trajectories(tiny_dataset.subset([0, 1]), [0, 1], cfg, seed=7, device=torch.device("cpu"))


def test_registered_and_runs_its_smoke_preset_in_seconds(tiny_dataset):
    import time

    assert "mtt" in list_methods()
    began = time.perf_counter()
    out = distill(tiny_dataset, _smoke(), seed=0, progress=False)
    assert time.perf_counter() - began < 15
    assert out.images.shape == (6, 3, 32, 32) and torch.isfinite(out.images).all()
    assert out.config["learned_lr"] != pytest.approx(out.config["lr_teacher"], abs=0)  # the lr is learned
    # ... and its evaluation nets train at it, as MTT's evaluate_synset does; a set that learned none keeps 0.01
    from distill.job import RunConfig, eval_setup

    assert eval_setup(RunConfig(), "convnet", out)[0].lr == out.config["learned_lr"]
    plain = distill(tiny_dataset, DistillConfig(method="random", ipc=2), progress=False)
    assert eval_setup(RunConfig(), "convnet", plain)[0].lr == eval_setup(RunConfig())[0].lr == 0.01


def test_refuses_segments_beyond_the_experts_and_takes_the_last_one_that_fits(tiny_dataset):
    # Starts are drawn below max_start_epoch: 0..2 with 3, so 2 + 1 epochs passes experts of 2 epochs.
    with pytest.raises(DistillError, match="expert-train-epochs to 3 "):
        distill(tiny_dataset, _smoke(max_start_epoch=3, expert_epochs=1, expert_train_epochs=2), progress=False)
    # 0..1 + 1 epochs ends at snapshot 2, the experts' last: it fits.
    out = distill(tiny_dataset, _smoke(max_start_epoch=2, expert_epochs=1, expert_train_epochs=2), progress=False)
    assert torch.isfinite(out.images).all()


def test_a_resumed_run_equals_an_uninterrupted_one(tiny_dataset, tmp_path):
    whole = distill(tiny_dataset, _smoke(iterations=3, checkpoint_minutes=0.0), seed=2, progress=False)
    distill(tiny_dataset, _smoke(iterations=1, checkpoint_minutes=0.0), seed=2, progress=False,
            checkpoint=tmp_path / "ck.pt")
    resumed = distill(tiny_dataset, _smoke(iterations=3, checkpoint_minutes=0.0), seed=2, progress=False,
                      checkpoint=tmp_path / "ck.pt", resume=True)
    assert torch.equal(resumed.images, whole.images)
    assert resumed.config["learned_lr"] == whole.config["learned_lr"]  # the lr and both optimizers resumed too
