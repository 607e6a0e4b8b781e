"""The risk day on its own: a real journal, a real record, no engine and no hooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from momobot_core.errors import TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Leg, Quote, Trade
from momobot_core.record import Record
from momobot_core.risk import Halt, RiskSettings
from momobot_core.riskday import RiskDay

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def trade(symbol: str, entry: float = 2.0, stop: float = 1.9, qty: int = 100) -> Trade:
    return Trade(
        id=f"t-{symbol}",
        symbol=symbol,
        qty=qty,
        remaining=qty,
        entry_price=entry,
        tp1=entry + 0.2,
        tp2=entry + 0.4,
        stop=stop,
        opened_at=T0,
    )


def leg(t: Trade, price: float, qty: int, at: datetime = T0) -> Leg:
    return Leg(
        trade_id=t.id,
        symbol=t.symbol,
        qty=qty,
        entry_price=t.entry_price,
        exit_price=price,
        pnl=round((price - t.entry_price) * qty, 6),
        reason="stop",
        opened_at=t.opened_at,
        closed_at=at,
    )


def due(day: RiskDay) -> str | None:  # read afresh each time (no narrowing across calls)
    return day.kill_due


def since(day: RiskDay) -> datetime | None:
    return day.book.breach_since


def halt(day: RiskDay) -> Halt | None:
    return day.halt


class Day:
    """A RiskDay over a real journal, with what it told and each new day counted."""

    def __init__(self, tmp_path: Path, **limits: Any) -> None:
        self.told: list[tuple[str, str]] = []
        self.new_days = 0
        self.journal = Journal(tmp_path / "journal.db")
        self.open: dict[str, Trade] = {}

        def tell(kind: str, message: str, symbol: str | None = None, **_: object) -> None:
            self.told.append((kind, message))

        def new_day() -> None:
            self.new_days += 1

        self.day = RiskDay(
            RiskSettings(**limits),
            UTC,
            live=False,
            journal=self.journal,
            record=Record(self.journal, tell),
            open_trades=self.open,
            tell=tell,
            new_day=new_day,
        )


def test_a_realised_loss_at_the_limit_calls_for_a_flatten_once_and_says_why(tmp_path: Path) -> None:
    d = Day(tmp_path, max_daily_loss=50.0)
    d.day.roll(T0)
    t = trade("ABCD")
    d.open["ABCD"] = t
    d.day.count_leg(t, leg(t, 1.8, 100), closed=True)  # -20: not yet
    assert due(d.day) is None
    d.day.count_leg(t, leg(t, 1.7, 100), closed=True)  # -50 in all: the limit
    assert due(d.day) == "realised"
    why = d.day.kill_reason()
    assert why == "today's realised P&L $-50.00 reached max_daily_loss $50.00"
    assert d.day.kill_reason() is None  # once
    d.day.killing = True  # the flatten's own legs never call for another
    d.day.count_leg(t, leg(t, 1.7, 10), closed=False)
    assert due(d.day) is None


def test_a_losing_streak_halts_the_day_in_the_journal_and_a_restart_reads_it_back(tmp_path: Path) -> None:
    d = Day(tmp_path, loss_streak=2)
    d.day.roll(T0)
    for symbol in ("AAAA", "BBBB"):
        t = trade(symbol)
        d.day.count_leg(t, leg(t, 1.95, 100), closed=True)
    held = halt(d.day)
    assert held is not None and held.reason == "loss_streak"
    assert d.told == [
        (
            "halted",
            "2 losing trades in a row (loss_streak 2): entries are halted for the day"
            " (open trades keep their exits)",
        )
    ]
    with pytest.raises(TradeRefused) as refused:
        d.day.resume(T0)
    assert refused.value.kind == "halted" and "not lifted by hand" in str(refused.value)
    d.journal.close()
    again = Day(tmp_path, loss_streak=2)
    again.day.roll(T0 + timedelta(minutes=5))  # the same day, from the journal
    read_back = halt(again.day)
    assert read_back is not None and read_back.reason == "loss_streak"
    assert again.new_days == 0  # the first day of a process is not a "new" one


def test_a_new_trading_day_lifts_yesterdays_halt_and_clears_yesterday(tmp_path: Path) -> None:
    d = Day(tmp_path)
    d.day.roll(T0)
    d.day.set_halt("kill_switch", "the kill switch was pressed", T0)
    d.day.roll(T0 - timedelta(days=1))  # never back a day
    assert halt(d.day) is not None and d.new_days == 0
    d.day.roll(T0 + timedelta(days=1))
    assert halt(d.day) is None and d.new_days == 1
    assert d.told[-1][0] == "resumed" and "the halt of 2026-11-24 (kill_switch) is over" in d.told[-1][1]


def test_the_kill_switchs_halt_is_lifted_by_hand_and_journaled(tmp_path: Path) -> None:
    d = Day(tmp_path)
    with pytest.raises(TradeRefused) as nothing:
        d.day.resume(T0)
    assert nothing.value.kind == "not_halted"
    d.day.set_halt("kill_switch", "the kill switch was pressed", T0)
    assert d.day.resume(T0) == "kill_switch" and halt(d.day) is None
    assert [e.kind for e in d.journal.risk_events(T0.date(), ("halt", "resume"))] == ["halt", "resume"]


def test_the_unrealised_watch_counts_sane_quotes_only_and_confirms_over_time(tmp_path: Path) -> None:
    d = Day(tmp_path, max_daily_loss=30.0, loss_confirm_s=2.0, max_spread_pct=2.0)
    d.open["ABCD"] = trade("ABCD")  # 100 @ 2.00
    d.day.watch(Quote("ABCD", T0, 1.50, 1.90, None))  # a pulled bid (spread 27%): not counted
    assert d.day.sane_bid == {} and since(d.day) is None
    d.day.watch(Quote("ABCD", T0, 1.69, 1.70, None))  # -31: a breach begins
    assert due(d.day) is None and since(d.day) == T0
    d.day.check(T0 + timedelta(seconds=1))
    assert due(d.day) is None
    d.day.watch(Quote("ABCD", T0 + timedelta(seconds=2), 1.69, 1.70, None))
    assert due(d.day) == "unrealised"
    why = d.day.kill_reason()
    assert why is not None and "stayed past max_daily_loss $30.00 for 2 s" in why and "$-31.00" in why


def test_an_entry_past_a_limit_is_refused_with_the_limits_name(tmp_path: Path) -> None:
    d = Day(tmp_path, max_open_trades=1, max_daily_loss=100.0)
    d.day.roll(T0)
    d.day.check_entry("AAAA", 100, 2.0, 1.9, T0)  # nothing open: allowed
    d.open["AAAA"] = trade("AAAA", stop=1.5)  # -50 at its stop
    with pytest.raises(TradeRefused) as refused:
        d.day.check_entry("BBBB", 100, 2.0, 1.9, T0)
    assert (refused.value.kind, refused.value.rule) == ("risk", "max_open_trades")
    assert d.day.at_stops() == pytest.approx(-50.0)
    assert d.day.status({"AAAA": 1.9}, {})["unrealised"] == -10.0
