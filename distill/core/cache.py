"""Cache keys: which settings change a result, read from the fields' own metadata, and their digest."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import json
from pathlib import Path
from typing import Any

import torch

#: The environment variable naming the cache folder (default ``~/.cache/distill``).
CACHE_DIR_ENV = "DISTILL_CACHE_DIR"


def cache_dir() -> Path:
    """The folder every cache lives under: ``$DISTILL_CACHE_DIR``, else ``~/.cache/distill``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "distill")


#: ``field(metadata={RESULT: False})``: the field never changes a result (device, threads, memory layout).
RESULT = "result"
#: ``field(metadata={KEY: "when set"})``: the field enters a key only when it holds a value (not None or
#: False), so that a knob added for another method leaves the keys of every existing cache entry,
#: checkpoint and run unchanged.
KEY = "key"
#: ``field(metadata={RESUME: "extend"})``: a resumed run may change the field; it extends the run
#: (more seeds, more candidates, another ranking) and keeps what is done.
RESUME = "resume"


def fingerprint(config: Any, *, resume: bool = False) -> dict[str, Any]:
    """The settings of the dataclass ``config`` that change its result, nested tables included.

    Args:
        resume: also leave out the fields a resumed run may change (marked ``resume = "extend"``),
            for the check that a resumed run continues the same one.

    Returns:
        A JSON-ready dict (tuples become lists), the key of a cache entry or of a run's progress.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.metadata.get(RESULT, True) is False or (resume and f.metadata.get(RESUME) == "extend"):
            continue
        value = getattr(config, f.name)
        if f.metadata.get(KEY) == "when set" and value in (None, False):
            continue
        out[f.name] = fingerprint(value, resume=resume) if dataclasses.is_dataclass(value) else _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def content_key(*parts: Any, length: int | None = 12) -> str:
    """The one key of every cache and checkpoint: a SHA-1 hex digest of ``parts``, in order.

    A JSON-ready part (a settings record: dict key order does not matter) enters as its canonical JSON;
    a tensor by its shape and bytes, so a cache keyed by the images it read is keyed by their content.
    (:func:`distill.core.store.content_digest` is the other digest: the integrity check of a stored file.)
    """
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(str(tuple(t.shape)).encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        else:
            h.update(json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()[:length]


def cache_file(root: str | Path | None, job: str, stem: str, record: Any) -> Path:
    """``<root>/<stem>-<digest of record>.pt``; ``root`` defaults to ``$DISTILL_CACHE_DIR/<job>``
    (else ``~/.cache/distill/<job>``)."""
    folder = Path(root) if root else cache_dir() / job
    return folder / f"{stem}-{content_key(record)}.pt"


__all__ = ["CACHE_DIR_ENV", "RESULT", "RESUME", "cache_dir", "cache_file", "content_key", "fingerprint"]
