"""Broker fills (``Fill``) in the engine and the journal: kept once, beside the model, never lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from momobot_core import hookimpl
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Fill, Leg, Order, Quote
from momobot_core.report import legs_json

from conftest import SqliteLocker, make_hooks

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def opened(db: Path) -> tuple[Engine, str]:
    engine = Engine(journal=Journal(db), mode="replay")
    engine.start()
    engine.apply(Quote("ABCD", T0, 1.99, 2.00))
    trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90, ts=T0)
    (entry,) = [row for row in engine.journal.executions() if row["trade_id"] == trade.id]  # type: ignore[union-attr]
    return engine, str(entry["order_id"])


def test_a_fill_is_kept_once_beside_the_model_and_changes_no_trade(tmp_path: Path) -> None:
    engine, order_id = opened(tmp_path / "j.db")
    before = dict(engine.open_trades)
    assert engine.apply(Fill(order_id, 60, 2.03, T0, "x1")) is True
    assert engine.apply(Fill(order_id, 40, 2.04, T0, "x2")) is True
    assert engine.apply(Fill(order_id, 40, 2.04, T0, "x2")) is False  # the same execution again
    assert engine.open_trades == before
    assert [(f.qty, f.price, f.broker_ref) for f in engine.journal.fills()] == [  # type: ignore[union-attr]
        (60, 2.03, "x1"),
        (40, 2.04, "x2"),
    ]
    assert engine.counters.fills == 2
    engine.shutdown()


@pytest.mark.parametrize(
    ("fill", "message"),
    [
        (Fill("nope", 10, 2.0, T0, "x"), "the journal has no such order"),
        (Fill("ORDER", 0, 2.0, T0, "x"), "qty must be a whole number"),
        (Fill("ORDER", 10, float("nan"), T0, "x"), "price must be above 0"),
        (Fill("ORDER", 10, 2.0, T0, ""), "broker_ref must name"),
        (Fill("ORDER", 10, 2.0, datetime(2026, 11, 24, 9, 30), "x"), "ts must be an aware datetime"),
    ],
)
def test_a_fill_that_makes_no_sense_is_refused_naming_why(tmp_path: Path, fill: Fill, message: str) -> None:
    engine, order_id = opened(tmp_path / "j.db")
    if fill.order_id == "ORDER":
        fill = Fill(order_id, fill.qty, fill.price, fill.ts, fill.broker_ref)
    with pytest.raises(TradeRefused, match=message):
        engine.apply(fill)
    assert engine.journal.fills() == []  # type: ignore[union-attr]
    engine.shutdown()


def test_a_fill_the_journal_cannot_take_is_kept_and_written_later(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    engine, order_id = opened(db)
    locker = SqliteLocker(db)
    try:
        assert engine.apply(Fill(order_id, 100, 2.03, T0, "x1")) is True
        assert [a.kind for a in engine.alerts] == ["journal_error"]
    finally:
        locker.release()
    engine.tick()
    assert [f.broker_ref for f in engine.journal.fills()] == ["x1"]  # type: ignore[union-attr]
    engine.shutdown()


def test_fills_still_waiting_for_the_engine_at_exit_are_journaled(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    engine, order_id = opened(db)
    assert engine.submit(Fill(order_id, 100, 2.03, T0, "late"))  # no loop: waits for the next event
    engine.shutdown()
    engine.journal.close()  # type: ignore[union-attr]
    with Journal(db, readonly=True) as journal:
        assert [f.broker_ref for f in journal.fills()] == ["late"]


def test_legs_show_broker_prices_and_slippage_from_the_sides_known() -> None:
    leg = Leg("T", "ABCD", 50, 2.00, 2.20, 10.0, "tp1", T0, T0, order_id="EXIT")
    fills = [
        Fill("ENTRY", 60, 2.03, T0, "a"),
        Fill("ENTRY", 40, 2.08, T0, "b"),
        Fill("EXIT", 50, 2.19, T0, "c"),
    ]
    (row,) = json.loads(legs_json([leg], fills, {"T": "ENTRY"}))
    assert (row["broker_entry_price"], row["broker_exit_price"]) == (2.05, 2.19)
    assert row["slippage"] == pytest.approx(-3.0)  # 5 cents over on the entry, 1 under on the exit, x50
    (entry_only,) = json.loads(legs_json([leg], fills[:2], {"T": "ENTRY"}))
    assert entry_only["broker_exit_price"] is None and entry_only["slippage"] == pytest.approx(-2.5)
    (none,) = json.loads(legs_json([leg]))
    assert "slippage" not in none and "order_id" not in none  # no order plugin: the legs as before


class FillListener:
    def __init__(self) -> None:
        self.heard: list[tuple[str, int, float, str | None, str | None]] = []

    @hookimpl
    def on_fill(self, fill: Fill, order: Order | None) -> None:
        self.heard.append(
            (
                fill.broker_ref,
                fill.qty,
                fill.price,
                order.symbol if order else None,
                order.side if order else None,
            )
        )


def test_hook_on_fill_hears_each_execution_once_with_the_order_it_fills(tmp_path: Path) -> None:
    listener = FillListener()
    engine = Engine(journal=Journal(tmp_path / "j.db"), mode="replay", hooks=make_hooks(listener))
    engine.start()
    engine.apply(Quote("ABCD", T0, 1.99, 2.00))
    trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90, ts=T0)
    (entry,) = [row for row in engine.journal.executions() if row["trade_id"] == trade.id]  # type: ignore[union-attr]
    order_id = str(entry["order_id"])
    engine.apply(Fill(order_id, 60, 2.03, T0, "x1"))
    engine.apply(Fill(order_id, 60, 2.03, T0, "x1"))  # reported again after a reconnect: not heard
    with pytest.raises(TradeRefused):
        engine.apply(Fill("nope", 10, 2.0, T0, "x9"))  # refused: not heard either
    assert listener.heard == [("x1", 60, 2.03, "ABCD", "buy")]
    engine.shutdown()
