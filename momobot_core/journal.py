"""The journal: every trade event, executions, closed legs and open trades in one SQLite file.

The engine writes an event here *before* any plugin hears of it, then marks it
``dispatched`` once the hooks have run (DESIGN "Order of work per event").
Each event is one transaction (the trade's new state, the execution, the leg
it closed and the event row together), so a process killed at any instant
leaves the file at an event boundary, and a restart knows which events the
plugins may not have heard of (``dispatched = 0``): their trades come back
*unconfirmed*.

Why the file is guarded as it is:

* One writer. The writing process holds an OS advisory lock (a POSIX record
  lock) on ``<db>.lock`` for its whole life; a second writer is refused at once with the holder's
  PID. Readers open the file read-only and take no lock.
* No waiting. ``busy_timeout`` is 0: a journal another program has locked is
  a failed write, handled by the engine (an entry is refused; an exit goes to
  the side file ``<db>.pending``, fsynced, and is written into the journal as
  soon as it is writable again, or first thing at the next start).
* WAL with ``synchronous=NORMAL``: a commit costs tens of microseconds and
  survives a killed process (not a power cut: that is ``synchronous=FULL``'s job).

Plugins that write to the outside world (hotkey_ws) log what they actually
wrote to ``<db>.wire`` with one ``pwrite`` system call per record, into room
held ahead of them (a full disk does not stop it), cheap enough for the
trading path; the file is folded into the ``wire`` table at each start and
clean exit, and sequences a crash cut short are reported then.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import attrs
import msgspec

from momobot_core.errors import JournalError, JournalWriteError
from momobot_core.models import CloseReason, Fill, Intent, Leg, Order, Side, Trade, new_id, slot_constructor
from momobot_core.sidefile import RESERVE, SideFile, read_side_file
from momobot_core.wirelog import (
    TOLD,
    CutSequence,
    WireFile,
    WireLog,
    cut_sequences,
    log_incomplete,
    read_records,
)
from momobot_core.writer_lock import release_lock, take_lock

__all__ = [
    "CutSequence",
    "Journal",
    "JournalError",
    "JournalEvent",
    "JournalWriteError",
    "RiskEvent",
    "WireLog",
    "open_journal",
]

log = logging.getLogger("momobot.journal")
#: How long a reader waits out a writer's moment of lock (a checkpoint) before it gives up.
READ_WAIT_S = 5.0

SCHEMA_VERSION = 6  # 6: a strategy's entries (trades.strategy, timeframe, level) and arms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    qty INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    entry_price REAL NOT NULL,
    tp1 REAL NOT NULL,
    tp2 REAL NOT NULL,
    stop REAL NOT NULL,
    opened_at TEXT NOT NULL,
    tp1_hit INTEGER NOT NULL DEFAULT 0,
    tp2_hit INTEGER NOT NULL DEFAULT 0,
    stop_hit INTEGER NOT NULL DEFAULT 0,
    closed_at TEXT,
    close_reason TEXT,
    initial_stop REAL,
    strategy TEXT,
    timeframe TEXT,
    level REAL,
    trail TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_trade_per_symbol
    ON trades(symbol) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS executions (
    order_id TEXT PRIMARY KEY,
    trade_id TEXT NOT NULL REFERENCES trades(id),
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty INTEGER NOT NULL,
    price REAL NOT NULL,
    intent TEXT NOT NULL,
    ts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS legs (
    id INTEGER PRIMARY KEY,
    trade_id TEXT NOT NULL REFERENCES trades(id),
    symbol TEXT NOT NULL,
    qty INTEGER NOT NULL,
    entry_price REAL NOT NULL,
    exit_price REAL NOT NULL,
    pnl REAL NOT NULL,
    reason TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT NOT NULL,
    order_id TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    trade_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts TEXT NOT NULL,
    epoch REAL NOT NULL,
    dispatched INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS wire (
    seq INTEGER PRIMARY KEY,
    plugin TEXT NOT NULL,
    batch TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS risk (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    message TEXT NOT NULL,
    symbol TEXT,
    ts TEXT NOT NULL,
    day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_symbol ON executions(symbol);
CREATE TABLE IF NOT EXISTS arms (
    symbol TEXT PRIMARY KEY,
    strategy TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    armed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lost_exits (
    event_id TEXT PRIMARY KEY,
    trade_id TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    qty INTEGER NOT NULL,
    price REAL NOT NULL,
    ts TEXT NOT NULL,
    broker_ref TEXT NOT NULL,
    UNIQUE (order_id, broker_ref)
);
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    symbol TEXT,
    ts TEXT NOT NULL
);
"""

#: ``events.dispatched``: not yet (or never) heard by the plugins; heard; confirmed by a person.
NOT_DISPATCHED, DISPATCHED, CONFIRMED = 0, 1, 2

#: How long start-up waits for a journal another program holds when the side file has exits
#: for it (``[momobot] journal_wait_s``).
PENDING_WAIT_S = 10.0

#: An exit the side file marks as lost comes into the journal as an undispatched event of this
#: kind prefix (``lost_tp1``, ``lost_stop``...): its trade is restored unconfirmed.
LOST_PREFIX = "lost_"
LOST_KEYS = ("lost", "trade_id", "symbol", "kind", "ts")


class SideFileUnreadable(JournalWriteError):
    """The side file cannot be read: waiting will not help; a person must look at it."""


_TRADE_COLUMNS = (
    "id, symbol, qty, remaining, entry_price, tp1, tp2, stop, opened_at, tp1_hit,"
    " tp2_hit, stop_hit, closed_at, close_reason"
)
_LEG_COLUMNS = "trade_id, symbol, qty, entry_price, exit_price, pnl, reason, opened_at, closed_at"


