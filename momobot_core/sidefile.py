"""The side file ``<db>.pending``: where an exit is recorded when the journal cannot take it.

An exit is never held back, so its record must always have somewhere to go. A full disk is
the case that matters: the journal's write fails for want of space, and so would a new file
or an append that needs a new block. The side file therefore holds its room from the start,
as databases keep a reserve: ``RESERVE`` bytes are allocated when the journal opens, and a
record is written into that room in place (``pwrite``), which needs no new block.

Layout (text, NUL padded, so a record cut by a crash never runs into the next):

* ``HEADER``, the format's name;
* the *lost* area, up to ``LOST_END``: a line for each exit that could not be recorded even
  in the records area (the reserve used up): at the next start its trade comes back
  ``unconfirmed``, never as before its exit;
* the records area, from ``LOST_END``: the exits' journal events as JSON lines, then ``{"dispatched":
  id}`` lines; it may grow past the reserve while the disk has room.

Each area ends at its first NUL byte, and only NUL bytes follow it: every write (a record, a
clearing, the zeros over a record that did not go whole) is one ``pwrite``, which a killed
process never leaves half done, so a NUL followed by anything else is a change made after the
fact (a disk, a hand), and the file is refused, never read short.
"""

from __future__ import annotations

import contextlib
import errno
import os
import zlib
from pathlib import Path

HEADER = b"momobot side file 1\n"
LOST_END = 16 * 1024
RESERVE = 1024 * 1024


