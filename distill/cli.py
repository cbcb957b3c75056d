"""The shell every command line shares: run folder, threads, process group, one-line errors."""

from __future__ import annotations

import datetime as _dt
import signal
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from distill.errors import DistillError


def make_run_dir(out: str | Path | None, job: str) -> Path:
    """``--out`` if given, else a fresh ``runs/<job>-<timestamp>`` folder."""
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{job}-{stamp}"
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DistillError(f"cannot create output folder {path} ({exc.strerror}); pass a writable --out") from None
    return path


def refuse_to_overwrite(out: Path | None, markers: Sequence[str], *, resume: bool, overwrite: bool) -> list[Path]:
    """Raise :class:`DistillError` if ``out`` already holds a run and neither ``--resume`` nor ``--overwrite`` is given.

    ``markers`` are glob patterns of the files a run leaves behind. Returns the files found (what
    ``--overwrite`` replaces), so the caller can remove them before it starts.
    """
    if out is None or not Path(out).is_dir():
        return []
    found = sorted(p for pattern in markers for p in Path(out).glob(pattern))
    if found and not resume and not overwrite:
        names = ", ".join(p.name for p in found)
        raise DistillError(f"{out} already holds a run ({names}); pass --resume to continue it, --overwrite to "
                           f"replace it, or another --out")
    return found


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_cli(main: Callable[[list[str] | None], int | None]) -> NoReturn:
    """Run a CLI ``main``: user errors become one line on stderr and exit code 2."""
    signal.signal(signal.SIGTERM, _terminate)  # a cluster scheduler's stop: checkpoint and hint, as for Ctrl-C
    try:
        code = main(None)
    except DistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: progress was checkpointed; rerun the same command with --resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


__all__ = ["make_run_dir", "refuse_to_overwrite", "run_cli"]
