"""Atomic file writes: an interrupted run never leaves a half-written artifact."""

from __future__ import annotations

import glob
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from distill.core.errors import DistillError

#: Test hook: ``DISTILL_STALL_WRITE=<part of a path>:<flag file>`` makes the first write to a matching path
#: stop halfway, create the flag file and wait forever, so that a test can kill the process inside a write.
STALL_WRITE_ENV = "DISTILL_STALL_WRITE"

#: Every file this process has written to completion (the interrupt message names the checkpoints among them).
WRITTEN: list[Path] = []


class WriteError(DistillError, OSError):
    """A file could not be written (disk full, no permission); the previous file is intact.

    Also an :class:`OSError`, so callers that treat a failed write as harmless (caches) still can.
    """


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the permissions of any file the user creates (``0666`` less the umask), not the
    ``0600`` of the temporary file. A failed write raises :class:`WriteError` in one line.
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{path} is a folder; pass the path of a file (in it, or beside it)")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            _stall_if_asked(path, f, data)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        WRITTEN.append(path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
        raise WriteError(f"could not write {path} ({exc.strerror or exc}); {kept}; free space or fix the "
                         f"permissions and rerun (with --resume where the run has a checkpoint)") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _remove_orphans(path: Path) -> None:
    """Delete the temporary files of ``path`` whose writer is gone (``kill -9`` inside a write): never trusted,
    since only a rename gives a file its name, but a cache's half-written entries would pile up."""
    if not Path("/proc/self").exists():  # no way to tell a live writer from a dead one here: leave them
        return
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)


def _stall_if_asked(path: Path, f: Any, data: bytes) -> None:
    match, _, flag = os.environ.get(STALL_WRITE_ENV, "").rpartition(":")
    if not flag or match not in str(path):
        return
    f.write(data[:len(data) // 2])
    f.flush()
    Path(flag).touch()
    while True:  # until the test kills the process
        time.sleep(60)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def open_records(path: str | Path, settings: dict, *, hint: str = "") -> dict:
    """A benchmark's report ``{"records": [...], "settings": settings}``: the one in ``path`` when it was made
    with the same ``settings`` (a rerun continues it), else a fresh one; SystemExit (one line) on a mismatch."""
    path = Path(path)
    report = json.loads(path.read_text()) if path.is_file() else {"records": [], "settings": settings}
    if report["settings"] != settings:
        raise SystemExit(f"error: {path} holds records made with {report['settings']}, not {settings}; "
                         f"rerun with those settings or pass another --out{hint}")
    return report


def write_section(path: str | Path, marker: str, body: str) -> None:
    """Replace what lies between ``<!-- marker ... -->`` and ``<!-- /marker -->`` in a document, atomically:
    how a benchmark renders its table into docs/RESULTS.md."""
    import re

    path = Path(path)
    text = path.read_text()
    pattern = re.compile(rf"(<!-- {re.escape(marker)}[^\n]*-->\n).*?(<!-- /{re.escape(marker)} -->)", re.S)
    if not pattern.search(text):
        raise WriteError(f"{path} has no <!-- {marker} --> ... <!-- /{marker} --> section; add the two markers")
    atomic_write_text(path, pattern.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


__all__ = ["STALL_WRITE_ENV", "WRITTEN", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "open_records",
           "write_json", "write_section",
           "WriteError"]
