"""Continual learning with distilled memories: an Avalanche storage policy, benchmark, protocols and CLI."""

import warnings

# Avalanche imports qpsolvers for GEM/A-GEM, strategies we never use; its "no QP solver found" warning
# on every run says nothing about ours. Filtered here, before any Avalanche import.
warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning)



def __getattr__(name: str):
    """``continual.DistilledBuffer`` imports Avalanche on first use, so that the command line's checks
    (``continual.config``) refuse a bad setting without paying for it."""
    if name == "DistilledBuffer":
        from continual.buffer import DistilledBuffer

        return DistilledBuffer
    raise AttributeError(f"module 'continual' has no attribute {name!r}")


__all__ = ["DistilledBuffer"]
