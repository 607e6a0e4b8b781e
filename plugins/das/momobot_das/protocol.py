"""DAS Trader Pro's CMD API: every line this plugin writes or reads, in one module.

The CMD API is a TCP line protocol (lines end in CRLF). Written from public
descriptions of it (the vendor's manual is not redistributable; docs/das.md
names the sources):

* ``LOGIN <user> <password> <account>``: the platform answers ``#LOGIN SUCCESSED``,
  then lists positions (``#POS`` header, ``%POS`` lines, ``#POSEND``), orders
  (``#Order`` ... ``%ORDER`` ... ``#OrderEnd``) and trades (``#Trade`` ...
  ``%TRADE`` ... ``#TradeEnd``).
* ``NEWORDER <token> <B|S> <SYMBOL> <ROUTE> <QTY> <PRICE> TIF=DAY+``: a limit order;
  ``<token>`` is the client's integer, echoed on the order's ``%ORDER`` and ``%OrderAct`` lines.
  ``NEWORDER <token> S <SYMBOL> <ROUTE> <QTY> STOPMKT <PRICE> TIF=DAY``: a stop order.
* ``CANCEL <order id>``: one order (there is no per-symbol cancel).
* ``POSREFRESH``: the positions again. ``GET BP``: ``BP <buying power> <overnight>``.
* ``%ORDER id token symb b/s type qty lvqty cxlqty price route status time ...`` (``type``
  one letter: ``L`` limit, ``M`` market, ``S`` stop market, ``T`` stop limit), or the older
  ``%ORDER id symb b/s type qty lvqty price route status time ...``.
* ``%OrderAct id action b/s symb qty price route time [notes] token``
* ``%TRADE id symb b/s qty price route time orderid ...``
* ``%POS symb type qty avgcost ...`` (type ``L`` or 2 a long, ``S`` or 3 a short position).

Order and trade times are bare ``HH:MM:SS`` on the DAS PC's clock: :func:`das_time`
reads them in ``[das] timezone``.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import attrs

EOL = "\r\n"
LOGIN_OK = "#LOGIN SUCCESSED"
POSREFRESH = "POSREFRESH"
GET_BP = "GET BP"
#: The header and end lines of the lists DAS sends after a login (and POSREFRESH).
MARKERS = frozenset({"#POS", "#POSEND", "#Order", "#OrderEnd", "#Trade", "#TradeEnd"})
#: %ORDER statuses after which the order can neither fill nor be cancelled.
FINAL_STATUSES = frozenset({"closed", "canceled", "cancelled", "rejected", "executed"})
#: %OrderAct actions that mean the order was refused, not placed.
REJECT_ACTIONS = frozenset({"reject", "rejected", "send_rej"})
#: The sides an order line names.
SIDES = frozenset({"B", "S", "SS", "Buy", "Sell", "Short", "BUY", "SELL", "SHORT"})
#: ``%POS`` types: a long, and a short (a published sample reads ``L``; older lines ``2`` and ``3``).
POS_LONG = frozenset({"L", "2", "B", "LONG"})
POS_SHORT = frozenset({"S", "3", "SS", "SHORT"})
#: An integer the CMD API takes as a token (a C int).
MAX_TOKEN = 2_147_483_647
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-/^+]{0,31}$")
_ORDER_ID = re.compile(r"^[!-~]{1,32}$")  # printable, no spaces
_INT = re.compile(r"^[+-]?\d{1,12}(\.0*)?$")
#: The largest number a line may carry: a price, a quantity or an amount of buying power.
_MAX_NUMBER = Decimal(10) ** 12
_ROUTE = re.compile(r"^[A-Za-z0-9_\-]{1,16}$")
_CENT = Decimal("0.01")
_HUNDREDTH_CENT = Decimal("0.0001")


class ProtocolError(ValueError):
    """A line that names a known message but cannot be read (a field missing or malformed)."""


# -- writing -----------------------------------------------------------------------------------


def tick(price: Decimal) -> Decimal:
    """The price increment: a cent at or above $1, a hundredth of a cent below (Reg NMS 612)."""
    return _CENT if price >= 1 else _HUNDREDTH_CENT


def on_tick(price: float | Decimal, *, up: bool) -> Decimal:
    """``price`` on the tick, rounded up (a buy stays marketable) or down (a sell does).

    Rounded to six places first, so float noise (2.0799999999999996) never moves a price a
    whole tick. Never below one tick.
    """
    exact = Decimal(repr(price) if isinstance(price, float) else price).quantize(Decimal("0.000001"))
    step = tick(exact)
    ticked = exact.quantize(step, rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return max(ticked, _HUNDREDTH_CENT)


def format_price(price: Decimal) -> str:
    """Two decimals at or above $1, four below: what the platform takes."""
    return f"{price:.2f}" if price >= 1 else f"{price:.4f}"


def limit_price(base: float, offset_cents: float, *, buy: bool) -> Decimal:
    """A marketable limit: ``base`` (ask for a buy, bid for a sell) moved ``offset_cents`` through it."""
    offset = Decimal(repr(offset_cents)) / 100
    exact = Decimal(repr(base)) + (offset if buy else -offset)
    return on_tick(exact, up=buy)


def check_symbol(symbol: str) -> str:
    """The symbol as DAS takes it (upper case); ValueError for one that cannot go on a line."""
    upper = symbol.upper()
    if not _SYMBOL.match(upper):
        raise ValueError(f"{symbol!r} is not a symbol DAS takes (letters, digits, . - / ^ +; up to 32)")
    return upper


def check_route(route: str) -> str:
    if not _ROUTE.match(route):
        raise ValueError(f"{route!r} is not a route name (letters, digits, _ and -; up to 16)")
    return route


def login_line(user: str, password: str, account: str) -> str:
    """The login. Never logged, never written to the wire log: it holds the password."""
    return f"LOGIN {user} {password} {account}{EOL}"


def order_line(token: int, side: str, symbol: str, route: str, qty: int, price: Decimal) -> str:
    """A day-plus limit order (``side`` ``B`` or ``S``)."""
    if side not in ("B", "S"):
        raise ValueError(f"side must be B or S, not {side!r}")
    if not 1 <= token <= MAX_TOKEN:
        raise ValueError(f"token {token} is outside 1..{MAX_TOKEN}")
    if qty < 1:
        raise ValueError(f"qty {qty} is not a number of shares")
    return f"NEWORDER {token} {side} {check_symbol(symbol)} {route} {qty} {format_price(price)} TIF=DAY+{EOL}"


def stop_line(token: int, symbol: str, route: str, qty: int, stop: Decimal) -> str:
    """A sell stop (market when triggered), regular hours only (TIF=DAY)."""
    if qty < 1:
        raise ValueError(f"qty {qty} is not a number of shares")
    return (
        f"NEWORDER {token} S {check_symbol(symbol)} {route} {qty} STOPMKT {format_price(stop)} TIF=DAY{EOL}"
    )


def cancel_line(order_id: str) -> str:
    """Cancel one order by the platform's order id."""
    if not _ORDER_ID.match(order_id):
        raise ValueError(f"{order_id!r} is not a DAS order id")
    return f"CANCEL {order_id}{EOL}"


