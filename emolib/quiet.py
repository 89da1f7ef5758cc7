"""Quiet notebooks: native output silenced at the file-descriptor level, progress bars only
where a person watches.

- ``silence_native_output()``: a context manager that points file descriptors 1 and 2 at a
  private temporary file for the duration of a block, so C/C++ libraries that write straight
  to them (ncnn's ``0.00%`` lines from Real-ESRGAN) print nothing into a notebook or a log.
  If the block raises, the last lines they wrote are attached to the exception as a note, so
  an error message from the library is never lost.
- ``show_progress()`` decides, in one place, whether progress bars are shown: an explicit
  argument wins, then ``EMOLIB_PROGRESS=0|1``, else on only in a front end where a person
  watches (JupyterLab, Notebook, VS Code, a terminal), off under papermill / nbconvert
  (which execute with ``allow_stdin`` false), in logs and in tests.
- ``progress_bar(...)``: ``tqdm.auto.tqdm`` with ``disable`` decided by ``show_progress``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

PROGRESS_ENV_VAR = "EMOLIB_PROGRESS"  # 1: always show bars; 0: never
NATIVE_FDS = (1, 2)
TAIL_BYTES = 4096  # native output kept for the note of an exception raised in the block


class _Silencer:
    """Reference-counted redirection of fds 1 and 2, shared by every thread: the first block
    to enter redirects, the last to leave restores (nested or concurrent blocks are safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: dict[int, int] = {}
        self.sink_path = ""

    def enter(self) -> str:
        with self.lock:
            if self.depth == 0:
                _flush_all()
                fd, self.sink_path = tempfile.mkstemp(prefix="emolib-native-", suffix=".log")
                os.close(fd)
                sink = os.open(self.sink_path, os.O_WRONLY | os.O_APPEND)
                try:
                    for target in NATIVE_FDS:
                        try:
                            self.saved[target] = os.dup(target)
                        except OSError:  # the fd is closed in this process: nothing can print to it
                            continue
                        os.dup2(sink, target)
                finally:
                    os.close(sink)
            self.depth += 1
            return self.sink_path

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth:
                return
            _flush_all()
            for target, saved in self.saved.items():
                os.dup2(saved, target)
                os.close(saved)
            self.saved.clear()
            os.unlink(self.sink_path)


_SILENCER = _Silencer()  # one per process: fds 1 and 2 are process-wide too


def _flush_all() -> None:
    """Flush Python's and C's stdio buffers, so nothing written before (or inside) a block
    leaks out after the descriptors are restored."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    if os.name == "posix":
        ctypes.CDLL(None).fflush(None)


def _tail(path: str, limit: int = TAIL_BYTES) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - limit))
        return handle.read().decode(errors="replace").strip()


@contextmanager
def silence_native_output() -> Iterator[None]:
    """Silence what native code writes to fds 1 and 2 inside the block.

    Python's own ``print`` inside a notebook still shows (ipykernel sends it as messages, not
    through fd 1); in a plain script it goes the way of native output. On an exception the
    native output's last ``TAIL_BYTES`` are added to it as a note (``err.__notes__``)."""
    sink = _SILENCER.enter()
    try:
        yield
    except BaseException as err:
        _flush_all()
        tail = _tail(sink)
        if tail:
            err.add_note(f"native output before the error (silenced):\n{tail}")
        raise
    finally:
        _SILENCER.leave()


@contextmanager
def quiet_logging(level: int = logging.WARNING) -> Iterator[None]:
    """Drop log records at ``level`` and below inside the block (open_clip's "no pretrained
    weights loaded" warning when random weights are what is wanted)."""
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def watched_by_a_person() -> bool:
    """True in a Jupyter kernel whose current request comes from a front end a person uses
    (it allows stdin: JupyterLab, Notebook, VS Code), or outside Jupyter with a terminal on
    stderr; False under papermill, nbconvert and nbclient (``allow_stdin`` false), in pipes,
    logs and tests."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    kernel = getattr(shell, "kernel", None)  # a terminal IPython has no kernel
    if kernel is None:
        return sys.stderr is not None and sys.stderr.isatty()
    parent = kernel.get_parent("shell") or {}
    return bool(parent.get("content", {}).get("allow_stdin", False))


def show_progress(progress: bool | None = None) -> bool:
    """Whether to show progress bars: ``progress`` if given, else ``EMOLIB_PROGRESS`` (0/1)
    if set, else ``watched_by_a_person()``."""
    if progress is not None:
        return progress
    setting = os.environ.get(PROGRESS_ENV_VAR, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    if setting:
        raise ValueError(f"{PROGRESS_ENV_VAR}={setting!r}: use 1 (show progress bars) or 0 (hide them)")
    return watched_by_a_person()


def progress_bar(iterable: Iterable | None = None, progress: bool | None = None, **kwargs: Any) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **kwargs)`` shown only when ``show_progress(progress)``."""
    return tqdm(iterable, disable=not show_progress(progress), **kwargs)


__all__ = ["PROGRESS_ENV_VAR", "progress_bar", "quiet_logging", "show_progress", "silence_native_output",
           "watched_by_a_person"]
