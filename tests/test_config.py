import tomllib

import pytest

from distill.core.settings import CONFIG_DIR, resolve_config, to_toml
from distill.core.errors import DistillError
from distill.run import RunConfig


def test_toml_round_trip_and_precedence(tmp_path):
    preset = tmp_path / "preset.toml"
    preset.write_text("eval = 2\n[distill]\nipc = 5\niterations = 9\n")
    override = tmp_path / "mine.toml"
    override.write_text("[distill]\niterations = 11\n")
    cfg = resolve_config(RunConfig, preset_file=preset, config_file=override,
                         overrides={"seed": 3, "distill": {"lr_img": 0.5, "ipc": None}})
    assert (cfg.eval, cfg.seed, cfg.distill.ipc, cfg.distill.iterations, cfg.distill.lr_img) == (2, 3, 5, 11, 0.5)
    written = tmp_path / "config.toml"
    written.write_text(to_toml(cfg))
    assert tomllib.loads(written.read_text())["distill"]["iterations"] == 11
    assert resolve_config(RunConfig, config_file=written) == cfg


def test_unknown_and_mistyped_settings_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[distill]\nipcs = 5\n")
    with pytest.raises(DistillError, match="unknown setting\\(s\\) ipcs"):
        resolve_config(RunConfig, config_file=bad)
    bad.write_text("seed = 'zero'\n")
    with pytest.raises(DistillError, match="seed must be of type int"):
        resolve_config(RunConfig, config_file=bad)
    bad.write_text("seed = \n")
    with pytest.raises(DistillError, match="not valid TOML"):
        resolve_config(RunConfig, config_file=bad)


@pytest.mark.parametrize("job", ["continual", "nas"])
def test_ipc_exists_once(tmp_path, job):
    from continual.config import ContinualConfig
    from nas.config import SearchConfig, resolve_search_config

    cls = ContinualConfig if job == "continual" else SearchConfig
    assert cls(ipc=3).distill.ipc == 3  # the [distill] table reads the top-level ipc
    clash = tmp_path / "clash.toml"
    clash.write_text("ipc = 4\n[distill]\nipc = 7\n")
    with pytest.raises(DistillError, match="distill.ipc = 7 differs from ipc = 4"):
        if job == "continual":
            resolve_config(ContinualConfig, config_file=clash)
        else:
            resolve_search_config(config_file=clash)
    same = tmp_path / "same.toml"  # what config.toml repeats reloads
    same.write_text("ipc = 4\n[distill]\nipc = 4\n")
    cfg = resolve_config(ContinualConfig, config_file=same) if job == "continual" else \
        resolve_search_config(config_file=same)
    assert (cfg.ipc, cfg.distill.ipc) == (4, 4)


def test_one_preset_resolver_reads_the_flag_then_the_config_file_then_the_default(tmp_path):
    from continual.config import ContinualConfig
    from continual.run import PRESET_NAMES as CONTINUAL
    from distill.core.settings import pick_preset
    from distill.run import PRESET_NAMES as DISTILL
    from nas.config import SearchConfig
    from nas.search import PRESET_NAMES as NAS

    mine = tmp_path / "mine.toml"
    mine.write_text("steps = 10\nspace = 'full'\n[distill]\nipc = 1\n")
    cases = [("distill", DISTILL, RunConfig, {"ipc": 50}, "cifar10-ipc50-paper", "cifar10-ipc1-paper",
              "cifar10-ipc10-paper"),
             ("continual", CONTINUAL, ContinualConfig, {"steps": 5}, "cifar10-5step-paper", "cifar10-10step-paper",
              "cifar10-5step-paper"),
             ("nas", NAS, SearchConfig, {"space": "top20"}, "nb201-top20-paper", "nb201-full-paper",
              "nb201-top20-paper")]
    for job, names, cls, flags, by_flag, by_file, by_default in cases:
        assert pick_preset(job, "paper", names, cls=cls, flags=flags, config_file=mine).stem == by_flag
        assert pick_preset(job, "paper", names, cls=cls, flags={}, config_file=mine).stem == by_file
        assert pick_preset(job, "paper", names, cls=cls, flags={}).stem == by_default
        assert pick_preset(job, "smoke", names, cls=cls).stem == "smoke"
        assert pick_preset(job, "none", names, cls=cls) is None
        with pytest.raises(DistillError, match="unknown --preset 'huge'"):
            pick_preset(job, "huge", names, cls=cls)


def test_fields_that_do_not_change_a_result_are_marked_once():
    from continual.config import ContinualConfig
    from distill.core.cache import content_key, fingerprint
    from distill.methods import DistillConfig, result_key
    from nas.config import SearchConfig

    key = result_key(DistillConfig(method="dm"), "cpu")
    assert not {"compile", "channels_last", "checkpoint_minutes"} & set(key) and key["iterations"] == 8000
    assert result_key(DistillConfig(method="dm", channels_last=False), "cpu") == key
    continual = fingerprint(ContinualConfig(), resume=True)
    assert not {"seeds", "memory", "protocol", "device", "threads"} & set(continual) and "steps" in continual
    assert "channels_last" not in continual["distill"]
    nas = SearchConfig().fingerprint()
    assert not {"device", "threads", "progress", "cache_dir", "data_root", "proxy", "num_archs", "top_fraction",
                "rank_by"} & set(nas) and nas["ipc"] == 50
    assert content_key({"a": 1, "b": [2]}) == content_key({"b": [2], "a": 1}) and len(content_key({})) == 12


def _job(job):
    from continual.config import ContinualConfig
    from nas.config import resolve_search_config

    if job == "nas":
        return lambda **kw: resolve_search_config(**kw)
    return lambda **kw: resolve_config(RunConfig if job == "distill" else ContinualConfig, **kw)


@pytest.mark.parametrize("preset", sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.glob("*/*.toml")))
def test_every_preset_loads_and_its_config_toml_reloads_to_the_same_settings(preset, tmp_path):
    from distill.shell.cli import write_settings

    resolve = _job(preset.split("/")[0])
    settings = resolve(preset_file=CONFIG_DIR / preset)
    reloaded = resolve(config_file=write_settings(tmp_path, settings))
    assert reloaded == settings


def test_public_api_and_console_scripts():
    import importlib

    from distill import distill, evaluate, get_network, load_dataset

    assert all(callable(f) for f in (distill, evaluate, get_network, load_dataset))
    scripts = tomllib.loads((CONFIG_DIR.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"distill-run", "continual-run", "nas-search"}
    for target in scripts.values():
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name))
