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

from datetime import datetime

import attrs

from momobot_core.models import CloseReason, Quote, Target, Trade, leg_pnl

__all__ = ["StopMove", "after_close", "after_tp1", "exit_price", "exits", "pnl", "stop_price", "tp1_qty"]


@attrs.frozen
class StopMove:
    """When a trade's stop last moved (TP1's quote), and the print known then."""

    at: datetime
    last: float | None
    last_at: datetime | None

    @classmethod
    def on(cls, quote: Quote) -> StopMove:
        return cls(quote.ts, quote.last, quote.last_at)


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
    return attrs.evolve(
        trade, tp1_hit=True, remaining=trade.remaining - tp1_qty(trade), stop=trade.entry_price
    )


def after_close(trade: Trade, target: Target | None, reason: CloseReason, ts: datetime) -> Trade:
    """The trade after its last exit: nothing held, closed at ``ts`` for ``reason``."""
    return attrs.evolve(
        trade,
        remaining=0,
        closed_at=ts,
        close_reason=reason,
        tp2_hit=trade.tp2_hit or target is Target.TP2,
        stop_hit=trade.stop_hit or target is Target.STOP,
    )


def exit_price(target: Target, quote: Quote) -> float:
    """Take profits sell at the ask, the stop at the bid (paper fills)."""
    return quote.bid if target is Target.STOP else quote.ask


def pnl(trade: Trade, qty: int, price: float) -> float:
    return leg_pnl(trade.entry_price, price, qty)