# -- reading -----------------------------------------------------------------------------------


@attrs.frozen
class LoginReply:
    ok: bool
    text: str


@attrs.frozen
class Marker:
    """A list's header or end line (``#POS``, ``#POSEND``, ``#Order``, ...)."""

    name: str


@attrs.frozen
class OrderLine:
    """``%ORDER``: an order's state (sent for every change, and in the list after a login)."""

    das_id: str
    token: int | None
    symbol: str
    side: str
    kind: str
    qty: int
    leaves: int
    cancelled: int
    price: Decimal | None
    route: str
    status: str
    time: str

    @property
    def final(self) -> bool:
        return self.status.lower() in FINAL_STATUSES

    @property
    def filled(self) -> int:
        return max(0, self.qty - self.leaves - self.cancelled)


@attrs.frozen
class OrderAct:
    """``%OrderAct``: something happened to an order (accepted, executed, rejected, ...)."""

    das_id: str
    action: str
    side: str
    symbol: str
    qty: int
    price: Decimal | None
    route: str
    time: str
    notes: str
    token: int | None

    @property
    def rejected(self) -> bool:
        return self.action.lower() in REJECT_ACTIONS


@attrs.frozen
class TradeLine:
    """``%TRADE``: one execution of an order."""

    trade_id: str
    symbol: str
    side: str
    qty: int
    price: Decimal
    route: str
    time: str
    das_order_id: str


@attrs.frozen
class PosLine:
    """``%POS``: a position, signed (a short is negative)."""

    symbol: str
    qty: int
    avg_cost: Decimal | None


@attrs.frozen
class BuyingPower:
    buying_power: Decimal
    overnight: Decimal | None


@attrs.frozen
class Other:
    """A line this plugin does not act on (echoes, notices, market data)."""

    text: str


Message = LoginReply | Marker | OrderLine | OrderAct | TradeLine | PosLine | BuyingPower | Other


def _int(text: str, what: str) -> int:
    """A whole number of at most 12 digits (so no line can make the reader compute for long)."""
    if not _INT.match(text):
        raise ProtocolError(f"{what} is not a whole number")
    return int(text.split(".", maxsplit=1)[0])


