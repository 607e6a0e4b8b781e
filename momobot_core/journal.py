"""The journal: executions, closed trade legs and open trades in one SQLite file.

Each engine event is one transaction (the execution, the leg it closed and the
trade's new state together), so a process killed at any instant leaves the
file at an event boundary: a restart restores exactly the open trades, with
their TP1 flag, moved stop and remaining quantity, and every closed leg.
WAL mode with ``synchronous=NORMAL`` keeps a commit cheap and survives a
killed process (not a power cut: that is ``synchronous=FULL``'s job).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from momobot_core.models import CloseReason, Leg, Order, Trade

SCHEMA_VERSION = 1

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
    close_reason TEXT
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trade_id TEXT NOT NULL REFERENCES trades(id),
    symbol TEXT NOT NULL,
    qty INTEGER NOT NULL,
    entry_price REAL NOT NULL,
    exit_price REAL NOT NULL,
    pnl REAL NOT NULL,
    reason TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT NOT NULL
);
"""


class JournalError(Exception):
    """The journal file cannot be opened or is not a MomoBot journal."""


class Journal:
    """A MomoBot journal in ``path`` (``":memory:"`` keeps it in memory)."""

    def __init__(self, path: str | Path = ":memory:", *, readonly: bool = False) -> None:
        """Open (and, unless ``readonly``, create) the journal at ``path``.

        Raises JournalError for a file that is not a MomoBot journal: another
        program's database is never written to.
        """
        self.path = str(path)
        self._in_batch = False
        try:
            if readonly:
                self._db = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True,
                                           isolation_level=None, check_same_thread=False)
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if version == 0 and tables:
                raise JournalError(f"{self.path}: not a MomoBot journal (it holds other tables)")
            if version not in (0, SCHEMA_VERSION) or (readonly and version != SCHEMA_VERSION):
                raise JournalError(f"{self.path}: not a MomoBot journal of schema version"
                                   f" {SCHEMA_VERSION} (found version {version})")
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable journal: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------

    def record_open(self, trade: Trade, order: Order) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO trades (id, symbol, qty, remaining, entry_price, tp1, tp2, stop,"
                " opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trade.id, trade.symbol, trade.qty, trade.remaining, trade.entry_price, trade.tp1,
                 trade.tp2, trade.stop, trade.opened_at.isoformat()),
            )
            self._insert_execution(db, order)

    def record_exit(self, trade: Trade, order: Order | None, leg: Leg | None) -> None:
        """One exit: the trade's new state, and the execution and leg if shares were sold."""
        with self._transaction() as db:
            db.execute(
                "UPDATE trades SET remaining=?, stop=?, tp1_hit=?, tp2_hit=?, stop_hit=?,"
                " closed_at=?, close_reason=? WHERE id=?",
                (trade.remaining, trade.stop, trade.tp1_hit, trade.tp2_hit, trade.stop_hit,
                 trade.closed_at.isoformat() if trade.closed_at else None,
                 trade.close_reason.value if trade.close_reason else None, trade.id),
            )
            if order is not None:
                self._insert_execution(db, order)
            if leg is not None:
                db.execute(
                    "INSERT INTO legs (trade_id, symbol, qty, entry_price, exit_price, pnl, reason,"
                    " opened_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (leg.trade_id, leg.symbol, leg.qty, leg.entry_price, leg.exit_price, leg.pnl,
                     leg.reason, leg.opened_at.isoformat(), leg.closed_at.isoformat()),
                )

    @staticmethod
    def _insert_execution(db: sqlite3.Connection, order: Order) -> None:
        db.execute(
            "INSERT INTO executions (order_id, trade_id, symbol, side, qty, price, intent, ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (order.id, order.trade_id, order.symbol, order.side.value, order.qty, order.price,
             order.intent.value, order.ts.isoformat()),
        )

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
        self._db.execute("BEGIN IMMEDIATE")
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
        rows = self._db.execute(
            "SELECT id, symbol, qty, remaining, entry_price, tp1, tp2, stop, opened_at, tp1_hit,"
            " tp2_hit, stop_hit, closed_at, close_reason FROM trades WHERE closed_at IS NULL"
            " ORDER BY opened_at, rowid"
        ).fetchall()
        return [_trade(row) for row in rows]

    def trades(self) -> list[Trade]:
        rows = self._db.execute(
            "SELECT id, symbol, qty, remaining, entry_price, tp1, tp2, stop, opened_at, tp1_hit,"
            " tp2_hit, stop_hit, closed_at, close_reason FROM trades ORDER BY opened_at, rowid"
        ).fetchall()
        return [_trade(row) for row in rows]

    def legs(self) -> list[Leg]:
        rows = self._db.execute(
            "SELECT trade_id, symbol, qty, entry_price, exit_price, pnl, reason, opened_at,"
            " closed_at FROM legs ORDER BY id"
        ).fetchall()
        return [
            Leg(trade_id=r[0], symbol=r[1], qty=r[2], entry_price=r[3], exit_price=r[4], pnl=r[5],
                reason=r[6], opened_at=datetime.fromisoformat(r[7]),
                closed_at=datetime.fromisoformat(r[8]))
            for r in rows
        ]

    def executions(self) -> list[dict[str, object]]:
        cursor = self._db.execute(
            "SELECT order_id, trade_id, symbol, side, qty, price, intent, ts FROM executions"
            " ORDER BY rowid"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _trade(row: Any) -> Trade:
    (id_, symbol, qty, remaining, entry, tp1, tp2, stop, opened_at, tp1_hit, tp2_hit, stop_hit,
     closed_at, close_reason) = row
    return Trade(
        id=id_, symbol=symbol, qty=qty, remaining=remaining, entry_price=entry, tp1=tp1, tp2=tp2,
        stop=stop, opened_at=datetime.fromisoformat(opened_at),
        tp1_hit=bool(tp1_hit), tp2_hit=bool(tp2_hit), stop_hit=bool(stop_hit),
        closed_at=datetime.fromisoformat(closed_at) if closed_at else None,
        close_reason=CloseReason(close_reason) if close_reason else None,
    )


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
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")


def open_journal(path: str | Path | None) -> Journal:
    """The journal at ``path``, or one in memory when ``path`` is None."""
    return Journal(":memory:" if path is None else path)
