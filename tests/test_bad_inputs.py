"""Issue 13: bad or unusual inputs give one clear error (or one clear line), never lost work or wrong numbers."""

import pytest

from continual.config import ContinualConfig, ReplayConfig
from distill.core.settings import resolve_config
from distill.core.errors import DistillError
from distill.core.evaluate import TrainConfig
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


def test_a_train_split_as_root_and_a_missing_test_split_are_named_first(cifar_tree, tmp_path):
    from distill.core.data import load_dataset

    with pytest.raises(DistillError, match="looks like a train split.*pass its parent"):
        load_dataset("cifar10", "train", data_root=cifar_tree / "train")
    only_train = tmp_path / "c10"
    (only_train / "train").mkdir(parents=True)
    (only_train / "train" / "cat").symlink_to(cifar_tree / "train" / "cat")
    with pytest.raises(DistillError, match="has train/ but no test/"):
        load_dataset("cifar10", "test", data_root=only_train)


def test_the_run_reads_the_test_split_and_eval_network_before_distilling(cifar_tree, tmp_path):
    only_train = tmp_path / "c10"
    only_train.mkdir()
    (only_train / "train").symlink_to(cifar_tree / "train")
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("distill.run.distill_sharded", lambda *a, **k: calls.append(1))
        with pytest.raises(DistillError, match="has train/ but no test/"):
            distill_main(["--data-root", str(only_train), "--eval", "1", "--out", str(tmp_path / "a"), "--quiet"])
        with pytest.raises(DistillError, match="unknown --eval-network 'convnett'"):
            distill_main(["--data-root", str(cifar_tree), "--eval", "1", "--eval-network", "convnett",
                          "--out", str(tmp_path / "b"), "--quiet"])
    assert calls == []


def _tiny_run(cifar_tree, out, *extra):
    return distill_main(["--data-root", str(cifar_tree), "--preset", "smoke", "--iterations", "2", "--batch-real",
                         "4", "--width", "8", "--device", "cpu", "--out", str(out), "--quiet", *extra])


