"""A local stand-in for Alpaca's stream that plays a recorded session: rehearse a trading day, test.

It speaks the protocol as Alpaca documents it (``protocol.py``; :class:`FakeAlpacaServer`
lists each message and its moment, docs/sources.md cites them): JSON or msgpack, every
control message and error code, every channel; a change of a recorded quote's ``last``
becomes a trade print before the quote. The pacing is the core's
:class:`~momobot_core.sources.fakefeed.FakeFeed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from momobot_alpaca import protocol
from momobot_core.models import Luld, Quote, TradingHalt
from momobot_core.sources.fakefeed import FakeFeed, FeedThread
from momobot_core.sources.recorded import Event

__all__ = ["FakeAlpacaServer", "FakeAlpacaThread"]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


#: The channels a subscribe names, as Alpaca's stream takes them.
CHANNELS = ("trades", "quotes", "bars", "statuses", "lulds")
#: How long a client may take to authenticate before ``404 auth timeout``.
AUTH_TIMEOUT_S = 10.0


class _Client:
    """One connection: its codec (JSON, or msgpack by ``Content-Type``) and its subscriptions."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        kind = (ws.request.headers.get("Content-Type") if ws.request is not None else None) or ""
        self.msgpack = kind.split(";")[0].strip().lower() == "application/msgpack"
        self.channels: dict[str, set[str]] = {name: set() for name in CHANNELS}

    def encode(self, messages: list[dict[str, Any]]) -> str | bytes:
        if not self.msgpack:
            return json.dumps(messages)
        # In msgpack, ``t`` is a msgpack Timestamp (what alpaca-py reads), not a string.
        return _MSGPACK.encode([_with_timestamp(m) for m in messages])

    def decode(self, frame: str | bytes) -> Any:
        if isinstance(frame, bytes) and self.msgpack:
            return msgspec.msgpack.decode(frame)
        return json.loads(frame)


_MSGPACK = msgspec.msgpack.Encoder()


def _with_timestamp(message: dict[str, Any]) -> dict[str, Any]:
    ts = message.get("t")
    if isinstance(ts, str):
        return {**message, "t": datetime.fromisoformat(ts.replace("Z", "+00:00"))}
    return message


