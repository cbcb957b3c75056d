"""DC: the gradient distance against its formula, the public code's settings, one step against a transcription."""

import pytest
import torch
import torch.nn.functional as F

from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill, get_method, list_methods
from distill.methods.gradient import gradient_distance, inner_train_config
from distill.core.networks import ConvNet, init_parameters
from distill.core.seeds import NET, STEP, real_indices, stream


def test_distance_is_one_minus_cos_per_output_channel_without_biases():
    # conv weight (2 out, 1 in, 1, 2): channel 0 orthogonal (1 - cos = 1), channel 1 parallel (0)
    conv_r = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 1.0]]]])
    conv_s = torch.tensor([[[[0.0, 1.0]]], [[[2.0, 2.0]]]])
    # linear weight (2 out, 2 in): row 0 opposite (2), row 1 at 45 degrees (1 - 1/sqrt 2)
    lin_r = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    lin_s = torch.tensor([[-3.0, -4.0], [1.0, 1.0]])
    bias_r, bias_s = torch.tensor([1.0, 2.0]), torch.tensor([-5.0, 7.0])
    got = gradient_distance([conv_r, bias_r, lin_r], [conv_s, bias_s, lin_s])
    eps = 1e-6
    expected = ((1 - 0 / (1 * 1 + eps)) + (1 - 4 / (2**0.5 * 8**0.5 + eps))
                + (1 - (-25) / (5 * 5 + eps)) + (1 - 1 / (1 * 2**0.5 + eps)))
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # grouping matters: one cosine over the whole conv gradient would give 1 - 4/(sqrt 3 * 3), not 1 + 0
    assert got.item() != pytest.approx((1 - 4 / (3**0.5 * 3)) + 2 + (1 - 2**-0.5), abs=1e-3)
    # biases (one-dimensional) are left out
    assert gradient_distance([conv_r, bias_s, lin_r], [conv_s, bias_r, lin_s]).item() == pytest.approx(got.item())


@pytest.mark.parametrize("ipc,loops", [(1, (1, 1)), (10, (10, 50)), (50, (50, 10))])
def test_defaults_are_the_public_codes(ipc, loops):
    cfg = DistillConfig(method="dc", ipc=ipc).resolved("cpu")
    assert (cfg.outer_loop, cfg.inner_loop) == loops
    assert (cfg.lr_img, cfg.lr_net, cfg.batch_real, cfg.norm, cfg.zca) == (0.1, 0.01, 256, "instancenorm", False)
    assert DistillConfig(method="dc", ipc=ipc, lr_img=0.5).resolved("cpu").lr_img == 0.5  # a flag still wins
    assert DistillConfig(method="datadam", ipc=ipc).resolved("cpu").lr_img == 1.0  # others keep theirs
    assert get_method("dc").presets["paper"]["iterations"] == 1000


def test_inner_loop_is_plain_sgd_at_lr_net():
    cfg = DistillConfig(method="dc", ipc=10).resolved("cpu")
    train = inner_train_config(cfg, epochs=cfg.inner_loop, dsa=False)
    assert (train.epochs, train.lr, train.momentum, train.weight_decay, train.lr_decay, train.dsa) == \
        (50, 0.01, 0.0, 0.0, 1.0, False)


def test_first_update_equals_a_transcription_of_the_paper(tiny_dataset):
    cfg = DistillConfig(method="dc", ipc=2, iterations=1, outer_loop=1, inner_loop=0, batch_real=5, depth=2, width=8,
                        precision="fp32", momentum=0.5)
    out = distill(tiny_dataset, cfg, seed=4, progress=False)
    start = distill(tiny_dataset, DistillConfig(method="random", ipc=2), seed=4, progress=False).images
    syn = start.clone().requires_grad_(True)
    net = init_parameters(ConvNet(num_classes=3, depth=2, width=8), stream(4, NET, 0))
    params = list(net.parameters())
    total = 0
    for c in range(3):
        real = tiny_dataset.images_of(c)[real_indices(20, 5, stream(4, STEP, 0, 0, c))]
        y_real, y_syn = torch.full((5,), c), torch.full((2,), c)
        g_real = torch.autograd.grad(F.cross_entropy(net(real), y_real), params)
        g_syn = torch.autograd.grad(F.cross_entropy(net(syn[2 * c:2 * c + 2]), y_syn), params, create_graph=True)
        for gr, gs in zip(g_real, g_syn):
            if gr.ndim > 1:
                gr, gs = gr.flatten(1), gs.flatten(1)
                total = total + (1 - (gr * gs).sum(1) / (gr.norm(dim=1) * gs.norm(dim=1) + 1e-6)).sum()
    (grad,) = torch.autograd.grad(total, syn)
    assert torch.allclose(out.images, start - 0.1 * grad, atol=1e-5)  # SGD's first step: momentum buffer = grad


def test_registered_and_runs_its_smoke_preset_in_seconds(tiny_dataset):
    import time

    assert "dc" in list_methods()
    smoke = get_method("dc").presets["smoke"]
    began = time.perf_counter()
    a = distill(tiny_dataset, DistillConfig(method="dc", ipc=2, precision="fp32", **smoke), seed=1, progress=False)
    assert time.perf_counter() - began < 10
    b = distill(tiny_dataset, DistillConfig(method="dc", ipc=2, precision="fp32", **smoke), seed=1, progress=False)
    assert a.images.shape == (6, 3, 32, 32) and a.iterations == 2 and torch.isfinite(a.images).all()
    assert torch.equal(a.images, b.images)  # seeded


def test_refuses_an_ipc_without_loop_counts_and_batchnorm(tiny_dataset):
    with pytest.raises(DistillError, match="--outer-loop"):
        distill(tiny_dataset, DistillConfig(method="dc", ipc=3, iterations=1, width=8, depth=2), progress=False)
    with pytest.raises(DistillError, match="instancenorm"):
        distill(tiny_dataset, DistillConfig(method="dc", ipc=1, iterations=1, width=8, depth=2, norm="batchnorm"),
                progress=False)


def test_a_resumed_run_equals_an_uninterrupted_one(tiny_dataset, tmp_path):
    smoke = {**get_method("dc").presets["smoke"], "checkpoint_minutes": 0.0}
    cfg = DistillConfig(method="dc", ipc=1, precision="fp32", **{**smoke, "iterations": 3})
    whole = distill(tiny_dataset, cfg, seed=2, progress=False)
    part = DistillConfig(method="dc", ipc=1, precision="fp32", **{**smoke, "iterations": 1})
    distill(tiny_dataset, part, seed=2, progress=False, checkpoint=tmp_path / "ck.pt")
    resumed = distill(tiny_dataset, cfg, seed=2, progress=False, checkpoint=tmp_path / "ck.pt", resume=True)
    assert resumed.iterations == 3 and torch.equal(resumed.images, whole.images)


def test_paper_presets_start_where_the_public_code_starts():
    """DC's README command keeps main.py's --init noise; its DSA command passes --init real; CAFE's run.sh keeps
    distill.py's noise."""
    from distill.run import build_parser, load_config

    def init(method):
        return load_config(build_parser().parse_args(["--method", method, "--preset", "paper"])).distill.init

    assert (init("dc"), init("dsa"), init("cafe")) == ("noise", "real", "noise")
    # and the CPU preset keeps their batch_real of 256 (the preset files set DataDAM's 64 before it)
    for method in ("dc", "dsa", "cafe"):
        assert load_config(build_parser().parse_args(["--method", method, "--preset", "cpu"])).distill.batch_real == 256
    assert load_config(build_parser().parse_args(["--preset", "cpu"])).distill.batch_real == 64
