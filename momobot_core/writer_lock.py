"""One writer per journal: an OS lock on ``<db>.lock`` held for the writing process's life."""

from __future__ import annotations

import fcntl
import os
import threading

from momobot_core.errors import JournalError

#: Journals this process writes (POSIX locks do not stop a second writer in the same process).
_WRITING: set[str] = set()
_WRITING_LOCK = threading.Lock()


def take_lock(path: str) -> int:
    """Lock ``<path>.lock`` for this process's life; JournalError naming the holder otherwise.

    A POSIX record lock (``lockf``), not ``flock``: it belongs to the process,
    is never shared with a forked child (a plugin's subprocess), and goes with
    the process however it ends.
    """
    key = os.path.realpath(path)  # one lock per file, whatever link or relative path names it
    lock_path = key + ".lock"
    with _WRITING_LOCK:
        if key in _WRITING:
            # Checked before opening the file: closing any descriptor of a POSIX-locked file
            # releases this process's lock on it.
            raise JournalError(
                f"{path}: this process (PID {os.getpid()}) is already writing this"
                " journal; only one writer at a time"
            )
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JournalError(
                f"{path}: cannot create the lock file {lock_path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JournalError(
                f"{path}: another MomoBot process (PID {holder}) is writing this"
                " journal; only one process may write a journal at a time"
            ) from None
        _WRITING.add(key)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_lock(path: str, fd: int) -> None:
    with _WRITING_LOCK:
        _WRITING.discard(os.path.realpath(path))
        os.close(fd)  # closing the descriptor releases the lock
