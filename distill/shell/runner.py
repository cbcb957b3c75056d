"""One job runner: what ``distill.run``, ``continual.run`` and ``nas.search`` share, behind one call.

A command line is a :class:`JobSpec` (its settings class, presets, the files a run leaves, its
pre-flight and its work) and ``run_job(SPEC, argv)``. :func:`run_job` does the rest, in this order:

1. the parser: the shared flags (``--preset``, ``--config``, ``--out``, ``--resume``, ``--overwrite``,
   ``--quiet``) and one flag per field of the settings, nested tables included, spelled
   ``--<field>`` at the top level and ``--<table>-<field>`` inside a table (``--train-epochs``);
   older spellings (``--eval-epochs``, ``--ipc`` for ``[distill] ipc``) are the same flag;
2. the flags checked against their fields' bounds, then ``--resume``/``--overwrite``/``--out``;
3. the settings: the dataclass defaults, the preset, ``--config``, the flags
   (:func:`distill.core.settings.resolve_config`);
4. ``--out`` refused if it holds a run and neither ``--resume`` nor ``--overwrite`` is given;
5. the device (:func:`distill.shell.distributed.local_device`: this rank's GPU under torchrun) and the pre-flight;
6. the run folder, ``config.toml`` (rank 0), the CPU threads and the torchrun process group; the work;
   the report.

:mod:`distill.shell.cli` stays the low-level shell under it (run folder, threads, process group, the one-line
errors and signals of :func:`distill.shell.cli.run_cli`), which a script with no settings class uses alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from distill.shell.cli import joined, make_run_dir, refuse_to_overwrite, run_parser, threads, write_settings
from distill.shell.distributed import World, local_device, resolve_device
from distill.core.errors import DistillError
from distill.core.settings import add_config_args, add_field_arg, check_value, pick_preset, resolve_config


@dataclass(frozen=True)
class Job:
    """What the work of a command line is handed: its settings, where and on what it runs."""

    spec: "JobSpec"
    args: argparse.Namespace
    cfg: Any
    out: Path
    device: Any
    world: World
    resume: bool
    overwrite: bool
    preset: str | None
    #: the preset was picked for this machine, not named (distill.run without --preset or --config)
    preset_chosen: bool = False
    #: what the pre-flight returned (nas.search: the benchmark table it checked the candidates against)
    checked: Any = None

    @property
    def progress(self) -> bool:
        """Progress bars: not with ``--quiet``, and on rank 0 only."""
        return not getattr(self.args, "quiet", False) and self.world.rank == 0


@dataclass(frozen=True)
class JobSpec:
    """One command line: its settings class, its presets, the files it leaves, its pre-flight and its work."""

    module: str                       #: ``python -m <module>``
    job: str                          #: configs/<job>/ holds the presets; runs/<job>-<timestamp> the runs
    description: str
    config: type                      #: the settings dataclass (``@checked``)
    #: the run: returns the results (what ``report`` prints), or ``None`` where there is nothing to report
    work: Callable[[Job], Any]
    #: ``preflight(cfg, out, device=, resume=)``: every check that needs no decoded image
    preflight: Callable[..., Any] | None = None
    report: Callable[[Any, Path], None] | None = None
    presets: str = ""                 #: ``--preset``'s help
    #: candidate preset names, first existing wins (:func:`distill.core.settings.pick_preset`)
    preset_names: tuple[str, ...] = ("{preset}",)
    #: ``--preset`` when none is given: a name, or ``f(flags)`` asked only when ``--config`` is not given either
    preset_default: str | Callable[[dict], str] | None = "cpu"
    #: ``f(preset, flags, config_file, preset_file)``: settings the preset implies beyond its file
    preset_extra: Callable[..., dict | None] | None = None
    run_files: tuple[str, ...] = ("results.json",)   #: what a run leaves in --out (glob patterns)
    keep_on_overwrite: tuple[str, ...] = ()           #: of those, what --overwrite leaves (replaced later)
    resume_help: str = "continue the run in --out"
    resume_marker: str = "progress.json"              #: a run to continue: a file matching this in --out
    fresh_note: str = "no earlier run in {out} (no {marker}): starting fresh"
    latest_run: str | None = None     #: ``--resume`` without ``--out``: the newest runs/<job>-*/<latest_run>
    resume_settings: bool = False     #: ``--resume`` without --preset/--config reads --out's config.toml
    flat_tables: tuple[str, ...] = ()                 #: tables whose fields also take their bare ``--<field>``
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  #: ``"train.epochs": ("--eval-epochs",)``
    no_flags: frozenset[str] = frozenset()            #: fields the work decides itself (``"distill.method"``)
    show_defaults: bool = False       #: help texts end with the dataclass default (not where a preset decides)
    quiet: bool = True                #: a ``--quiet`` flag (nas.search has the ``progress`` setting instead)
    logging: tuple[int, str] | None = None            #: ``logging.basicConfig``'s level and format
    setup: Callable[[], Any] | None = None            #: run first (distill: the allocator's tuning)


def _tables(cls: type) -> list[dataclasses.Field]:
    from distill.core.settings import _field_types, _unwrap_optional

    hints = _field_types(cls)
    return [f for f in dataclasses.fields(cls) if dataclasses.is_dataclass(_unwrap_optional(hints[f.name])[0])]


def _table_fields(spec: JobSpec) -> list[tuple[str, type, dataclasses.Field]]:
    """``(table, table class, field)`` of every nested field that takes a flag."""
    from distill.core.settings import _field_types

    out = []
    for table in _tables(spec.config):
        cls = _field_types(spec.config)[table.name]
        shared = set(table.metadata.get("shares", ()))  # set once, at the top level (--ipc)
        out += [(table.name, cls, f) for f in dataclasses.fields(cls)
                if f.name not in shared and f"{table.name}.{f.name}" not in spec.no_flags]
    return out


def add_settings_args(parser: argparse.ArgumentParser, spec: JobSpec) -> None:
    """A flag per field of ``spec.config``: ``--<field>`` at the top level, ``--<table>-<field>`` in a table.

    An older spelling of a table's flag (a bare ``--ipc`` of a flat table, an alias) is shown in ``--help``
    with the uniform one named after it; both store into ``"<table>.<field>"``.
    """
    add_config_args(parser, spec.config, show_defaults=spec.show_defaults)
    for table, cls, f in _table_fields(spec):
        path = f"{table}.{f.name}"
        uniform = f"--{table}-{f.name}".replace("_", "-")
        old = [*spec.aliases.get(path, ()), *([f"--{f.name}".replace("_", "-")] if table in spec.flat_tables else [])]
        add_field_arg(parser, cls, f, [*old, uniform], dest=path, show_defaults=spec.show_defaults)


def build_parser(spec: JobSpec) -> argparse.ArgumentParser:
    default = spec.preset_default if isinstance(spec.preset_default, str) else None
    parser = run_parser(spec.module, spec.job, spec.description, presets=spec.presets, preset_default=default,
                        resume=spec.resume_help, quiet=spec.quiet)
    add_settings_args(parser, spec)
    return parser


def flag_values(args: argparse.Namespace | Mapping[str, Any], cls: type) -> dict[str, Any]:
    """The flags of ``args`` as the nested overrides of ``cls`` (tables as dicts), checked against the bounds
    of their fields; ``None`` where a flag was not given."""
    values = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    tables = {t.name for t in _tables(cls)}
    out: dict[str, Any] = {f.name: values.get(f.name) for f in dataclasses.fields(cls) if f.name not in tables}
    for table in tables:
        out[table] = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{table}.")}
    for name, value in out.items():  # before a flag's value names a preset file (--space names nb201-<space>-cpu)
        for key, item in (value.items() if name in tables else [(None, value)]):
            if item is not None:
                check_value(cls, f"{name}.{key}" if key else name, item)
    return out


def resolve(spec: JobSpec, args: argparse.Namespace) -> tuple[Any, bool]:
    """The settings of ``args`` (preset, ``--config``, flags) and whether the preset was chosen for the machine."""
    flags = flag_values(args, spec.config)
    chosen = False
    if args.preset is None and callable(spec.preset_default) and args.config is None:
        args.preset, chosen = spec.preset_default(flags), True
    preset_file = pick_preset(spec.job, args.preset, spec.preset_names, cls=spec.config, flags=flags,
                              config_file=args.config)
    extra = spec.preset_extra(args.preset, flags, args.config, preset_file) if spec.preset_extra else None
    cfg = resolve_config(spec.config, preset_file=preset_file, config_file=args.config, overrides=flags,
                         preset_extra=extra)
    return cfg, chosen


def _resume_dir(spec: JobSpec, out: Path | None) -> Path:
    if out is not None:
        return Path(out)
    if spec.latest_run is None:
        raise DistillError("--resume needs --out DIR naming the run to continue")
    found = sorted(Path("runs").glob(f"{spec.job}-*/{spec.latest_run}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DistillError(f"--resume found no runs/{spec.job}-*/{spec.latest_run}; pass --out DIR of the run "
                           f"to resume")
    return found[-1].parent


def run_job(spec: JobSpec, argv: list[str] | None = None) -> int:
    """Run the command line ``spec`` on ``argv`` (``None``: ``sys.argv``); see the module's docstring."""
    if spec.setup is not None:
        spec.setup()
    args = build_parser(spec).parse_args(argv)
    if spec.logging is not None:
        logging.basicConfig(level=spec.logging[0], format=spec.logging[1])
    flag_values(args, spec.config)  # a wrong value is named as its flag's, before anything else
    if args.resume and args.overwrite:
        raise DistillError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    out = _resume_dir(spec, args.out) if args.resume else args.out
    if args.resume and spec.resume_settings and args.config is None and args.preset is None \
            and (out / "config.toml").is_file():
        args.config = out / "config.toml"  # the settings of the interrupted run unless told otherwise
    cfg, chosen = resolve(spec, args)
    previous = refuse_to_overwrite(out, spec.run_files, resume=args.resume, overwrite=args.overwrite)
    device = local_device(resolve_device(cfg.device))  # this rank's GPU under torchrun, not every rank's GPU 0
    checked = spec.preflight(cfg, out, device=device, resume=args.resume) if spec.preflight else None
    out = make_run_dir(out, spec.job)
    for path in previous if args.overwrite else []:
        if not any(path.match(keep) for keep in spec.keep_on_overwrite):
            path.unlink(missing_ok=True)
    fresh = args.resume and not any(out.glob(spec.resume_marker))
    with threads(getattr(cfg, "threads", None)), joined() as world:
        if world.rank == 0:
            if fresh:
                print(spec.fresh_note.format(out=out, marker=spec.resume_marker), file=sys.stderr)
            write_settings(out, cfg)
        job = Job(spec, args, cfg, out, device, world, resume=args.resume, overwrite=args.overwrite,
                  preset=args.preset, preset_chosen=chosen, checked=checked)
        results = spec.work(job)
    if results and spec.report is not None:
        spec.report(results, out)
    return 0


__all__ = ["Job", "JobSpec", "add_settings_args", "build_parser", "flag_values", "resolve", "run_job"]
