"""A fake DAS Trader Pro CMD API on 127.0.0.1, for tests, benchmarks and trying the plugin out.

It speaks the line protocol of :mod:`momobot_das.protocol`: ``LOGIN`` (one user, password and
account), the position, order and trade lists after it, ``NEWORDER`` (limit and ``STOPMKT``),
``CANCEL``, ``CANCELALL``, ``POSREFRESH``, ``GET BP``, ``GET POSITIONS``, ``GET ORDERS``,
``GET TRADES``, ``ECHO ON``/``ECHO OFF`` and ``QUIT`` (docs/das.md, "the fake", cites the public
descriptions each follows). ``%ORDER`` lines carry a one-letter type (``L`` limit, ``S`` stop
market) and ``%POS`` lines ``L`` (long) or ``S`` (short). Orders are acknowledged (``%ORDER`` ... ``Accepted``
and ``%OrderAct`` ... ``Accept``) and, by default, filled at once at their limit price
(``%TRADE``, ``%ORDER`` ... ``Executed``, ``%OrderAct`` ... ``Execute``, ``%POS``). A test turns
that off (``fill_buys``, ``fill_sells``), fills by hand (:meth:`FakeDas.fill`), rejects the next
order (:meth:`FakeDas.reject_next`), drops connections or sets positions.

Every line received is kept with its arrival time (``time.monotonic_ns``) in ``received``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import attrs

EOL = "\r\n"
_TICKER = re.compile(r"[A-Z0-9][A-Z0-9.\-/^+]{0,31}")


@attrs.define
class FakeOrder:
    das_id: str
    token: int
    side: str
    symbol: str
    route: str
    qty: int
    price: Decimal | None
    kind: str  # "L" limit, "STOP" stop market
    filled: int = 0
    cancelled: int = 0
    status: str = "Accepted"

    @property
    def leaves(self) -> int:
        return self.qty - self.filled - self.cancelled


class FakeDas:
    """The fake platform. ``start()`` listens (``port=0`` picks one: see :attr:`port`)."""

    def __init__(
        self,
        *,
        user: str = "trader",
        password: str = "secret",
        account: str = "TR1234",
        host: str = "127.0.0.1",
        port: int = 0,
        timezone: str = "America/New_York",
        echo: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.user, self.password, self.account = user, password, account
        self.host = host
        self._port = port
        self.tz = ZoneInfo(timezone)
        self.echo = echo  # echo every command line back (as some set-ups do), password and all
        self._echoing: set[socket.socket] = set()  # sessions that sent ECHO ON
        self._quit_clients: set[socket.socket] = set()  # sessions that sent QUIT
        #: A received line for which this returns True is not handled: the connection is dropped
        #: instead (an order lost with the connection it was written to).
        self.drop_on: Callable[[str], bool] = lambda line: False
        #: A received line for which this returns True is read and never answered (a platform that
        #: has stopped working while its connection stays up).
        self.ignore_on: Callable[[str], bool] = lambda line: False
        self.reject_sells: str | None = None  # reject every sell with this reason
        self.old_layout = False  # %ORDER lines without token and cxlqty (an older platform)
        self.refuse_cancels = False  # answer every CANCEL with CancelRej
        self._log = log
        self.fill_buys = True
        self.fill_sells = True
        self.buying_power = Decimal("100000.00")
        self.positions: dict[str, int] = {}
        #: Positions that went below 0: a client sold shares it did not have (a short).
        self.lowest: dict[str, int] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.trades: list[str] = []  # every %TRADE line sent, for the lists after a login
        self.received: list[tuple[int, str]] = []
        self.logins = 0
        self._reject: str | None = None
        # Order and execution ids differ from one fake to the next, as a platform's do over a day.
        self._next_id = time.monotonic_ns() // 1000 % 1_000_000_000
        self._next_trade = self._next_id
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._clients: list[socket.socket] = []
        self._held: list[str] | None = None
        self._server: socket.socket | None = None
        self._closed = False

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> FakeDas:
        server = socket.create_server((self.host, self._port))
        self._server = server
        threading.Thread(target=self._accept, name="fake-das", daemon=True).start()
        return self

    @property
    def port(self) -> int:
        """The port listened on (before ``start()``: the one asked for)."""
        if self._server is None:
            return self._port
        return int(self._server.getsockname()[1])

    def close(self) -> None:
        self._closed = True
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            with contextlib.suppress(OSError):
                self._server.close()
        self.drop_connections()

    def __enter__(self) -> FakeDas:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a test does ------------------------------------------------------------------------

    def push(self, *lines: str) -> None:
        """Send raw lines to every client (what a test wants the platform to say)."""
        with self._lock:
            self._broadcast(*lines)

    def reject_next(self, reason: str) -> None:
        with self._lock:
            self._reject = reason

    def drop_connections(self) -> None:
        """Close every client connection (the platform restarted, a network blip)."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                client.close()

    def fill(self, das_id: str, qty: int | None = None, price: Decimal | str | None = None) -> None:
        """Fill ``qty`` (default: all that is left) of an order at ``price`` (default: its limit)."""
        with self._lock:
            order = self.orders[das_id]
            self._fill(order, order.leaves if qty is None else qty, None if price is None else Decimal(price))

    def lines(self, prefix: str = "") -> list[str]:
        """The lines received so far that start with ``prefix``."""
        with self._lock:
            return [line for _, line in self.received if line.startswith(prefix)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` (called under the fake's lock) holds, or ``timeout``."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def working(self, symbol: str | None = None) -> list[FakeOrder]:
        with self._lock:
            return [
                o
                for o in self.orders.values()
                if o.status in ("Accepted", "Partial") and (symbol is None or o.symbol == symbol)
            ]

    # -- the server ------------------------------------------------------------------------------

    def _accept(self) -> None:
        server = self._server
        assert server is not None
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed
            if self._closed:
                client.close()
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(client,), name="fake-das-client", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        logged_in = False
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    arrived = time.monotonic_ns()
                    line = raw.decode("ascii", "replace").rstrip("\r")
                    if self.drop_on(line):
                        self.drop_on = lambda line: False
                        client.shutdown(socket.SHUT_RDWR)  # never handled: lost on the way
                        return
                    # A line is in ``received`` once it is handled (its order booked, its fill
                    # done): whoever waits for the line finds the platform's state with it.
                    with self._lock:
                        ignored = self.ignore_on(line)
                        if not ignored:
                            if self.echo or client in self._echoing:
                                self._send(client, line)
                            if logged_in:
                                self._command(client, line)
                            else:
                                logged_in = self._login(client, line)
                        self.received.append((arrived, line))
                        self._changed.notify_all()
                    if not ignored and not logged_in:
                        return
                    if client in self._quit_clients:
                        return  # QUIT: nothing after it is handled
        except OSError:
            return
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
                self._echoing.discard(client)
                self._quit_clients.discard(client)
            with contextlib.suppress(OSError):
                client.close()

    def _quit(self, client: socket.socket) -> None:
        """``QUIT``: the platform ends the session and closes the connection."""
        self._quit_clients.add(client)
        self._echoing.discard(client)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def _send(self, client: socket.socket, *lines: str) -> None:
        data = "".join(line + EOL for line in lines).encode("ascii", "replace")
        with contextlib.suppress(OSError):
            client.sendall(data)

    def _broadcast(self, *lines: str) -> None:
        if self._held is not None:
            self._held.extend(lines)
            return
        for client in list(self._clients):
            self._send(client, *lines)

    def hold(self) -> None:
        """Keep what the platform would push (acknowledgements, fills) until :meth:`release`."""
        with self._lock:
            self._held = []

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held or [], None
            self._broadcast(*held)

    def _login(self, client: socket.socket, line: str) -> bool:
        parts = line.split()
        # LOGIN user password account [watch]: public clients send the watch flag (0 or 1) too.
        if len(parts) == 5 and parts[0] == "LOGIN" and parts[4] in ("0", "1"):
            parts = parts[:4]
        if len(parts) != 4 or parts[0] != "LOGIN":
            self._send(client, "#LOGIN FAILED: LOGIN user password account first")
            return False
        if (parts[1], parts[2], parts[3]) != (self.user, self.password, self.account):
            self._send(client, "#LOGIN FAILED: invalid user, password or account")
            return False
        with self._lock:
            self.logins += 1
            self._clients.append(client)
            self._send(
                client, "#LOGIN SUCCESSED", *self._position_list(), *self._order_list(), *self._trade_list()
            )
            self._changed.notify_all()
        return True

    def _order_list(self) -> list[str]:
        return [
            "#Order id token symb b/s mkt/lmt qty lvqty cxlqty price route status time origoid"
            " account trader",
            *(self._order_line(o) for o in self.orders.values()),
            "#OrderEnd",
        ]

    def _trade_list(self) -> list[str]:
        return ["#Trade id symb b/s qty price route time orderid", *self.trades, "#TradeEnd"]

    def _position_list(self) -> list[str]:
        lines = ["#POS symb type qty avgcost initqty initprice Realized CreatTime Unrealized"]
        lines += [self._pos_line(symbol) for symbol, qty in sorted(self.positions.items()) if qty]
        return [*lines, "#POSEND"]

    def _pos_line(self, symbol: str) -> str:
        qty = self.positions.get(symbol, 0)
        kind = "S" if qty < 0 else "L"  # a published sample: %POS BBLG L 100 3.50 ...
        return f"%POS {symbol} {kind} {abs(qty)} 0.00 {abs(qty)} 0.00 0.00 {self._now()} 0.00"

    def _now(self) -> str:
        return datetime.now(self.tz).strftime("%H:%M:%S")

    def _order_line(self, o: FakeOrder) -> str:
        price = "0" if o.price is None else str(o.price)
        kind = "S" if o.kind == "STOP" else "L"  # one letter: L limit, M market, S stop, T stop limit
        if self.old_layout:
            return (
                f"%ORDER {o.das_id} {o.symbol} {o.side} {kind} {o.qty} {o.leaves} {price} {o.route}"
                f" {o.status} {self._now()} 0 {self.account} {self.user}"
            )
        return (
            f"%ORDER {o.das_id} {o.token} {o.symbol} {o.side} {kind} {o.qty} {o.leaves} {o.cancelled} {price}"
            f" {o.route} {o.status} {self._now()} 0 {self.account} {self.user} CMDAPI DAY+"
        )

    def _act(self, o: FakeOrder, action: str, qty: int, price: Decimal | None, notes: str = "") -> str:
        shown = "0" if price is None else str(price)
        note = f" {notes}" if notes else ""
        return (
            f"%OrderAct {o.das_id} {action} {o.side} {o.symbol} {qty} {shown} {o.route}"
            f" {self._now()}{note} {o.token}"
        )

    def _command(self, client: socket.socket, line: str) -> None:
        parts = line.split()
        if not parts:
            return
        head = parts[0].upper()
        words = [part.upper() for part in parts]
        with self._lock:
            if head == "NEWORDER":
                self._new_order(client, parts)
            elif head == "CANCEL" and len(parts) == 2:
                self._cancel(client, parts[1])
            elif head == "CANCELALL" and len(parts) == 1:
                for order in list(self.orders.values()):
                    if order.status in ("Accepted", "Partial"):
                        self._cancel(client, order.das_id)
            elif words in (["POSREFRESH"], ["GET", "POSITIONS"]):
                self._send(client, *self._position_list())
            elif words == ["GET", "ORDERS"]:
                self._send(client, *self._order_list())
            elif words == ["GET", "TRADES"]:
                self._send(client, *self._trade_list())
            elif words == ["GET", "BP"]:
                self._send(client, f"BP {self.buying_power} {self.buying_power / 2}")
            elif words in (["ECHO", "ON"], ["ECHO", "OFF"]):
                # This session's: each later line sent back as it came (ECHO OFF itself too).
                if words[1] == "ON":
                    self._echoing.add(client)
                else:
                    self._echoing.discard(client)
            elif words == ["QUIT"]:
                self._quit(client)
            else:
                self._send(client, f"INVALID COMMAND: {parts[0]}")
            self._changed.notify_all()

    def _new_order(self, client: socket.socket, parts: list[str]) -> None:
        # NEWORDER token side symbol route qty price TIF=... | ... qty STOPMKT price TIF=...
        try:
            token, side, symbol, route, qty = int(parts[1]), parts[2], parts[3], parts[4], int(parts[5])
            stop = parts[6] == "STOPMKT"
            price = Decimal(parts[7] if stop else parts[6])
            if side not in ("B", "S", "SS") or qty < 1 or price <= 0 or not _TICKER.fullmatch(symbol):
                raise ValueError
        except (IndexError, ValueError, ArithmeticError):
            self._send(client, f"%OrderAct 0 Reject ? ? 0 0 ? {self._now()} Invalid order format 0")
            return
        self._next_id += 1
        order = FakeOrder(str(self._next_id), token, side, symbol, route, qty, price, "STOP" if stop else "L")
        self.orders[order.das_id] = order
        if self._reject is None and self.reject_sells is not None and side != "B":
            self._reject = self.reject_sells
        if self._reject is not None:
            reason, self._reject = self._reject, None
            order.status = "Rejected"
            order.cancelled = qty
            self._broadcast(self._order_line(order), self._act(order, "Reject", qty, price, reason))
            return
        self._broadcast(self._order_line(order), self._act(order, "Accept", qty, price))
        if not stop and (self.fill_buys if side == "B" else self.fill_sells):
            self._fill(order, qty, None)

    def _fill(self, order: FakeOrder, qty: int, price: Decimal | None) -> None:
        qty = min(qty, order.leaves)
        if qty <= 0:
            return
        price = price if price is not None else order.price
        order.filled += qty
        order.status = "Executed" if order.leaves == 0 else "Partial"
        self.positions[order.symbol] = self.positions.get(order.symbol, 0) + (
            qty if order.side == "B" else -qty
        )
        if self.positions[order.symbol] < 0:
            self.lowest[order.symbol] = min(self.lowest.get(order.symbol, 0), self.positions[order.symbol])
        self._next_trade += 1
        trade = (
            f"%TRADE {self._next_trade} {order.symbol} {order.side} {qty} {price} {order.route} {self._now()}"
            f" {order.das_id} - 0.00 0.00"
        )
        self.trades.append(trade)
        self._broadcast(
            trade,
            self._order_line(order),
            self._act(order, "Execute", qty, price),
            self._pos_line(order.symbol),
        )
        self._changed.notify_all()

    def _cancel(self, client: socket.socket, das_id: str) -> None:
        order = self.orders.get(das_id)
        if order is not None and self.refuse_cancels:
            self._send(client, self._act(order, "CancelRej", 0, order.price, "Cancel refused"))
            return
        if order is None or order.status not in ("Accepted", "Partial"):
            if order is not None:
                self._send(client, self._act(order, "CancelRej", 0, order.price, "Order not open"))
            else:
                self._send(client, f"%OrderAct {das_id} CancelRej ? ? 0 0 ? {self._now()} No such order 0")
            return
        order.cancelled = order.leaves
        order.status = "Canceled"
        self._broadcast(self._order_line(order), self._act(order, "Canceled", order.cancelled, order.price))
