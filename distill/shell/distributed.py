"""Sharding over processes launched by ``torchrun``: classes (or candidates) split by rank, gathered on rank 0."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist

from distill.core.errors import DistillError

T = TypeVar("T")


def world() -> tuple[int, int]:
    """``(rank, world_size)``, initialising the process group when launched by torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), size


def leave_now(code: int = 0) -> None:
    """End a rank other than 0 once its share is handed over: flush and exit without the interpreter's and
    C++'s teardown, where a gloo thread still joinable aborts the process now and then ("terminate called
    without an active exception", seen in CI) and torchrun then stops rank 0 mid-run."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@dataclass(frozen=True)
class World:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @staticmethod
    def from_env() -> "World":
        """Join torchrun's process group (see :func:`world`), or rank 0 of 1 without torchrun."""
        return World(*world())

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def shard(items: Sequence[T], rank: int, size: int) -> list[T]:
    """This rank's share, round robin."""
    return list(items[rank::size])


def gather(obj: Any, size: int) -> list[Any]:
    """Every rank's ``obj``, in rank order (on all ranks)."""
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DistillError(f"--device {name} asked for, but no CUDA GPU is visible; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DistillError(f"unknown --device {name!r}; use auto, cpu or cuda") from None


def local_device(device: torch.device) -> torch.device:
    """One GPU per rank under torchrun."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


__all__ = ["World", "gather", "local_device", "resolve_device", "shard", "world"]