def test_a_finished_run_is_never_replaced_silently_and_resume_sums_seconds(cifar_tree, tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert _tiny_run(cifar_tree, tmp_path / "fresh", "--resume") == 0
    assert f"no checkpoint in {tmp_path / 'fresh'}: starting fresh" in capsys.readouterr().err

    assert _tiny_run(cifar_tree, out) == 0
    first = json.loads((out / "results.json").read_text())
    stamp = (out / "synthetic.pt").stat().st_mtime_ns
    with pytest.raises(DistillError, match="already holds a run .*--resume.*--overwrite"):
        _tiny_run(cifar_tree, out)
    assert (out / "synthetic.pt").stat().st_mtime_ns == stamp

    # The seconds of earlier invocations are carried beside the checkpoint and added on --resume.
    recorded = json.loads((out / "checkpoint.seconds.json").read_text())["seconds"]
    assert recorded == pytest.approx(first["seconds"], abs=0.5)
    (out / "checkpoint.seconds.json").write_text(json.dumps({"seconds": 1000.0}))
    assert _tiny_run(cifar_tree, out, "--resume", "--iterations", "3") == 0
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["iterations"] == 3 and 1000.0 < resumed["seconds"] < 1000.0 + 60

    assert _tiny_run(cifar_tree, out, "--overwrite") == 0
    replaced = json.loads((out / "results.json").read_text())
    assert replaced["iterations"] == 2 and replaced["seconds"] < 60


def test_a_full_disk_is_one_line_and_the_previous_file_survives(tmp_path, monkeypatch):
    import errno
    import os

    from distill.core.io import write_json

    target = tmp_path / "results.json"
    write_json(target, {"old": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("distill.core.io.os.fsync", full)
    with pytest.raises(DistillError, match="could not write .*results.json \\(No space left on device\\); "
                                           "the previous results.json is intact") as info:
        write_json(target, {"new": 2})
    assert isinstance(info.value, OSError)  # a cache that tolerates failed writes still catches it
    assert "\n" not in str(info.value) and target.read_text() == '{\n  "old": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_written_files_follow_the_umask(tmp_path):
    import os

    from distill.core.io import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        os.umask(0o002)
        write_json(tmp_path / "b.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o664


def test_python_api_errors_are_distill_errors(tiny_dataset, tmp_path):
    from distill.core.evaluate import evaluate
    from distill.methods import distill

    synthetic = distill(tiny_dataset, DistillConfig(method="random", ipc=1), progress=False)
    with pytest.raises(DistillError, match="is a folder; pass a file path such as .*synthetic.pt"):
        synthetic.save(tmp_path)
    with pytest.raises(DistillError, match="got no seeds; pass e.g. seeds=\\[0, 1, 2\\]"):
        evaluate(synthetic.images, synthetic.labels, tiny_dataset, config=TrainConfig(epochs=1), seeds=[])


def test_distilled_buffer_takes_a_path_and_refuses_another_datasets_set(tmp_path):
    from continual import DistilledBuffer
    from continual.benchmark import make_benchmark
    from continual.testing import tiny_dataset
    from distill.methods import distill

    train, test = tiny_dataset(4, 12, seed=0), tiny_dataset(4, 4, seed=1)
    bench = make_benchmark(train, test, steps=2, order=[2, 0, 3, 1])
    synthetic = distill(train, DistillConfig(method="random", ipc=2), progress=False)
    synthetic.save(tmp_path / "synthetic.pt")
    buffer = DistilledBuffer(8, synthetic=str(tmp_path / "synthetic.pt"), class_names=train.class_names)
    buffer.post_adapt(None, bench.train_stream[0])
    assert buffer.tensors()[0].equal(synthetic.subset([0, 2]).images)
    with pytest.raises(DistillError, match="synthetic must be a SyntheticSet or the path"):
        DistilledBuffer(8, synthetic=synthetic.images)

    two_classes = distill(tiny_dataset(2, 12, seed=0), DistillConfig(method="random", ipc=2), progress=False)
    with pytest.raises(DistillError, match="made from 2 classes .* but the stream has 4"):
        DistilledBuffer(8, synthetic=two_classes, class_names=train.class_names)
    small = distill(tiny_dataset(4, 12, seed=0, size=4), DistillConfig(method="random", ipc=2), progress=False)
    other_size = DistilledBuffer(8, synthetic=small)
    with pytest.raises(DistillError, match="synthetic images are \\(3, 4, 4\\) but the stream's are \\(3, 8, 8\\)"):
        other_size.post_adapt(None, bench.train_stream[0])


@pytest.mark.parametrize("setting,named", [({"power": 200.0}, "power 200.0 (default 4.0)"),
                                           ({"lr_img": 1e30}, "lr_img 1e+30 (default 1.0)")])
def test_a_non_finite_loss_names_the_unusual_setting(tiny_dataset, setting, named):
    from distill.methods import distill

    cfg = DistillConfig(ipc=1, iterations=3, batch_real=8, width=8, **setting)
    with pytest.raises(DistillError, match="loss became nan") as info:
        distill(tiny_dataset, cfg, progress=False)
    assert named in str(info.value)
    assert ("lr_img" in str(info.value)) == ("lr_img" in setting)  # not blamed when it is not the cause


def test_sigterm_checkpoints_and_prints_the_resume_hint(cifar_tree, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "distill.run", "--data-root", str(cifar_tree), "--preset", "smoke",
                             "--iterations", "1000000", "--batch-real", "4", "--width", "8", "--device", "cpu",
                             "--checkpoint-minutes", "0", "--out", str(out), "--quiet"], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120  # a busy machine may take a while to load the data and start iterating
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: progress was checkpointed") and "--resume" in err
    import torch

    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] > 0


def test_help_shows_real_defaults_once():
    import re

    from distill.run import build_parser

    text = " ".join(build_parser().format_help().split("options:")[1].split())
    assert "(default: None)" not in text and "(default: False)" not in text.split("--compile")[0]
    assert re.search(r"--out OUT output folder \(default runs/distill-<timestamp>\) --resume", text)
    assert "--iterations ITERATIONS optimisation steps (datadam, dm) (default: 8000)" in text
    assert "(default: 1000)" in text.split("--eval-epochs EVAL_EPOCHS")[1].split("--quiet")[0]


def test_continual_cli_prints_no_qpsolvers_warning():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-W", "default", "-m", "continual.run", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--overwrite" in proc.stdout
    assert "QP solver" not in proc.stderr and "Warning" not in proc.stderr


def test_checkpoint_seconds_follow_the_checkpoint_during_the_run(tiny_dataset, tmp_path):
    """A run killed outright (SIGKILL, power loss) still resumes with the seconds up to its checkpoint."""
    import json

    from distill.methods import distill

    checkpoint = tmp_path / "checkpoint.pt"
    seen = []

    def during(it, loss):
        sidecar = tmp_path / "checkpoint.seconds.json"
        seen.append(json.loads(sidecar.read_text())["seconds"] if sidecar.is_file() else None)

    cfg = DistillConfig(ipc=1, iterations=4, batch_real=8, width=8, checkpoint_minutes=0.0)
    distill(tiny_dataset, cfg, progress=False, checkpoint=checkpoint, callback=during)
    assert seen[0] is None and all(s is not None and s > 0 for s in seen[1:])
    assert seen[1:] == sorted(seen[1:])