@attrs.frozen
class JournalEvent:
    """One trade event as the journal records it: the trade's state after it, and what it sold or bought.

    ``kind`` is ``open``, ``tp1``, ``tp2``, ``stop``, ``manual``, ``kill`` or ``confirm``.
    """

    kind: str
    trade: Trade
    order: Order | None = None
    leg: Leg | None = None
    at: datetime | None = None  # when it happened, if there is no order to say so
    id: str = attrs.field(factory=new_id)

    @property
    def ts(self) -> datetime:
        if self.at is not None:
            return self.at
        if self.order is not None:
            return self.order.ts
        return self.trade.closed_at or self.trade.opened_at

    def to_json(self) -> str:
        """One JSON line (times in RFC 3339): written on the trading path, so by msgspec, which
        takes about a microsecond where the standard library takes ten (docs/PERFORMANCE.md)."""
        return _EVENT_ENCODER.encode(self).decode()

    @classmethod
    def from_json(cls, text: str) -> JournalEvent:
        data = json.loads(text)
        trade = data["trade"]
        order = data["order"]
        leg = data["leg"]
        return cls(
            kind=data["kind"],
            id=data["id"],
            at=_maybe_time(data.get("at")),
            trade=Trade(
                **{
                    **trade,
                    "opened_at": datetime.fromisoformat(trade["opened_at"]),
                    "closed_at": _maybe_time(trade["closed_at"]),
                    "close_reason": CloseReason(trade["close_reason"]) if trade["close_reason"] else None,
                }
            ),
            order=Order(
                **{
                    **order,
                    "ts": datetime.fromisoformat(order["ts"]),
                    "side": Side(order["side"]),
                    "intent": Intent(order["intent"]),
                }
            )
            if order
            else None,
            leg=Leg(
                **{
                    **leg,
                    "opened_at": datetime.fromisoformat(leg["opened_at"]),
                    "closed_at": datetime.fromisoformat(leg["closed_at"]),
                }
            )
            if leg
            else None,
        )


#: ``JournalEvent(kind, trade, order, leg, at, id)``, all six given (the trading path's events).
new_event: Callable[[str, Trade, Order | None, Leg | None, datetime | None, str], JournalEvent] = (
    slot_constructor(JournalEvent)
)

_EVENT_ENCODER = msgspec.json.Encoder()
#: ``struct flock`` on Linux (64-bit ``off_t``), and the byte of ``<db>-shm`` SQLite locks to
#: write a WAL journal (its WAL_WRITE_LOCK, at offset 120 of the WAL index).
_FLOCK = "hhqqi4x"
_WAL_WRITE_LOCK = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 120, 1, 0)


