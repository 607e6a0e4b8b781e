"""A local stand-in for the Massive stocks stream, for tests: the protocol on the core's FakeFeed.

Like the real stream, a second connection with the same key closes the older
one with status ``max_connections``.
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
from momobot_massive import protocol


class FakeMassiveServer(FakeFeed):
    def __init__(self, quotes: Sequence[Quote] = (), *, key: str = "test-key", **options: Any) -> None:
        super().__init__(quotes, **options)
        self.key = key
        self.taken_over = 0

    async def greet(self, ws: ServerConnection) -> bool:
        older = self.active
        if older is not None:  # Massive: the newer connection wins, the older is told and closed
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
        await ws.send(json.dumps([protocol.status("connected", "Connected Successfully")]))
        return True

    def authenticate(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        if request.get("params") != self.key or self.refuse_auth:
            raise AuthRefused([protocol.status("auth_failed", "authentication failed")])
        return [protocol.status("auth_success", "authenticated")]

    def request(self, request: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        topics = [t for t in str(request.get("params", "")).split(",") if t]
        symbols = sorted({t.split(".", 1)[1] for t in topics if "." in t})
        return symbols, [protocol.status("success", f"subscribed to: {t}") for t in topics]

    def render_market(self, event: TradingHalt | Luld) -> list[dict[str, Any]]:
        ms = int(time.time() * 1000)
        if type(event) is TradingHalt:
            codes = protocol.HALTED if event.halted else protocol.RESUMED
            return [protocol.luld(event.symbol, sorted(codes), ms)]
        assert type(event) is Luld
        return [protocol.luld(event.symbol, [], ms, event.lower, event.upper)]

    def render(self, quote: Quote, trade: bool) -> list[dict[str, Any]]:
        ms = int(time.time() * 1000)
        events = [protocol.trade(quote.symbol, quote.last, ms)] if trade and quote.last else []
        return [*events, protocol.quote(quote.symbol, quote.bid, quote.ask, ms)]
