"""The shell every command line shares: run folder, threads, process group, one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fnmatch
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

from distill.shell.distributed import World
from distill.core.errors import DistillError
from distill.core.io import atomic_write_text
from distill.core.settings import to_toml


def run_parser(module: str, job: str, description: str, *, presets: str, preset_default: str | None,
               resume: str, overwrite: bool = True, quiet: bool = True) -> argparse.ArgumentParser:
    """A parser of ``python -m <module>`` with the flags every command line shares: ``--preset``, ``--config``,
    ``--out``, ``--resume`` (and ``--overwrite``, ``--quiet``); :func:`distill.core.settings.add_config_args` adds
    the settings' own."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--preset", default=preset_default, help=presets)
    parser.add_argument("--config", type=Path, default=None,
                        help="a TOML file of settings, applied after the preset (a run's config.toml is one)")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default runs/{job}-<timestamp>)")
    parser.add_argument("--resume", action="store_true", help=resume)
    if overwrite:
        parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


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


def write_settings(out: Path, settings: Any) -> Path:
    """The effective settings as ``out/config.toml`` (``--config`` reloads them)."""
    path = Path(out) / "config.toml"
    atomic_write_text(path, to_toml(settings))
    return path


@contextlib.contextmanager
def threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``count`` inside the block (``None`` or 0: torch's choice), then restored,
    so that a ``main`` run inside another program (tests, notebooks) leaves it as it was."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def joined() -> Iterator[World]:
    """This process's :class:`World` under torchrun (rank 0 of 1 without it); the process group it
    joined is left at the end of the block."""
    import torch.distributed as dist

    was_joined = dist.is_available() and dist.is_initialized()
    world = World.from_env()
    try:
        yield world
    finally:
        if not was_joined and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def report(summary: str, out: Path, **files: str) -> None:
    """Print a run's summary table, then one line naming its files (``results="results.json"``...)."""
    print(summary)
    print("  ".join(f"{label}: {Path(out) / name}" for label, name in files.items()))


#: Seconds an interrupted process has to end its own way (a checkpoint, the message) before it is ended for it.
GRACE_SECONDS = 4.0
#: Files a run resumes from: the interrupt message says "checkpointed" only when this process wrote one.
CHECKPOINT_FILES = ("checkpoint*.pt", "progress.json", "rank*.json")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, as Ctrl-C does in a terminal.

    A shell starts a background job (``cmd &`` in a script) with SIGINT ignored, and Python keeps it so:
    ``kill -INT`` would then be lost between the distillation loop's checkpoints (which catch it themselves),
    during evaluation for one. A scheduler's SIGTERM ends the run the same way.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)


def interrupt_message() -> str:
    """What an interrupted run kept: the folders of the checkpoints this process wrote, or that nothing was kept."""
    from distill.core.io import WRITTEN

    folders = sorted({str(p.parent) for p in WRITTEN if any(fnmatch.fnmatch(p.name, c) for c in CHECKPOINT_FILES)})
    if folders:
        return f"interrupted: progress was checkpointed in {', '.join(folders)}; rerun the same command with --resume"
    return "interrupted: nothing was kept (no checkpoint had been written); rerun the same command to start again"


def end_descendants() -> None:
    """Kill every process this one started, and theirs (torch.compile's workers, a compiler run by them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = entry.read_text()
        except OSError:
            continue
        children.setdefault(int(text.rsplit(")", 1)[1].split()[1]), []).append(int(entry.parent.name))
    todo, found = [os.getpid()], []
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


_ending = threading.Lock()


def _end(message: str, code: int) -> NoReturn:
    """Print ``message``, end the process's descendants and exit at once, without waiting on worker pools
    at interpreter exit (a ``concurrent.futures`` pool waits for its running work there)."""
    _ending.acquire()  # the first of the main thread and the watchdog ends the process; the other waits
    print(message, file=sys.stderr)
    end_descendants()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def _signal_watchdog() -> Iterator[None]:
    """Inside the block, end the process ``GRACE_SECONDS`` after SIGINT or SIGTERM if the main thread has not
    ended it by then.

    Python runs a signal handler only when the main thread returns to the interpreter; a main thread
    blocked in C (a compiler run by torch.compile, a join on its workers) never would. The C-level
    handler still writes the signal's number to the wakeup file descriptor, which a thread reads.
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    before = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while got := reader.recv(64):  # empty: the block has ended and closed the writer
            if any(n in (signal.SIGINT, signal.SIGTERM) for n in got):
                time.sleep(GRACE_SECONDS)
                _end(interrupt_message(), 130)

    watcher = threading.Thread(target=watch, name="signal-watchdog", daemon=True)
    watcher.start()
    try:
        yield
    finally:  # a main run inside another program (tests) leaves its signals as they were
        signal.set_wakeup_fd(before)
        writer.close()
        watcher.join(timeout=1.0)  # its recv returns empty now that the writer is closed
        reader.close()


def run_cli(main: Callable[[list[str] | None], int | None]) -> NoReturn:
    """Run a CLI ``main``: user errors become one line on stderr and exit code 2; SIGINT and SIGTERM end it
    within ``GRACE_SECONDS`` with a line that says what was kept."""
    stop_on_signals()  # a cluster scheduler's stop, or kill -INT of a background run: checkpoint and hint
    try:
        with _signal_watchdog():
            code = main(None)
    except DistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _end(interrupt_message(), 130)
    sys.exit(code or 0)


__all__ = ["GRACE_SECONDS", "end_descendants", "interrupt_message", "joined", "make_run_dir", "refuse_to_overwrite",
           "report", "run_cli", "run_parser", "stop_on_signals", "threads", "write_settings"]
