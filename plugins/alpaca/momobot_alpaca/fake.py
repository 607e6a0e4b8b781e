"""A local stand-in for Alpaca's stream that plays a recorded session: rehearse a trading day, test.

It speaks the protocol as Alpaca documents it (``protocol.py``): the connect
banner, key checking (``402 auth failed``), one connection per feed (a second
gets ``406 connection limit exceeded``), subscription acknowledgements and
several messages per frame; a change of a recorded quote's ``last`` becomes a
trade print before the quote. The serving and pacing are the core's
:class:`~momobot_core.sources.fakefeed.FakeFeed`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from momobot_alpaca import protocol
from momobot_core.models import Luld, Quote, TradingHalt
from momobot_core.sources.fakefeed import AuthRefused, FakeFeed, FeedThread
from momobot_core.sources.recorded import Event

__all__ = ["FakeAlpacaServer", "FakeAlpacaThread"]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeAlpacaServer(FakeFeed):
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

    async def _refuse(self, ws: ServerConnection, code: int) -> None:
        self.refused.append(code)
        self.say(f"refused a client: {code} {protocol.ERRORS[code]}")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps([protocol.error(code)]))
            await ws.close()

    async def greet(self, ws: ServerConnection) -> bool:
        if self.active is not None:  # Alpaca: one connection per feed and account
            await self._refuse(ws, protocol.CONNECTION_LIMIT)
            return False
        await ws.send(json.dumps([protocol.success("connected")]))
        return True

    def authenticate(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        if request.get("key") != self.key or request.get("secret") != self.secret:
            self.refused.append(402)
            raise AuthRefused([protocol.error(402)])
        return [protocol.success("authenticated")]

    def request(self, request: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        if request.get("action") != "subscribe":
            return [], [protocol.error(400)]
        symbols = sorted({*request.get("quotes", []), *request.get("trades", [])})
        return symbols, [protocol.subscription(sorted(self.subscribed | set(symbols)))]

    def render_market(self, event: TradingHalt | Luld) -> list[dict[str, Any]]:
        if type(event) is TradingHalt:
            # Alpaca's trading status codes: H a halt, T trading (docs/sources.md).
            return [protocol.status(event.symbol, "H" if event.halted else "T", event.reason, _now())]
        assert type(event) is Luld
        return [protocol.luld(event.symbol, event.lower, event.upper, _now())]

    def render(self, quote: Quote, trade: bool) -> list[dict[str, Any]]:
        ts = _now()
        messages = [protocol.trade(quote.symbol, quote.last, ts)] if trade and quote.last else []
        return [*messages, protocol.quote(quote.symbol, quote.bid, quote.ask, ts)]


class FakeAlpacaThread(FeedThread):
    server: FakeAlpacaServer

    def __enter__(self) -> FakeAlpacaThread:
        self.start()
        return self
