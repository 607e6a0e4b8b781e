"""Real WebSocket servers on 127.0.0.1 for the hotkey tests, each on its own loop and thread."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from hotkey_ws.config import HotkeyConfig
from momobot_core.config import Config


class HotkeyTestServer:
    """A hotkey server that records what it receives and can misbehave on purpose.

    ``stop_reading_after``: after that many messages, stop reading the socket
    entirely (a hung connection: no pongs, no reads).
    ``hang_after``: after that many messages the whole server hangs, as a
    frozen process does: no connection reads and no handshake completes,
    until :meth:`wake`.
    ``close_after``: after that many messages, close the connection.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        stop_reading_after: int | None = None,
        close_after: int | None = None,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        hang_after: int | None = None,
    ) -> None:
        self.port = port
        self.ssl_context = ssl_context
        self.stop_reading_after = stop_reading_after
        self.hang_after = hang_after
        self.close_after = close_after
        self._awake: asyncio.Event | None = None
        self.token = token
        self.messages: list[str] = []
        self.times_ns: list[int] = []
        self.connections = 0
        self.open_connections = 0
        self.authorization: list[str | None] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._changed = threading.Condition()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        with self._changed:
            self.open_connections += 1
        try:
            await self._read(ws)
        finally:
            with self._changed:
                self.open_connections -= 1
                self._changed.notify_all()

    def wait_all_closed(self, timeout: float = 15.0) -> bool:
        """Wait until no client is connected: every byte a closed client sent has been read."""
        with self._changed:
            return self._changed.wait_for(lambda: self.open_connections == 0, timeout)

    async def _read(self, ws: ServerConnection) -> None:
        self.authorization.append(ws.request.headers.get("Authorization") if ws.request else None)
        count = 0
        async for message in ws:
            with self._changed:
                self.messages.append(message if isinstance(message, str) else message.decode())
                self.times_ns.append(time.monotonic_ns())
                self._changed.notify_all()
            count += 1
            if self.close_after is not None and count >= self.close_after:
                await ws.close()
                return
            if self.stop_reading_after is not None and count >= self.stop_reading_after:
                ws.transport.pause_reading()
                await asyncio.sleep(3600)
            if self.hang_after is not None and len(self.messages) >= self.hang_after:
                assert self._awake is not None
                if not self.hung:
                    self._awake.clear()
                    self.hung = True
                ws.transport.pause_reading()
                await self._awake.wait()
                ws.transport.resume_reading()

    hung = False

    def wake(self) -> None:
        """End a hang: what sat in the sockets' buffers is read now, handshakes complete."""
        self.hang_after = None

        def awake() -> None:
            self.hung = False
            assert self._awake is not None
            self._awake.set()

        self._loop.call_soon_threadsafe(awake)

    async def _check(self, connection: ServerConnection, request: Any) -> Any:
        if self.hung:  # a frozen process completes no handshake
            assert self._awake is not None
            await self._awake.wait()
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return connection.respond(401, "no\n")
        return None

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            self._awake = asyncio.Event()
            async with serve(
                self._handle,
                "127.0.0.1",
                self.port,
                process_request=self._check,
                compression=None,
                ping_interval=None,
                ssl=self.ssl_context,
            ) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._ready.set()
                await self._stop.wait()
                server.close(close_connections=True)

        self._loop.run_until_complete(main())
        # cancel handlers left sleeping
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    def start(self) -> HotkeyTestServer:
        self._thread.start()
        assert self._ready.wait(5), "test server did not start"
        return self

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[str]:
        """Wait until ``count`` messages have arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self.messages)

    def __enter__(self) -> HotkeyTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fast_config(*urls: str, **overrides: Any) -> HotkeyConfig:
    """A config with short timers, so failure tests finish in a second or two."""
    values: dict[str, Any] = {
        "urls": tuple(urls),
        "sequence_delay": 0.05,
        # Long enough that a receiver thread slowed by a busy machine is not taken for a dead
        # one; the tests about keepalive and TTLs set their own.
        "ttl": 3.0,
        "ping_interval": 0.3,
        "ping_timeout": 1.0,
        "open_timeout": 2.0,
        "reconnect_max_delay": 0.2,
        "flush_timeout": 2.0,
    }
    values.update(overrides)
    return HotkeyConfig(**values)


def core_config(**hotkey: Any) -> Config:
    return Config(tables={"hotkey_ws": hotkey})


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a poll interval, the condition is what is waited on
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.005)
    return predicate()


def hotkey_lines(caplog: Any) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "momobot.hotkey" and r.levelno >= logging.INFO
    ]
