"""The fast paper loop: precision chosen by the machine, compiled statistics equal to eager, protocols, the study."""

import importlib.util
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch

from distill.core import hardware
from distill.core.evaluate import TrainConfig, protocol_setup
from distill.methods import DistillConfig, distill
from distill.methods.matching import compiled_statistics, statistics
from distill.core.networks import ConvNet, get_network, init_parameters
from distill.shell.progress import JobClock
from distill.core.seeds import stream
from distill.core.synthetic import SyntheticSet

REPO = Path(__file__).resolve().parents[1]


def test_auto_precision_is_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert hardware.resolve_precision("auto", "cpu") == "fp32"
    assert DistillConfig(precision="auto").resolved("cpu").precision == "fp32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert DistillConfig(precision="auto").resolved("cpu").precision == "bf16"
    assert hardware.resolve_precision("fp32", "cpu") == "fp32"  # an explicit choice stays


def test_machine_info_records_the_bf16_capability():
    info = hardware.machine_info()
    assert {"cpu_capability", "load_average", "torch_threads", "native_bf16", "bf16_flags"} <= set(info)
    assert info["native_bf16"] == bool(info["bf16_flags"])  # the decision and its evidence agree
    assert set(info["bf16_flags"]) <= hardware.cpu_flags()


@pytest.mark.skipif(not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")),
                    reason="torch.compile needs a C++ compiler here")
@pytest.mark.parametrize("attention,batch", [(True, 6), (False, 6)])
def test_compiled_statistics_equal_eager_forward_and_input_gradient(attention, batch):
    """The fused path (instance norm, ReLU, attention, pooling through torch.compile) is the same math."""
    net = init_parameters(ConvNet(num_classes=3, width=16, norm="instancenorm"), stream(0, 1)).requires_grad_(False)
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    eager_x, fused_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager = statistics(net, eager_x, 4.0, attention=attention)
    fused = compiled_statistics()(net, fused_x, 4.0, attention=attention)
    assert len(eager) == len(fused) == (3 if attention else 1)
    for e, f in zip(eager, fused):
        assert torch.allclose(e, f, rtol=1e-5, atol=1e-6)
    sum(s.square().sum() for s in eager).backward()
    sum(s.square().sum() for s in fused).backward()
    assert torch.allclose(eager_x.grad, fused_x.grad, rtol=1e-4, atol=1e-7)
    assert eager_x.grad.abs().sum() > 0


def test_official_protocol_is_a_batchnorm_convnet_at_batch_64():
    config, kwargs = protocol_setup("official", TrainConfig(epochs=7))
    assert (config.batch_size, config.epochs, kwargs) == (64, 7, {"norm": "batchnorm"})
    net = get_network("convnet", num_classes=10, **kwargs)
    assert all(isinstance(b.norm, torch.nn.BatchNorm2d) for b in net.blocks)
    config, kwargs = protocol_setup("dm", TrainConfig(epochs=7))
    assert (config.batch_size, kwargs) == (256, {"norm": "instancenorm"})


def test_job_clock_measures_the_rate_after_the_first_step_and_announces_once(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    heard = []
    clock = JobClock(10, eval_seconds=30.0, announce=heard.append, announce_after=2)
    clock.step(0)  # the first step (compilation) is left out of the rate
    assert clock.seconds_left() is None and clock.postfix() == {"job_left": "?"}
    for it in (1, 2, 3):
        now[0] += 2.0
        clock.step(it)
    assert heard == [2.0]  # once, after two timed steps
    assert clock.seconds_left() == pytest.approx(6 * 2.0 + 30.0)


def _study():
    spec = importlib.util.spec_from_file_location("distill_quality", REPO / "benchmarks" / "distill_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["distill_quality"] = module
    spec.loader.exec_module(module)
    return module


def test_study_snapshot_at_k_equals_a_run_stopped_at_k(tiny_dataset, tmp_path):
    study = _study()
    arm = study.Arm.parse("datadam:paper:8:fp32")
    tiny = {"width": 16}
    first, _ = study.snapshot(arm, 2, 2, tiny_dataset, tmp_path, progress=False, **tiny)
    second, _ = study.snapshot(arm, 2, 5, tiny_dataset, tmp_path, progress=False, **tiny)  # resumed from the first
    straight = distill(tiny_dataset, arm.config(2, 5, **tiny), seed=0, progress=False)
    assert (first.iterations, second.iterations) == (2, 5)
    assert torch.equal(second.images, straight.images)
    assert not torch.equal(first.images, second.images)
    again, seconds = study.snapshot(arm, 2, 5, tiny_dataset, tmp_path, progress=False, **tiny)  # kept, not redone
    assert seconds == 0.0 and torch.equal(again.images, second.images)
    assert isinstance(SyntheticSet.load(tmp_path / arm.name / "it00005.pt"), SyntheticSet)
