"""The trade engine: bracket-trade rules, paper fills, and the order of work per event.

Every rule of a trade's life is in this module (DESIGN.md, "Trade rules"):

* open: an entry buy at the symbol's current ask;
* TP1 (``ask >= tp1``): sell ``qty // 2`` at the ask, move the stop to the entry price;
* TP2 (after TP1, ``ask >= tp2``): sell the rest at the ask;
* stop (``last <= stop``, ``bid`` when there is no last): sell the rest at the bid;
* manual close: sell the rest at the bid.

Per event the order of work is fixed: the hooks first (a plugin mirroring the
trade onto a broker must hear of it before anything slower happens), the
journal after. The quote path does as little as it can: a quote for a symbol
with no open trade costs a validation and a dict store.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from momobot_core.config import Config, CoreSettings
from momobot_core.models import CloseReason, Intent, Leg, Order, Quote, Side, Target, Trade, leg_pnl

if TYPE_CHECKING:
    from momobot_core.journal import Journal
    from momobot_core.plugins import Hooks

log = logging.getLogger("momobot.engine")

MODES = ("live", "replay", "demo")
_INF = float("inf")
# Past this many, rejected quotes are counted but no longer logged one by one.
_REJECTS_LOGGED = 10


class TradeRefused(Exception):
    """An action the engine will not take. ``kind`` says why, for callers that map it:

    ``unknown_symbol`` (no quote for it yet), ``already_open``, ``no_position``,
    ``invalid`` (levels or quantity that make no sense).
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


