"""`python -m distill.run` end to end on a few real CIFAR-10 images, and its one-line errors."""

import json
import subprocess
import sys
import tomllib

import pytest

from distill.run import main
from distill.core.synthetic import SyntheticSet


def test_cli_writes_every_promised_file(cifar_tree, tmp_path):
    out = tmp_path / "run"
    code = main(["--dataset", "cifar10", "--data-root", str(cifar_tree), "--preset", "smoke", "--iterations", "3",
                 "--batch-real", "8", "--width", "16", "--eval", "2", "--eval-epochs", "2", "--device", "cpu",
                 "--out", str(out), "--quiet"])
    assert code == 0
    for name in ("synthetic.pt", "synthetic.png", "loss.png", "config.toml", "results.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["iterations"] == 3 and len(results["loss_curve"]) == 3
    assert set(results["accuracy"]) >= {"mean", "std", "runs"} and len(results["accuracy"]["runs"]) == 2
    assert all(0 <= r <= 100 for r in results["accuracy"]["runs"])
    # the training engine names what it used (issue 18): precision, compiled or not, layout, steps
    engine = results["accuracy"]["engine"]
    assert engine["precision"] in ("fp32", "bf16") and engine["compiled"] is False and engine["steps"] == 2
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["distill"]["iterations"] == 3 and config["distill"]["ipc"] == 1  # preset + flags
    synthetic = SyntheticSet.load(out / "synthetic.pt")
    assert len(synthetic) == 10 and synthetic.class_names[0] == "airplane"

    # --resume on a finished run does no more steps and reproduces the same images.
    assert main(["--out", str(out), "--resume", "--quiet", "--data-root", str(cifar_tree)]) == 0
    assert SyntheticSet.load(out / "synthetic.pt").images.equal(synthetic.images)


@pytest.mark.parametrize("args,message", [
    (["--data-root", "/nonexistent/cifar"], "could not read or download cifar10"),
    (["--dataset", "imagefolder", "--data-root", "/nonexistent/x"], "does not exist"),
    (["--preset", "huge"], "no preset"),
    (["--config", "/nonexistent.toml"], "does not exist"),
    (["--width", "0"], "distill.width must be at least 1, got 0"),
])
def test_bad_input_is_one_line_and_nonzero(args, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "distill.run", "--out", str(tmp_path / "o"), "--quiet", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr


def test_torchrun_shards_classes_and_equals_one_process(cifar_tree, tmp_path):
    common = ["-m", "distill.run", "--dataset", "cifar10", "--data-root", str(cifar_tree), "--preset", "smoke",
              "--iterations", "2", "--batch-real", "8", "--width", "16", "--eval", "0", "--quiet"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}  # equal float reductions in both runs
    # --standalone: a free rendezvous port, not the fixed 29500 that another job on the machine may hold.
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for argv, out in ((torchrun, "two"), ([sys.executable], "one")):
        proc = subprocess.run([*argv, *common, "--out", str(tmp_path / out)], env=env, timeout=300,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{out}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert (tmp_path / "two" / "checkpoint-rank1.pt").is_file()  # rank 1 really distilled its share
    two, one = SyntheticSet.load(tmp_path / "two" / "synthetic.pt"), SyntheticSet.load(tmp_path / "one" / "synthetic.pt")
    assert two.class_ids == list(range(10)) and two.images.equal(one.images)


def test_eval_networks_write_one_table_per_network(cifar_tree, tmp_path):
    out = tmp_path / "cross"
    code = main(["--dataset", "cifar10", "--data-root", str(cifar_tree), "--preset", "smoke", "--method", "kcenter",
                 "--width", "16", "--eval", "1", "--eval-epochs", "1", "--eval-networks", "convnet,alexnet",
                 "--device", "cpu", "--out", str(out), "--quiet"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    table = results["accuracy_by_network"]
    assert list(table) == ["convnet", "alexnet"]
    assert all(len(row["runs"]) == 1 and 0 <= row["mean"] <= 100 and row["seconds"] > 0 for row in table.values())
    assert results["accuracy"] == table["convnet"] and table["convnet"]["norm"] == "instancenorm"
    assert "norm" not in table["alexnet"]  # the protocol's norm is the ConvNet's
    assert tomllib.loads((out / "config.toml").read_text())["eval_networks"] == ["convnet", "alexnet"]


def test_unknown_eval_network_is_named(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "distill.run", "--out", str(tmp_path / "o"), "--quiet", "--eval", "1",
                           "--eval-networks", "convnet,lenet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "'lenet'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_preset_carries_the_methods_own_knobs(tmp_path):
    """--preset cpu with --method mtt trains the method's CPU experts (2, not the paper's 100); flags still win."""
    from distill.run import build_parser, load_config

    cpu = load_config(build_parser().parse_args(["--method", "mtt", "--preset", "cpu"]))
    assert (cpu.distill.num_experts, cpu.distill.expert_train_epochs, cpu.distill.iterations) == (2, 4, 100)
    flagged = load_config(build_parser().parse_args(["--method", "mtt", "--preset", "cpu", "--num-experts", "3"]))
    assert flagged.distill.num_experts == 3
    config = tmp_path / "mine.toml"
    config.write_text("[distill]\niterations = 7\n")
    from_file = load_config(build_parser().parse_args(["--method", "mtt", "--preset", "cpu", "--config", str(config)]))
    assert from_file.distill.iterations == 7 and from_file.distill.num_experts == 2
    datadam = load_config(build_parser().parse_args(["--method", "datadam", "--preset", "cpu"]))
    assert datadam.distill.num_experts is None  # a method without presets keeps the preset file's settings only
