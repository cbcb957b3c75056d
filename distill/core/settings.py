"""Settings: one dataclass holds the defaults; TOML presets and command-line flags override its fields.

Everything between a dataclass and its outside forms lives here: flags generated from the fields
(:func:`add_config_args`), TOML read and written (:func:`resolve_config`, :func:`to_toml`), presets
(:func:`pick_preset`), and the checks of every value against its field (:func:`checked`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import string
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from distill.core.errors import DistillError

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _parse_list(element: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        return [element(part) for part in text.split(",") if part.strip()]

    return parse


def add_config_args(parser: argparse.ArgumentParser, cls: type, *, skip: set[str] | frozenset[str] = frozenset(),
                    show_defaults: bool = False) -> None:
    """Add a ``--field-name`` flag for every scalar or list field of the dataclass ``cls``.

    Flags default to ``None`` so that only what the user typed overrides the presets.
    Help texts come from ``field(metadata={"help": ...})``; with ``show_defaults`` they end with the
    field's default (leave it off where a preset, not the dataclass, decides the default).
    """
    for f in dataclasses.fields(cls):
        if f.name not in skip and not dataclasses.is_dataclass(_unwrap_optional(_field_types(cls)[f.name])[0]):
            add_field_arg(parser, cls, f, ["--" + f.name.replace("_", "-")], dest=f.name, show_defaults=show_defaults)


def add_field_arg(parser: argparse.ArgumentParser, cls: type, f: dataclasses.Field, flags: Sequence[str], *,
                  dest: str, show_defaults: bool = False) -> None:
    """The flag(s) of one field of ``cls``: ``flags[0]`` is shown in ``--help``; the others are the same flag
    under other spellings, named at the end of its help. ``dest`` is where argparse stores the value.

    A registry's choices (a callable: ``list_methods``) are argparse's; a fixed tuple of choices is checked
    with the field's other bounds (:func:`check_value`), so that a wrong value is the same one-line error
    from a flag, a TOML file or Python.
    """
    tp, _ = _unwrap_optional(_field_types(cls)[f.name])
    help_text = f.metadata.get("help", "")
    if show_defaults and f.default is not dataclasses.MISSING and f.default is not None \
            and "default" not in help_text:
        shown = ",".join(map(str, f.default)) if isinstance(f.default, (list, tuple)) else f.default
        help_text = f"{help_text} (default: {shown})".strip()
    shown_flag, *others = flags
    if others:
        help_text = f"{help_text} (also {', '.join(others)})".strip()
    kwargs: dict[str, Any] = {"dest": dest, "default": None}
    if tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(tp) in (tuple, list):
        element = typing.get_args(tp)[0] if typing.get_args(tp) else str
        kwargs.update(type=_parse_list(element), metavar="A,B,...")
    else:
        kwargs.update(type=tp, metavar=shown_flag[2:].replace("-", "_").upper())
        if callable(f.metadata.get("choices")):
            kwargs["choices"] = f.metadata["choices"]()
    parser.add_argument(shown_flag, help=help_text, **kwargs)
    for other in others:  # the same flag, spelled otherwise; one line of --help is enough
        extra = {k: v for k, v in kwargs.items() if k != "metavar"}
        parser.add_argument(other, help=argparse.SUPPRESS, **extra)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise DistillError(f"{where} may not be empty")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise DistillError(f"{where} must be a table of settings, got {value!r}")
        return from_dict(tp, value, where=where)
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise DistillError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(tp)
        element = args[0] if args else Any
        items = [_coerce(v, element, where) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise DistillError(f"{where} must be true or false, got {value!r}")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is str and isinstance(value, os.PathLike):
        return os.fspath(value)
    if tp is dict and isinstance(value, dict):
        return value
    raise DistillError(f"{where} must be of type {getattr(tp, '__name__', tp)}, got {value!r}")


def _check_bounds(value: Any, metadata: Any, where: str) -> None:
    """Raise :class:`DistillError` if ``value`` (or any element of a list) breaks the field's declared bounds.

    Bounds live in the field's metadata: ``min``/``max`` (inclusive), ``above`` (exclusive lower) and a
    fixed tuple of ``choices`` (``what`` names the kind of value in the message: "search space"). A
    callable ``choices`` is a registry, checked where it is read (a method registered later is valid).
    """
    choices = metadata.get("choices")
    static = choices is not None and not callable(choices)
    if value is None or not (static or any(k in metadata for k in ("min", "max", "above"))):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_bounds(item, metadata, where)
        return
    if static and value not in choices:
        what = metadata.get("what")
        named = f"{what} {value!r} ({where})" if what else f"{where} {value!r}"
        raise DistillError(f"unknown {named}; use one of {', '.join(map(str, choices))}")
    if isinstance(value, str):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise DistillError(f"{where} must be a finite number, got {value!r}; pass a number")
    if "min" in metadata and value < metadata["min"]:
        raise DistillError(f"{where} must be at least {metadata['min']}, got {value!r}; "
                           f"set it to {metadata['min']} or more")
    if "above" in metadata and value <= metadata["above"]:
        raise DistillError(f"{where} must be more than {metadata['above']}, got {value!r}; pass a larger value")
    if "max" in metadata and value > metadata["max"]:
        raise DistillError(f"{where} must be at most {metadata['max']}, got {value!r}; "
                           f"set it to {metadata['max']} or less")


def check_value(cls: type, path: str, value: Any) -> None:
    """Check one flag's ``value`` against the bounds of the field ``path`` (``"space"``, ``"train.epochs"``) of
    ``cls``, named ``path``: before it names a preset file, so a wrong value is not an unknown preset."""
    *tables, name = path.split(".")
    for table in tables:
        cls = _unwrap_optional(_field_types(cls)[table])[0]
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    _check_bounds(value, f.metadata, path)


def check_fields(obj: Any, where: str | None = None) -> None:
    """Check every field of the dataclass ``obj`` against its type and its metadata bounds.

    The same check serves TOML files, command-line flags and Python callers, so a bad value is one
    :class:`DistillError` naming the field wherever it comes from. Values are normalised in place as
    :func:`from_dict` would (an int for a float field becomes a float, a list for a tuple a tuple).
    """
    hints = _field_types(type(obj))
    prefix = where or type(obj).__name__
    for f in dataclasses.fields(obj):
        name = f"{prefix}.{f.name}"
        value = getattr(obj, f.name)
        if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING \
                and dataclasses.is_dataclass(hints[f.name]):  # a partial table fills in from the field's default
            value = {**config_to_dict(f.default_factory()), **value}
        value = _coerce(value, hints[f.name], name)
        _check_bounds(value, f.metadata, name)
        object.__setattr__(obj, f.name, value)


def checked(cls: type[T]) -> type[T]:
    """Class decorator (put it *under* ``@dataclass``): instances check their fields on creation.

    ``TrainConfig(epochs=-1)`` or ``DistillConfig(iterations="5")`` then fails at once with a
    one-line :class:`DistillError`, not hours later or deep inside a training loop.
    """
    original = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:
        check_fields(self)
        share_fields(self)
        if original is not None:
            original(self)

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    return cls


def share_fields(obj: Any) -> None:
    """Copy the fields a nested table shares with ``obj`` (``field(metadata={"shares": ("ipc",)})``) into it.

    Such a value exists once, at the top level (``ipc``); the table (``[distill]``) reads that one.
    """
    for f in dataclasses.fields(obj):
        table = getattr(obj, f.name)
        names = [n for n in f.metadata.get("shares", ()) if getattr(table, n) != getattr(obj, n)]
        if names and dataclasses.is_dataclass(table):
            object.__setattr__(obj, f.name, dataclasses.replace(table, **{n: getattr(obj, n) for n in names}))


def _check_shared(cls: type, data: dict[str, Any], where: str) -> None:
    """A shared field set inside its table must agree with the top level (``config.toml`` repeats it)."""
    for f in dataclasses.fields(cls):
        table = data.get(f.name)
        for name in f.metadata.get("shares", ()) if isinstance(table, dict) else ():
            top = data.get(name, next(g.default for g in dataclasses.fields(cls) if g.name == name))
            if name in table and table[name] != top:
                place = f"{where}.{f.name}.{name}" if where else f"{f.name}.{name}"
                raise DistillError(f"{place} = {table[name]!r} differs from {name} = {top!r}; set {name} once, at "
                                   f"the top level")


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build ``cls`` from a (possibly partial) dict, rejecting unknown keys by name.

    A partial table keeps its field's own default for what it leaves out (``SearchConfig``'s ``[train]``
    is the NB201 recipe, not :class:`TrainConfig`'s defaults).
    """
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise DistillError(f"unknown setting(s) {', '.join(unknown)} in {where}; known: {', '.join(sorted(names))}")
    _check_shared(cls, data, where)
    data = {**data, **{f.name: {**config_to_dict(f.default_factory()), **data[f.name]}  # type: ignore[misc]
                       for f in dataclasses.fields(cls) if isinstance(data.get(f.name), dict)
                       and f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(hints[f.name])}}
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    for f in dataclasses.fields(cls):  # checked here too, so the message names where the value came from
        if f.name in kwargs:
            _check_bounds(kwargs[f.name], f.metadata, f"{where}.{f.name}" if where else f.name)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DistillError(f"invalid {where}: {exc}") from None
    return obj