class Clock:
    """Event time. In a replay it is the time of the last event; live, the wall clock."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.current: datetime | None = None

    def now(self) -> datetime:
        if self.live or self.current is None:
            return datetime.now(UTC)
        return self.current


@attrs.define
class Counters:
    """What a run did, for the summary."""

    quotes: int = 0
    rejected_quotes: int = 0
    refused_actions: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    orders: int = 0


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def _positive(value: float) -> bool:
    return 0 < value < _INF


class Engine:
    """Runs bracket trades against a quote stream and tells plugins about every event.

    Not thread-safe: feed it from one thread (the replay loop, or the API's
    event loop).
    """

    def __init__(
        self,
        *,
        config: Config | None = None,
        hooks: Hooks | None = None,
        journal: Journal | None = None,
        mode: str = "replay",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.config = config if config is not None else Config()
        self.settings = CoreSettings.from_config(self.config)
        self.mode = mode
        self.hooks = hooks
        self.journal = journal
        self.clock = Clock(live=(mode == "live"))
        self.counters = Counters()
        self.last_quotes: dict[str, Quote] = {}
        self.open_trades: dict[str, Trade] = {}
        self._hold_until: dict[str, datetime] = {}
        self._min_hold = timedelta(seconds=self.settings.min_hold_s)
        self._started = False
        self._stopped = False
        if journal is not None:
            for trade in journal.open_trades():
                self.open_trades[trade.symbol] = trade
                self._hold_until[trade.symbol] = trade.opened_at + self._min_hold
            if self.open_trades:
                log.info("restored %d open trade(s) from the journal: %s",
                         len(self.open_trades), ", ".join(sorted(self.open_trades)))

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Call ``on_startup``. A plugin's ConfigError propagates: start-up must stop."""
        if self._started:
            return
        self._started = True
        if self.hooks is not None:
            self.hooks.hook.on_startup(bot=self)

    def shutdown(self) -> None:
        """Call ``on_shutdown`` once (isolated per plugin)."""
        if self._stopped:
            return
        self._stopped = True
        if self.hooks is not None and self._started:
            self.hooks.notify("on_shutdown", bot=self)

    def _notify(self, hook_name: str, **kwargs: object) -> None:
        if self.hooks is not None:
            self.hooks.notify(hook_name, **kwargs)

    # -- quotes ------------------------------------------------------------------

    def on_quote(self, quote: Quote) -> bool:
        """Take one quote; act on the symbol's open trade. False if the quote was rejected."""
        # Chained comparisons are False for NaN, so these also reject non-finite prices.
        if 0 < quote.bid <= quote.ask < _INF:
            last = quote.last
            if last is None or 0 < last < _INF:
                symbol = quote.symbol
                self.last_quotes[symbol] = quote
                self.clock.current = quote.ts
                self.counters.quotes += 1
                trade = self.open_trades.get(symbol)
                if trade is not None:
                    self._check_targets(trade, quote)
                return True
        self._reject(quote)
        return False

    def _reject(self, quote: Quote) -> None:
        self.counters.rejected_quotes += 1
        n = self.counters.rejected_quotes
        if n <= _REJECTS_LOGGED:
            log.warning("rejected malformed quote for %s at %s (bid=%r ask=%r last=%r): prices must"
                        " be finite and positive with bid <= ask", quote.symbol, quote.ts.isoformat(),
                        quote.bid, quote.ask, quote.last)
            if n == _REJECTS_LOGGED:
                log.warning("further malformed quotes are counted but not logged")

    def _check_targets(self, trade: Trade, quote: Quote) -> None:
        if self._min_hold and quote.ts < self._hold_until[trade.symbol]:
            return
        ask = quote.ask
        if not trade.tp1_hit and ask >= trade.tp1:
            trade = self._take_profit_1(trade, quote)
        if trade.tp1_hit and ask >= trade.tp2:
            self._exit_rest(trade, quote, Target.TP2)
            return
        price = quote.last if quote.last is not None else quote.bid
        if price <= trade.stop:
            self._exit_rest(trade, quote, Target.STOP)

    # -- actions -----------------------------------------------------------------

    def open_trade(self, symbol: str, qty: int, tp1: float, tp2: float, stop: float,
                   ts: datetime | None = None) -> Trade:
        """Open a long bracket trade with an entry buy at the symbol's current ask."""
        try:
            self._check_open(symbol, qty, tp1, tp2, stop)
        except TradeRefused:
            self.counters.refused_actions += 1
            raise
        quote = self.last_quotes[symbol]
        ts = ts if ts is not None else self.clock.now()
        trade = Trade(id=_new_id(), symbol=symbol, qty=qty, remaining=qty, entry_price=quote.ask,
                      tp1=tp1, tp2=tp2, stop=stop, opened_at=ts)
        self.open_trades[symbol] = trade
        self._hold_until[symbol] = ts + self._min_hold
        self.counters.trades_opened += 1
        order = self._order(trade, Side.BUY, qty, quote.ask, Intent.ENTRY, ts)
        self._notify("on_order_submitted", order=order, trade=trade)
        if self.journal is not None:
            self.journal.record_open(trade, order)
        return trade

    def _check_open(self, symbol: str, qty: int, tp1: float, tp2: float, stop: float) -> None:
        if symbol in self.open_trades:
            raise TradeRefused(f"{symbol}: a trade is already open", "already_open")
        quote = self.last_quotes.get(symbol)
        if quote is None:
            raise TradeRefused(f"{symbol}: unknown symbol: no quote yet, so there is no ask to buy at",
                               "unknown_symbol")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise TradeRefused(f"{symbol}: qty must be a whole number >= 1, not {qty!r}")
        for name, value in (("tp1", tp1), ("tp2", tp2), ("stop", stop)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not _positive(value):
                raise TradeRefused(f"{symbol}: {name} must be a finite price > 0, not {value!r}")
        if not stop < quote.ask:
            raise TradeRefused(f"{symbol}: stop {stop} must be below the entry price (ask {quote.ask})")
        if not quote.ask < tp1:
            raise TradeRefused(f"{symbol}: tp1 {tp1} must be above the entry price (ask {quote.ask})")
        if not tp1 <= tp2:
            raise TradeRefused(f"{symbol}: tp2 {tp2} must be at or above tp1 {tp1}")

    def close_trade(self, symbol: str, ts: datetime | None = None) -> Trade:
        """Manual close: sell what remains at the bid."""
        trade = self.open_trades.get(symbol)
        if trade is None:
            self.counters.refused_actions += 1
            raise TradeRefused(f"{symbol}: no open trade to close", "no_position")
        quote = self.last_quotes.get(symbol)
        if quote is None:
            self.counters.refused_actions += 1
            raise TradeRefused(f"{symbol}: no quote since start-up, so there is no bid to sell at",
                               "unknown_symbol")
        ts = ts if ts is not None else self.clock.now()
        return self._close(trade, quote.bid, ts, Intent.MANUAL, CloseReason.MANUAL)

    # -- exits -------------------------------------------------------------------

    def _take_profit_1(self, trade: Trade, quote: Quote) -> Trade:
        self._notify("on_target_hit", trade=trade, target=Target.TP1, quote=quote)
        sell_qty = trade.qty // 2
        price = quote.ask
        trade = attrs.evolve(trade, tp1_hit=True, remaining=trade.remaining - sell_qty,
                             stop=trade.entry_price)
        self.open_trades[trade.symbol] = trade
        order = None
        leg = None
        if sell_qty:
            order = self._order(trade, Side.SELL, sell_qty, price, Intent.TAKE_PROFIT, quote.ts)
            self._notify("on_order_submitted", order=order, trade=trade)
            leg = self._leg(trade, sell_qty, price, Target.TP1.value, quote.ts)
        if self.journal is not None:
            self.journal.record_exit(trade, order, leg)
        return trade

    def _exit_rest(self, trade: Trade, quote: Quote, target: Target) -> None:
        self._notify("on_target_hit", trade=trade, target=target, quote=quote)
        trade = self.open_trades[trade.symbol]  # a plugin cannot replace it, but be exact
        if target is Target.TP2:
            trade = attrs.evolve(trade, tp2_hit=True)
            self._close(trade, quote.ask, quote.ts, Intent.TAKE_PROFIT, CloseReason.TP2)
        else:
            trade = attrs.evolve(trade, stop_hit=True)
            self._close(trade, quote.bid, quote.ts, Intent.STOP, CloseReason.STOP)

    def _close(self, trade: Trade, price: float, ts: datetime, intent: Intent,
               reason: CloseReason) -> Trade:
        qty = trade.remaining
        trade = attrs.evolve(trade, remaining=0, closed_at=ts, close_reason=reason)
        del self.open_trades[trade.symbol]
        self._hold_until.pop(trade.symbol, None)
        self.counters.trades_closed += 1
        order = self._order(trade, Side.SELL, qty, price, intent, ts)
        self._notify("on_order_submitted", order=order, trade=trade)
        self._notify("on_position_closed", trade=trade, reason=reason.value, price=price)
        if self.journal is not None:
            self.journal.record_exit(trade, order, self._leg(trade, qty, price, reason.value, ts))
        return trade

    def _order(self, trade: Trade, side: Side, qty: int, price: float, intent: Intent,
               ts: datetime) -> Order:
        self.counters.orders += 1
        return Order(id=_new_id(), symbol=trade.symbol, side=side, qty=qty, price=price,
                     intent=intent, trade_id=trade.id, ts=ts)

    @staticmethod
    def _leg(trade: Trade, qty: int, price: float, reason: str, ts: datetime) -> Leg:
        return Leg(trade_id=trade.id, symbol=trade.symbol, qty=qty, entry_price=trade.entry_price,
                   exit_price=price, pnl=leg_pnl(trade.entry_price, price, qty), reason=reason,
                   opened_at=trade.opened_at, closed_at=ts)
