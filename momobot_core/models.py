"""Domain values: quotes, orders, trades and the names of targets and close reasons.

Every value a hook receives is immutable: a plugin can keep a reference to a
trade or an order without seeing it change under it, and cannot change the
engine's state by accident. The engine replaces a trade with an updated copy whenever one
of its fields moves (on an exit's path, :mod:`.brackets` builds it field by field).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import attrs

_T = TypeVar("_T")

_IDS_DRAWN = 512  # ids drawn from the OS's random source at a time


class _Ids:
    """Random ids of 16 hex digits (a trade's, an order's, a journal event's), drawn from the
    OS's random source 512 at a time: one system call per id cost a microsecond or more on the
    trading path (a uuid4, seven). A forked child draws its own."""

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0
        os.register_at_fork(after_in_child=self.forget)

    def new(self) -> str:
        at = self.at
        if at >= len(self.pool):
            self.pool, at = os.urandom(8 * _IDS_DRAWN), 0
        self.at = at + 8
        return self.pool[at : at + 8].hex()

    def forget(self) -> None:
        self.pool, self.at = b"", 0


#: A new random id (16 hex digits).
new_id = _Ids().new


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class Intent(enum.StrEnum):
    """Why an order was submitted."""

    ENTRY = "entry"
    TAKE_PROFIT = "take_profit"
    STOP = "stop"
    MANUAL = "manual"


class Target(enum.StrEnum):
    """A price level of a bracket trade."""

    TP1 = "tp1"
    TP2 = "tp2"
    STOP = "stop"


class CloseReason(enum.StrEnum):
    """Why a trade was fully closed."""

    TP2 = "tp2"
    STOP = "stop"
    MANUAL = "manual"
    KILL = "kill"
    #: A person discarded an unconfirmed trade whose entry never reached the broker: it is
    #: closed in the journal, nothing was sold, no plugin hears of it.
    DISCARDED = "discarded"


@attrs.frozen
class Alert:
    """Something a person must know now (DESIGN "Risk limits": the alert kinds).

    ``kind`` is one of the core's kinds (``journal_error``, ``link_down``,
    ``sequence_cut``, ...) or a plugin's own, prefixed with its name.
    """

    kind: str
    message: str
    symbol: str | None
    ts: datetime
    detail: dict[str, object] = attrs.field(factory=dict)


@attrs.frozen
class Panel:
    """A plugin's panel on the dashboard (``dashboard_panels``): ``path`` serves an HTML
    fragment (a route the plugin adds with ``register_routes``) that the page refreshes."""

    title: str
    path: str


@attrs.frozen
class Quote:
    """A top-of-book quote for one symbol at one event time.

    ``last`` may be None (no trade print yet); the stop then triggers on ``bid``.
    ``last_at`` is when that print happened (a live source: when it was received); None means
    "as of ``ts``" (a recorded row, an API quote). A print older than the stop's last move
    never triggers the stop: the bid does.
    """

    symbol: str
    ts: datetime
    bid: float
    ask: float
    last: float | None = None
    last_at: datetime | None = None


@attrs.frozen
class Open:
    """A request to open a bracket trade: an entry buy of ``qty`` at the symbol's ask.

    Give ``risk`` (dollars) instead of ``qty`` (None) and the engine sizes it:
    floor(risk / (ask - stop)), capped by ``[risk]`` max_shares and max_position_value.
    """

    symbol: str
    qty: int | None
    tp1: float
    tp2: float
    stop: float
    ts: datetime  # when it was asked for (event time)
    risk: float | None = None
    #: A strategy's entry: its name, timeframe and the level it broke (journaled with the trade).
    strategy: str | None = None
    timeframe: str | None = None
    level: float | None = None
    #: After TP1, a stop that follows the price instead of resting at break-even: dollars below
    #: the highest price since TP1 (``"0.05"``) or ``"candle"`` (a tick under each closed
    #: candle's low of the arm's timeframe); None: break-even.
    trail: str | None = None


@attrs.frozen
class Arm:
    """Arm ``symbol`` with a strategy at a timeframe: the bot enters when the strategy says so.

    ``params`` holds the strategy's own fields (``level`` for ``level``) and the arm's overrides
    of ``[bracket]`` (``qty``, ``risk``, ``tp1``, ``tp2``, ``stop``, ``tp1_r``, ``tp2_r``,
    ``entries``, ``cooldown_s``); see docs/strategies.md.
    """

    symbol: str
    strategy: str
    timeframe: str
    ts: datetime
    params: dict[str, object] = attrs.field(factory=dict)
    #: Where it came from: ``api``, ``recording``, or ``config: <the [momobot] arm entry>``.
    origin: str = "api"


@attrs.frozen
class Disarm:
    """Stop watching ``symbol`` for entries (an open trade keeps its exits)."""

    symbol: str
    ts: datetime


@attrs.frozen
class Close:
    """A request to close a trade by hand: sell what remains at the bid."""

    symbol: str
    ts: datetime


@attrs.frozen
class Kill:
    """Flatten every open trade at the bid (reason kill) and halt entries for the day."""

    ts: datetime
    reason: str = "kill_switch"  # or "max_daily_loss", when the engine pulls it itself


@attrs.frozen
class Resume:
    """Allow entries again after the kill switch (or a losing streak) halted them."""

    ts: datetime


@attrs.frozen
class TradingHalt:
    """A market's trading halt (or limit-up/limit-down pause) on ``symbol`` began (``halted``)
    or ended, as a source saw it; entries on a halted symbol are refused."""

    symbol: str
    halted: bool
    reason: str
    ts: datetime


@attrs.frozen
class Luld:
    """The limit-up/limit-down price band of ``symbol``, as the feed published it."""

    symbol: str
    lower: float
    upper: float
    ts: datetime


@attrs.frozen
class Fill:
    """What a broker filled of one of the engine's orders, reported by an order plugin.

    ``order_id`` is the engine's :class:`Order` id; ``broker_ref`` is the broker's own id of
    the execution (a reconnect that reports the same execution again is recorded once).
    The engine keeps its model prices; the journal keeps these beside them.
    """

    order_id: str
    qty: int
    price: float
    ts: datetime
    broker_ref: str


@attrs.frozen
class Order:
    """An order the engine submitted to the (paper) broker, filled at ``price``."""

    id: str
    symbol: str
    side: Side
    qty: int
    price: float
    intent: Intent
    trade_id: str
    ts: datetime


@attrs.frozen
class Trade:
    """A long bracket trade: entry, take-profit 1 and 2, and a stop.

    ``stop`` is the stop as it stands now: after TP1 it is the entry price
    (break-even). ``remaining`` is the quantity still held.
    """

    id: str
    symbol: str
    qty: int
    remaining: int
    entry_price: float
    tp1: float
    tp2: float
    stop: float
    opened_at: datetime
    tp1_hit: bool = False
    tp2_hit: bool = False
    stop_hit: bool = False
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    #: Restored after a crash from an event the plugins may not have heard of: nothing is sent
    #: for it (no target fires) until a person confirms or closes it.
    unconfirmed: bool = False
    #: The stop the trade opened with (the R in R multiples); None in journals older than schema 3.
    initial_stop: float | None = None
    #: A strategy's entry: which strategy, at which timeframe, and the level it broke (None: a
    #: person's entry, or a journal older than schema 6).
    strategy: str | None = None
    timeframe: str | None = None
    level: float | None = None
    #: The trailing stop after TP1 (see :class:`Open`); None: break-even.
    trail: str | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@attrs.frozen
class Leg:
    """One exit of a trade (a closed slice of the position) as the journal holds it."""

    trade_id: str
    symbol: str
    qty: int
    entry_price: float
    exit_price: float
    pnl: float
    reason: str
    opened_at: datetime
    closed_at: datetime
    #: The engine's exit order that closed this leg; None in journals older than schema 4.
    order_id: str | None = None


def slot_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A constructor of ``cls`` for the trading path: every field positional, in the class's
    order, each set straight through its slot.

    attrs' own ``__init__`` of a frozen class sets each field by name through
    ``object.__setattr__``, which looks the name up again in the class for every field; a
    slot's own setter does not. The instance is the same in every respect (equality, hash,
    repr, pickling, ``attrs.evolve``): only a frozen, slotted attrs class whose ``__init__``
    attrs wrote and does nothing but set its fields (no validator, converter, keyword-only or
    non-init field, no ``__attrs_pre_init__`` or ``__attrs_post_init__``, no cached hash) is
    accepted (TypeError otherwise), since this constructor does nothing more either.
    ``tests/test_models.py`` holds each one used to ``cls(*values)``."""
    if not attrs.has(cls) or "__slots__" not in cls.__dict__ or cls.__setattr__ is object.__setattr__:
        raise TypeError(f"{cls.__name__} is not a frozen, slotted attrs class")
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        raise TypeError(f"{cls.__name__} has an init hook a slot constructor would not run")
    if "_attrs_cached_hash" in cls.__dict__["__slots__"] or "__attrs_init__" in cls.__dict__:
        raise TypeError(f"{cls.__name__}: a cached hash, or an __init__ of its own")
    fields = attrs.fields(cls)
    for field in fields:
        if field.validator is not None or field.converter is not None or not field.init or field.kw_only:
            raise TypeError(
                f"{cls.__name__}.{field.name}: a validator, converter, keyword-only or non-init field"
            )
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    args = ", ".join(f"v{i}" for i in range(len(fields)))
    lines = [f"def {cls.__name__.lower()}({args}):", "    self = new(cls)"]
    for i, field in enumerate(fields):
        slot = next(klass.__dict__[field.name] for klass in cls.__mro__ if field.name in klass.__dict__)
        namespace[f"set{i}"] = slot.__set__
        lines.append(f"    set{i}(self, v{i})")
    lines.append("    return self")
    exec("\n".join(lines), namespace)  # one small function per class, as attrs writes its own
    built: Callable[..., _T] = namespace[cls.__name__.lower()]
    built.__qualname__ = f"slot_constructor({cls.__name__})"
    return built


#: ``Quote(symbol, ts, bid, ask, last, last_at)`` for a source's every quote (all six given).
new_quote: Callable[[str, datetime, float, float, float | None, datetime | None], Quote] = slot_constructor(
    Quote
)
#: ``Order(id, symbol, side, qty, price, intent, trade_id, ts)``, all given.
new_order: Callable[[str, str, Side, int, float, Intent, str, datetime], Order] = slot_constructor(Order)
#: ``Trade(...)`` with all its twenty fields given, in the class's order (an exit's path).
new_trade: Callable[..., Trade] = slot_constructor(Trade)
#: ``Leg(...)`` with all its ten fields given, in the class's order.
new_leg: Callable[..., Leg] = slot_constructor(Leg)


def price_text(value: float) -> str:
    """A price as a person reads it: cents at or above $1, four decimals below."""
    return f"{value:.2f}" if value >= 1 else f"{value:.4f}"


def leg_pnl(entry_price: float, exit_price: float, qty: int) -> float:
    """Realised P&L of selling ``qty`` shares bought at ``entry_price``.

    Rounded to a millionth of a dollar so that float noise never shows up in a
    sum of legs, while sub-penny prices keep their precision.
    """
    return round((exit_price - entry_price) * qty, 6)
