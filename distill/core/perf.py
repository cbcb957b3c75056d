"""Process-wide CPU speed settings: keep the allocator from handing large buffers back every step."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def tune_allocator() -> bool:
    """Ask glibc malloc to keep freed memory (no trim, no per-buffer mmap). Returns whether it applied.

    The distillation loop frees and re-allocates the same large activation buffers every step; by
    default glibc returns them to the OS (munmap) and the next step page-faults them in again.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False


__all__ = ["tune_allocator"]