def _maybe_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Journal:
    """A MomoBot journal in ``path`` (``":memory:"`` keeps it in memory)."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        readonly: bool = False,
        pending_wait_s: float = PENDING_WAIT_S,
        side_file_reserve: int = RESERVE,
    ) -> None:
        """Open (and, unless ``readonly``, create and lock) the journal at ``path``.

        Raises JournalError for a file that is not a MomoBot journal (another
        program's database is never written to), for a journal another
        process is writing, and for a side file of exits that the journal
        cannot take within ``pending_wait_s`` (nothing may be restored without it).
        ``side_file_reserve`` is the room the side file holds for exits (bytes).
        """
        self.in_memory = str(path) == ":memory:"
        # The file itself, not a link to it: its side file and wire log are named after it, so
        # a start through another name for the same journal finds them (the writer lock follows
        # links too).
        self.path = str(path) if self.in_memory else os.path.realpath(path)
        self.readonly = readonly
        self._in_batch = False
        self._lock_fd: int | None = None
        self._wire: WireFile | None = None
        self._wire_lock = threading.Lock()
        self._shm: int | None = None  # <db>-shm, for asking whether another process writes
        self._checkpointer: tuple[threading.Event, threading.Thread] | None = None
        #: A reader's copy of the side file, read before the journal (see _read_side_file_too).
        self._side_snapshot: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None
        #: Sequences cut short by a crash, found when the wire log was folded in at start.
        self.cut_sequences: list[CutSequence] = []
        #: The wire log ran out of room before the last stop: what plugins sent after is unknown.
        self.wire_incomplete = False
        #: Batches of the wire log reported at this start before the journal could take them.
        self._told_batches: set[str] = set()
        if not readonly and not self.in_memory:
            self._lock_fd = take_lock(self.path)
        try:
            self._db = self._connect(readonly)
        except BaseException:
            self._release_lock()
            raise
        self._side: SideFile | None = None
        if readonly and not self.in_memory and self.has_pending:
            self._read_side_file_too()
        #: Why the side file cannot hold its reserve (None: it does): told at start and on /ping.
        self.reserve_error: str | None = None
        if not readonly and not self.in_memory:
            try:
                self._side = SideFile(Path(self.path + ".pending"), side_file_reserve)
                self.reserve_error = self._side.reserve_error
            except OSError as exc:
                self.reserve_error = f"the side file cannot be opened: {exc.strerror or exc}"
            if self._side is not None and self._side.damaged:
                damaged = self._side.damaged
                self.close()
                raise JournalError(
                    f"{self.path}.pending: {damaged}; it may hold exits already sent, so nothing was"
                    " restored: the file is kept as it is: repair or move it, then start again"
                )
            if self.reserve_error:
                log.warning(
                    "%s.pending: no room is held for exits the journal may not take (%s): free"
                    " some disk space and start again",
                    self.path,
                    self.reserve_error,
                )
            try:
                self._take_side_file(pending_wait_s)
                self.cut_sequences = self._unreported_cuts(self._fold_wire_log())
                self._wire = WireFile(self.path + ".wire")
                # Told now from the file: said so in it, so no later start tells them again.
                WireLog(self._wire, "-").write_all(
                    {"batch": batch, "status": TOLD} for batch in sorted(self._told_batches)
                )
                if self._wire.reserve_error:
                    log.warning(
                        "%s.wire: no room is held for what plugins send (%s): free some disk space",
                        self.path,
                        self._wire.reserve_error,
                    )
            except (JournalWriteError, OSError) as exc:
                self.close()
                raise JournalError(f"{self.path}: cannot bring the journal up to date: {exc}") from None
            except JournalError:
                self.close()
                raise

    def _take_side_file(self, wait_s: float) -> None:
        """Write the side file's exits into the journal before anything is restored from it.

        The side file is part of the truth: a trade restored without it is a trade as it was
        before its exit, and the next quote would press that exit again. A journal another
        program holds is waited for (``wait_s``), then start-up is refused.
        """
        if not self.has_pending:
            return
        deadline = time.monotonic() + wait_s
        told = False
        pause = threading.Event()  # never set: a poll interval while another program holds the file
        while True:
            try:
                self.flush_pending()
                return
            except SideFileUnreadable:
                raise
            except JournalWriteError as exc:
                if time.monotonic() >= deadline:
                    raise JournalError(
                        f"{self.path}: the side file {self.pending_path} holds exits the journal"
                        f" has not taken, and the journal stayed unwritable for {wait_s:g} s ({exc});"
                        " nothing was restored and no quote acted on: free the journal (close the"
                        " program holding it, or make room on the disk) and start again"
                    ) from None
                if not told:
                    log.warning(
                        "%s: the side file holds exits the journal cannot take yet (%s); waiting up"
                        " to %g s before anything is restored",
                        self.path,
                        exc,
                        wait_s,
                    )
                    told = True
                pause.wait(0.05)

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        try:
            if readonly:
                db = self._open_readonly()
            else:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if version == 0 and tables:
                raise JournalError(f"{self.path}: not a MomoBot journal (it holds other tables)")
            readable = (1, 2, 3, 4, 5, SCHEMA_VERSION)
            if version not in (0, *readable) or (readonly and version not in readable):
                raise JournalError(
                    f"{self.path}: not a MomoBot journal of schema version"
                    f" {SCHEMA_VERSION} (found version {version})"
                )
            if not readonly:
                db.execute("PRAGMA busy_timeout=0")  # a busy journal is a failed write, never a wait
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                # A current journal needs no write to open: another program holding it locked
                # must not keep the bot (and its open trades) from starting.
                if version != SCHEMA_VERSION or db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)  # older journals gain the new tables
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            columns = {row[1] for row in db.execute("PRAGMA table_info(trades)")}
            if not readonly and columns and "initial_stop" not in columns:
                db.execute("ALTER TABLE trades ADD COLUMN initial_stop REAL")  # schema 2 -> 3
                columns.add("initial_stop")
            if not readonly and columns and "strategy" not in columns:  # schema 5 -> 6
                for column in ("strategy TEXT", "timeframe TEXT", "level REAL"):
                    db.execute(f"ALTER TABLE trades ADD COLUMN {column}")
                columns |= {"strategy", "timeframe", "level"}
            if not readonly and columns and "trail" not in columns:  # schema 6, as first written
                db.execute("ALTER TABLE trades ADD COLUMN trail TEXT")
                columns.add("trail")
            leg_columns = {row[1] for row in db.execute("PRAGMA table_info(legs)")}
            if not readonly and leg_columns and "order_id" not in leg_columns:
                db.execute("ALTER TABLE legs ADD COLUMN order_id TEXT")  # schema 3 -> 4
                leg_columns.add("order_id")
            # Journals before schema 4 do not know a leg's order, nor broker fills.
            self._leg_columns = _LEG_COLUMNS + (
                ", order_id" if "order_id" in leg_columns or not leg_columns else ", NULL"
            )
            self._has_fills = readonly is False or version >= 4
            # Journals before schema 3 do not know the stop a trade opened with.
            self._trade_columns = _TRADE_COLUMNS + (
                ", initial_stop" if "initial_stop" in columns or not columns else ", NULL"
            )
            # Journals before schema 6 know no strategy's entries.
            known = "strategy" in columns or not columns
            self._trade_columns += ", strategy, timeframe, level" if known else ", NULL, NULL, NULL"
            self._trade_columns += ", trail" if "trail" in columns or not columns else ", NULL"
            self._has_arms = readonly is False or version >= 6
            self._has_events = readonly is False or version >= 2
            self._has_risk = readonly is False or version >= 3
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable journal: {exc}") from None
        return db

    def _read_side_file_too(self) -> None:
        """A reader sees the truth: the journal with what its side file holds folded in (into a
        copy in memory; the files are not touched). Events reach the side file first and the
        journal after their hooks, so a killed process leaves its last ones there."""
        # The side file first, the journal after: a fold between the two then only means events
        # found in both (skipped), never events found in neither.
        path = self.pending_path
        self._side_snapshot = ([], []) if path is None else read_side_file(path)
        copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            self._db.backup(copy)
            copy.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            copy.close()
            log.warning("%s: the side file is not shown (%s)", self.path, exc)
            return
        self._db.close()
        self._db = copy
        try:
            self.flush_pending()
        except (JournalWriteError, SideFileUnreadable) as exc:
            log.warning("%s: the side file is not shown: %s", self.path, exc)

    def _open_readonly(self) -> sqlite3.Connection:
        """Read-only, no lock; in a read-only directory (no ``-shm`` can be made) as last checkpointed."""
        uri = Path(self.path).resolve().as_uri()
        # A moment of a writer's lock (a checkpoint on serve's own thread) is waited out: only
        # a directory where no -shm can be made reads the file as last checkpointed. (With no
        # wait, a busy moment once fell back to that and showed a serve's last events missing.)
        db = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=READ_WAIT_S
        )
        try:
            db.execute("PRAGMA user_version").fetchone()
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if os.access(Path(self.path).resolve().parent, os.W_OK):
                raise JournalError(f"{self.path}: cannot read the journal: {exc}") from None
        if Path(self.path + "-wal").exists() and Path(self.path + "-wal").stat().st_size:
            log.warning(
                "%s: the directory is read-only, so the journal is read as last checkpointed:"
                " what is still only in %s-wal (a running serve's last events) is not shown",
                self.path,
                self.path,
            )
        return sqlite3.connect(
            f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False, timeout=0
        )

    def checkpoint_in_background(self, interval_s: float = 1.0) -> None:
        """Move the WAL into the database on a thread of its own every ``interval_s`` (a passive
        checkpoint, on a connection of its own), instead of inside whichever commit fills the
        WAL past SQLite's threshold: a checkpoint syncs the disk, milliseconds a fold on the
        engine's loop would otherwise wait for. For a long-lived writer (``serve``)."""
        if self.readonly or self.in_memory or self._checkpointer is not None:
            return
        try:
            other = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
        except sqlite3.Error as exc:
            log.warning("%s: checkpoints stay in the commits (%s)", self.path, exc)
            return
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval_s):
                with contextlib.suppress(sqlite3.Error):
                    other.execute("PRAGMA wal_checkpoint(PASSIVE)")
            other.close()

        thread = threading.Thread(target=run, name="momobot-checkpoint", daemon=True)
        self._checkpointer = (stop, thread)
        thread.start()

    def close(self) -> None:
        if self._checkpointer is not None:
            stop, thread = self._checkpointer
            stop.set()
            thread.join(timeout=10)
            self._checkpointer = None
        if self._shm is not None and self._shm >= 0:
            os.close(self._shm)
            self._shm = -1
        if self._wire is not None:
            with contextlib.suppress(sqlite3.Error, OSError, JournalError):
                self._fold_wire_log()
            self._wire.close()
            self._wire = None
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._side is not None:
            self._side.close()
            self._side = None
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            release_lock(self.path, self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------

    @property
    def pending_path(self) -> Path | None:
        return None if self.in_memory else Path(self.path + ".pending")

    @property
    def has_pending(self) -> bool:
        """The side file holds exits (or marks of exits) the journal has not taken yet."""
        if self._side is not None:
            return self._side.has_records
        path = self.pending_path
        return path is not None and any(read_side_file(path))

    def _side_lines(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        if self._side is not None:
            return self._side.records(), self._side.lost()
        if self._side_snapshot is not None:
            return self._side_snapshot
        path = self.pending_path
        return ([], []) if path is None else read_side_file(path)

    def _write_new(self, db: sqlite3.Connection, events: Sequence[JournalEvent], marks: set[str]) -> None:
        """Events not in the journal yet (a fold may meet some a crash left folded), in order."""
        for event in events:
            if db.execute("SELECT 1 FROM events WHERE id=?", (event.id,)).fetchone():
                continue
            self._write(db, event, DISPATCHED if event.id in marks else NOT_DISPATCHED)

    def write(self, event: JournalEvent) -> None:
        """Commit one event (dispatched = 0). Raises JournalWriteError; nothing is half-written."""
        try:
            with self._transaction() as db:
                self._write(db, event)
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    def _write(self, db: sqlite3.Connection, event: JournalEvent, dispatched: int = NOT_DISPATCHED) -> None:
        trade = event.trade
        if event.kind == "open":
            db.execute(
                f"INSERT INTO trades ({_TRADE_COLUMNS}, initial_stop, strategy, timeframe, level, trail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *_trade_row(trade),
                    trade.initial_stop,
                    trade.strategy,
                    trade.timeframe,
                    trade.level,
                    trade.trail,
                ),
            )
        elif event.kind != "confirm":
            # A trade closed in the journal is never opened again by an event folded in later.
            db.execute(
                "UPDATE trades SET remaining=?, stop=?, tp1_hit=?, tp2_hit=?, stop_hit=?,"
                " closed_at=?, close_reason=? WHERE id=? AND closed_at IS NULL",
                (
                    trade.remaining,
                    trade.stop,
                    trade.tp1_hit,
                    trade.tp2_hit,
                    trade.stop_hit,
                    trade.closed_at.isoformat() if trade.closed_at else None,
                    trade.close_reason.value if trade.close_reason else None,
                    trade.id,
                ),
            )
        order = event.order
        if order is not None:
            db.execute(
                "INSERT INTO executions (order_id, trade_id, symbol, side, qty, price, intent, ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    order.id,
                    order.trade_id,
                    order.symbol,
                    order.side.value,
                    order.qty,
                    order.price,
                    order.intent.value,
                    order.ts.isoformat(),
                ),
            )
        leg = event.leg
        if leg is not None:
            db.execute(
                f"INSERT INTO legs ({_LEG_COLUMNS}, order_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    leg.trade_id,
                    leg.symbol,
                    leg.qty,
                    leg.entry_price,
                    leg.exit_price,
                    leg.pnl,
                    leg.reason,
                    leg.opened_at.isoformat(),
                    leg.closed_at.isoformat(),
                    order.id if order is not None else leg.order_id,
                ),
            )
        ts = event.ts
        db.execute(
            "INSERT INTO events (id, trade_id, symbol, kind, ts, epoch, dispatched)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.id, trade.id, trade.symbol, event.kind, ts.isoformat(), ts.timestamp(), dispatched),
        )
        if event.kind in ("confirm", "discard") or trade.unconfirmed:
            # A person confirmed the trade, or closed it knowing it was unconfirmed.
            db.execute(
                "UPDATE events SET dispatched=? WHERE trade_id=? AND dispatched=?",
                (CONFIRMED, trade.id, NOT_DISPATCHED),
            )

    def lost_exits(self, trade_id: str) -> list[JournalEvent | None]:
        """The exits of a trade that went out unrecorded and wait for a person, oldest first: each
        as it was sent where its mark kept it, else None. Read from the journal after a start."""
        rows = self._db.execute(
            "SELECT lost_exits.event FROM events LEFT JOIN lost_exits ON lost_exits.event_id = events.id"
            " WHERE events.trade_id=? AND events.kind LIKE ? AND events.dispatched=? ORDER BY events.seq",
            (trade_id, LOST_PREFIX + "%", NOT_DISPATCHED),
        ).fetchall()
        return [None if row[0] is None else JournalEvent.from_json(row[0]) for row in rows]

    def record_lost_exits(self, exits: Sequence[JournalEvent], confirm: JournalEvent) -> None:
        """A person found these exits done at the broker: journal each as it was sent, in place
        of its mark, and ``confirm`` after them (if the trade is still open), in one
        transaction. Raises JournalWriteError."""
        try:
            with self._transaction() as db:
                for event in exits:
                    db.execute("DELETE FROM events WHERE id=?", (event.id,))
                    db.execute("DELETE FROM lost_exits WHERE event_id=?", (event.id,))
                    self._write(db, event, CONFIRMED)
                self._write(db, confirm, CONFIRMED)
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    def confirm_closed(self, trade_ids: list[str]) -> None:
        """Undispatched events of closed trades, now told to a person: not alerted again."""
        with contextlib.suppress(sqlite3.Error), self._transaction() as db:
            db.executemany(
                "UPDATE events SET dispatched=? WHERE trade_id=? AND dispatched=?",
                [(CONFIRMED, trade_id, NOT_DISPATCHED) for trade_id in trade_ids],
            )

    def _wire_first(self) -> None:
        """What plugins' wire logs keep in memory for a moment goes to ``<db>.wire`` before any
        event is marked dispatched: a mark never stands for a sequence the wire log lacks."""
        if self._wire is not None:
            self._wire.flush()

    def mark_dispatched(self, event_ids: list[str]) -> None:
        """The plugins have heard of these events (a second, small commit). Raises JournalWriteError."""
        self._wire_first()
        try:
            with self._transaction() as db:
                db.executemany(
                    "UPDATE events SET dispatched=? WHERE id=? AND dispatched=?",
                    [(DISPATCHED, event_id, NOT_DISPATCHED) for event_id in event_ids],
                )
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    # -- the side file for exits the journal could not take ------------------------

    def append_pending(self, event: JournalEvent, *, sync: bool = True) -> None:
        """Write an event into ``<db>.pending`` (its reserved room), synced unless ``sync`` is
        False (then as durable as a commit with ``synchronous=NORMAL``: it survives a killed
        process). Raises OSError."""
        if self._side is None:
            raise OSError(errno.ENOENT, self.reserve_error or "an in-memory journal has no side file")
        self._side.append(_EVENT_ENCODER.encode(event), sync=sync)  # to_json's bytes, not decoded

    @property
    def logs_events(self) -> bool:
        """Events may go to the side file first and be folded in after their hooks: a journal on
        disk, outside a replay's one transaction."""
        return self._side is not None and not self._in_batch

    def writable(self) -> str | None:
        """Whether another process holds the journal's write lock now: its error, or None.

        On Linux one system call asks the kernel whether another process holds the lock SQLite
        takes to write a WAL journal (a byte of ``<db>-shm``): half a microsecond. Elsewhere,
        or if that cannot be asked, the lock is taken and let go (a few microseconds)."""
        fd = self._shm_fd()
        if fd is not None:
            try:
                got = fcntl.fcntl(fd, fcntl.F_GETLK, _WAL_WRITE_LOCK)
                if struct.unpack(_FLOCK, got)[0] == fcntl.F_UNLCK:
                    return None
                return f"journal {self.path}: database is locked (another process is writing it)"
            except OSError:
                self._shm = -1  # asked no more: the lock itself is tried instead
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return f"journal {self.path}: {exc}"
        return None

    def _shm_fd(self) -> int | None:
        """``<db>-shm`` open for asking about its locks (None where that is not how SQLite locks)."""
        if self._shm is None:
            self._shm = -1
            if sys.platform == "linux" and struct.calcsize(_FLOCK) == 32 and not self.in_memory:
                with contextlib.suppress(OSError):
                    self._shm = os.open(self.path + "-shm", os.O_RDONLY)
        return self._shm if self._shm >= 0 else None

    def fold(self, events: Sequence[JournalEvent], dispatched: Sequence[str]) -> None:
        """Events this run wrote to the side file (and nothing else is in it), into the journal
        in one transaction with their dispatched marks; then the side file is emptied (no sync:
        a crash before the emptying reaches the disk folds them again, and events already in the
        journal are skipped). Raises JournalWriteError; the side file is then kept."""
        marks = set(dispatched)
        if marks:
            self._wire_first()
        try:
            with self._transaction() as db:
                self._write_new(db, events, marks)
                folded = {event.id for event in events}
                db.executemany(
                    "UPDATE events SET dispatched=? WHERE id=? AND dispatched=?",
                    [(DISPATCHED, event_id, NOT_DISPATCHED) for event_id in marks - folded],
                )
        except (sqlite3.Error, JournalError) as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None
        if self._side is not None:
            try:
                self._side.clear(sync=False)
            except OSError as exc:
                raise JournalWriteError(
                    f"{self.pending_path}: written into the journal but not emptied: {exc.strerror or exc}"
                ) from None

    def append_pending_risk(
        self, kind: str, rule: str, message: str, symbol: str | None, ts: datetime, day: date
    ) -> None:
        """A halt (or resume) the journal cannot take, into the side file and synced: a restart
        the same day is still halted. Raises OSError."""
        if self._side is None:
            raise OSError(errno.ENOENT, self.reserve_error or "an in-memory journal has no side file")
        row = {"kind": kind, "rule": rule, "message": message, "symbol": symbol}
        self._side.append(
            json.dumps({"risk": {**row, "ts": ts.isoformat(), "day": day.isoformat()}}), sync=True
        )

    def mark_lost(self, event: JournalEvent) -> None:
        """Note that an exit went out but could not be recorded: at the next start its trade
        comes back unconfirmed, never as before the exit. Raises OSError."""
        if self._side is None:
            raise OSError(errno.ENOENT, self.reserve_error or "an in-memory journal has no side file")
        trade = event.trade
        mark = {
            "lost": event.id,
            "trade_id": trade.id,
            "symbol": trade.symbol,
            "kind": event.kind,
            "ts": event.ts.isoformat(),
        }
        try:
            # The whole event where the marks' room allows: a person who finds it done at the
            # broker can then have it recorded as it was (confirm with exits_sent).
            self._side.mark_lost(json.dumps({**mark, "event": event.to_json()}))
        except OSError:
            self._side.mark_lost(json.dumps(mark))

    def mark_pending_dispatched(self, event_ids: list[str]) -> None:
        """Note in the side file that the plugins heard of these events (no sync: a crash just
        leaves them unconfirmed, the safe side)."""
        if self._side is None or not event_ids:
            return
        self._wire_first()
        with contextlib.suppress(OSError):
            for event_id in event_ids:
                self._side.append(json.dumps({"dispatched": event_id}), sync=False)

    def flush_pending(self, unrecorded: Sequence[JournalEvent] = (), dispatched: Sequence[str] = ()) -> int:
        """Write the side file's events into the journal, in order, in one transaction, then
        ``unrecorded`` (exits this run could not record anywhere; the plugins heard of them);
        then empty the side file.

        An exit the side file marks as lost (it went out, but even the side file could not
        take it) and that is not written by then comes into the journal as an undispatched
        event of its trade: the trade is restored *unconfirmed*. Returns how many events were
        written. Raises JournalWriteError if the journal still cannot take them (the side file
        is then kept as it is); SideFileUnreadable for a line no one can read. Events already
        in the journal (a crash between the commit and the emptying) are skipped, so flushing
        twice never doubles anything.
        """
        self._wire_first()
        if not self.has_pending and not unrecorded and not dispatched:
            return 0
        if self._in_batch:
            # Inside a replay's one transaction the side file would be emptied before the commit.
            raise JournalWriteError("the side file is written into the journal after the replay")
        events: list[JournalEvent] = []
        marks: set[str] = set(dispatched)
        lost: list[dict[str, str]] = []
        risks: list[tuple[str, str, str, str | None, str, str]] = []
        try:
            lines, lost_lines = self._side_lines()
        except OSError as exc:
            raise SideFileUnreadable(
                f"{self.pending_path}: cannot read the side file: {exc.strerror or exc}"
            ) from None
        for n, (line, state) in enumerate(lines, 1):
            if not line.strip():
                continue
            cut = state == "cut" or (state == "ok" and not line.rstrip().endswith("}"))
            try:
                if state == "damaged":
                    raise ValueError("its checksum does not match: changed after it was written")
                data = json.loads(line)
                if "dispatched" in data:
                    marks.add(str(data["dispatched"]))
                elif "risk" in data:
                    r = data["risk"]
                    symbol = r["symbol"] if isinstance(r["symbol"], str) else None
                    risks.append(
                        (
                            str(r["kind"]),
                            str(r["rule"]),
                            str(r["message"]),
                            symbol,
                            str(r["ts"]),
                            str(r["day"]),
                        )
                    )
                else:
                    events.append(JournalEvent.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                if n == len(lines) and cut:
                    continue  # the last line of a crash, cut mid-write: its hooks never ran
                raise SideFileUnreadable(
                    f"{self.pending_path}:{n}: unreadable side-file line ({exc}); the file is"
                    " kept: repair or move it, then start again"
                ) from None
        for n, (line, state) in enumerate(lost_lines, 1):
            try:
                if state != "ok":
                    raise ValueError(f"{state} line")
                data = json.loads(line)
                if not (isinstance(data, dict) and all(isinstance(data.get(k), str) for k in LOST_KEYS)):
                    raise ValueError("not a mark of an exit")
                _aware(data["ts"])
                if "event" in data and JournalEvent.from_json(str(data["event"])).id != data["lost"]:
                    raise ValueError("its event is another one")
            except (ValueError, TypeError, JournalError) as exc:
                raise SideFileUnreadable(
                    f"{self.pending_path}: unreadable mark {n} of an exit that went out unrecorded"
                    f" ({exc}); the file is kept: repair or move it, then start again"
                ) from None
            lost.append(data)
        try:
            with self._transaction() as db:
                self._write_new(db, events, marks)
                for event in unrecorded:
                    if not db.execute("SELECT 1 FROM events WHERE id=?", (event.id,)).fetchone():
                        self._write(db, event, DISPATCHED)
                db.executemany(
                    "INSERT INTO risk (kind, rule, message, symbol, ts, day) VALUES (?, ?, ?, ?, ?, ?)", risks
                )
                # Marks of events the journal already held (their own mark could not be written).
                db.executemany(
                    "UPDATE events SET dispatched=? WHERE id=? AND dispatched=?",
                    [(DISPATCHED, event_id, NOT_DISPATCHED) for event_id in marks],
                )
                for mark in lost:
                    if db.execute("SELECT 1 FROM events WHERE id=?", (mark["lost"],)).fetchone():
                        continue
                    if "event" in mark:
                        db.execute(
                            "INSERT OR IGNORE INTO lost_exits (event_id, trade_id, event) VALUES (?, ?, ?)",
                            (mark["lost"], mark["trade_id"], mark["event"]),
                        )
                    ts = _aware(mark["ts"])
                    db.execute(
                        "INSERT INTO events (id, trade_id, symbol, kind, ts, epoch, dispatched)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            mark["lost"],
                            mark["trade_id"],
                            mark["symbol"],
                            LOST_PREFIX + mark["kind"],
                            ts.isoformat(),
                            ts.timestamp(),
                            NOT_DISPATCHED,
                        ),
                    )
        except (sqlite3.Error, JournalError) as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None
        if self.readonly:
            return len(events) + len(unrecorded) + len(lost)  # a reader's copy: the file stays
        try:
            if self._side is not None:
                self._side.clear()
            elif self.pending_path is not None:
                self.pending_path.unlink(missing_ok=True)
        except OSError as exc:  # in the journal now; a second flush skips what is there
            raise JournalWriteError(
                f"{self.pending_path}: written into the journal but not emptied: {exc.strerror or exc}"
            ) from None
        return len(events) + len(unrecorded) + len(lost)

    # -- what plugins wrote to the wire --------------------------------------------

    @property
    def wire_reserve_error(self) -> str | None:
        """Why the wire log holds no room ahead of its records (None: it does)."""
        return self._wire.reserve_error if self._wire is not None else None

    def retry_reserve(self) -> bool:
        """Try again to hold the side file's room for exits. True when it is held."""
        if self._side is not None and self.reserve_error is not None:
            self._side.retry_reserve()
            self.reserve_error = self._side.reserve_error
        return self.reserve_error is None

    def wire_log(self, plugin: str) -> WireLog:
        """The wire log for ``plugin`` (a log that keeps nothing for an in-memory journal)."""
        return WireLog(self._wire, plugin)

    def _fold_wire_log(self) -> list[dict[str, Any]]:
        """Move ``<db>.wire`` into the ``wire`` table. What the journal cannot take (it is locked,
        the disk is full) stays in the file, folded in next time, and is returned to be read."""
        path = Path(self.path + ".wire")
        with self._wire_lock:
            self._wire_first()
            if not path.exists():
                return []
            records = read_records(path)
            told = self._told_batches | {str(r["batch"]) for r in records if r["status"] == TOLD}
            records = [r for r in records if r["status"] != TOLD]
            try:
                with self._transaction() as db:
                    db.executemany(
                        "INSERT INTO wire (plugin, batch, status, record, reported) VALUES (?, ?, ?, ?, ?)",
                        [
                            (
                                str(r.get("plugin")),
                                str(r["batch"]),
                                str(r["status"]),
                                json.dumps(r),
                                int(str(r["batch"]) in told),
                            )
                            for r in records
                        ],
                    )
            except sqlite3.Error:
                return records  # kept in the file
            with open(path, "r+b") as fh:  # truncate, keep the descriptor others may hold
                fh.truncate(0)
            return []

    def _unreported_cuts(self, unfolded: list[dict[str, Any]]) -> list[CutSequence]:
        """Sequences that did not all go out and were not yet reported at a start, from the
        journal and from what of the wire log it could not take: reported now, once (those of
        the file are folded in as reported when the journal takes them)."""
        rows = self._db.execute("SELECT seq, record FROM wire WHERE reported = 0 ORDER BY seq").fetchall()
        records = []
        for _, text in rows:
            with contextlib.suppress(ValueError):
                records.append(json.loads(text))
        told_before = {str(r["batch"]) for r in unfolded if r["status"] == TOLD}
        unfolded = [r for r in unfolded if str(r["batch"]) not in told_before and r["status"] != TOLD]
        records.extend(unfolded)
        if not records:
            return []
        cuts = cut_sequences(records)
        self.wire_incomplete = log_incomplete(records)
        self._told_batches = {str(r["batch"]) for r in unfolded}
        if rows:
            with contextlib.suppress(sqlite3.Error), self._transaction() as db:
                db.execute("UPDATE wire SET reported = 1 WHERE reported = 0 AND seq <= ?", (rows[-1][0],))
        return cuts

    # -- batches -------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, nested=self._in_batch)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make everything written inside one transaction: all of it lands, or none.

        A replay runs in one batch, so a replay stopped by bad input or a kill
        leaves the journal as it was before the replay.
        """
        if self._in_batch:
            yield
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {exc}") from None
        self._in_batch = True
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_batch = False

    # -- reading -----------------------------------------------------------------

    def open_trades(self) -> list[Trade]:
        return self._trades(
            f"SELECT {self._trade_columns} FROM trades WHERE closed_at IS NULL ORDER BY opened_at, rowid"
        )

    def trades(self) -> list[Trade]:
        return self._trades(f"SELECT {self._trade_columns} FROM trades ORDER BY opened_at, rowid")

    def _trades(self, sql: str) -> list[Trade]:
        return [_checked(self.path, "trades", row, _trade) for row in self._db.execute(sql).fetchall()]

    def legs(self) -> list[Leg]:
        rows = self._db.execute(f"SELECT {self._leg_columns} FROM legs ORDER BY id").fetchall()
        return [_checked(self.path, "legs", row, _leg) for row in rows]

    def executions(self) -> list[dict[str, object]]:
        cursor = self._db.execute(
            "SELECT order_id, trade_id, symbol, side, qty, price, intent, ts FROM executions ORDER BY rowid"
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            _checked(self.path, "executions", row, lambda r: datetime.fromisoformat(str(r["ts"])))
        return rows

    def executions_of(self, symbol: str) -> list[tuple[str, int, float, str, datetime]]:
        """``(side, qty, price, intent, ts)`` of one symbol's executions, oldest first (a chart's
        markers; by the index on the symbol). Times are written with their own offsets, so a
        caller compares them as times, never as text."""
        rows = self._db.execute(
            "SELECT side, qty, price, intent, ts FROM executions WHERE symbol=? ORDER BY rowid", (symbol,)
        ).fetchall()
        return [
            _checked(
                self.path,
                "executions",
                row,
                lambda r: (str(r[0]), int(r[1]), float(r[2]), str(r[3]), _aware(r[4])),
            )
            for row in rows
        ]

    def record_fill(self, fill: Fill) -> bool:
        """Keep a broker's fill of an engine order. False if that execution was already kept
        (a reconnect reports the day's executions again). Raises JournalWriteError."""
        try:
            with self._transaction() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO fills (order_id, qty, price, ts, broker_ref)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (fill.order_id, fill.qty, fill.price, fill.ts.isoformat(), fill.broker_ref),
                )
                return cursor.rowcount == 1
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    def pending_order_ids(self) -> set[str]:
        """The ids of the orders whose events wait in the side file."""
        ids: set[str] = set()
        with contextlib.suppress(OSError):
            for line, _ in self._side_lines()[0]:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    order = json.loads(line).get("order")
                    if order:
                        ids.add(str(order["id"]))
        return ids

    def order(self, order_id: str) -> Order | None:
        """The engine's order ``order_id`` as journaled, or None."""
        row = self._db.execute(
            "SELECT order_id, symbol, side, qty, price, intent, trade_id, ts FROM executions"
            " WHERE order_id=?",
            (order_id,),
        ).fetchone()
        if row is None:
            return None
        return _checked(  # type: ignore[no-any-return]
            self.path,
            "executions",
            row,
            lambda r: Order(r[0], r[1], Side(r[2]), r[3], r[4], Intent(r[5]), r[6], _aware(r[7])),
        )

    def fills(self) -> list[Fill]:
        """Every broker fill kept, oldest first (none in journals older than schema 4)."""
        if not self._has_fills:
            return []
        rows = self._db.execute(
            "SELECT order_id, qty, price, ts, broker_ref FROM fills ORDER BY seq"
        ).fetchall()
        return [
            _checked(
                self.path, "fills", row, lambda r: Fill(r[0], int(r[1]), float(r[2]), _aware(r[3]), r[4])
            )
            for row in rows
        ]

    def undispatched(self) -> list[tuple[str, str, str, str]]:
        """``(trade_id, symbol, kind, ts)`` of events committed but never marked dispatched."""
        if not self._has_events:
            return []
        return self._db.execute(
            "SELECT trade_id, symbol, kind, ts FROM events WHERE dispatched=? ORDER BY seq", (NOT_DISPATCHED,)
        ).fetchall()

    def last_event_time(self) -> datetime | None:
        """The time of the newest event in the journal (for refusing a replay that goes back)."""
        if self._has_events:
            epoch = self._db.execute("SELECT max(epoch) FROM events").fetchone()[0]
            if epoch is not None:
                row = self._db.execute("SELECT ts FROM events WHERE epoch=? LIMIT 1", (epoch,)).fetchone()
                return _checked(self.path, "events", row, lambda r: _aware(r[0]))  # type: ignore[no-any-return]
        times = [datetime.fromisoformat(str(row["ts"])) for row in self.executions()]
        return max(times, default=None)

    def write_kill(
        self, rule: str, message: str, ts: datetime, day: date, events: list[JournalEvent]
    ) -> None:
        """A kill in one transaction: its halt and every trade's flatten, or none of them.
        Raises JournalWriteError."""
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO risk (kind, rule, message, symbol, ts, day) VALUES (?, ?, ?, ?, ?, ?)",
                    ("halt", rule, message, None, ts.isoformat(), day.isoformat()),
                )
                for event in events:
                    self._write(db, event)
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    def record_risk(
        self, kind: str, rule: str, message: str, symbol: str | None, ts: datetime, day: date
    ) -> None:
        """Journal a halt, a resume or a refused entry (``kind``). Raises JournalWriteError."""
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO risk (kind, rule, message, symbol, ts, day) VALUES (?, ?, ?, ?, ?, ?)",
                    (kind, rule, message, symbol, ts.isoformat(), day.isoformat()),
                )
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    def risk_events(
        self, day: date, kinds: tuple[str, ...] = ("halt", "resume", "refused")
    ) -> list[RiskEvent]:
        """A trading day's halts, resumes and refusals, oldest first."""
        if not self._has_risk:
            return []
        marks = ", ".join("?" * len(kinds))
        rows = self._db.execute(
            f"SELECT kind, rule, message, symbol, ts FROM risk WHERE day=? AND kind IN ({marks})"
            " ORDER BY seq",
            (day.isoformat(), *kinds),
        ).fetchall()
        return [
            _checked(self.path, "risk", row, lambda r: RiskEvent(r[0], r[1], r[2], r[3], _aware(r[4])))
            for row in rows
        ]

    def record_arm(self, arm: ArmRow) -> None:
        """Keep an arm and its strategy's state (a new arm, or its state after a change).
        Raises JournalWriteError."""
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO arms (symbol, strategy, timeframe, params, state, armed_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        arm.symbol,
                        arm.strategy,
                        arm.timeframe,
                        json.dumps(arm.params, sort_keys=True),
                        json.dumps(arm.state, sort_keys=True),
                        arm.armed_at.isoformat(),
                        arm.updated_at.isoformat(),
                    ),
                )
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    def remove_arm(self, symbol: str) -> None:
        """A symbol disarmed. Raises JournalWriteError."""
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM arms WHERE symbol=?", (symbol,))
        except sqlite3.Error as exc:
            raise JournalWriteError(f"journal {self.path}: {exc}") from None

    def arms(self) -> list[ArmRow]:
        """The arms kept, by symbol."""
        if not self._has_arms:
            return []
        rows = self._db.execute(
            "SELECT symbol, strategy, timeframe, params, state, armed_at, updated_at FROM arms"
            " ORDER BY symbol"
        ).fetchall()
        return [_checked(self.path, "arms", row, _arm) for row in rows]

    def alerts_since(self, since: datetime) -> list[tuple[str, str, str | None, datetime]]:
        """``(kind, message, symbol, ts)`` of the alerts kept since ``since``, oldest first."""
        rows = self._db.execute("SELECT kind, message, symbol, ts FROM alerts ORDER BY seq").fetchall()
        kept = []
        for kind, message, symbol, ts in rows:
            with contextlib.suppress(ValueError, TypeError):
                at = _aware(ts)
                if at >= since:
                    kept.append((kind, message, symbol, at))
        return kept

    def record_alert(self, kind: str, message: str, symbol: str | None, ts: datetime) -> None:
        """Keep an alert (best effort: the journal being unwritable is itself an alert)."""
        if self._in_batch:
            return  # a replay's batch must not grow with every alert; they are in the log
        with contextlib.suppress(sqlite3.Error):
            self._db.execute(
                "INSERT INTO alerts (kind, message, symbol, ts) VALUES (?, ?, ?, ?)",
                (kind, message, symbol, ts.isoformat()),
            )


