"""The desk's records: an order this run wrote, a trade's last exit in progress, what waits.

Plain mutable records (``attrs.define``): the desk changes them under its lock as the
platform's lines come in; nothing else holds them.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from momobot_core.models import Order, Trade
from momobot_das.protocol import check_symbol


def das_symbol(symbol: str) -> str:
    """The symbol as DAS writes it (upper case); unchanged if no line could carry it (the order
    line then refuses it, and the refusal is told)."""
    try:
        return check_symbol(symbol)
    except ValueError:
        return symbol


@attrs.define
class Working:
    """One NEWORDER this run wrote, and what the platform said of it since."""

    token: int
    order_id: str  # the engine's order id ("" for a catastrophic stop)
    trade_id: str
    symbol: str
    side: str  # "B" or "S"
    qty: int
    price: Decimal
    intent: str
    sent_at: float  # monotonic
    line: str
    das_id: str | None = None
    status: str = "Sent"
    filled: int = 0  # from %ORDER (qty - leaves - cancelled), or the %TRADE sum if larger
    traded: int = 0  # the %TRADE sum
    cancelled: int = 0
    final: bool = False
    cancel_sent: bool = False
    cancel_wanted: bool = False  # cancel as soon as the platform names its order id
    rejected: str | None = None
    rejected_at: float | None = None  # %ORDER said Rejected; its %OrderAct (the reason) may follow
    cancel_retry_at: float | None = None  # the platform refused the cancel: try again then
    priced_at: float = 0.0  # an exit sell's price last found still right (the bid had not moved)

    @property
    def leaves(self) -> int:
        return 0 if self.final else max(0, self.qty - self.filled)


@attrs.define
class ExitJob:
    """A trade's last exit: done when the trade holds nothing more at the broker."""

    trade_id: str
    symbol: str
    order_id: str  # the engine's exit order: every sell of the job fills it
    event: str  # tp2, stop, manual or kill
    engine_qty: int  # what the engine sold (its remaining before the exit)
    model_price: float  # the engine's price: the bid when no quote is known
    first_price: Decimal | None  # take profit 2: a limit at the ask first
    started: float
    sells: list[int] = attrs.field(factory=list)  # tokens
    alerted: bool = False
    retry_at: float = 0.0
    attributed: int = 0  # shares of its fills counted to its own order (the rest: take profit 1's)
    rejections: int = 0  # its sells the platform rejected: each waits longer before the next
    quote_symbol: str = ""  # the engine's name of the symbol (its quotes)
    refresh_asked: float | None = None


@attrs.define
class PendingEntry:
    order: Order
    trade: Trade
    queued_at: float


@attrs.define
class PendingTakeProfit:
    """A take profit 1 that cannot go out yet: the link is down, the entry's fill or the position
    has not come in, or the catastrophic stop is being cancelled first."""

    order: Order
    trade: Trade
    queued_at: float
    alerted: bool = False
