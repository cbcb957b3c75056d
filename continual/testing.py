"""Moved to :mod:`distill.testing` (one tiny dataset for every test); kept so that old imports work."""

from distill.testing import tiny_dataset

__all__ = ["tiny_dataset"]
