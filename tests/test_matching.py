"""The DataDAM loss against a direct transcription of METHOD.md §1, and the fast paths against it."""

import os
import signal

import pytest
import torch

from distill.core.augment import DSA
from distill.core.errors import DistillError
from distill.methods import DistillConfig, distill
from distill.methods.matching import attention_map, matching_loss, statistics
from distill.core.seeds import NET, STEP, real_indices, stream
from distill.core.networks import ConvNet, init_parameters


def test_attention_rows_are_unit_norm_and_use_power_p():
    f = torch.rand(4, 6, 5, 5)
    for p in (1.0, 2.0, 3.0, 4.0):
        a = attention_map(f, p)
        assert a.shape == (4, 25)
        assert torch.allclose(a.norm(dim=1), torch.ones(4))
        raw = (f.abs() ** p).sum(1).flatten(1)
        assert torch.allclose(a, raw / raw.norm(dim=1, keepdim=True), atol=1e-6)
    signed = torch.randn(2, 3, 4, 4)
    assert torch.allclose(attention_map(signed, 4.0), attention_map(signed.abs(), 4.0, nonnegative=True))


def reference_loss(net, real_batches, syn_batches, p, lam, scale):
    """METHOD.md §1 written out directly: loops over classes and layers, full feature maps."""
    total = torch.zeros(())
    for real, syn in zip(real_batches, syn_batches):
        acts_r, emb_r = net.features(real)
        acts_s, emb_s = net.features(syn)
        for l in range(len(acts_r) - 1):
            def att(f):
                a = (f.abs() ** p).sum(dim=1).reshape(len(f), -1)
                return a / a.norm(dim=1, keepdim=True)
            total = total + ((att(acts_r[l]).mean(0) - att(acts_s[l]).mean(0)) ** 2).sum()
        total = total + lam * ((emb_r.mean(0) - emb_s.mean(0)) ** 2).sum()
    return scale * total


@pytest.mark.parametrize("variant,channels_last", [("paper", True), ("paper", False), ("official", True)])
def test_first_step_loss_equals_transcription(tiny_dataset, variant, channels_last):
    cfg = DistillConfig(method="datadam", variant=variant, ipc=2, iterations=1, batch_real=8, width=16,
                        channels_last=channels_last, precision="fp32").resolved()
    seen = []
    out = distill(tiny_dataset, cfg, seed=3, progress=False, callback=lambda it, loss: seen.append(loss))
    start = distill(tiny_dataset, DistillConfig(method="random", ipc=2), seed=3, progress=False).images
    net = ConvNet(num_classes=3, width=16, norm=cfg.norm)
    init_parameters(net, stream(3, NET, 0))
    dsa, reals, syns = DSA(cfg.dsa_strategy), [], []
    for c in range(3):
        g = stream(3, STEP, 0, c)
        real = tiny_dataset.images_of(c)[real_indices(20, 8, g)]
        params = dsa.sample(g)
        reals.append(dsa.apply(real, params))
        syns.append(dsa.apply(start[2 * c:2 * c + 2], params))
    if variant == "official":  # batchnorm: one real batch and one synthetic batch for all classes
        net.train()
        acts_r, emb_r = net.features(torch.cat(reals))
        acts_s, emb_s = net.features(torch.cat(syns))
        def att(f):
            a = (f.abs() ** cfg.power).sum(dim=1).reshape(len(f), -1)
            return a / a.norm(dim=1, keepdim=True)
        expected = torch.zeros(())
        for c in range(3):
            r, s = slice(8 * c, 8 * c + 8), slice(2 * c, 2 * c + 2)
            for l in range(len(acts_r) - 1):
                expected += ((att(acts_r[l][r]).mean(0) - att(acts_s[l][s]).mean(0)) ** 2).sum()
            expected += cfg.lambda_mmd * ((emb_r[r].mean(0) - emb_s[s].mean(0)) ** 2).sum()
        expected *= cfg.loss_scale
    else:
        expected = reference_loss(net, reals, syns, cfg.power, cfg.lambda_mmd, cfg.loss_scale)
    assert seen[0] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert out.iterations == 1


@torch.no_grad()
def _probe_loss(images, dataset, ipc, cfg, probes=6):
    """Mean matching loss of ``cfg``'s method over fixed encoders and all real images (no augmentation)."""
    total, attention = 0.0, cfg.method == "datadam"
    for k in range(probes):
        net = init_parameters(ConvNet(num_classes=3, width=16), torch.Generator().manual_seed(100 + k))
        real = [statistics(net, dataset.images_of(c), cfg.power, attention=attention) for c in range(3)]
        syn = [statistics(net, images[c * ipc:(c + 1) * ipc], cfg.power, attention=attention) for c in range(3)]
        total += sum(float(matching_loss(r, s, lambda_mmd=cfg.lambda_mmd, scale=cfg.loss_scale))
                     for r, s in zip(real, syn))
    return total / probes


