"""Compatibility: settings moved to :mod:`distill.settings`, the command-line shell to :mod:`distill.cli`
and ``resolve_device`` to :mod:`distill.distributed`; every name stays importable from here."""

from distill.cli import *  # noqa: F401,F403
from distill.cli import _terminate  # noqa: F401
from distill.distributed import resolve_device  # noqa: F401
from distill.settings import *  # noqa: F401,F403
from distill.settings import (_check_bounds, _coerce, _drop_none, _field_types, _merge, _parse_list,  # noqa: F401
                              _toml_value, _unwrap_optional)