def config_to_dict(obj: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` with tuples turned into lists (JSON/TOML friendly)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    return convert(obj)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"config file {path} does not exist; pass an existing TOML file")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise DistillError(f"config file {path} is not valid TOML ({exc}); fix the file") from None


def resolve_config(cls: type[T], *, preset_file: str | Path | None = None, config_file: str | Path | None = None,
                   overrides: dict[str, Any] | argparse.Namespace | None = None,
                   preset_extra: dict[str, Any] | None = None) -> T:
    """Dataclass defaults, then the preset TOML, then ``preset_extra`` (what the preset means for the chosen
    method, say), then ``--config`` TOML, then non-None CLI overrides."""
    data: dict[str, Any] = {}
    for path in (preset_file, preset_extra, config_file):
        if isinstance(path, dict):
            data = _merge(data, path)
        elif path is not None:
            data = _merge(data, read_toml(path))
            from_dict(cls, data, where=Path(path).name)  # a bad value in a file is named with its file
    if isinstance(overrides, argparse.Namespace):
        names = {f.name for f in dataclasses.fields(cls)}
        overrides = {k: v for k, v in vars(overrides).items() if k in names}
    data = _merge(data, _drop_none(overrides or {}))
    return from_dict(cls, data, where="")  # what is left to fail came from a flag: name the setting alone


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def to_toml(obj: Any) -> str:
    """Render a dataclass or dict as TOML; ``None`` values become comments (TOML has no null)."""
    data = config_to_dict(obj) if not isinstance(obj, dict) else config_to_dict(dict(obj))
    lines: list[str] = []

    def emit(table: dict[str, Any], prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"\n[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"# {key} = (unset)" if value is None else f"{key} = {_toml_value(value)}")
        for key, value in tables.items():
            emit(value, f"{prefix}.{key}" if prefix else key)

    emit(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def preset_path(job: str, *names: str) -> Path:
    """The first existing ``configs/<job>/<name>.toml`` among ``names``."""
    for name in names:
        path = CONFIG_DIR / job / f"{name}.toml"
        if path.is_file():
            return path
    available = sorted(p.stem for p in (CONFIG_DIR / job).glob("*.toml"))
    raise DistillError(f"no preset {' or '.join(names)} in {CONFIG_DIR / job}; available: {', '.join(available) or 'none'}")


def _setting(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else getattr(data, part, None)
    return data


def pick_preset(job: str, preset: str | None, names: Sequence[str], *, cls: type,
                flags: dict[str, Any] | argparse.Namespace | None = None,
                config_file: str | Path | None = None) -> Path | None:
    """The preset file of ``--preset``: the first existing ``configs/<job>/<name>.toml`` among ``names``.

    ``names`` are templates such as ``"{dataset}-ipc{distill.ipc}-{preset}"``; a setting in braces is
    the flag's value if given, else the ``--config`` file's, else the dataclass ``cls``'s default.
    ``None`` or ``"none"`` picks no preset (the dataclass defaults).
    """
    if preset is None or preset == "none":
        return None
    flags = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    from_file = read_toml(config_file) if config_file is not None else {}
    default = cls()
    values: dict[str, Any] = {}
    for path in {p for name in names for p in _placeholders(name)} - {"preset"}:
        # A flag is read where its table puts it (``{"distill": {"ipc": 50}}``) or by its bare name (``ipc``).
        flag = _setting(flags, path)
        flag = flags.get(path.rsplit(".", 1)[-1]) if flag is None else flag
        for source in (flag, _setting(from_file, path), _setting(default, path)):
            if source is not None:
                values[path] = source
                break
    candidates = [_fill(name, preset=preset, **values) for name in names]
    try:
        return preset_path(job, *dict.fromkeys(candidates))
    except DistillError as exc:
        raise DistillError(f"unknown --preset {preset!r}: {exc}") from None


def _placeholders(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def _fill(template: str, **values: Any) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


__all__ = ["CONFIG_DIR", "add_config_args", "add_field_arg", "check_fields", "check_value", "checked", "config_to_dict", "from_dict", "pick_preset",
           "preset_path", "read_toml", "resolve_config", "share_fields", "to_toml"]