class SideFile:
    """The side file, open for the journal's writer for its whole life."""

    def __init__(self, path: Path, reserve: int = RESERVE) -> None:
        self.path = path
        self.reserve = max(reserve, LOST_END)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        #: Why the reserve could not be allocated (None: it is held).
        self.reserve_error: str | None = None
        #: What is wrong with a file that is neither this layout nor the older one (it is left
        #: exactly as it is, and the journal refuses to start: a person must look at it).
        self.damaged: str | None = None
        try:
            data = _read_all(self._fd)
            if data and not data.startswith(HEADER) and not data.startswith(b"{"):
                self.damaged = f"it does not begin with {HEADER.strip().decode()!r} (its header is damaged)"
                self._legacy, self._start = False, LOST_END
                self._lost_end, self._end = len(HEADER), LOST_END
                return
            # A side file from before the reserve holds plain JSON lines from its first byte: it
            # is read and appended to as it is, and takes the new layout once it is cleared.
            self._legacy = bool(data) and not data.startswith(HEADER)
            if self._legacy:
                self._start = self._lost_end = 0
                self._end = _end(data, 0, None)
            else:
                if not data:
                    os.pwrite(self._fd, HEADER, 0)
                self._start = LOST_END
                self._lost_end = _end(data, len(HEADER), LOST_END)
                self._end = _end(data, LOST_END, None)
                if data[self._lost_end : LOST_END].strip(b"\0") or data[self._end :].strip(b"\0"):
                    self.damaged = "a NUL byte inside what it holds (a byte changed after it was written)"
                    return
            self._reserve()
        except OSError:
            os.close(self._fd)
            raise

    def retry_reserve(self) -> None:
        """Try again to hold the room (a disk that was full at start may have room now)."""
        with contextlib.suppress(OSError):
            self._reserve()

    def _reserve(self) -> None:
        try:
            os.posix_fallocate(self._fd, 0, max(self.reserve, self._end))
        except OSError as exc:
            self.reserve_error = exc.strerror or str(exc)
        else:
            self.reserve_error = None

    # -- reading -------------------------------------------------------------------------------

    @property
    def has_records(self) -> bool:
        return self._end > self._start or self._lost_end > len(HEADER)

    def records(self) -> list[tuple[str, str]]:
        """The records area's lines, unsealed: ``(line, state)`` (see :func:`unseal`)."""
        if self._end <= self._start:
            return []
        data = os.pread(self._fd, self._end - self._start, self._start)
        return _lines(data, legacy=self._legacy)

    def lost(self) -> list[tuple[str, str]]:
        """The lost area's lines, unsealed: exits that went out but could not be recorded."""
        if self._legacy or self._lost_end <= len(HEADER):
            return []
        return _lines(os.pread(self._fd, self._lost_end - len(HEADER), len(HEADER)), legacy=False)

    # -- writing -------------------------------------------------------------------------------

    def append(self, line: str | bytes, *, sync: bool) -> None:
        """Write one record line at the records area's end. Raises OSError; a record that did not
        go whole is cut off again (a NUL where it began), so the area stays readable."""
        self._end = self._put(line, self._end, None, sync=sync)

    def mark_lost(self, line: str) -> None:
        """Write one line in the lost area (room held since the start). Raises OSError."""
        if self._legacy:
            raise OSError(errno.ENOSPC, "a side file from before the reserve has no room for it")
        self._lost_end = self._put(line, self._lost_end, LOST_END, sync=True)

    def _put(self, line: str | bytes, at: int, limit: int | None, *, sync: bool) -> int:
        body = line if type(line) is bytes else line.encode()  # type: ignore[union-attr]
        # seal() on the bytes: an event comes encoded, and is not decoded to be encoded again.
        # One concatenation: cheaper than formatting the record with ``%b`` (docs/PERFORMANCE.md).
        data = body + (b"\n" if self._legacy else b"\t%08x\n" % zlib.crc32(body))
        if limit is not None and at + len(data) >= limit:
            raise OSError(errno.ENOSPC, "the side file's room for unrecorded exits is used up")
        written = 0
        try:
            written = os.pwrite(self._fd, data, at)
            if written != len(data):
                raise OSError(errno.ENOSPC, "no room left on the device")
            if sync:
                os.fdatasync(self._fd)
        except OSError:
            # Zeros over all of it that went (blocks it already has): nothing of it stays behind
            # to be read as a line of its own after the next record written here.
            with contextlib.suppress(OSError):
                os.pwrite(self._fd, bytes(max(written, 1)), at)
            raise
        return at + len(data)

    def clear(self, *, sync: bool = True) -> None:
        """Both areas emptied, in place: their room stays held. Raises OSError. Call once what
        they hold is in the journal (a crash half way leaves an empty area, never a half one)."""
        if self._legacy:
            os.pwrite(self._fd, b"\0", 0)
            os.fdatasync(self._fd)
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, HEADER, 0)
            self._legacy = False
            self._start = self._end = LOST_END
            self._lost_end = len(HEADER)
            self._reserve()
            return
        for start, end in ((self._start, self._end), (len(HEADER), self._lost_end)):
            if end > start:
                os.pwrite(self._fd, bytes(end - start), start)  # one write: all of it or none
        if sync:
            os.fdatasync(self._fd)
        self._end, self._lost_end = self._start, len(HEADER)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def seal(line: str) -> str:
    """A line with its checksum: a byte changed anywhere in it (a disk, a hand) is found."""
    return f"{line}\t{zlib.crc32(line.encode()):08x}"


def unseal(line: str) -> tuple[str, str]:
    """``(line, state)``: ``ok``; ``cut`` (no checksum: a write a crash cut short); ``damaged``
    (the checksum does not match: never a cut, always a change)."""
    body, tab, crc = line.rpartition("\t")
    if not tab:
        return line, "cut"
    return (body, "ok") if crc == f"{zlib.crc32(body.encode()):08x}" else (body, "damaged")


def _lines(data: bytes, *, legacy: bool) -> list[tuple[str, str]]:
    text = data.decode("utf-8", errors="replace").splitlines()
    return [(line, "ok") for line in text] if legacy else [unseal(line) for line in text]


def read_side_file(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(records, lost) of a side file, unsealed, for a reader that does not hold the journal."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    if data and not data.startswith(HEADER):
        return _lines(data.split(b"\0", 1)[0], legacy=True), []
    records = data[LOST_END:].split(b"\0", 1)[0]
    lost = data[len(HEADER) : LOST_END].split(b"\0", 1)[0]
    return _lines(records, legacy=False), _lines(lost, legacy=False)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _end(data: bytes, start: int, limit: int | None) -> int:
    """Where an area's content ends: its first NUL (or the limit, or the data's end)."""
    stop = len(data) if limit is None else min(limit, len(data))
    if start >= stop:
        return start
    nul = data.find(b"\0", start, stop)
    return stop if nul < 0 else nul
