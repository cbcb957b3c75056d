"""DataDAM and baseline dataset distillation: data, networks, DSA, methods, evaluation, artifacts."""

from distill.errors import DistillError
from distill.synthetic import SyntheticSet

__all__ = ["DistillError", "SyntheticSet"]
