"""A local stand-in for Alpaca's stream that plays a recorded session: rehearse a trading day, test.

It speaks the protocol as Alpaca documents it (``protocol.py``): the connect
banner, key checking (``402 auth failed``), one connection per feed (a second
gets ``406 connection limit exceeded``), subscription acknowledgements, and
several messages per frame. Quotes of subscribed symbols go out at their
recorded pace (``speed`` times faster; 0 as fast as it can), restamped to
now; a change of a quote's ``last`` becomes a trade print before it. Tests
reach in with :meth:`FakeAlpacaServer.push` (any message) and the knobs
``refuse_auth``, ``drop_after`` and ``silent_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from momobot_alpaca import protocol
from momobot_core.models import Quote

#: Frames carry the client's secret: never logged below INFO.
_wire_log = logging.getLogger("momobot.alpaca.fake.wire")
_wire_log.setLevel(logging.INFO)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeAlpacaServer:
    def __init__(
        self,
        quotes: Sequence[Quote] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str = "test-key",
        secret: str = "test-secret",
        speed: float = 1.0,
        batch: int = 10,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.quotes = sorted(quotes, key=lambda q: q.ts)
        self.host, self.port = host, port
        self.key, self.secret = key, secret
        self.speed = speed
        self.batch = batch
        self.echo = echo
        self.refuse_auth = False
        self.drop_after: int | None = None  # close the connection after this many data frames
        self.silent_after: int | None = None  # stop sending (but stay connected) after this many
        self.connections = 0
        self.refused: list[int] = []  # error codes sent, in order
        self.subscribed: set[str] = set()
        self.subscriptions: list[list[str]] = []
        self.frames_sent = 0
        self._active: ServerConnection | None = None
        self._changed = asyncio.Condition()

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)

    async def push(self, *messages: dict[str, Any]) -> None:
        """Send messages to the connected client now (on the server's loop)."""
        if self._active is not None:
            await self._active.send(json.dumps(list(messages)))

    async def _refuse(self, ws: ServerConnection, code: int) -> None:
        self.refused.append(code)
        self._say(f"refused a client: {code} {protocol.ERRORS[code]}")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps([protocol.error(code)]))
            await ws.close()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        if self._active is not None:  # Alpaca: one connection per feed and account
            await self._refuse(ws, protocol.CONNECTION_LIMIT)
            return
        await ws.send(json.dumps([protocol.success("connected")]))
        try:
            auth = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except (TimeoutError, ValueError, ConnectionClosed):
            await self._refuse(ws, 404)
            return
        if self.refuse_auth or auth.get("key") != self.key or auth.get("secret") != self.secret:
            await self._refuse(ws, 402)
            return
        await ws.send(json.dumps([protocol.success("authenticated")]))
        self._active = ws
        self.subscribed = set()
        self._say("client authenticated")
        stream = asyncio.create_task(self._stream(ws))
        try:
            async for message in ws:
                request = json.loads(message)
                if request.get("action") == "subscribe":
                    symbols = sorted({*request.get("quotes", []), *request.get("trades", [])})
                    self.subscribed.update(symbols)
                    self.subscriptions.append(symbols)
                    await ws.send(json.dumps([protocol.subscription(sorted(self.subscribed))]))
                    async with self._changed:
                        self._changed.notify_all()
        except (ConnectionClosed, ValueError):
            pass
        finally:
            stream.cancel()
            self._active = None

    async def _stream(self, ws: ServerConnection) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self.subscribed))
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = self.quotes[0].ts if self.quotes else None
        last: dict[str, float | None] = {}
        frame: list[dict[str, Any]] = []
        sent = 0
        for quote in self.quotes:
            if quote.symbol not in self.subscribed:
                continue
            if self.speed > 0 and first is not None:
                delay = start + (quote.ts - first).total_seconds() / self.speed - loop.time()
                if delay > 0:
                    if frame:
                        sent += await self._send(ws, frame)
                        frame = []
                    if self._stop_here(ws, sent):
                        return
                    await asyncio.sleep(delay)
            ts = _now()
            if quote.last is not None and last.get(quote.symbol) != quote.last:
                frame.append(protocol.trade(quote.symbol, quote.last, ts))
                last[quote.symbol] = quote.last
            frame.append(protocol.quote(quote.symbol, quote.bid, quote.ask, ts))
            if len(frame) >= self.batch:
                sent += await self._send(ws, frame)
                frame = []
                if self._stop_here(ws, sent):
                    return
        if frame:
            await self._send(ws, frame)
        self._say("recording played to its end; the stream stays open")

    def _stop_here(self, ws: ServerConnection, sent: int) -> bool:
        if self.drop_after is not None and sent >= self.drop_after:
            self.drop_after = None
            ws.transport.abort()  # a dropped connection, mid-stream
            return True
        return self.silent_after is not None and sent >= self.silent_after

    async def _send(self, ws: ServerConnection, frame: list[dict[str, Any]]) -> int:
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return 0
        self.frames_sent += 1
        return 1

    async def run(
        self, started: Callable[[int], None] | None = None, stop: asyncio.Event | None = None
    ) -> None:
        async with serve(
            self._handle, self.host, self.port, compression=None, max_size=2**20, logger=_wire_log
        ) as server:
            self.port = server.sockets[0].getsockname()[1] if server.sockets else self.port
            if started is not None:
                started(self.port)
            if stop is None:
                await server.serve_forever()
            else:
                await stop.wait()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"


class FakeAlpacaThread:
    """Run a FakeAlpacaServer on its own loop in a daemon thread (tests, the live demo)."""

    def __init__(self, server: FakeAlpacaServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fake-alpaca", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            self.server._changed = asyncio.Condition()
            await self.server.run(started=lambda port: self._ready.set(), stop=self._stop)

        try:
            self.loop.run_until_complete(main())
        finally:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

    def start(self) -> FakeAlpacaThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Alpaca server did not start")
        return self

    def push(self, *messages: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(self.server.push(*messages), self.loop).result(5)

    def stop(self) -> None:
        if self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self) -> FakeAlpacaThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
