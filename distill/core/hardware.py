"""What this machine can do fast: native bf16, a working torch.compile, and a record of both for results."""

from __future__ import annotations

import functools
import os
import platform
import shutil
from pathlib import Path

import torch

from distill.core.errors import DistillError

PRECISIONS = ("auto", "fp32", "bf16")
# CPU flags of native bf16 arithmetic. Without them oneDNN emulates bf16 and runs ~10x slower than fp32.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none, e.g. macOS), read once."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags."""
    return frozenset(_cpuinfo().get("flags", "").split())


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 matrix arithmetic is native (fast) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and any(flag in cpu_flags() for flag in _BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``auto`` is bf16 where it is native on ``device`` and fp32 elsewhere; fp32 and bf16 stay."""
    if precision not in PRECISIONS:
        raise DistillError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


@functools.lru_cache(maxsize=None)
def compile_available(device_type: str = "cpu") -> bool:
    """Whether torch.compile can build kernels here: a GPU, or a C++ compiler for the CPU backend."""
    if device_type == "cuda":
        return torch.cuda.is_available()
    if os.environ.get("DISTILL_NO_COMPILE"):
        return False
    return any(shutil.which(cc) for cc in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if cc)


def machine_info(device: torch.device | str = "cpu") -> dict:
    """What a benchmark or results file records about the machine it ran on."""
    device = torch.device(device)
    info = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16("cpu"), "bf16_flags": sorted(f for f in _BF16_FLAGS if f in cpu_flags()),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "device": str(device), "torch": torch.__version__}
    if "model name" in _cpuinfo():
        info["cpu_model"] = _cpuinfo()["model name"]
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
        info["native_bf16"] = native_bf16(device)
    return info


__all__ = ["PRECISIONS", "compile_available", "cpu_flags", "machine_info", "native_bf16", "resolve_precision"]
