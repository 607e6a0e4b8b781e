"""The trade rules of DESIGN.md, one behaviour per test, against the real engine and journal."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from momobot_core.config import Config
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import CloseReason, Intent, Quote, Target

from conftest import Recorder, at, make_hooks, quote


def open_abcd(engine: Engine, qty: int = 100) -> None:
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", qty, tp1=2.20, tp2=2.40, stop=1.90, ts=at(1))


def test_open_buys_at_the_current_ask_and_fires_entry_order(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    [(name, kw)] = [c for c in recorder.calls if c[0] != "on_startup"]
    assert name == "on_order_submitted"
    assert kw["order"].intent == Intent.ENTRY and kw["order"].side == "buy"
    assert kw["order"].price == 2.00 and kw["order"].qty == 100
    assert engine.open_trades["ABCD"].entry_price == 2.00


def test_open_without_a_quote_is_refused(engine: Engine) -> None:
    with pytest.raises(TradeRefused, match="no quote yet"):
        engine.open_trade("ZZZZ", 10, 2.2, 2.4, 1.9)
    assert engine.counters.refused_actions == 1


def test_open_on_a_symbol_already_open_is_refused(engine: Engine) -> None:
    open_abcd(engine)
    with pytest.raises(TradeRefused, match="already open"):
        engine.open_trade("ABCD", 10, 2.2, 2.4, 1.9)


@pytest.mark.parametrize(
    ("qty", "tp1", "tp2", "stop", "message"),
    [
        (0, 2.2, 2.4, 1.9, "qty"),
        (10, 2.2, 2.4, 2.5, "stop"),
        (10, 1.9, 2.4, 1.8, "tp1"),
        (10, 2.5, 2.4, 1.8, "tp2"),
        (10, math.nan, 2.4, 1.8, "tp1"),
        (10, 2.2, math.inf, 1.8, "tp2"),
    ],
)
def test_open_with_nonsense_levels_is_refused(
    engine: Engine, qty: int, tp1: float, tp2: float, stop: float, message: str
) -> None:
    engine.on_quote(quote("ABCD", 2.00))
    with pytest.raises(TradeRefused, match=message):
        engine.open_trade("ABCD", qty, tp1, tp2, stop)
    assert "ABCD" not in engine.open_trades


def test_tp1_sells_half_and_moves_stop_to_break_even(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 2.21, t=2))
    trade = engine.open_trades["ABCD"]
    assert trade.tp1_hit and trade.remaining == 50 and trade.stop == 2.00
    assert recorder.events()[-2:] == ["target tp1", "order take_profit sell 50"]


def test_tp1_hook_sees_the_trade_before_the_stop_moves(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 2.21, t=2))
    hit = next(kw for name, kw in recorder.calls if name == "on_target_hit")
    assert hit["trade"].stop == 1.90 and not hit["trade"].tp1_hit
    assert hit["quote"].ask == 2.21


def test_tp2_after_tp1_sells_the_rest_and_closes(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 2.21, t=2))
    engine.on_quote(quote("ABCD", 2.41, t=3))
    assert "ABCD" not in engine.open_trades
    assert recorder.events()[-3:] == ["target tp2", "order take_profit sell 50", "closed tp2"]
    closed = recorder.calls[-1][1]
    assert closed["price"] == 2.41 and closed["trade"].close_reason == CloseReason.TP2


def test_one_quote_through_both_targets_fires_tp1_then_tp2(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 2.50, t=2))
    assert recorder.events()[1:] == [
        "target tp1",
        "order take_profit sell 50",
        "target tp2",
        "order take_profit sell 50",
        "closed tp2",
    ]


def test_stop_on_last_sells_everything_at_the_bid(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 1.95, bid=1.88, last=1.90, t=2))
    assert recorder.events()[1:] == ["target stop", "order stop sell 100", "closed stop"]
    assert recorder.calls[-1][1]["price"] == 1.88


def test_stop_uses_bid_when_last_is_missing(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 1.95, bid=1.91, t=2))
    assert "ABCD" in engine.open_trades
    engine.on_quote(quote("ABCD", 1.92, bid=1.90, t=3))
    assert recorder.events()[-1] == "closed stop"


def test_stop_does_not_use_bid_when_last_is_above_the_stop(engine: Engine) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 1.95, bid=1.85, last=1.93, t=2))
    assert "ABCD" in engine.open_trades


def test_break_even_stop_after_tp1(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 2.21, t=2))
    engine.on_quote(quote("ABCD", 2.01, bid=1.99, last=2.00, t=3))
    assert recorder.events()[-3:] == ["target stop", "order stop sell 50", "closed stop"]


def test_take_profits_are_checked_before_the_stop_on_one_quote(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    # ask reaches TP1 while last is at the old stop but above break-even: TP1 only
    engine.on_quote(quote("ABCD", 2.21, bid=2.19, last=2.05, t=2))
    assert recorder.events()[-1] == "order take_profit sell 50"
    assert "ABCD" in engine.open_trades


def test_the_stop_moved_by_tp1_is_tested_from_the_next_quote_on(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(
        quote("ABCD", 2.21, bid=1.98, last=1.99, t=2)
    )  # TP1: its own quote never tests the moved stop
    assert recorder.events()[1:] == ["target tp1", "order take_profit sell 50"]
    engine.on_quote(quote("ABCD", 2.00, bid=1.98, last=1.99, t=3))  # a later print at 1.99: below break-even
    assert recorder.events()[3:] == ["target stop", "order stop sell 50", "closed stop"]


def test_each_target_fires_at_most_once(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    for t in range(2, 8):
        engine.on_quote(quote("ABCD", 2.25, t=t))
    assert recorder.events().count("target tp1") == 1


def test_one_share_trade_tp1_sends_no_order_but_moves_the_stop(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine, qty=1)
    engine.on_quote(quote("ABCD", 2.21, t=2))
    trade = engine.open_trades["ABCD"]
    assert recorder.events()[-1] == "target tp1"
    assert trade.remaining == 1 and trade.stop == 2.00
    assert engine.journal is not None and engine.journal.legs() == []


def test_a_one_share_tp1_is_journaled_at_the_quote_that_reached_it(tmp_path: Path) -> None:
    # With no order to carry it (nothing to sell), the event's own time is the TP1 quote's.
    journal = Journal(tmp_path / "j.db")
    engine = Engine(hooks=None, journal=journal)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 1, 2.20, 2.40, 1.90, ts=at(1))
    engine.on_quote(quote("ABCD", 2.21, t=2))
    engine.on_quote(quote("ABCD", 1.95, bid=1.95, t=3))  # the stop, at break-even
    engine.settle_journal()
    with sqlite3.connect(tmp_path / "j.db") as other:
        rows = other.execute("SELECT kind, ts FROM events ORDER BY seq").fetchall()
    assert rows == [("open", at(1).isoformat()), ("tp1", at(2).isoformat()), ("stop", at(3).isoformat())]
    journal.close()


def test_manual_close_sells_the_rest_at_the_bid(engine: Engine, recorder: Recorder) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 2.10, bid=2.08, t=2))
    engine.close_trade("ABCD", ts=at(3))
    assert recorder.events()[-2:] == ["order manual sell 100", "closed manual"]
    assert recorder.calls[-1][1]["price"] == 2.08


def test_close_without_an_open_trade_is_refused(engine: Engine) -> None:
    with pytest.raises(TradeRefused, match="no open trade"):
        engine.close_trade("ABCD")
    assert engine.counters.refused_actions == 1


@pytest.mark.parametrize(
    "bad",
    [
        Quote("ABCD", at(2), 2.3, 2.2, None),  # bid above ask
        Quote("ABCD", at(2), math.nan, 2.5, None),
        Quote("ABCD", at(2), 2.3, math.inf, None),
        Quote("ABCD", at(2), -1.0, 2.5, None),
        Quote("ABCD", at(2), 0.0, 2.5, None),
        Quote("ABCD", at(2), 2.3, 2.5, math.nan),
        Quote("ABCD", at(2), 2.3, 2.5, -2.0),
    ],
)
def test_malformed_quote_is_rejected_counted_and_not_acted_on(
    engine: Engine, recorder: Recorder, bad: Quote
) -> None:
    open_abcd(engine)
    assert engine.on_quote(bad) is False
    assert engine.counters.rejected_quotes == 1
    assert engine.last_quotes["ABCD"].ask == 2.00
    assert recorder.events() == ["order entry buy 100"]


def test_min_hold_delays_targets_until_the_hold_has_passed(recorder: Recorder) -> None:
    config = Config(tables={"momobot": {"min_hold_s": 5}})
    engine = Engine(config=config, hooks=make_hooks(recorder), journal=Journal())
    engine.on_quote(quote("ABCD", 2.00, t=0))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90, ts=at(0))
    engine.on_quote(quote("ABCD", 2.25, t=4.999))
    assert recorder.events() == ["order entry buy 100"]
    engine.on_quote(quote("ABCD", 2.25, t=5))
    assert recorder.events()[1] == "target tp1"


def test_hooks_run_after_the_event_is_durable_and_it_is_marked_dispatched_after(tmp_path: Path) -> None:
    from momobot_core.sidefile import read_side_file

    journal = Journal(tmp_path / "j.db")
    seen: list[list[str]] = []

    class Peek:
        from momobot_core import hookimpl

        @hookimpl
        def on_order_submitted(self, order: object, trade: object) -> None:
            # What a process killed now would find: the event, in the side file (one pwrite, as
            # durable as a WAL commit with synchronous=NORMAL), not yet marked dispatched.
            records, _ = read_side_file(tmp_path / "j.db.pending")
            seen.append([line for line, state in records if state == "ok"])

    engine = Engine(hooks=make_hooks(Peek()), journal=journal)
    engine.on_quote(quote("ABCD", 2.00))
    trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    ((line,),) = seen
    assert f'"id":"{trade.id}"' in line and '"kind":"open"' in line and "dispatched" not in line
    # After its hooks: folded into the journal with its mark, the side file empty again.
    with sqlite3.connect(tmp_path / "j.db") as other:
        assert other.execute("SELECT count(*) FROM executions").fetchone()[0] == 1
    assert journal.undispatched() == [] and read_side_file(tmp_path / "j.db.pending") == ([], [])
    journal.close()


def test_engine_runs_without_any_plugin() -> None:
    engine = Engine(hooks=None, journal=Journal())
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 10, 2.20, 2.40, 1.90)
    engine.on_quote(quote("ABCD", 2.50, t=1))
    assert engine.counters.trades_closed == 1


def test_journal_records_every_leg_with_pnl(engine: Engine) -> None:
    open_abcd(engine)
    engine.on_quote(quote("ABCD", 2.21, t=2))
    engine.on_quote(quote("ABCD", 2.41, t=3))
    assert engine.journal is not None
    legs = engine.journal.legs()
    assert [(leg.reason, leg.qty, leg.exit_price) for leg in legs] == [("tp1", 50, 2.21), ("tp2", 50, 2.41)]
    assert sum(leg.pnl for leg in legs) == pytest.approx(0.21 * 50 + 0.41 * 50, abs=0.005)


def test_target_enum_values_are_the_design_strings() -> None:
    assert [t.value for t in Target] == ["tp1", "tp2", "stop"]
    # "discarded": an unconfirmed trade whose entry never reached the broker (trust III's discard;
    # no plugin hears of it, so on_position_closed's reasons stay the design's four).
    assert [r.value for r in CloseReason] == ["tp2", "stop", "manual", "kill", "discarded"]