@attrs.frozen
class ArmRow:
    """An arm as the journal keeps it: the strategy's state as of ``updated_at``."""

    symbol: str
    strategy: str
    timeframe: str
    params: dict[str, Any]
    state: dict[str, Any]
    armed_at: datetime
    updated_at: datetime


def _arm(row: Any) -> ArmRow:
    symbol, strategy, timeframe, params, state, armed_at, updated_at = row
    params, state = json.loads(params), json.loads(state)
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise ValueError("params and state must be JSON objects")
    return ArmRow(
        str(symbol), str(strategy), str(timeframe), params, state, _aware(armed_at), _aware(updated_at)
    )


@attrs.frozen
class RiskEvent:
    """A journaled halt, resume or refused entry."""

    kind: str
    rule: str
    message: str
    symbol: str | None
    ts: datetime


def _trade_row(trade: Trade) -> tuple[Any, ...]:
    return (
        trade.id,
        trade.symbol,
        trade.qty,
        trade.remaining,
        trade.entry_price,
        trade.tp1,
        trade.tp2,
        trade.stop,
        trade.opened_at.isoformat(),
        trade.tp1_hit,
        trade.tp2_hit,
        trade.stop_hit,
        trade.closed_at.isoformat() if trade.closed_at else None,
        trade.close_reason.value if trade.close_reason else None,
    )


