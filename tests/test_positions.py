"""The engine's parts on their own: the open trades' state, an entry's checks, the price bands
and the first-quote waits. No engine, no hooks; a real journal where a check reads one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from momobot_core.brackets import StopMove
from momobot_core.candles import Candle
from momobot_core.config import Config, CoreSettings
from momobot_core.entry import EntryChecks
from momobot_core.errors import TradeRefused
from momobot_core.journal import Journal
from momobot_core.market import MarketHours
from momobot_core.models import Quote, Trade
from momobot_core.positions import Positions, below_bid, candle_stop
from momobot_core.record import Record
from momobot_core.risk import RiskSettings
from momobot_core.riskday import RiskDay
from momobot_core.watch import Bands, QuoteWaiters, QuoteWatch, TradingHalts

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def trade(symbol: str = "ABCD", trail: str | None = None, tp1_hit: bool = False) -> Trade:
    return Trade(
        id=f"t-{symbol}",
        symbol=symbol,
        qty=100,
        remaining=50 if tp1_hit else 100,
        entry_price=2.0,
        tp1=2.2,
        tp2=2.4,
        stop=2.0 if tp1_hit else 1.9,
        opened_at=T0,
        tp1_hit=tp1_hit,
        trail=trail,
    )


def quote(
    bid: float, ask: float, seconds: float = 0, last: float | None = None, printed: float | None = None
) -> Quote:
    ts = T0 + timedelta(seconds=seconds)
    last_at = T0 + timedelta(seconds=printed) if printed is not None else None
    return Quote("ABCD", ts, bid, ask, last, last_at)


# -- the open trades' state ------------------------------------------------------------------


def test_a_trade_is_held_for_its_minimum_hold_from_its_entry_and_then_not() -> None:
    positions = Positions(timedelta(seconds=5))
    t = trade()
    positions.opened(t, T0)
    assert positions.trades == {"ABCD": t}
    assert positions.holding(t, T0 + timedelta(seconds=4.9))
    assert not positions.holding(t, T0 + timedelta(seconds=5))
    assert not Positions(timedelta(0)).holding(t, T0)  # no hold set: never held


def test_forget_drops_every_piece_kept_for_a_trade_so_a_new_one_starts_clean() -> None:
    positions = Positions(timedelta(seconds=5))
    first = trade(trail="0.10")
    positions.opened(first, T0)
    after = attrs.evolve(first, tp1_hit=True, remaining=50, stop=2.0)
    positions.took_profit_1(after, quote(2.19, 2.21, 1))
    assert positions.stop_move(after) == StopMove(T0 + timedelta(seconds=1), None, None)
    assert positions.dollar_trail(after, quote(2.50, 2.51, 2)) == pytest.approx(2.40)
    positions.forget(after)
    assert positions.trades == {} and positions.stop_move(after) is None
    # The same id again (a restart's restore): no high, no move, no hold left from before.
    again = attrs.evolve(after, opened_at=T0 + timedelta(seconds=10))
    positions.opened(again, again.opened_at)
    assert positions.holding(again, T0 + timedelta(seconds=14.9))  # its own hold, from its own entry
    assert not positions.holding(again, T0 + timedelta(seconds=15))
    assert positions.dollar_trail(again, quote(2.30, 2.31, 11)) == pytest.approx(2.20)  # high 2.30, not 2.50


def test_a_dollar_trail_follows_the_highest_price_since_tp1_and_ignores_older_prints() -> None:
    positions = Positions(timedelta(0))
    after = trade(trail="0.10", tp1_hit=True)
    positions.opened(after, T0)
    positions.took_profit_1(after, quote(2.20, 2.21, 10))  # the high starts at TP1's bid
    assert positions.dollar_trail(after, quote(2.25, 2.26, 11)) == pytest.approx(2.15)
    # A print of 2.60 made before TP1 says nothing of the price since: the bid counts.
    assert positions.dollar_trail(after, quote(2.24, 2.25, 12, last=2.60, printed=5)) == pytest.approx(2.15)
    # A fresh print above the bid does.
    assert positions.dollar_trail(after, quote(2.30, 2.31, 13, last=2.40, printed=13)) == pytest.approx(2.30)
    # Lower prices never lower the high.
    assert positions.dollar_trail(after, quote(2.00, 2.01, 14)) == pytest.approx(2.30)


def test_trailing_prices_stay_on_the_tick_and_below_the_bid() -> None:
    candle = Candle("ABCD", "1m", T0, 2.5, 2.6, 2.3, 2.55, 10)
    assert candle_stop(candle) == pytest.approx(2.29)
    cheap = Candle("ABCD", "1m", T0, 0.5, 0.6, 0.4312, 0.55, 10)
    assert candle_stop(cheap) == pytest.approx(0.4311)
    assert below_bid(2.50, 2.40) == pytest.approx(2.39)  # never at the bid or above it
    assert below_bid(2.10, 2.40) == pytest.approx(2.10)


# -- the price bands and the first-quote waits ------------------------------------------------


def test_a_band_refuses_a_stop_below_it_only_on_the_day_it_was_published() -> None:
    bands = Bands()
    today, tomorrow = T0.date(), T0.date() + timedelta(days=1)
    assert bands.refusal("ABCD", 1.0, today) is None
    bands.publish("ABCD", 1.80, 2.20, today)
    refusal = bands.refusal("ABCD", 1.79, today)
    assert refusal is not None and "1.79" in refusal and "1.8-2.2" in refusal
    assert bands.refusal("ABCD", 1.80, today) is None  # on the band is inside it
    assert bands.refusal("ABCD", 1.79, tomorrow) is None  # yesterday's band
    assert bands.refusal("WXYZ", 1.0, today) is None
    bands.clear()
    assert bands.bands == {} and bands.refusal("ABCD", 1.79, today) is None


def test_a_wait_for_a_first_quote_ends_with_it_or_times_out_and_leaves_nothing_behind() -> None:
    waiters = QuoteWaiters()

    async def main() -> tuple[bool, bool]:
        got = asyncio.create_task(waiters.wait("ABCD", 30))
        await asyncio.sleep(0)  # the wait is registered
        assert "ABCD" in waiters.waiting
        waiters.quoted("ABCD")
        return await got, await waiters.wait("WXYZ", 0.01)

    assert asyncio.run(main()) == (True, False)
    assert waiters.waiting == {}


# -- an entry's checks --------------------------------------------------------------------------


class Entries:
    """EntryChecks over the real parts it asks: a risk day and a record on a real journal."""

    def __init__(self, tmp_path: Path, **limits: object) -> None:
        self.told: list[str] = []
        self.journal = Journal(tmp_path / "journal.db")
        self.record = Record(self.journal, self.tell)
        self.open: dict[str, Trade] = {}
        self.quotes: dict[str, Quote] = {}
        self.halts = TradingHalts()
        self.bands = Bands()
        self.watch = QuoteWatch(0, 0.0)
        self.day = RiskDay(
            RiskSettings(**limits),  # type: ignore[arg-type]
            UTC,
            live=False,
            journal=self.journal,
            record=self.record,
            open_trades=self.open,
            tell=self.tell,
            new_day=lambda: None,
        )
        self.checks = EntryChecks(
            settings=CoreSettings.from_config(Config()),
            day=self.day,
            quote_watch=self.watch,
            halts=self.halts,
            bands=self.bands,
            record=self.record,
            market=MarketHours(),
            open_trades=self.open,
            last_quotes=self.quotes,
        )

    def tell(self, kind: str, message: str, symbol: str | None = None, **_: object) -> None:
        self.told.append(kind)

    def check(self, qty: int | None = 100, stop: float = 1.9, risk: float | None = None) -> int:
        return self.checks.check("ABCD", qty, 2.2, 2.4, stop, risk, T0)


def refused(entries: Entries, **kwargs: object) -> TradeRefused:
    with pytest.raises(TradeRefused) as info:
        entries.check(**kwargs)  # type: ignore[arg-type]
    return info.value


def test_an_entry_is_checked_in_order_and_the_first_refusal_names_its_rule(tmp_path: Path) -> None:
    entries = Entries(tmp_path, max_shares=50)
    assert refused(entries).kind == "unknown_symbol"  # no quote: no ask to buy at
    entries.quotes["ABCD"] = quote(1.99, 2.00)
    assert refused(entries).rule == "max_shares"  # the [risk] limits come last
    assert entries.check(qty=50) == 50
    assert entries.check(qty=None, risk=5.0) == 50  # sized: $5 over a 0.10 stop
    entries.bands.publish("ABCD", 1.95, 2.10, T0.date())
    assert refused(entries, qty=50).rule == "luld"  # the band before sizing and limits
    levels = refused(entries, qty=50, stop=2.5)  # a stop above the ask: the levels before the band
    assert (levels.kind, levels.rule) == ("market", None) and "stop" in str(levels)
    entries.open["ABCD"] = trade()
    assert refused(entries, qty=50, stop=2.5).kind == "already_open"  # before the levels
    entries.halts.change("ABCD", True, "news pending")
    assert refused(entries, qty=50).rule == "trading_halt"  # before the book
    entries.day.set_halt("kill_switch", "the kill switch was pressed", T0)
    assert refused(entries, qty=50).rule == "kill_switch"  # the day's halt first of all
    assert entries.journal.trades() == []  # nothing written by a check
