"""A local stand-in for the Massive stocks stream (``momobot massive fake-server``, tests): the
protocol as Massive documents it (:class:`FakeMassiveServer`), paced by the core's FakeFeed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from momobot_core.models import Luld, Quote, TradingHalt
from momobot_core.sources.fakefeed import AuthRefused, FakeFeed
from momobot_core.sources.recorded import Event
from momobot_massive import protocol

#: The channels a Massive stocks subscription names (``Q.AAPL``, ``AM.*``...).
CHANNELS = ("Q", "T", "A", "AM", "LULD")
#: The market each path serves; the recording is stocks (``/`` too, as tests dial it).
STOCKS_PATHS = frozenset({"", "/", "/stocks"})


class FakeMassiveServer(FakeFeed):
    """Massive's stocks stream as its documentation describes it (docs/sources.md, "the fake"):

    ``connected``, then ``auth`` (``auth_success``, or ``auth_failed`` and a close); a newer
    connection with the key closes the older with ``max_connections``; ``subscribe`` and
    ``unsubscribe`` of ``Q.``, ``T.``, ``A.``, ``AM.`` and ``LULD.`` topics (``*`` for every
    symbol), each answered ``subscribed to:`` / ``unsubscribed to:``; the recording streams
    on each channel only to its topics: quotes, trades (a change of ``last``), second and
    minute aggregates (from the prints: a period without one has none) and LULD (halts as indicators 17 and
    18, bands as ``h`` and ``l``). The market comes from the path: ``/stocks`` (or ``/``)
    streams the recording; another market's path (``/options``) streams none of it.
    """

    def __init__(self, quotes: Sequence[Event] = (), *, key: str = "test-key", **options: Any) -> None:
        super().__init__(quotes, **options)
        self.key = key
        self.taken_over = 0
        self._topics: dict[str, set[str]] = {name: set() for name in CHANNELS}
        self._stocks = True
        self._trade_id = 0

    async def greet(self, ws: ServerConnection) -> bool:
        await ws.send(json.dumps([protocol.status("connected", "Connected Successfully")]))
        return True

    async def authenticated(self, ws: ServerConnection) -> None:
        """Massive: the newer connection with the key wins; the older is told and closed. Only
        a connection that signed in takes over, and it brings its own market (its path)."""
        older = self.active
        if older is not None and older is not ws:
            self.taken_over += 1
            with contextlib.suppress(ConnectionClosed):
                await older.send(
                    json.dumps(
                        [
                            protocol.status(
                                "max_connections", "Maximum number of websocket connections exceeded."
                            )
                        ]
                    )
                )
                await older.close()
        path = ws.request.path.split("?", 1)[0] if ws.request is not None else "/"
        self._stocks = path in STOCKS_PATHS
        self._topics = {name: set() for name in CHANNELS}

    def authenticate(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        if request.get("params") != self.key or self.refuse_auth:
            raise AuthRefused([protocol.status("auth_failed", "authentication failed")])
        return [protocol.status("auth_success", "authenticated")]

    def request(self, request: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        action = request.get("action")
        params = request.get("params")
        if action not in ("subscribe", "unsubscribe") or not isinstance(params, str):
            return [], [protocol.status("error", f"unknown action or params: {str(action)[:40]}")]
        answers: list[dict[str, Any]] = []
        added: set[str] = set()
        for topic in (t.strip() for t in params.split(",") if t.strip()):
            channel, _, symbol = topic.partition(".")
            if channel not in CHANNELS or not symbol:
                answers.append(protocol.status("error", f"invalid topic: {topic}"))
                continue
            symbol = symbol if symbol == "*" else symbol.upper()
            if action == "subscribe":
                self._topics[channel].add(symbol)
                added.add(symbol)
                answers.append(protocol.status("success", f"subscribed to: {channel}.{symbol}"))
            else:
                self._topics[channel].discard(symbol)
                answers.append(protocol.status("success", f"unsubscribed to: {channel}.{symbol}"))
        self.subscribed = {s for topics in self._topics.values() for s in topics}
        return sorted(added), answers

    def wants(self, channel: str, symbol: str) -> bool:
        if not self._stocks:
            return False
        topics = self._topics[channel]
        return symbol in topics or "*" in topics

    def closing(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        bars: dict[tuple[str, str], list[Any]] = state.setdefault("bars", {})
        return [message for key in list(bars) for message in self._close(bars, key)]

    def market_wanted(self, event: TradingHalt | Luld) -> bool:
        return self.wants("LULD", event.symbol)

    def quote_messages(self, quote: Quote, printed: bool, state: dict[str, Any]) -> list[dict[str, Any]]:
        """A recorded quote to the topics that want it: its aggregates, its print, the quote."""
        bars: dict[tuple[str, str], list[Any]] = state.setdefault("bars", {})
        out: list[dict[str, Any]] = []
        if printed and quote.last is not None:  # a period without a trade has no bar
            for channel, seconds in (("A", 1), ("AM", 60)):
                out.extend(self._aggregate(bars, channel, seconds, quote, quote.last, printed))
        ms = int(time.time() * 1000)
        if printed and quote.last is not None and self.wants("T", quote.symbol):
            self._trade_id += 1
            out.append({**protocol.trade(quote.symbol, quote.last, ms), "i": str(self._trade_id)})
        if self.wants("Q", quote.symbol):
            out.append(protocol.quote(quote.symbol, quote.bid, quote.ask, ms))
        return out

    def _aggregate(
        self,
        bars: dict[tuple[str, str], list[Any]],
        channel: str,
        seconds: int,
        quote: Quote,
        price: float,
        printed: bool,
    ) -> list[dict[str, Any]]:
        """A second (``A``) or minute (``AM``) aggregate of the recording's prints, sent when a
        later period's first print comes (or the recording ends)."""
        key = (channel, quote.symbol)
        start = int(quote.ts.timestamp()) // seconds * seconds * 1000
        out: list[dict[str, Any]] = []
        bar = bars.get(key)
        if bar is not None and bar[0] != start:
            out = self._close(bars, key)
            bar = None
        if bar is None:
            bars[key] = [start, price, price, price, price, 100 if printed else 0, seconds]
        else:
            bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
            bar[5] += 100 if printed else 0
        return out

    def _close(self, bars: dict[tuple[str, str], list[Any]], key: tuple[str, str]) -> list[dict[str, Any]]:
        start, o, h, low, c, volume, seconds = bars.pop(key)
        channel, symbol = key
        if not self.wants(channel, symbol):
            return []
        return [protocol.aggregate(channel, symbol, o, h, low, c, volume, start, start + seconds * 1000)]

    def render_market(self, event: TradingHalt | Luld) -> list[dict[str, Any]]:
        ms = int(time.time() * 1000)
        if type(event) is TradingHalt:
            codes = protocol.HALTED if event.halted else protocol.RESUMED
            return [protocol.luld(event.symbol, sorted(codes), ms)]
        assert type(event) is Luld
        return [protocol.luld(event.symbol, [], ms, event.lower, event.upper)]