def _checked(path: str, table: str, row: Any, build: Any) -> Any:
    """Build a value from a row; a row edited by hand into nonsense is a JournalError naming it."""
    try:
        return build(row)
    except (ValueError, TypeError, KeyError) as exc:
        raise JournalError(
            f"{path}: table {table} has a row that is not valid ({exc}): {tuple(row)!r}"
            if not isinstance(row, dict)
            else f"{path}: table {table} has a row that is not valid ({exc}): {row!r}"
        ) from None


def _trade(row: Any) -> Trade:
    (
        id_,
        symbol,
        qty,
        remaining,
        entry,
        tp1,
        tp2,
        stop,
        opened_at,
        tp1_hit,
        tp2_hit,
        stop_hit,
        closed_at,
        close_reason,
        initial_stop,
        strategy,
        timeframe,
        level,
        trail,
    ) = row
    for name, value in (("qty", qty), ("remaining", remaining)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} {value!r} is not a whole number >= 0")
    for name, value in (("entry_price", entry), ("tp1", tp1), ("tp2", tp2), ("stop", stop)):
        if not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise ValueError(f"{name} {value!r} is not a price")
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol {symbol!r} is not a symbol")
    return Trade(
        id=str(id_),
        symbol=symbol,
        qty=qty,
        remaining=remaining,
        entry_price=float(entry),
        tp1=float(tp1),
        tp2=float(tp2),
        stop=float(stop),
        opened_at=_aware(opened_at),
        tp1_hit=bool(tp1_hit),
        tp2_hit=bool(tp2_hit),
        stop_hit=bool(stop_hit),
        closed_at=_aware(closed_at) if closed_at else None,
        close_reason=CloseReason(close_reason) if close_reason else None,
        initial_stop=float(initial_stop) if isinstance(initial_stop, int | float) else None,
        strategy=strategy if isinstance(strategy, str) else None,
        timeframe=timeframe if isinstance(timeframe, str) else None,
        level=float(level) if isinstance(level, int | float) else None,
        trail=trail if isinstance(trail, str) else None,
    )


