"""What sending plugins actually wrote to the outside world, and what a crash cut short.

A plugin that writes to the outside world (hotkey_ws) logs each write to
``<db>.wire`` with one ``pwrite`` system call: cheap enough for the trading
path, safe from any thread, and it survives a killed process. The journal
folds the file into its ``wire`` table at each start and clean exit; the
sequences that did not all go out are reported once, at the next start.
The records of a sequence that went out whole may wait in memory for a
moment (:meth:`WireLog.hold`): always written before the journal marks any
event dispatched, so a restart never reads less of it than the marks claim.

A full disk does not stop the log: ``RESERVE`` bytes are allocated ahead of
the records (``posix_fallocate``) when the journal opens, and again each time
they run low, and records are written in place into that room. When even that
is gone, the last ``TAIL`` bytes hold one ``incomplete`` record, so the next
start says the log is incomplete instead of reading "sent nothing" into it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import msgspec

#: Room allocated ahead of the records, each time it runs low (about 5,000 records).
RESERVE = 1024 * 1024
#: Kept at the end of the room for the one record that says the log ran out of it.
TAIL = 256
INCOMPLETE = "incomplete"
#: Records are encoded by msgspec (a tenth of json.dumps's time; they follow every command);
#: a value of a type it does not know is written as its text.
_ENCODE = msgspec.json.Encoder(enc_hook=str).encode
#: A batch already reported from this file at a start the journal could not take it.
TOLD = "told"


@attrs.frozen
class CutSequence:
    """A plugin's command sequence that did not all go out: cut by a crash, or an exit dropped."""

    plugin: str
    trade_id: str
    symbol: str
    event: str
    sent: tuple[str, ...]
    unsent: tuple[str, ...]
    #: An exit the plugin gave up on (its TTL, a shutdown): the position must be closed by hand.
    dropped_exit: bool = False
    #: The log ran out of room after it: more of ``unsent`` may have gone out than it shows.
    log_incomplete: bool = False
    #: The plugin's own name for the sequence (an order plugin: the engine's order id).
    batch: str = ""


