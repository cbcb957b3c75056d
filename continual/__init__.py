"""Continual learning with distilled memories: an Avalanche storage policy, benchmark, protocols and CLI."""

import warnings

# Avalanche imports qpsolvers for GEM/A-GEM, strategies we never use; its "no QP solver found" warning
# on every run says nothing about ours. Filtered here, before any Avalanche import.
warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning)

from continual.buffer import DistilledBuffer  # noqa: E402

__all__ = ["DistilledBuffer"]
