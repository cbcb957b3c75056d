import pytest
import torch

from distill.core.augment import DSA, GROUPS, dsa_seeded
from distill.core.errors import DistillError


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(5, 3, 32, 32, generator=g)
    syn = torch.rand(3, 3, 32, 32, generator=g)
    syn[0] = real[2]
    return real, syn


@pytest.mark.parametrize("group", GROUPS)
def test_same_seed_same_parameters_for_real_and_synthetic(group):
    real, syn = _pair()
    dsa = DSA(group)
    for seed in range(5):
        out_real = dsa(real, torch.Generator().manual_seed(seed))
        out_syn = dsa(syn, torch.Generator().manual_seed(seed))
        # One shared draw: the same image is transformed identically in both batches and
        # every image of a batch gets the same transform.
        assert torch.allclose(out_real[2], out_syn[0], atol=1e-6)


@pytest.mark.parametrize("group", GROUPS)
def test_gradients_flow_to_images(group):
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    DSA(group)(x, torch.Generator().manual_seed(1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_single_mode_uses_every_group_of_the_strategy():
    dsa = DSA()
    g = torch.Generator().manual_seed(0)
    assert {dsa.sample(g).group for _ in range(200)} == set(GROUPS)


def test_color_shifts_a_grey_image_by_brightness_only():
    x = torch.full((64, 3, 32, 32), 0.3)
    out = DSA("color")(x, torch.Generator().manual_seed(0), siamese=False)
    shift = out - x
    assert shift.abs().max() <= 0.5 + 1e-6
    assert shift.std() > 0.1  # per-image draws differ when not Siamese


def test_crop_shifts_by_at_most_an_eighth_with_zero_fill():
    x = torch.ones(200, 1, 32, 32)
    out = DSA("crop")(x, torch.Generator().manual_seed(0), siamese=False)
    zero_rows = (out[:, 0].sum(2) == 0).sum(1)
    zero_cols = (out[:, 0].sum(1) == 0).sum(1)
    assert zero_rows.max() == 4 and zero_cols.max() == 4 and zero_rows.min() == 0
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_cutout_zeroes_at_most_a_half_side_square():
    x = torch.ones(200, 1, 32, 32)
    out = DSA("cutout")(x, torch.Generator().manual_seed(0), siamese=False)
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.max() == 16 * 16 and zeros.min() >= 8 * 8


def test_flip_is_identity_or_mirror():
    x = torch.rand(50, 3, 32, 32)
    out = DSA("flip")(x, torch.Generator().manual_seed(0), siamese=False)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert (flipped | same).all() and flipped.any() and same.any()


@pytest.mark.parametrize("group", ["scale", "rotate"])
def test_affine_groups_keep_a_constant_image_constant_in_the_centre(group):
    x = torch.full((20, 3, 32, 32), 0.7)
    out = DSA(group)(x, torch.Generator().manual_seed(0), siamese=False)
    assert torch.allclose(out[:, :, 12:20, 12:20], x[:, :, 12:20, 12:20], atol=1e-5)


def test_dsa_seeded_is_reproducible_and_none_is_identity():
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(dsa_seeded(x, 7), dsa_seeded(x, 7))
    assert DSA("none")(x, torch.Generator()) is x
    with pytest.raises(DistillError, match="unknown DSA group"):
        DSA("color_blur")