class WireFile:
    """``<db>.wire`` open for records: written in place into room held ahead of them.

    Writers from any thread write under one lock, each with one ``pwrite`` at the end of the
    records; the reader skips the zeros of the room not yet used.
    """

    def __init__(self, path: Path | str, reserve: int = RESERVE) -> None:
        self.path = Path(path)
        self.reserve = max(reserve, 4 * TAIL)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # Records left by a start that could not fold them in (the journal was locked) stay;
            # new ones go after them, not after the room the last run held.
            kept = os.pread(self._fd, os.fstat(self._fd).st_size, 0).rstrip(b"\0")
        except OSError:
            os.close(self._fd)
            raise
        self._offset = self._end = len(kept)
        #: Records kept in memory for a moment (:meth:`hold`): ``(plugin, records)``, in order.
        self._held: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
        #: Why no room could be held ahead (a full disk), or None.
        self.reserve_error: str | None = None
        #: The room ran out: records after that moment are not kept.
        self.full = False
        self._extend()

    def _extend(self) -> bool:
        """Hold more room ahead: the reserve, or as much of it as the disk still has."""
        size = self.reserve
        while size >= 4 * TAIL:
            try:
                os.posix_fallocate(self._fd, self._end, size)
            except OSError as exc:
                self.reserve_error = exc.strerror or str(exc)
                size //= 4
                continue
            self._end += size
            self.reserve_error = None
            return True
        return False

    def append(self, data: bytes) -> None:
        """Write ``data`` (whole records) after what the file holds, and after what waits in
        memory (:meth:`hold`): the file keeps the order they were given in."""
        with self._lock:
            if self._held:
                data = self._take_held() + data
            self._append(data)

    def hold(self, plugin: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Keep records in memory until the next :meth:`flush` or :meth:`append` (see
        :meth:`WireLog.hold`): no system call, no encoding on the caller's thread."""
        with self._lock:
            self._held.append((plugin, records))

    def flush(self) -> None:
        """Write what :meth:`hold` keeps in memory (one ``pwrite``)."""
        with self._lock:
            if self._held:
                self._append(self._take_held())

    def _take_held(self) -> bytes:
        held, self._held = self._held, []
        return b"".join(_encoded(plugin, records) for plugin, records in held)

    def _append(self, data: bytes) -> None:
        """:meth:`append` with the lock held."""
        if self.full or self._fd < 0:
            return
        start = self._offset
        if start + len(data) > self._end - TAIL and not self._extend():
            written = 0
            if self._end <= start:
                # No room was ever held (the disk had none to give): written all the same
                # while the disk takes it.
                with contextlib.suppress(OSError):
                    written = os.pwrite(self._fd, data, start)
                if written == len(data):
                    self._offset = self._end = start + written
                    return
            # The room held is used up (its tail takes the marker), or the disk took no more.
            self.full = True
            marker = {"plugin": "-", "batch": "-", "status": INCOMPLETE, "at": time.time()}
            data = (json.dumps(marker, separators=(",", ":")) + "\n").encode()
            if written > len(data):  # nothing of the record left behind the marker
                data = data + bytes(written - len(data))
        self._offset = start + len(data)
        with contextlib.suppress(OSError):  # the wire must never stop for its log
            os.pwrite(self._fd, data, start)

    def close(self) -> None:
        self.flush()
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a wire log file, the zeros of its unused room and of torn places skipped."""
    text = path.read_bytes().replace(b"\0", b"").decode("utf-8", "replace")
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and "batch" in record and "status" in record:
                records.append(record)
    return records


class WireLog:
    """Append-only record of what one plugin actually wrote to the outside world.

    ``write`` is one ``pwrite(2)`` of one line into the room :class:`WireFile`
    holds: safe from any thread, survives a killed process and a full disk,
    and costs a few microseconds.
    Records are dicts with at least ``batch`` (the sequence's id) and
    ``status`` (``queued`` with ``commands``; ``sent`` with ``command``;
    ``done``, ``dropped`` or ``cut`` when the sequence ended).
    """

    def __init__(self, file: WireFile | None, plugin: str) -> None:
        self._file = file
        self.plugin = plugin

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def write(self, record: Mapping[str, Any]) -> None:
        self.write_all((record,))

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Several records in one ``pwrite(2)``: what one event wrote, logged in one go."""
        file = self._file
        if file is None:
            return
        data = _encoded(self.plugin, records)
        if data:
            file.append(data)

    def hold(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Records of sequences that went out whole in one call (queued, every command sent,
        done), kept in memory for a moment: written before the journal next marks an event
        dispatched, before the next record written at once, at the file's close, and when the
        plugin calls :meth:`flush` (hotkey_ws: its link's own thread, within its poll).

        Nothing is lost that a restart would need. A crash before they are written leaves the
        event the sequence answered undispatched (its trade comes back unconfirmed, as a crash
        between a command and its record always did), and a sequence with no record at all is
        never read as cut. So the caller that just wrote the commands is not kept from the
        CPU a hotkey server on the same machine is waiting for (docs/PERFORMANCE.md). A
        sequence that did not all go out is written at once (:meth:`write_all`): a crash then
        still reports what was sent and what was not. The records become the file's: do not
        change them afterwards."""
        file = self._file
        if file is not None and records:
            file.hold(self.plugin, records)

    def flush(self) -> None:
        """Write what :meth:`hold` keeps in memory now (any plugin's: they share the file)."""
        if self._file is not None:
            self._file.flush()


def _encoded(plugin: str, records: Iterable[Mapping[str, Any]]) -> bytes:
    """Records as JSON lines; never raises: a value JSON has no form for is written as its text
    (a plugin's mistake must not stop the thread that writes, nor lose the others' records)."""
    lines = []
    for record in records:
        try:
            lines.append(_ENCODE({"plugin": plugin, **record}))
        except Exception:  # a key or value msgspec cannot encode: every part as text
            try:
                as_text = {str(k): _text(v) for k, v in dict(record).items()}
                lines.append(_ENCODE({"plugin": plugin, **as_text}))
            except Exception:
                lines.append(_ENCODE({"plugin": plugin, "batch": "-", "status": "unreadable"}))
    return b"".join(line + b"\n" for line in lines)


def _text(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def log_incomplete(records: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the log ran out of room among these records (what followed was not kept)."""
    return any(record.get("status") == INCOMPLETE for record in records)


def cut_sequences(records: list[dict[str, Any]]) -> list[CutSequence]:
    incomplete = log_incomplete(records)
    batches: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("status") == INCOMPLETE:
            continue
        batch = batches.setdefault(str(record["batch"]), {"sent": [], "ended": None})
        status = record["status"]
        if status == "queued":
            batch["queued"] = record
        elif status == "sent":
            batch["sent"].append(str(record.get("command")))
        else:
            batch["ended"] = status
    cut = []
    for name, batch in batches.items():
        queued = batch.get("queued")
        if queued is None:
            continue
        commands = tuple(str(c) for c in queued.get("commands", ()))
        sent = tuple(batch["sent"])
        # An exit given up on, or one the process stopped before any of it went out (killed
        # while its sell waited, say, for a stop's cancel): the position is still held, to close
        # by hand. One cut after some of it went out is a sequence_cut naming what went.
        dropped_exit = bool(queued.get("exit")) and (
            batch["ended"] in ("dropped", "cut") or (batch["ended"] is None and not sent and bool(commands))
        )
        if batch["ended"] is not None and not dropped_exit:
            continue
        cut.append(
            CutSequence(
                plugin=str(queued.get("plugin")),
                trade_id=str(queued.get("trade_id")),
                symbol=str(queued.get("symbol")),
                event=str(queued.get("event")),
                sent=sent,
                unsent=commands[len(sent) :],
                dropped_exit=dropped_exit,
                log_incomplete=incomplete,
                batch=name,
            )
        )
    return cut