def _leg(row: Any) -> Leg:
    trade_id, symbol, qty, entry, exit_, pnl, reason, opened_at, closed_at, order_id = row
    if not isinstance(qty, int) or not all(isinstance(v, int | float) for v in (entry, exit_, pnl)):
        raise ValueError("qty, prices and pnl must be numbers")
    return Leg(
        trade_id=str(trade_id),
        symbol=str(symbol),
        qty=qty,
        entry_price=float(entry),
        exit_price=float(exit_),
        pnl=float(pnl),
        reason=str(reason),
        opened_at=_aware(opened_at),
        closed_at=_aware(closed_at),
        order_id=None if order_id is None else str(order_id),
    )


def _aware(text: Any) -> datetime:
    value = datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return value


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error: nothing half-written."""

    def __init__(self, db: sqlite3.Connection, nested: bool) -> None:
        self._db = db
        self._nested = nested

    def __enter__(self) -> sqlite3.Connection:
        if self._nested:
            self._db.execute("SAVEPOINT event")
        else:
            self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._nested:
            if exc_type is not None:
                self._db.execute("ROLLBACK TO event")
            self._db.execute("RELEASE event")
        elif exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
        else:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def open_journal(path: str | Path | None, pending_wait_s: float = PENDING_WAIT_S) -> Journal:
    """The journal at ``path``, or one in memory when ``path`` is None."""
    return Journal(":memory:" if path is None else path, pending_wait_s=pending_wait_s)
