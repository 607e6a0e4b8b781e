"""The core's built-in plugin: one log line per trade event on ``momobot.trades``.

Registered like an external plugin (``momobot plugins --all`` lists it) so the
core's own behaviour is an example of the hooks in use.
"""

from __future__ import annotations

import logging

from momobot_core import hookimpl
from momobot_core.models import Order, Quote, Target, Trade

log = logging.getLogger("momobot.trades")


@hookimpl
def on_order_submitted(order: Order, trade: Trade) -> None:
    log.info(
        "%s %s %d %s at %s (%s, trade %s)",
        order.intent,
        order.side,
        order.qty,
        order.symbol,
        order.price,
        trade.close_reason or ("open" if trade.is_open else "closed"),
        trade.id,
    )


@hookimpl
def on_target_hit(trade: Trade, target: Target, quote: Quote) -> None:
    log.info(
        "%s reached %s (ask %s, bid %s, last %s)", trade.symbol, target, quote.ask, quote.bid, quote.last
    )


@hookimpl
def on_position_closed(trade: Trade, reason: str, price: float) -> None:
    log.info("%s closed at %s: %s", trade.symbol, price, reason)
