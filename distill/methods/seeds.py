"""Moved to :mod:`distill.seeds` (every stream key in one module); kept so that old imports work."""

from distill.seeds import *  # noqa: F401,F403
from distill.seeds import __all__  # noqa: F401
