"""The open trades, and everything the engine keeps for each while it is open.

One owner for per-trade state: the trade itself (replaced by an updated copy at each event),
the end of its minimum hold, when its stop last moved (and the print known then), and the
highest price since TP1 of a stop that trails by dollars. :meth:`Positions.forget` drops all
of it at once when the trade leaves the book, so no event can leave a piece behind.

The trailing stop's steps are here too, as prices: where a stop trailing by dollars or by
candles would go now, never above the bid. No I/O, no journal: the engine records a move
before it counts (:meth:`~momobot_core.engine.Engine.apply`'s order of work).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from momobot_core.brackets import StopMove
from momobot_core.candles import Candle
from momobot_core.models import Quote, Trade
from momobot_core.strategies.bracket import on_tick

__all__ = ["Positions", "below_bid", "candle_stop", "tick_below"]


def tick_below(price: float) -> float:
    """One tick: a cent at a dollar and above, a hundredth of a cent below it."""
    return 0.01 if price >= 1 else 0.0001


def below_bid(stop: float, bid: float) -> float:
    """A stop never at the bid or above it: a spread, or a print from before the move, must not
    sell what no price did."""
    return min(stop, on_tick(bid - tick_below(bid)))


def candle_stop(candle: Candle) -> float:
    """A stop trailing by candles: a tick under the closed candle's low."""
    return on_tick(candle.low - tick_below(candle.low))


class Positions:
    """The open trades by symbol (:attr:`trades`, the engine's ``open_trades``) and their state."""

    def __init__(self, min_hold: timedelta) -> None:
        self.trades: dict[str, Trade] = {}
        self.min_hold = min_hold
        self._hold_until: dict[str, datetime] = {}
        #: When each trade's stop last moved (TP1's quote, a trail), and the print known then:
        #: older prints, and that same print, never trigger it.
        self._moved: dict[str, StopMove] = {}
        #: The highest price since TP1 of each trade whose stop trails by dollars.
        self._high: dict[str, float] = {}

    def opened(self, trade: Trade, at: datetime) -> None:
        """A trade entered at ``at`` (or restored: its own open time): held ``min_hold`` from it."""
        self.trades[trade.symbol] = trade
        self._hold_until[trade.symbol] = at + self.min_hold

    def holding(self, trade: Trade, ts: datetime) -> bool:
        """Whether ``ts`` falls in the trade's minimum hold (no exit on its quotes yet)."""
        return bool(self.min_hold) and ts < self._hold_until[trade.symbol]

    def stop_move(self, trade: Trade) -> StopMove | None:
        return self._moved.get(trade.id)

    def replace(self, after: Trade, moved: StopMove | None = None) -> None:
        """The trade's state after an event; ``moved``: its stop moved then."""
        self.trades[after.symbol] = after
        if moved is not None:
            self._moved[after.id] = moved

    def took_profit_1(self, after: Trade, quote: Quote) -> None:
        """TP1 on ``quote``: the stop moved to break-even on it; a dollar trail's high starts at
        its bid."""
        self.replace(after, StopMove.on(quote))
        if after.trail:
            self._high[after.id] = quote.bid

    def dollar_trail(self, trade: Trade, quote: Quote) -> float:
        """Where a stop trailing by dollars goes on ``quote``: that far below the highest price
        since TP1 (a print made since TP1, else the bid). The caller keeps it only if higher."""
        move = self._moved.get(trade.id)
        printed = quote.last_at or quote.ts
        fresh = quote.last is not None and (move is None or printed >= move.at)
        price = max(quote.last, quote.bid) if fresh and quote.last is not None else quote.bid
        high = max(self._high.get(trade.id, price), price)
        self._high[trade.id] = high
        assert trade.trail is not None
        return on_tick(high - float(trade.trail))

    def forget(self, trade: Trade) -> None:
        """The trade left the book: everything kept for it goes."""
        del self.trades[trade.symbol]
        self._hold_until.pop(trade.symbol, None)
        self._moved.pop(trade.id, None)
        self._high.pop(trade.id, None)
