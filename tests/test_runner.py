"""distill.shell.runner: the three command lines share one runner; what it does for each, checked once per CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
import torch

from distill.shell import runner
from distill.core.errors import DistillError
from distill.core.settings import checked

CLIS = ["distill.run", "continual.run", "nas.search"]


def _module(name: str):
    import importlib

    return importlib.import_module(name)


def _one_line_error(main, argv, capsys) -> str:
    from distill.shell.cli import run_cli

    with pytest.raises(SystemExit) as info:
        run_cli(lambda _: main(argv))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("cli", CLIS)
def test_the_three_clis_refuse_out_resume_and_overwrite_alike(cli, tmp_path, monkeypatch, capsys):
    main = _module(cli).main
    monkeypatch.chdir(tmp_path)  # distill.run's --resume without --out looks for runs/distill-*
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "results.json").write_text("{}")
    stamp = (finished / "results.json").stat().st_mtime_ns
    base = ["--preset", "smoke", "--device", "cpu"]

    err = _one_line_error(main, [*base, "--out", str(finished)], capsys)
    assert f"{finished} already holds a run (results.json); pass --resume to continue it, --overwrite" in err
    assert (finished / "results.json").stat().st_mtime_ns == stamp  # refused before anything was written

    err = _one_line_error(main, [*base, "--out", str(finished), "--resume", "--overwrite"], capsys)
    assert "--resume continues the run in --out and --overwrite replaces it; pass one of them" in err

    err = _one_line_error(main, [*base, "--resume"], capsys)
    assert ("--resume found no runs/distill-*/checkpoint.pt" if cli == "distill.run"
            else "--resume needs --out DIR naming the run to continue") in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("cli", "flags", "values"), [
    ("distill.run", ["--train-epochs", "4", "--distill-iterations", "6", "--train-lr", "0.3"],
     {"train.epochs": 4, "distill.iterations": 6, "train.lr": 0.3}),
    ("continual.run", ["--replay-epochs", "3", "--train-epochs", "4", "--distill-iterations", "6",
                       "--replay-batch-size-mem", "7"],
     {"replay.epochs": 3, "train.epochs": 4, "distill.iterations": 6, "replay.batch_size_mem": 7}),
    ("nas.search", ["--train-epochs", "4", "--distill-iterations", "6", "--train-batch-size", "9"],
     {"train.epochs": 4, "distill.iterations": 6, "train.batch_size": 9}),
])
def test_a_table_flag_spelled_table_field_reaches_the_settings_over_the_preset(cli, flags, values):
    spec = _module(cli).SPEC
    preset_only, _ = runner.resolve(spec, runner.build_parser(spec).parse_args(["--preset", "smoke"]))
    cfg, _ = runner.resolve(spec, runner.build_parser(spec).parse_args(["--preset", "smoke", *flags]))
    for path, value in values.items():
        table, name = path.split(".")
        assert getattr(getattr(preset_only, table), name) != value  # the flag, not the preset, decided it
        assert getattr(getattr(cfg, table), name) == value


@pytest.mark.parametrize(("cli", "old", "new"), [
    ("distill.run", ["--eval-epochs", "6", "--ipc", "3"], ["--train-epochs", "6", "--distill-ipc", "3"]),
    ("nas.search", ["--epochs", "6", "--lr", "0.2"], ["--train-epochs", "6", "--train-lr", "0.2"]),
])
def test_the_older_spellings_are_the_same_flags(cli, old, new):
    spec = _module(cli).SPEC
    parse = runner.build_parser(spec).parse_args
    assert runner.resolve(spec, parse(["--preset", "smoke", *old]))[0] == \
        runner.resolve(spec, parse(["--preset", "smoke", *new]))[0]


@pytest.mark.parametrize(("cli", "flags", "message"), [
    ("distill.run", ["--train-epochs", "0"], "train.epochs must be at least 1, got 0"),
    ("continual.run", ["--replay-epochs", "0"], "replay.epochs must be at least 1, got 0"),
    ("nas.search", ["--space", "top10"], "unknown search space 'top10'"),
    ("nas.search", ["--top-fraction", "1.5"], "top_fraction must be at most 1.0, got 1.5"),
])
def test_a_flag_out_of_its_fields_bounds_is_one_line(cli, flags, message, tmp_path, capsys):
    err = _one_line_error(_module(cli).main, ["--device", "cpu", "--out", str(tmp_path / "o"), *flags], capsys)
    assert message in err
    assert not (tmp_path / "o").exists()


def test_replay_settings_hold_only_what_replay_reads():
    from continual.config import ReplayConfig
    from continual.run import build_parser

    names = {f.name for f in dataclasses.fields(ReplayConfig)}
    assert names == {"epochs", "batch_size", "lr", "momentum", "weight_decay", "nesterov", "batch_size_mem",
                     "baseline"}
    with pytest.raises(SystemExit):  # no flag for a setting replay would ignore
        build_parser().parse_args(["--replay-schedule", "cosine"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"top_fraction": 1.5}, "SearchConfig.top_fraction must be at most 1.0, got 1.5"),
    ({"num_archs": 0}, "SearchConfig.num_archs must be at least 1, got 0"),
    ({"test_images": -1}, "SearchConfig.test_images must be at least 0, got -1"),
    ({"space": "top10"}, "unknown search space 'top10' (SearchConfig.space); use one of full, top20"),
    ({"rank_by": "speed"}, "unknown SearchConfig.rank_by 'speed'; use one of accuracy, tse"),
])
def test_search_config_bounds_come_from_its_field_metadata(kwargs, message):
    from nas.config import SearchConfig

    with pytest.raises(DistillError) as info:
        SearchConfig(**kwargs)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    name = next(iter(kwargs))
    meta = next(f.metadata for f in dataclasses.fields(SearchConfig) if f.name == name)
    assert {"min", "max", "choices"} & set(meta)  # declared on the field, not hand-written


def test_search_config_in_a_toml_file_is_named_with_its_file(tmp_path):
    from nas.config import resolve_search_config

    bad = tmp_path / "bad.toml"
    bad.write_text("num_archs = 0\n")
    with pytest.raises(DistillError, match=r"bad.toml.num_archs must be at least 1, got 0"):
        resolve_search_config(config_file=bad)


# A command line of its own: what run_job does for any spec, seen from its work.
@dataclass
@checked
class _Table:
    size: int = field(default=2, metadata={"min": 1})


@dataclass
@checked
class _Toy:
    device: str = "auto"
    steps: int = field(default=1, metadata={"min": 1})
    inner: _Table = field(default_factory=_Table)


def _toy(seen: list, **kwargs) -> runner.JobSpec:
    return runner.JobSpec(module="toy", job="toy", description="toy", config=_Toy, preset_default=None,
                          work=lambda job: seen.append(job) or {"done": True},
                          report=lambda results, out: print("report", results), **kwargs)


def test_run_job_hands_the_work_this_ranks_gpu_and_writes_the_settings(tmp_path, monkeypatch, capsys):
    seen: list = []
    monkeypatch.setattr(runner, "resolve_device", lambda name: torch.device("cuda"))  # as on a GPU machine
    monkeypatch.setenv("LOCAL_RANK", "1")  # as torchrun's second process on it
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert runner.run_job(_toy(seen), ["--out", str(tmp_path / "o"), "--inner-size", "5", "--steps", "3"]) == 0
    job = seen[0]
    assert job.device == torch.device("cuda", 1)  # not every rank's GPU 0
    assert (job.cfg.steps, job.cfg.inner.size) == (3, 5)
    assert "size = 5" in (tmp_path / "o" / "config.toml").read_text()
    assert "report {'done': True}" in capsys.readouterr().out


def test_overwrite_removes_the_old_results_but_what_the_spec_keeps(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    for name in ("results.json", "checkpoint.pt"):
        (out / name).write_text("old")
    seen: list = []
    spec = _toy(seen, run_files=("results.json", "checkpoint.pt"), keep_on_overwrite=("checkpoint*",))
    with pytest.raises(DistillError, match="already holds a run"):
        runner.run_job(spec, ["--out", str(out), "--device", "cpu"])
    assert not seen
    runner.run_job(spec, ["--out", str(out), "--device", "cpu", "--overwrite"])
    assert seen and not (out / "results.json").exists() and (out / "checkpoint.pt").read_text() == "old"