@pytest.mark.parametrize("method,lr", [("datadam", 0.1), ("dm", 10.0)])
def test_distillation_lowers_the_matching_loss(tiny_dataset, method, lr):
    # Unit-variance noise images take smaller steps than real ones (lr_img 1.0 overshoots here).
    cfg = DistillConfig(method=method, ipc=2, iterations=30, batch_real=20, width=16, dsa_strategy="none", lr_img=lr)
    before = distill(tiny_dataset, DistillConfig(method="random", ipc=2), seed=0, progress=False).images
    after = distill(tiny_dataset, cfg, seed=0, progress=False).images
    assert not torch.equal(before, after)
    resolved = cfg.resolved()
    assert _probe_loss(after, tiny_dataset, 2, resolved) < 0.95 * _probe_loss(before, tiny_dataset, 2, resolved)


def test_a_class_distilled_alone_equals_the_same_class_distilled_with_others(tiny_dataset):
    cfg = DistillConfig(ipc=2, iterations=3, batch_real=8, width=16)
    together = distill(tiny_dataset, cfg, seed=1, progress=False)
    alone = distill(tiny_dataset, cfg, classes=[2], seed=1, progress=False)
    assert torch.equal(together.subset([2]).images, alone.images)
    assert alone.class_ids == [2] and alone.labels.tolist() == [2, 2]


def test_seeded_runs_are_reproducible_and_seeds_differ(tiny_dataset):
    cfg = DistillConfig(ipc=1, iterations=3, batch_real=8, width=16)
    a = distill(tiny_dataset, cfg, seed=5, progress=False)
    b = distill(tiny_dataset, cfg, seed=5, progress=False)
    c = distill(tiny_dataset, cfg, seed=6, progress=False)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_ctrl_c_checkpoints_and_resume_equals_one_run(tiny_dataset, tmp_path):
    cfg = DistillConfig(ipc=2, iterations=6, batch_real=8, width=16)
    whole = distill(tiny_dataset, cfg, seed=2, progress=False)

    def interrupt(it, loss):
        if it == 2:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, handled at the end of the step

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        distill(tiny_dataset, cfg, seed=2, progress=False, checkpoint=ckpt, callback=interrupt)
    assert torch.load(ckpt, weights_only=True)["iteration"] == 3
    resumed = distill(tiny_dataset, cfg, seed=2, progress=False, checkpoint=ckpt, resume=True)
    assert torch.equal(resumed.images, whole.images)
    assert [it for it, _ in resumed.config["loss_curve"]] == list(range(6))


def test_resume_refuses_a_checkpoint_of_other_settings(tiny_dataset, tmp_path):
    from distill.core.errors import DistillError

    ckpt = tmp_path / "ckpt.pt"
    distill(tiny_dataset, DistillConfig(ipc=2, iterations=1, batch_real=8, width=16), progress=False, checkpoint=ckpt)
    with pytest.raises(DistillError, match="other settings"):
        distill(tiny_dataset, DistillConfig(ipc=2, iterations=2, batch_real=8, width=32), progress=False,
                checkpoint=ckpt, resume=True)


def test_bf16_autocast_loss_agrees_with_fp32(tiny_dataset):
    losses = {}
    for precision in ("fp32", "bf16"):
        seen = []
        distill(tiny_dataset, DistillConfig(ipc=2, iterations=2, batch_real=8, width=16, precision=precision),
                seed=0, progress=False, callback=lambda it, loss: seen.append(loss))
        losses[precision] = seen
    for a, b in zip(losses["fp32"], losses["bf16"]):
        assert b == pytest.approx(a, rel=0.05)


def test_a_method_is_one_decorated_function(tiny_dataset):
    import distill.methods as methods
    from distill.methods import MethodOutput, get_method, list_methods, register_method

    assert list_methods()[:4] == ["datadam", "dm", "random", "herding"]
    assert get_method("random").reads == ("method", "ipc", "depth", "width", "norm")

    @register_method("first-images", reads=("method", "ipc"), encoder=False)
    def first_images(train, classes, config, *, seed, device):
        return MethodOutput(torch.cat([train.images_of(c)[:config.ipc] for c in classes]))

    try:
        out = distill(tiny_dataset, DistillConfig(method="first-images", ipc=2), classes=[1], progress=False)
        assert out.images.equal(tiny_dataset.images_of(1)[:2]) and out.method == "first-images"
        assert methods.result_key(DistillConfig(method="first-images", ipc=2)) == {"method": "first-images", "ipc": 2}
        with pytest.raises(ValueError, match="already registered"):
            register_method("first-images")(first_images)
    finally:
        methods._REGISTRY.remove("first-images")
    with pytest.raises(DistillError, match="unknown method 'first-images'"):
        DistillConfig(method="first-images").resolved()
