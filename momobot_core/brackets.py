"""The bracket rules: a pure step from a trade and a quote to the exits the quote causes.

No I/O, no clock, no journal: the engine asks, then records and announces what it is told.
DESIGN.md, "Trade rules" (rule 9 as trust III changed it):

* TP1 (``ask >= tp1``): sell ``qty // 2`` at the ask, move the stop to the entry price;
* TP2 (after TP1, ``ask >= tp2``): sell the rest at the ask;
* stop: ``last <= stop`` (the bid when there is no last, or when the print is older than the
  stop's last move, or is the very print the move already knew): sell the rest at the bid;
  never on the quote that moved the stop;
* manual close: sell the rest at the bid.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import attrs

from momobot_core.errors import TradeRefused
from momobot_core.models import (
    CloseReason,
    Intent,
    Leg,
    Order,
    Quote,
    Side,
    Target,
    Trade,
    leg_pnl,
    new_id,
    new_leg,
    new_order,
    new_trade,
    slot_constructor,
)

__all__ = [
    "MAX_PRICE",
    "MAX_QTY",
    "StopMove",
    "after_close",
    "after_tp1",
    "check_levels",
    "exit_price",
    "exits",
    "leg",
    "moved_stop",
    "order",
    "pnl",
    "price_ok",
    "stop_price",
    "tp1_qty",
]

#: The largest quantity and price the engine takes: beyond any real order, and far inside what
#: SQLite and a float hold, so no bad input reaches the journal.
MAX_QTY = 1_000_000_000
MAX_PRICE = 10_000_000.0


def price_ok(value: object) -> bool:
    # A plain float first: on CPython 3.11 an isinstance that fails costs about 440 instructions
    # and one against `int | float` about 1,200, where `type(value) is float` costs 175.
    if type(value) is float:
        return 0 < value <= MAX_PRICE
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value <= MAX_PRICE


def check_levels(
    symbol: str, qty: int | None, risk: float | None, tp1: float, tp2: float, stop: float, ask: float
) -> None:
    """An entry's size and levels against each other and the ask it would buy at: TradeRefused
    (``invalid``, or ``market`` for sound levels on the wrong side of the ask) if they make no
    sense. Give ``qty`` or ``risk``, not both."""
    if (qty is None) == (risk is None):
        raise TradeRefused(
            f"{symbol}: give qty (shares) or risk (dollars to lose at the stop), not "
            + ("both" if qty is not None else "neither")
        )
    if risk is not None and (
        isinstance(risk, bool) or not isinstance(risk, int | float) or not 0 < risk <= MAX_PRICE
    ):
        raise TradeRefused(
            f"{symbol}: risk must be dollars above 0 and at most {MAX_PRICE:,.0f}, not {risk!r}"
        )
    if type(qty) is int:  # the common case first (see price_ok)
        if not 1 <= qty <= MAX_QTY:
            raise TradeRefused(f"{symbol}: qty must be a whole number from 1 to {MAX_QTY:,}, not {qty!r}")
    elif isinstance(qty, str):  # JSON and scripts can send one
        raise TradeRefused(f"{symbol}: qty {qty!r} is a string: give a whole number such as 100")
    elif qty is not None and (isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QTY):
        raise TradeRefused(f"{symbol}: qty must be a whole number from 1 to {MAX_QTY:,}, not {qty!r}")
    for name, value in (("tp1", tp1), ("tp2", tp2), ("stop", stop)):
        if not price_ok(value):
            raise TradeRefused(
                f"{symbol}: {name} must be a price above 0 and at most {MAX_PRICE:,.0f}, not {value!r}"
            )
    if not stop < ask:
        raise TradeRefused(f"{symbol}: stop {stop} must be below the entry price (ask {ask})", "market")
    if not ask < tp1:
        raise TradeRefused(f"{symbol}: tp1 {tp1} must be above the entry price (ask {ask})", "market")
    if not tp1 <= tp2:
        raise TradeRefused(f"{symbol}: tp2 {tp2} must be at or above tp1 {tp1}")


@attrs.frozen
class StopMove:
    """When a trade's stop last moved (TP1's quote), and the print known then."""

    at: datetime
    last: float | None
    last_at: datetime | None

    @staticmethod
    def on(quote: Quote) -> StopMove:
        return new_stop_move(quote.ts, quote.last, quote.last_at)


#: ``StopMove(at, last, last_at)``, all given: TP1's path (:func:`models.slot_constructor`).
new_stop_move: Callable[[datetime, float | None, datetime | None], StopMove] = slot_constructor(StopMove)


def stop_price(trade: Trade, quote: Quote, move: StopMove | None) -> float:
    """The price the stop compares: the last print, or the bid where the print says nothing
    of the price since the stop moved (older than the move, or the very print it knew)."""
    price = quote.last
    if price is None:
        return quote.bid
    if trade.tp1_hit and move is not None:
        printed = quote.last_at or quote.ts
        # A print in the same frame as TP1's quote carries the same time, and is new all the same.
        if printed < move.at or (printed == move.at and (price, quote.last_at) == (move.last, move.last_at)):
            return quote.bid
    return price


def exits(trade: Trade, quote: Quote, move: StopMove | None) -> tuple[Target, ...]:
    """The exits ``quote`` causes for an open, confirmed ``trade``, in the order they happen:
    ``()``, ``(TP1,)``, ``(TP1, TP2)``, ``(TP2,)`` or ``(STOP,)``."""
    ask = quote.ask
    if not trade.tp1_hit:
        if ask >= trade.tp1:
            # The stop this moves is not tested against this same quote; TP2 may come on it.
            return (Target.TP1, Target.TP2) if ask >= trade.tp2 else (Target.TP1,)
    elif ask >= trade.tp2:
        return (Target.TP2,)
    if stop_price(trade, quote, move) <= trade.stop:
        return (Target.STOP,)
    return ()


def tp1_qty(trade: Trade) -> int:
    """What TP1 sells: half the entry, rounded down (nothing for a single share)."""
    return trade.qty // 2


def after_tp1(trade: Trade) -> Trade:
    """The trade after TP1: half sold, the stop at the entry price (break-even)."""
    return _moved(
        trade, trade.remaining - tp1_qty(trade), trade.entry_price, True, trade.tp2_hit, trade.stop_hit
    )


def after_close(trade: Trade, target: Target | None, reason: CloseReason, ts: datetime) -> Trade:
    """The trade after its last exit: nothing held, closed at ``ts`` for ``reason``."""
    return _moved(
        trade,
        0,
        trade.stop,
        trade.tp1_hit,
        trade.tp2_hit or target is Target.TP2,
        trade.stop_hit or target is Target.STOP,
        ts,
        reason,
    )


def moved_stop(trade: Trade, stop: float) -> Trade:
    """The trade with its stop raised (a trail)."""
    return _moved(trade, trade.remaining, stop, trade.tp1_hit, trade.tp2_hit, trade.stop_hit)


def _moved(
    trade: Trade,
    remaining: int,
    stop: float,
    tp1_hit: bool,
    tp2_hit: bool,
    stop_hit: bool,
    closed_at: datetime | None = None,
    close_reason: CloseReason | None = None,
) -> Trade:
    """``trade`` with the fields an exit moves, every other field carried over (None for
    ``closed_at`` or ``close_reason``: the trade's own). Built by one positional call to the
    slot constructor (:func:`momobot_core.models.slot_constructor`), not ``attrs.evolve``,
    whose generic walk of the fields costs 2.6 times a positional call warm and more on an
    exit's path, where caches are cold (docs/PERFORMANCE.md). ``tests/test_brackets.py`` holds
    it to evolve for every field."""
    return new_trade(
        trade.id,
        trade.symbol,
        trade.qty,
        remaining,
        trade.entry_price,
        trade.tp1,
        trade.tp2,
        stop,
        trade.opened_at,
        tp1_hit,
        tp2_hit,
        stop_hit,
        trade.closed_at if closed_at is None else closed_at,
        trade.close_reason if close_reason is None else close_reason,
        trade.unconfirmed,
        trade.initial_stop,
        trade.strategy,
        trade.timeframe,
        trade.level,
        trade.trail,
    )


def exit_price(target: Target, quote: Quote) -> float:
    """Take profits sell at the ask, the stop at the bid (paper fills)."""
    return quote.bid if target is Target.STOP else quote.ask


def pnl(trade: Trade, qty: int, price: float) -> float:
    return leg_pnl(trade.entry_price, price, qty)


def order(trade: Trade, side: Side, qty: int, price: float, intent: Intent, ts: datetime) -> Order:
    """The order an event of ``trade`` sends (a new id)."""
    return new_order(new_id(), trade.symbol, side, qty, price, intent, trade.id, ts)


def leg(trade: Trade, qty: int, price: float, reason: str, ts: datetime) -> Leg:
    """A sale of ``qty`` shares of ``trade`` at ``price``: its realised P&L."""
    entry = trade.entry_price
    pnl = leg_pnl(entry, price, qty)
    return new_leg(trade.id, trade.symbol, qty, entry, price, pnl, reason, trade.opened_at, ts, None)