class FakeAlpacaServer(FakeFeed):
    """Alpaca's stock stream as its documentation describes it (docs/sources.md, "the fake"):

    the ``connected`` banner; ``auth`` within 10 s (``404 auth timeout`` and a close after it),
    anything else first ``401 not authenticated``, wrong keys ``402 auth failed`` and a close, a
    second connection ``406 connection limit exceeded`` in answer to its auth and a close, a
    second auth ``403 already authenticated``, a frame that is not a message ``400 invalid
    syntax``; ``subscribe`` and ``unsubscribe`` of ``trades``, ``quotes``, ``bars``,
    ``statuses`` and ``lulds`` (each a list of symbols, ``*`` for all), answered with the
    whole subscription; JSON, or msgpack when the client asks for it by ``Content-Type``.
    The recording streams as trades (a change of ``last``, each with its own id), quotes,
    minute bars (built from the prints; a minute without one has none), statuses (``trading_halt``) and LULD
    bands (``luld``), each to the clients subscribed to that channel and symbol.
    """

    def __init__(
        self,
        quotes: Sequence[Event] = (),
        *,
        key: str = "test-key",
        secret: str = "test-secret",
        echo: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(quotes, echo=echo, **options)
        self.key, self.secret = key, secret
        self.refused: list[int] = []  # error codes sent, in order
        self.auth_timeout_s = AUTH_TIMEOUT_S
        self._client: _Client | None = None
        self._trade_id = 0

    async def _error(self, client: _Client, code: int, *, close: bool = False) -> None:
        self.refused.append(code)
        self.say(f"told a client: {code} {protocol.ERRORS[code]}")
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(client.encode([protocol.error(code)]))
            if close:
                await client.ws.close()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        client = _Client(ws)
        try:
            await ws.send(client.encode([protocol.success("connected")]))
            if not await self._authenticate(client):
                return
        except ConnectionClosed:
            return
        self.active, self._client, self.subscribed = ws, client, set()
        self._subscribed = asyncio.Event()
        self.say("client authenticated")
        stream = asyncio.create_task(self._stream(ws))
        try:
            async for frame in ws:
                await self._request(client, frame)
        except ConnectionClosed:
            pass
        finally:
            stream.cancel()
            if self.active is ws:
                self.active, self._client = None, None

    async def _authenticate(self, client: _Client) -> bool:
        """True once the client authenticated; False when it was refused and closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.auth_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):  # not wait_for: it can lose a cancel (3.11)
                    frame = await client.ws.recv()
            except TimeoutError:
                await self._error(client, 404, close=True)
                return False
            request = self._message(client, frame)
            if request is None:
                await self._error(client, 400)
                continue
            if request.get("action") != "auth":
                await self._error(client, 401)
                continue
            if self.refuse_auth or request.get("key") != self.key or request.get("secret") != self.secret:
                await self._error(client, 402, close=True)
                return False
            if self.active is not None:  # one connection per feed and account
                await self._error(client, protocol.CONNECTION_LIMIT, close=True)
                return False
            await client.ws.send(client.encode([protocol.success("authenticated")]))
            return True

    def _message(self, client: _Client, frame: str | bytes) -> dict[str, Any] | None:
        try:
            data = client.decode(frame)
        except (ValueError, RecursionError, msgspec.DecodeError):
            return None
        return data if isinstance(data, dict) else None

    async def _request(self, client: _Client, frame: str | bytes) -> None:
        request = self._message(client, frame)
        action = request.get("action") if request is not None else None
        if request is None or action not in ("auth", "subscribe", "unsubscribe"):
            await self._error(client, 400)
            return
        if action == "auth":
            await self._error(client, 403)
            return
        lists: dict[str, list[str]] = {}
        for name in CHANNELS:
            value = request.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                await self._error(client, 400)  # "quotes": "AAPL" is not a list of symbols
                return
            lists[name] = [v.upper() if v != "*" else v for v in value]
        for name, symbols in lists.items():
            if action == "subscribe":
                client.channels[name].update(symbols)
            else:
                client.channels[name].difference_update(symbols)
        added = sorted({*lists["quotes"], *lists["trades"]}) if action == "subscribe" else []
        self.subscribed = set().union(*client.channels.values())
        if added:
            self.subscriptions.append(added)
        if action == "subscribe" and any(lists.values()):
            assert self._subscribed is not None
            self._subscribed.set()
        await client.ws.send(client.encode([self._subscription(client)]))

    @staticmethod
    def _subscription(client: _Client) -> dict[str, Any]:
        message = protocol.subscription([])
        for name in CHANNELS:
            message[name] = sorted(client.channels[name])
        return message

    def wants(self, channel: str, symbol: str) -> bool:
        client = self._client
        if client is None:
            return False
        symbols = client.channels[channel]
        return symbol in symbols or "*" in symbols

    async def push(self, *messages: dict[str, Any]) -> None:
        client = self._client
        if client is not None:
            await client.ws.send(client.encode(list(messages)))

    async def _send(self, ws: ServerConnection, frame: list[dict[str, Any]]) -> bool:
        client = self._client
        if client is None or client.ws is not ws:
            return False
        try:
            await ws.send(client.encode(frame))
        except ConnectionClosed:
            return False
        self.frames_sent += 1
        return True

    def closing(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        bars: dict[str, list[Any]] = state.setdefault("bars", {})
        return [message for symbol in list(bars) for message in self._close_bar(bars, symbol)]

    def market_wanted(self, event: TradingHalt | Luld) -> bool:
        return self.wants("statuses" if type(event) is TradingHalt else "lulds", event.symbol)

    def quote_messages(self, quote: Quote, printed: bool, state: dict[str, Any]) -> list[dict[str, Any]]:
        """A recorded quote to the channels that want it: its minute bar, its print, the quote."""
        bars: dict[str, list[Any]] = state.setdefault("bars", {})
        out: list[dict[str, Any]] = []
        if printed:  # a minute without a trade has no bar
            out.extend(self._bar(bars, quote, printed))
        ts = _now()
        if printed and quote.last is not None and self.wants("trades", quote.symbol):
            self._trade_id += 1
            out.append({**protocol.trade(quote.symbol, quote.last, ts), "i": self._trade_id})
        if self.wants("quotes", quote.symbol):
            out.append(protocol.quote(quote.symbol, quote.bid, quote.ask, ts))
        return out

    def _bar(self, bars: dict[str, list[Any]], quote: Quote, printed: bool) -> list[dict[str, Any]]:
        """The recording's minute bars: a print's price (else the mid) in its minute; a bar is
        sent when a later minute's first price comes (or the recording ends)."""
        price = quote.last if printed and quote.last is not None else round((quote.bid + quote.ask) / 2, 4)
        minute = quote.ts.replace(second=0, microsecond=0)
        out: list[dict[str, Any]] = []
        bar = bars.get(quote.symbol)
        if bar is not None and bar[0] != minute:
            out = self._close_bar(bars, quote.symbol)
            bar = None
        if bar is None:
            bars[quote.symbol] = [minute, price, price, price, price, 100 if printed else 0, int(printed)]
        else:
            bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
            bar[5] += 100 if printed else 0
            bar[6] += int(printed)
        return out

    def _close_bar(self, bars: dict[str, list[Any]], symbol: str) -> list[dict[str, Any]]:
        start, o, h, low, c, volume, trades = bars.pop(symbol)
        if not self.wants("bars", symbol):
            return []
        ts = start.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return [protocol.bar(symbol, o, h, low, c, volume, trades, ts)]

    def render_market(self, event: TradingHalt | Luld) -> list[dict[str, Any]]:
        if type(event) is TradingHalt:
            # Alpaca's trading status codes: H a halt, T trading (docs/sources.md).
            return [protocol.status(event.symbol, "H" if event.halted else "T", event.reason, _now())]
        assert type(event) is Luld
        return [protocol.luld(event.symbol, event.lower, event.upper, _now())]


class FakeAlpacaThread(FeedThread):
    server: FakeAlpacaServer

    def __enter__(self) -> FakeAlpacaThread:
        self.start()
        return self
