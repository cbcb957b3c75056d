"""Moved to :mod:`distill.core.testing` (one tiny dataset for every test); kept so that old imports work."""

from distill.core.testing import tiny_dataset

__all__ = ["tiny_dataset"]
