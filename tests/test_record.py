"""The record on its own: a real journal, a real lock, no engine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from momobot_core.journal import Journal, JournalEvent, JournalWriteError
from momobot_core.models import Intent, Order, Side, Trade
from momobot_core.record import Record

from conftest import SqliteLocker, side_file

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
TRADE = Trade(
    id="t1", symbol="ABCD", qty=100, remaining=100, entry_price=2.0, tp1=2.2, tp2=2.4, stop=1.9, opened_at=T0
)


def order(intent: Intent, side: Side, qty: int, n: int) -> Order:
    return Order(f"o{n}", "ABCD", side, qty, 2.0, intent, "t1", T0)


def test_an_exit_goes_to_the_side_file_while_the_journal_is_locked_and_comes_back(tmp_path: Path) -> None:
    told: list[tuple[str, str]] = []
    db = tmp_path / "journal.db"
    journal = Journal(db)
    record = Record(journal, lambda kind, message, **_: told.append((kind, message)))
    record.commit_entry(JournalEvent("open", TRADE, order(Intent.ENTRY, Side.BUY, 100, 1)))
    locker = SqliteLocker(db)
    try:
        with pytest.raises(JournalWriteError):  # an entry is refused, and told
            record.commit_entry(JournalEvent("open", TRADE, order(Intent.ENTRY, Side.BUY, 100, 2)))
        tp1 = JournalEvent("tp1", TRADE, order(Intent.TAKE_PROFIT, Side.SELL, 50, 3))
        assert record.commit_exit(tp1) is False  # never held back: in the side file, as always
        assert (bool(side_file(db)), record.pending) == (True, False)
        record.dispatched(tp1.id, pending=False)  # its hooks ran: the fold finds the journal locked
        assert (record.pending, record.state, bool(side_file(db))) == (True, "side file in use", True)
        assert record.entry_refusal("WXYZ") is not None and record.halts_entries
    finally:
        locker.release()
    assert record.retry()
    assert (record.pending, record.state) == (False, "ok")
    assert [kind for kind, _ in told] == ["journal_error", "journal_error", "resumed"]
    assert [row["order_id"] for row in journal.executions()] == ["o1", "o3"]
    journal.close()


def test_the_wal_is_checkpointed_on_a_thread_of_its_own(tmp_path: Path) -> None:
    # serve moves the WAL into the database off the engine's loop: no fold waits for a checkpoint.
    from hotkey_helpers import wait_until

    db = tmp_path / "journal.db"
    journal = Journal(db)
    journal.checkpoint_in_background(interval_s=0.05)
    size = db.stat().st_size
    for n in range(50):  # fewer WAL pages than SQLite's own checkpoint waits for
        trade = Trade(
            id=f"t{n}",
            symbol=f"S{n}",
            qty=100,
            remaining=100,
            entry_price=2.0,
            tp1=2.2,
            tp2=2.4,
            stop=1.9,
            opened_at=T0,
        )
        journal.write(
            JournalEvent(
                "open", trade, Order(f"o{n}", f"S{n}", Side.BUY, 100, 2.0, Intent.ENTRY, f"t{n}", T0)
            )
        )
    assert wait_until(lambda: db.stat().st_size > size)  # the pages reached the database file
    journal.close()
    with Journal(db, readonly=True) as reader:
        assert [t.id for t in reader.trades()][:2] == ["t0", "t1"]


def test_a_broker_fill_is_checked_then_kept_once_and_one_for_no_order_is_refused(tmp_path: Path) -> None:
    from momobot_core.errors import TradeRefused
    from momobot_core.models import Fill
    from momobot_core.record import check_fill

    ts = datetime(2026, 11, 24, 14, 31, tzinfo=UTC)
    for bad, words in (
        (Fill("o1", 0, 2.0, ts, "x1"), "qty must be"),
        (Fill("o1", 100, -2.0, ts, "x1"), "price must be"),
        (Fill("o1", 100, 2.0, ts, ""), "broker_ref"),
        (Fill("o1", 100, 2.0, ts.replace(tzinfo=None), "x1"), "aware"),
    ):
        with pytest.raises(TradeRefused, match=words):
            check_fill(bad)
    journal = Journal(tmp_path / "journal.db")
    record = Record(journal, lambda *_, **__: None)
    record.commit_entry(JournalEvent("open", TRADE, order(Intent.ENTRY, Side.BUY, 100, 1)))
    fill = Fill("o1", 100, 2.01, ts, "x1")
    assert record.record_fill(fill) == (True, 1)  # its order waited in the side file: folded first
    assert record.record_fill(fill) == (False, 0)  # the same execution reported again
    with pytest.raises(TradeRefused, match="no such order"):
        record.record_fill(Fill("nope", 100, 2.0, ts, "x2"))
    journal.close()
