"""Cache entries that carry a digest of their content: a damaged or foreign file is rebuilt, never trusted.

``torch.load`` reads a zip whose tensor bytes were flipped without complaint, and a file with the
right keys and shapes but other pixels looks valid; only a digest of the content itself tells them
apart. Every cache (decoded images, distilled sets, forgetting scores, NAS sets) goes through here.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import torch

from distill.core.errors import DistillError
from distill.core.io import atomic_torch_save

#: The wrapper a verified entry is stored in: ``{"format": FORMAT, "digest": ..., "content": ...}``.
FORMAT = "distill-verified/1"


class DamagedEntry(DistillError):
    """A stored file that fails its check: unreadable, without a digest, or with content that differs from it."""


def content_digest(obj: Any) -> str:
    """SHA-256 of ``obj``'s content: tensors by dtype, shape and bytes; dicts, lists and scalars by value."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):  # torch.load may give back a list for a tuple: the same content
        h.update(f"L{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"S{type(obj).__name__}:{obj!r};".encode())


def save_entry(obj: Any, path: str | Path) -> None:
    """Write ``obj`` with its digest, atomically (a temporary name, then a rename)."""
    atomic_torch_save({"format": FORMAT, "digest": content_digest(obj), "content": obj}, path)


def read_entry(path: str | Path) -> Any:
    """The content of the entry at ``path``; :class:`DamagedEntry` unless it reads and matches its digest."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, or not a torch file at all
        raise DamagedEntry(f"{path} is unreadable ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "digest" not in state:
        raise DamagedEntry(f"{path} carries no digest of its content")
    if content_digest(state.get("content")) != state["digest"]:
        raise DamagedEntry(f"{path} does not match the digest of its content")
    return state["content"]


def load_entry(path: str | Path | None) -> Any | None:
    """The content of the cache entry at ``path``; ``None`` when there is none or it fails its check.

    A failed check prints one line naming the file and deletes it, so that the caller rebuilds it.
    """
    if path is None or not Path(path).is_file():
        return None
    try:
        return read_entry(path)
    except DamagedEntry as exc:
        discard(path, str(exc))
        return None


def discard(path: str | Path, reason: str) -> None:
    """Delete the cache entry ``path`` that failed its check, saying so in one line."""
    print(f"cache: {reason}; deleted it, rebuilding", file=sys.stderr)
    Path(path).unlink(missing_ok=True)


__all__ = ["DamagedEntry", "FORMAT", "content_digest", "discard", "load_entry", "read_entry", "save_entry"]
