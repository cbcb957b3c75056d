"""Issue 22: refusals before any work; caches that cannot lie; signals that are honoured.

Every refusal goes through its command line in a subprocess and must exit 2 with one line and no
traceback, open at most one image of the data tree (a peek at the image size; an audit hook lists every
file the process opens), and write nothing to ``--out`` or the cache. What a refusal costs in CPU seconds
and memory against the ``--ipc 0`` refusal is a measurement, not a test: ``benchmarks/refusal_cost.py``
prints it for the same cases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from distill.core.data import load_dataset
from distill.core.errors import DistillError
from distill.methods import METHODS
from distill.core.store import content_digest, load_entry, save_entry
from distill.core.synthetic import SyntheticSet
from distill.core.testing import image_tree, tiny_dataset

REPO = Path(__file__).resolve().parents[1]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
#: ``python -c AUDITED module args``: runs ``python -m module args`` and writes each file it opens to $PREFLIGHT_OPENS.
AUDITED = """
import os, runpy, sys
log = open(os.environ["PREFLIGHT_OPENS"], "w")
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        log.write(os.fsdecode(args[0]) + "\\n"); log.flush()
sys.addaudithook(hook)
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    cpu: float  # user + system seconds of the process
    peak_mb: float  # its peak resident memory
    opened: list[Path]  # every file it opened, resolved