def _dec(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ProtocolError(f"{what} is not a number") from None
    if not value.is_finite() or abs(value) >= _MAX_NUMBER:
        raise ProtocolError(f"{what} is not a number below {_MAX_NUMBER:,}")
    return value


def _price(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except ArithmeticError:
        return None  # "MKT", "STOPMKT": no price
    return value if value.is_finite() and 0 < value < _MAX_NUMBER else None


def _token(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) <= MAX_TOKEN else None


def parse(line: str) -> Message:
    """Read one line (without its CRLF). Raises ProtocolError for a known message that is malformed."""
    text = line.strip()
    parts = text.split()
    if not parts:
        return Other(text)
    head = parts[0]
    if head == "#LOGIN":
        return LoginReply(text == LOGIN_OK, text)
    if head in MARKERS:
        return Marker(head)
    if head == "%ORDER":
        if len(parts) >= 11 and not (parts[2].isdigit() and parts[4] in SIDES) and parts[3] in SIDES:
            # The older layout, without token and cxlqty: id symb b/s type qty lvqty price route
            # status time ... (the token then comes on the order's %OrderAct lines). The newer one
            # has the token, a whole number, where this one has the symbol; the type is one letter
            # (L, M, S a stop market, T a stop limit), so a side-like type never decides it.
            return OrderLine(
                das_id=parts[1],
                token=None,
                symbol=parts[2],
                side=parts[3],
                kind=parts[4],
                qty=_int(parts[5], "qty"),
                leaves=_int(parts[6], "lvqty"),
                cancelled=0,
                price=_price(parts[7]),
                route=parts[8],
                status=parts[9],
                time=parts[10],
            )
        if len(parts) < 13:
            raise ProtocolError(f"%ORDER with {len(parts) - 1} fields, not at least 12")
        return OrderLine(
            das_id=parts[1],
            token=_token(parts[2]),
            symbol=parts[3],
            side=parts[4],
            kind=parts[5],
            qty=_int(parts[6], "qty"),
            leaves=_int(parts[7], "lvqty"),
            cancelled=_int(parts[8], "cxlqty"),
            price=_price(parts[9]),
            route=parts[10],
            status=parts[11],
            time=parts[12],
        )
    if head == "%OrderAct":
        if len(parts) < 9:
            raise ProtocolError(f"%OrderAct with {len(parts) - 1} fields, not at least 8")
        token = _token(parts[-1]) if len(parts) >= 10 else None
        notes = " ".join(parts[9:-1] if token is not None else parts[9:])
        return OrderAct(
            das_id=parts[1],
            action=parts[2],
            side=parts[3],
            symbol=parts[4],
            qty=_int(parts[5], "qty"),
            price=_price(parts[6]),
            route=parts[7],
            time=parts[8],
            notes=notes,
            token=token,
        )
    if head == "%TRADE":
        if len(parts) < 9:
            raise ProtocolError(f"%TRADE with {len(parts) - 1} fields, not at least 8")
        price = _dec(parts[5], "price")
        if price <= 0:
            raise ProtocolError("%TRADE price is not a price")
        return TradeLine(
            trade_id=parts[1],
            symbol=parts[2],
            side=parts[3],
            qty=_int(parts[4], "qty"),
            price=price,
            route=parts[6],
            time=parts[7],
            das_order_id=parts[8],
        )
    if head == "%POS":
        if len(parts) < 4:
            raise ProtocolError(f"%POS with {len(parts) - 1} fields, not at least 3")
        kind = parts[2].upper()
        if kind not in POS_LONG | POS_SHORT:
            raise ProtocolError(f"%POS type {parts[2][:8]!r} is neither long (L, 2) nor short (S, 3)")
        qty = _int(parts[3], "qty")
        if qty < 0:
            raise ProtocolError("%POS qty is negative beside its type")
        return PosLine(
            parts[1], -qty if kind in POS_SHORT else qty, _price(parts[4]) if len(parts) > 4 else None
        )
    if head == "BP" and len(parts) >= 2:
        return BuyingPower(
            _dec(parts[1], "buying power"), _dec(parts[2], "overnight") if len(parts) > 2 else None
        )
    return Other(text)


def das_time(text: str, tz: tzinfo, now: datetime) -> datetime:
    """A bare ``HH:MM:SS`` from the DAS PC, in its time zone ``tz``, on the day of ``now`` there.

    A time more than an hour ahead of ``now`` is yesterday's (read just after midnight, an
    execution at 23:59 is not tomorrow's). Raises ProtocolError for a malformed time.
    """
    try:
        clock = time.fromisoformat(text)
    except ValueError:
        raise ProtocolError("a time is not HH:MM:SS") from None
    local_now = now.astimezone(tz)
    at = datetime.combine(local_now.date(), clock).replace(tzinfo=tz)
    if at - local_now > timedelta(hours=1):
        at = datetime.combine(local_now.date() - timedelta(days=1), clock).replace(tzinfo=tz)
    return at
