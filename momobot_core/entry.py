"""An entry's checks, in the order they are asked: what refuses an entry before anything of it
is recorded or sent.

The day's halt, a stale feed, a trading halt, the journal's state, a trade already open, no
quote to buy at, the levels against the ask (:func:`.brackets.check_levels`), the configured
sessions, the symbol's limit-up/limit-down band, the sizing of a ``risk`` entry and the
``[risk]`` limits (:class:`.riskday.RiskDay`). Each refusal is a :class:`TradeRefused` naming
what is wrong (and the limit's rule where one refused it); the engine counts, tells and
journals it (:meth:`~momobot_core.engine.Engine.open_trade`). Nothing here writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from momobot_core import brackets
from momobot_core.brackets import MAX_QTY
from momobot_core.errors import TradeRefused
from momobot_core.market import session_refusal

if TYPE_CHECKING:
    from momobot_core.config import CoreSettings
    from momobot_core.market import MarketHours
    from momobot_core.models import Quote, Trade
    from momobot_core.record import Record
    from momobot_core.riskday import RiskDay
    from momobot_core.watch import Bands, QuoteWatch, TradingHalts

__all__ = ["EntryChecks"]


class EntryChecks:
    """What an entry is checked against: the parts that hold the day, the feed and the book."""

    def __init__(
        self,
        *,
        settings: CoreSettings,
        day: RiskDay,
        quote_watch: QuoteWatch,
        halts: TradingHalts,
        bands: Bands,
        record: Record,
        market: MarketHours,
        open_trades: dict[str, Trade],
        last_quotes: dict[str, Quote],
    ) -> None:
        self.settings = settings
        self._day = day
        self._quote_watch = quote_watch
        self._halts = halts
        self._bands = bands
        self._record = record
        self._market = market
        self._open_trades = open_trades
        self._last_quotes = last_quotes

    def check(
        self,
        symbol: str,
        qty: int | None,
        tp1: float,
        tp2: float,
        stop: float,
        risk: float | None,
        ts: datetime,
    ) -> int:
        """The quantity to buy, or TradeRefused."""
        day = self._day
        day.roll(ts)
        halt = day.halt
        if halt is not None:
            raise TradeRefused(
                f"{symbol}: entries are halted for the day: {halt.message}", "halted", rule=halt.reason
            )
        stale = self._quote_watch.refusal(symbol)
        if stale is not None:
            raise TradeRefused(stale, "halted", rule="stale_quote_s")
        halted = self._halts.refusal(symbol)
        if halted is not None:
            raise TradeRefused(halted, "halted", rule="trading_halt")
        refusal = self._record.entry_refusal(symbol)
        if refusal is not None:
            raise TradeRefused(refusal, "journal")
        if symbol in self._open_trades:
            raise TradeRefused(f"{symbol}: a trade is already open", "already_open")
        quote = self._last_quotes.get(symbol)
        if quote is None:
            raise TradeRefused(
                f"{symbol}: unknown symbol: no quote yet, so there is no ask to buy at", "unknown_symbol"
            )
        brackets.check_levels(symbol, qty, risk, tp1, tp2, stop, quote.ask)
        settings = self.settings
        if settings.session is not None:
            refusal = session_refusal(self._market, settings.session, symbol, ts)
            if refusal is not None:
                raise TradeRefused(refusal, "halted", rule="session")
        if self._bands.bands:
            refusal = self._bands.refusal(symbol, stop, ts.astimezone(settings.tz).date())
            if refusal is not None:
                raise TradeRefused(refusal, "market", rule="luld")
        if qty is None:
            assert risk is not None
            qty = day.size(symbol, risk, quote.ask, stop)
            if qty > MAX_QTY:
                raise TradeRefused(
                    f"{symbol}: risk ${risk:,.2f} over a stop {quote.ask - stop:.4f} below the ask"
                    f" sizes {qty:,} shares, more than the {MAX_QTY:,} the engine takes",
                    "market",
                )
        day.check_entry(symbol, qty, quote.ask, stop, ts)
        return qty