def env_for(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "DISTILL_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "DISTILL_NO_COMPILE": "1", **extra}


def run(module: str, args: list[str], cache: Path, cwd: Path, *, audit: bool = True) -> Outcome:
    """``python -m module args`` with its own CPU time and peak memory (``wait4`` reports them for that child)
    and, with ``audit``, the files it opened (the hook costs a little CPU: a benchmark runs without it)."""
    opens = cwd / "opened"
    opens.write_text("")
    launch = ["-c", AUDITED] if audit else ["-m"]
    with open(cwd / "stdout", "w+") as out, open(cwd / "stderr", "w+") as err:
        proc = subprocess.Popen([sys.executable, *launch, module, *args], stdout=out, stderr=err, cwd=cwd,
                                env=env_for(cache, PREFLIGHT_OPENS=str(opens)))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        opened = [(cwd / line).resolve() for line in opens.read_text().splitlines()]
        return Outcome(proc.returncode, out.read(), err.read(), usage.ru_utime + usage.ru_stime,
                       usage.ru_maxrss / 1024, opened)


def make_tree(base: Path) -> Path:
    """CIFAR-10's class names, 12 training and 4 test noise images each (the smallest class: 12)."""
    return image_tree(base / "c10", CIFAR10, train=12, test=4)


def make_bad_roots(tree: Path, base: Path) -> dict[str, Path]:
    """A root without test/, and one whose test/ lacks a class."""
    (base / "no-test").mkdir()
    (base / "no-test" / "train").symlink_to(tree / "train")
    (base / "mismatch" / "test").mkdir(parents=True)
    (base / "mismatch" / "train").symlink_to(tree / "train")
    for name in CIFAR10[:-1]:
        (base / "mismatch" / "test" / name).symlink_to(tree / "test" / name)
    return {"no-test": base / "no-test", "mismatch": base / "mismatch"}


def make_files(base: Path) -> dict[str, Path]:
    """A finished run's folder, a text file, and synthetic sets that do not fit the tree."""
    (base / "finished").mkdir()
    (base / "finished" / "results.json").write_text("{}\n")
    (base / "text.txt").write_text("not a table\n")
    (base / "garbage.pt").write_bytes(b"\x00garbage" * 100)
    _synthetic(tiny_dataset(3, 2, size=32), "random").save(base / "three-classes.pt")
    _synthetic(tiny_dataset(10, 2, size=16, names=CIFAR10), "random").save(base / "16px.pt")
    _synthetic(tiny_dataset(10, 2, size=32, names=CIFAR10), "herding").save(base / "herding.pt")
    _synthetic(tiny_dataset(10, 2, size=32, names=CIFAR10), "magic").save(base / "unregistered.pt")
    _synthetic(tiny_dataset(10, 2, size=32, names=CIFAR10), "random").save(base / "other-norm.pt")
    return {p.stem: p for p in base.iterdir()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def bad_roots(tree, tmp_path_factory) -> dict[str, Path]:
    return make_bad_roots(tree, tmp_path_factory.mktemp("roots"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("files"))


def _synthetic(data, method: str) -> SyntheticSet:
    return SyntheticSet(images=data.images, labels=data.labels, class_ids=list(range(data.num_classes)),
                        class_names=data.class_names, mean=data.mean, std=data.std, ipc=len(data) // data.num_classes,
                        method=method)


def base_args(module: str, tree: Path, out: Path) -> list[str]:
    extra = ["--device", "cpu", "--quiet"] if module == "distill.run" else []
    return ["--preset", "smoke", "--data-root", str(tree), "--out", str(out), *extra]


def case_args(module: str, flags: list[str], tree: Path, out: Path, paths: dict[str, Path]) -> list[str]:
    """A case's whole command line; ``{name}`` in its flags is a path from ``make_bad_roots``/``make_files``."""
    return [*base_args(module, tree, out), *(f.format(**{k: str(v) for k, v in paths.items()})
                                              if f.startswith("{") else f for f in flags)]


# (command line, flags, the message's telling part)
CASES = [
    ("distill.run", ["--ipc", "100000"], "--ipc 100000 is more than the 12 training images of class 'airplane'"),
    ("distill.run", ["--dsa-strategy", "bogus"], "unknown DSA group"),
    ("distill.run", ["--dataset", "cifar100"], "cifar100 needs"),
    ("distill.run", ["--width", "100000000"], "GB of memory"),
    ("distill.run", ["--eval", "1", "--eval-network", "nope"], "unknown --eval-network 'nope'"),
    ("distill.run", ["--eval", "1", "--data-root", "{no-test}"], "has train/ but no test/"),
    ("distill.run", ["--out", "{finished}"], "already holds a run"),
    ("continual.run", ["--steps", "20"], "--steps 20 does not divide the 10 classes"),
    ("continual.run", ["--ipc", "13"], "--ipc 13 is more than the 12 training images"),
    ("continual.run", ["--dataset", "cifar100"], "cifar100 needs"),
    ("nas.search", ["--resolution", "7"], "--resolution 7 does not halve twice evenly"),
    ("nas.search", ["--num-archs", "100000"], "--num-archs 100000 is more than the 2012 distinct architectures"),
    ("nas.search", ["--synthetic", "{three-classes}"], "was made from 3 classes"),
    ("nas.search", ["--synthetic", "{garbage}"], "is not a readable synthetic set"),
    ("nas.search", ["--benchmark-file", "{text}"], "text.txt is not a NAS-Bench-201 table; pass the official"),
]


@pytest.mark.slow
@pytest.mark.parametrize("module,flags,message", CASES, ids=[f"{m}:{' '.join(f)}" for m, f, _ in CASES])
def test_a_refusal_is_one_line_exit_2_and_decodes_nothing(module, flags, message, tree, workdir, bad_roots, files):
    out, cache = workdir / "out", workdir / "cache"
    cache.mkdir(exist_ok=True)
    before = sorted(os.listdir(files["finished"]))
    got = run(module, case_args(module, flags, tree, out, {**bad_roots, **files}), cache, workdir)
    assert got.code == 2, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in got.stderr, got.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert not out.exists() and not any(cache.iterdir())  # nothing written, nothing cached
    assert sorted(os.listdir(files["finished"])) == before
    assert got.opened, "the audit hook saw no open at all"  # the hook works: the interpreter opens its modules
    images = [p for p in got.opened if p.is_relative_to(tree.resolve())]
    assert len(images) <= 1, f"the refusal opened {len(images)} files of the data tree, e.g. {images[:2]}"


def test_the_audit_hook_sees_an_image_being_decoded(tree, workdir):
    """The check above could pass by seeing nothing: a command that decodes must show all its images."""
    out = workdir / "decoding-out"
    got = run("distill.run", [*base_args("distill.run", tree, out), "--method", "random", "--ipc", "1"],
              workdir / "decoding-cache", workdir)
    assert got.code == 0, got.stderr
    assert len({p for p in got.opened if p.is_relative_to(tree.resolve()) and p.suffix == ".png"}) >= 120


def _refused(main, args: list[str], message: str, out: Path) -> None:
    with pytest.raises(DistillError, match=message):
        main(args)
    assert not out.exists()


@pytest.mark.parametrize("method", METHODS)
def test_ipc_above_the_smallest_class_is_refused_for_every_method_before_decoding(method, tree, tmp_path,
                                                                                  monkeypatch):
    from distill.run import main

    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    _refused(main, [*base_args("distill.run", tree, tmp_path / "out"), "--method", method, "--ipc", "13"],
             "--ipc 13 is more than the 12 training images", tmp_path / "out")
    assert not (tmp_path / "cache").exists()


def test_train_and_test_with_other_classes_an_out_that_is_a_file_and_a_norm(tree, bad_roots, tmp_path):
    from distill.run import main

    _refused(main, [*base_args("distill.run", tree, tmp_path / "out"), "--norm", "bogus"], "unknown --norm 'bogus'",
             tmp_path / "out")
    _refused(main, [*base_args("distill.run", bad_roots["mismatch"], tmp_path / "out"), "--eval", "1"],
             "both splits need the same class folders", tmp_path / "out")
    (tmp_path / "file").write_text("")
    with pytest.raises(DistillError, match="is a file; pass a folder"):
        main(base_args("distill.run", tree, tmp_path / "file"))


@pytest.mark.parametrize("flags,message", [
    (["--steps", "3"], "--steps 3 does not divide the 10 classes"),
    (["--network", "nope"], "unknown --network 'nope'"),
    (["--train-per-class", "5", "--ipc", "6"], "--ipc 6 is more than the 5 training images of each class"),
])
def test_continual_refusals_before_decoding(flags, message, tree, tmp_path):
    from continual.run import main

    _refused(main, [*base_args("continual.run", tree, tmp_path / "out"), *flags], message, tmp_path / "out")


@pytest.mark.parametrize("flags,message", [
    (["--synthetic", "{missing}"], "does not exist"),
    (["--synthetic", "{16px}"], r"the synthetic images are \(3, 16, 16\)"),
    # every registered method is a proxy, but only the ones --proxy names are trained on
    (["--synthetic", "{herding}"], "is a herding set but --proxy .* does not use it; add herding to --proxy"),
    (["--synthetic", "{unregistered}"], "was made by method 'magic'; the NAS proxies take sets of datadam, dm"),
    (["--synthetic", "{other-norm}"], "is normalised with mean/std"),
    (["--ipc", "13"], "--ipc 13 is more than the 12 training images"),
    (["--distill-norm", "bogus"], "unknown --distill-norm 'bogus'"),
    (["--out", "{finished}"], "already holds a run"),
])
def test_nas_refusals_before_decoding(flags, message, tree, files, tmp_path):
    """(An --out that holds a search is refused before anything is written to it; --overwrite replaces it.)"""
    from nas.search import main

    paths = {"missing": str(tmp_path / "missing.pt"), **{k: str(v) for k, v in files.items()}}
    flags = [f.format(**paths) if f.startswith("{") else f for f in flags]
    _refused(main, [*base_args("nas.search", tree, tmp_path / "out"), *flags], message, tmp_path / "out")


def test_nas_search_takes_overwrite():
    from nas.search import build_parser

    assert build_parser().parse_args(["--overwrite"]).overwrite


def test_the_evaluation_probe_is_bounded_by_one_batch(monkeypatch):
    """``--ipc 100000`` used to train the probe on ipc x classes noise images (minutes at 14.6 GB)."""
    from distill.shell import progress
    from distill.core.evaluate import TrainConfig

    seen = []
    real = progress.train_network
    monkeypatch.setattr(progress, "train_network", lambda model, images, *a, **k: seen.append(len(images)) or
                        real(model, images, *a, **k))
    seconds = progress.probe_eval_seconds(1_000_000, (3, 8, 8), 10, TrainConfig(epochs=3, batch_size=16),
                                          test_images=100)
    assert seen == [16, 16] and seconds > 0


# --- The API is as strict as the command lines ---------------------------------------------------------------

def test_the_api_refuses_what_it_would_otherwise_truncate_or_crash_on():
    from distill.core.evaluate import TrainConfig, evaluate
    from distill.methods import DistillConfig, distill
    from distill.core.networks import get_network

    data = tiny_dataset(3, 4, size=16)
    with pytest.raises(DistillError, match="class 0.7 is not a class id; pass integers from 0 to 2"):
        distill(data, DistillConfig(method="random", ipc=1), classes=[0.7])
    with pytest.raises(DistillError, match="class 3 is not a class id"):
        distill(data, DistillConfig(method="random", ipc=1), classes=[3])
    assert distill(data, DistillConfig(method="random", ipc=1), classes=torch.tensor([2, 0])).class_ids == [2, 0]
    for bad in (0, 1, 2.5, True):
        with pytest.raises(DistillError, match="num_classes must be an integer of at least 2"):
            get_network("convnet", num_classes=bad)
    train = TrainConfig(epochs=1)
    with pytest.raises(DistillError, match="labels run from 5 to 7 but the test set has 3 classes"):
        evaluate(data.images, data.labels + 5, data, config=train, seeds=[0])
    with pytest.raises(DistillError, match=r"training images are \(3, 8, 8\).*test images are \(3, 16, 16\)"):
        evaluate(data.images[..., :8, :8], data.labels, data, config=train, seeds=[0])


# --- Caches that cannot lie -----------------------------------------------------------------------------------

def _decoded_entry(cache: Path) -> Path:
    (entry,) = (cache / "decoded").glob("*-train-*.pt")
    return entry


def _flip_middle(path: Path, count: int) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle - count // 2, middle + count // 2):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage_pixels_keep_digest(path: Path) -> None:
    """Right keys, shapes and digest field, other pixels: what a stale or foreign file could look like."""
    state = torch.load(path, weights_only=True)
    state["content"]["images"] = torch.zeros_like(state["content"]["images"])
    torch.save(state, path)


@pytest.mark.parametrize("damage", [lambda p: _flip_middle(p, 2000), _damage_pixels_keep_digest],
                         ids=["flipped-zip-bytes", "right-shape-wrong-pixels"])
def test_a_damaged_decode_cache_is_named_deleted_and_rebuilt(damage, tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path))
    clean = load_dataset("cifar10", "train", data_root=tree)
    entry = _decoded_entry(tmp_path)
    damage(entry)
    capsys.readouterr()
    again = load_dataset("cifar10", "train", data_root=tree)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(entry) in lines[0] and "deleted it, rebuilding" in lines[0], lines
    assert torch.equal(again.images, clean.images)
    assert load_entry(entry) is not None  # the rebuilt entry passes its check


def test_every_cache_entry_checks_its_digest(tmp_path, capsys):
    from distill.methods import DistillConfig, load_or_distill

    scores = tmp_path / "scores.pt"
    save_entry(torch.arange(5.0), scores)
    assert torch.equal(load_entry(scores), torch.arange(5.0))
    torch.save({"format": "distill-verified/1", "digest": content_digest(torch.arange(5.0)),
                "content": torch.zeros(5)}, scores)
    assert load_entry(scores) is None and not scores.exists()
    data = tiny_dataset(3, 4, size=16)
    cached = tmp_path / "set.pt"
    made, hit = load_or_distill(cached, data, DistillConfig(method="random", ipc=2), progress=False)
    assert not hit and load_or_distill(cached, data, DistillConfig(method="random", ipc=2), progress=False)[1]
    capsys.readouterr()
    state = torch.load(cached, weights_only=True)
    state["images"] = torch.zeros_like(state["images"])
    torch.save(state, cached)
    again, hit = load_or_distill(cached, data, DistillConfig(method="random", ipc=2), progress=False)
    assert not hit and torch.equal(again.images, made.images)
    assert "does not match the digest" in capsys.readouterr().err


def _build(root: Path, cache: Path, results, env: dict[str, str] = {}) -> None:
    """In a forked process (torch already imported, so a builder starts at once): decode ``root`` through the cache."""
    os.environ.update({"DISTILL_CACHE_DIR": str(cache), **env})
    results.put(content_digest(load_dataset("cifar10", "train", data_root=root).images))


def _fork(root: Path, cache: Path, results, **env: str):
    import multiprocessing

    proc = multiprocessing.get_context("fork").Process(target=_build, args=(root, cache, results, env))
    proc.start()
    return proc


@pytest.mark.slow
def test_four_builders_of_one_entry_agree_and_leave_one_clean_file(tree, tmp_path):
    import multiprocessing

    results = multiprocessing.get_context("fork").Queue()
    procs = [_fork(tree, tmp_path, results) for _ in range(4)]
    digests = {results.get(timeout=120) for _ in procs}
    for proc in procs:
        proc.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs) and len(digests) == 1
    assert [p.name for p in (tmp_path / "decoded").iterdir()] == [_decoded_entry(tmp_path).name]
    assert load_entry(_decoded_entry(tmp_path)) is not None


def _wait_for(flag: Path, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    alive = proc.is_alive if hasattr(proc, "is_alive") else lambda: proc.poll() is None
    while not flag.exists():
        assert alive(), "the process ended before it reached the hook"
        assert time.monotonic() < deadline, "the process never reached the hook"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_inside_a_cache_write_leaves_nothing_trusted(tree, tmp_path, capsys, monkeypatch):
    import multiprocessing

    flag, cache = tmp_path / "in-write", tmp_path / "cache"
    proc = _fork(tree, cache, multiprocessing.get_context("fork").Queue(), DISTILL_STALL_WRITE=f"decoded:{flag}")
    _wait_for(flag, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert list((cache / "decoded").glob(".*.tmp"))  # the write was under way ...
    assert not list((cache / "decoded").glob("*.pt"))  # ... and never reached the entry's name
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(cache))
    again = load_dataset("cifar10", "train", data_root=tree)
    assert "cache:" not in capsys.readouterr().err and len(again) == 120
    assert load_entry(_decoded_entry(cache)) is not None
    assert not list((cache / "decoded").glob(".*.tmp"))  # the dead writer's half file went with the new write


# --- Signals ----------------------------------------------------------------------------------------------------

def _ends_within(proc: subprocess.Popen, sig: int, seconds: float) -> tuple[str, float]:
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert took < seconds, f"ended {took:.1f} s after the signal"
    return err.decode(), took


@pytest.mark.slow
def test_sigterm_while_decoding_ends_at_once_and_says_nothing_was_kept(tree, tmp_path):
    flag = tmp_path / "in-write"
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "distill.run", *base_args("distill.run", tree, out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_for(tmp_path / "cache", DISTILL_STALL_WRITE=f"decoded:{flag}"), cwd=tmp_path)
    _wait_for(flag, proc)
    err, _ = _ends_within(proc, signal.SIGTERM, 5)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: nothing was kept"), err
    assert "checkpointed" not in err


_BLOCKED_IN_C = """
import os, sys
from pathlib import Path
from distill.shell.cli import run_cli

def main(argv):
    Path(sys.argv[1]).touch()
    os.system(f"sleep 300 & echo $! > {sys.argv[2]}; wait")  # blocked in C's system(), as in torch.compile's g++
    return 0

run_cli(main)
"""


@pytest.mark.slow
def test_sigterm_ends_a_process_blocked_in_c_and_its_children_within_5_s(tmp_path):
    flag, child = tmp_path / "blocked", tmp_path / "child.pid"
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKED_IN_C, str(flag), str(child)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(tmp_path))
    _wait_for(flag, proc)
    while not child.exists() or not child.read_text().strip():
        time.sleep(0.05)
    err, _ = _ends_within(proc, signal.SIGTERM, 5)
    assert proc.returncode == 130 and "interrupted: nothing was kept" in err, err
    pid = int(child.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.mark.slow
def test_sigint_after_a_checkpoint_names_its_folder(tree, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "distill.run", *base_args("distill.run", tree, out),
                             "--iterations", "100000", "--checkpoint-minutes", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(tmp_path / "cache"),
                            cwd=tmp_path)
    _wait_for(out / "checkpoint.pt", proc, timeout=120)
    err, _ = _ends_within(proc, signal.SIGINT, 5)
    assert proc.returncode == 130
    assert f"interrupted: progress was checkpointed in {out}; rerun the same command with --resume" in err, err


def test_memory_and_disk_estimates_refuse_what_cannot_fit(tmp_path):
    from distill.shell.preflight import GB, available_memory, check_disk, check_memory

    available, source = available_memory()
    assert available > 0 and source
    check_memory({"small": (1, "lower nothing")})
    with pytest.raises(DistillError, match=r"needs about .* GB of memory \(huge: .*\) but only .* available.*lower --x"):
        check_memory({"huge": (available + GB, "lower --x"), "small": (1, "")})
    check_disk([(tmp_path / "not-yet" / "made", 1, "a file")])
    with pytest.raises(DistillError, match=r"writes about .* GB \(a file, another\) to .* free"):
        check_disk([(tmp_path / "a", 10 ** 18, "a file"), (tmp_path / "b", 1, "another")])


def test_a_resume_with_other_settings_is_refused_before_decoding(tree, tmp_path):
    from continual.run import main as continual_main
    from nas.search import main as nas_main

    (tmp_path / "cl").mkdir()
    (tmp_path / "cl" / "progress.json").write_text('{"config": {"steps": 2}, "records": {}}')
    with pytest.raises(DistillError, match="the settings differ from the run saved in"):
        continual_main([*base_args("continual.run", tree, tmp_path / "cl"), "--resume"])
    (tmp_path / "nas" / "progress").mkdir(parents=True)
    (tmp_path / "nas" / "progress" / "rank0.json").write_text('{"fingerprint": {"seed": 9}, "rows": []}')
    with pytest.raises(DistillError, match="holds a search with other settings"):
        nas_main([*base_args("nas.search", tree, tmp_path / "nas"), "--resume"])
    assert sorted(p.name for p in (tmp_path / "cl").iterdir()) == ["progress.json"]
