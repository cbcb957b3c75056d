"""Continual learning with distilled memories: an Avalanche storage policy, benchmark, protocols and CLI."""

from continual.buffer import DistilledBuffer

__all__ = ["DistilledBuffer"]
