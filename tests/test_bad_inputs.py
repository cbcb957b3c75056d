"""Issue 13: bad or unusual inputs give one clear error (or one clear line), never lost work or wrong numbers."""

import pytest

from continual.config import ContinualConfig, ReplayConfig
from distill.config import resolve_config
from distill.errors import DistillError
from distill.evaluate import TrainConfig
from distill.methods import DistillConfig
from distill.run import RunConfig, main as distill_main


@pytest.mark.parametrize("make,message", [
    (lambda: TrainConfig(epochs=-1), "TrainConfig.epochs must be at least 1, got -1"),
    (lambda: TrainConfig(epochs=0), "TrainConfig.epochs must be at least 1, got 0"),
    (lambda: DistillConfig(iterations="5"), "DistillConfig.iterations must be of type int, got '5'"),
    (lambda: DistillConfig(iterations=0), "iterations must be at least 1, got 0"),
    (lambda: DistillConfig(width=0), "width must be at least 1"),
    (lambda: DistillConfig(lr_img=float("nan")), "lr_img must be a finite number"),
    (lambda: DistillConfig(power=-2.0), "power must be more than 0"),
    (lambda: RunConfig(seed=-1), "RunConfig.seed must be at least 0, got -1"),
    (lambda: RunConfig(eval=-2), "RunConfig.eval must be at least 0, got -2"),
    (lambda: ContinualConfig(seeds=(0, -1)), "seeds must be at least 0, got -1"),
    (lambda: ContinualConfig(ipc=0), "ipc must be at least 1"),
    (lambda: ReplayConfig(batch_size_mem=0), "batch_size_mem must be at least 1"),
])
def test_python_api_checks_types_and_bounds_on_creation(make, message):
    with pytest.raises(DistillError, match=message.replace("(", "\\(").replace(")", "\\)")):
        make()


def test_numbers_are_normalised_like_toml_values():
    assert DistillConfig(lr_img=1).lr_img == 1.0 and isinstance(DistillConfig(lr_img=1).lr_img, float)
    assert ContinualConfig(seeds=[0, 1]).seeds == (0, 1)


def test_toml_bounds_name_the_table_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = -3\n")
    with pytest.raises(DistillError, match="bad.toml.train.epochs must be at least 1, got -3"):
        resolve_config(RunConfig, config_file=bad)


@pytest.mark.parametrize("flags,message", [
    (["--width", "0"], "distill.width must be at least 1, got 0"),
    (["--batch-real", "0"], "distill.batch_real must be at least 1, got 0"),
    (["--iterations", "0"], "distill.iterations must be at least 1, got 0"),
    (["--eval", "-2"], "eval must be at least 0, got -2"),
    (["--eval-epochs", "-3"], "train.epochs must be at least 1, got -3"),
    (["--seed", "-1"], "seed must be at least 0, got -1"),
])
def test_cli_rejects_out_of_range_numbers_before_any_work(flags, message, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DistillError, match=message):
        distill_main(["--data-root", str(tmp_path / "none"), "--out", str(out), "--quiet", *flags])
    assert not out.exists()  # rejected before the output folder or the data are touched


def test_depth_too_deep_for_the_image_size_is_named(cifar_tree, tmp_path):
    with pytest.raises(DistillError, match="depth 9 is too deep for 32x32 images.*--depth 5 or less"):
        distill_main(["--data-root", str(cifar_tree), "--depth", "9", "--iterations", "1", "--out",
                      str(tmp_path / "run"), "--quiet", "--device", "cpu"])
