"""The shared half of a local fake market data stream: rehearse a trading day, test a source.

A vendor's fake (``momobot_alpaca.fake``, ``momobot_massive.fake``) writes its
protocol (:meth:`FakeFeed.greet`, :meth:`FakeFeed.authenticate`,
:meth:`FakeFeed.request`, :meth:`FakeFeed.render`); this base serves it on
127.0.0.1, plays a recording of quotes at its recorded pace (``speed`` times
faster, 0 as fast as it goes) restamped to now, batches the messages that are
due together into one frame, and gives tests their knobs: :meth:`push` any
message, ``refuse_auth``, and :meth:`drop` the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from momobot_core.models import Luld, Quote, TradingHalt
from momobot_core.sources.recorded import Event, paced

#: Frames carry the client's secret: never logged below INFO.
_wire_log = logging.getLogger("momobot.fakefeed.wire")
_wire_log.setLevel(logging.INFO)


class AuthRefused(Exception):
    """Raised by :meth:`FakeFeed.authenticate`: ``frame`` is what the client is told before the close."""

    def __init__(self, frame: list[dict[str, Any]]) -> None:
        super().__init__("refused")
        self.frame = frame


def _object(frame: str | bytes) -> dict[str, Any]:
    """A client's message as an object; anything else (a list, a string, JSON nested past the
    parser's depth) is the empty object, which every vendor's fake refuses or answers."""
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


class FakeFeed:
    """Serve a vendor's protocol with a recording; subclasses write the protocol."""

    def __init__(
        self,
        quotes: Sequence[Event] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        batch: int = 10,
        echo: Callable[[str], None] | None = None,
        on_action: Callable[[Event], None] | None = None,
    ) -> None:
        #: The recording: quotes are streamed; other events (opens, closes) go to ``on_action``
        #: at their time on the same clock (the live demo opens its trades that way).
        self.quotes = sorted(quotes, key=lambda q: q.ts)
        self.on_action = on_action
        self.host, self.port = host, port
        self.speed = speed
        self.batch = batch
        self.echo = echo
        self.refuse_auth = False
        self.connections = 0
        self.subscribed: set[str] = set()
        self.subscriptions: list[list[str]] = []
        self.frames_sent = 0
        self.active: ServerConnection | None = None
        self._subscribed: asyncio.Event | None = None

    # -- the vendor's protocol ------------------------------------------------------------

    async def greet(self, ws: ServerConnection) -> bool:
        """A new connection: send the banner. False refuses it (a second connection, say)."""
        raise NotImplementedError

    def authenticate(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The client's auth message: the success frame, or raise AuthRefused."""
        raise NotImplementedError

    def request(self, request: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """Any later client message: the symbols it subscribes to, and the acknowledgement frame."""
        raise NotImplementedError

    def render(self, quote: Quote, trade: bool) -> list[dict[str, Any]]:
        """The messages for one recorded quote (``trade``: its ``last`` changed, a print first)."""
        raise NotImplementedError

    # -- serving ---------------------------------------------------------------------------

    async def authenticated(self, ws: ServerConnection) -> None:
        """A client's keys were taken (a vendor's fake may close an older connection now)."""

    def render_market(self, event: TradingHalt | Luld) -> list[dict[str, Any]]:
        """A recorded halt or price band as the vendor streams it (none by default)."""
        return []

    def say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)

    async def push(self, *messages: dict[str, Any]) -> None:
        """Send messages to the connected client now (on the server's loop)."""
        if self.active is not None:
            await self.active.send(json.dumps(list(messages)))

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        if not await self.greet(ws):
            return
        try:
            async with asyncio.timeout(10):  # not wait_for: it can lose a cancel (3.11)
                request = _object(await ws.recv())
            if self.refuse_auth:
                self.authenticate({})  # the vendor's refusal, whatever the keys
            await ws.send(json.dumps(self.authenticate(request)))
            await self.authenticated(ws)
        except AuthRefused as refused:
            self.say("refused a client's keys")
            with contextlib.suppress(ConnectionClosed):
                if refused.frame:
                    await ws.send(json.dumps(refused.frame))
                await ws.close()
            return
        except (TimeoutError, ValueError, ConnectionClosed):
            return
        self.active, self.subscribed = ws, set()
        self._subscribed = asyncio.Event()
        self.say("client authenticated")
        stream = asyncio.create_task(self._stream(ws))
        try:
            async for message in ws:
                symbols, ack = self.request(_object(message))
                if symbols:
                    self.subscribed.update(symbols)
                    self.subscriptions.append(sorted(symbols))
                    self._subscribed.set()
                if ack:
                    await ws.send(json.dumps(ack))
        except (ConnectionClosed, ValueError):
            pass
        finally:
            stream.cancel()
            if self.active is ws:
                self.active = None

    async def _stream(self, ws: ServerConnection) -> None:
        assert self._subscribed is not None
        await self._subscribed.wait()
        state: dict[str, Any] = {"last": {}}
        frame: list[dict[str, Any]] = []
        events = self.quotes
        n = -1
        async for event in paced(events, self.speed):
            n += 1
            frame.extend(self.messages_of(event, state))
            # A frame goes out once its moment's events are in it, never held until the next
            # moment's (an unsubscribe answered meanwhile must not see it arrive after).
            nxt = events[n + 1] if n + 1 < len(events) else None
            if frame and (len(frame) >= self.batch or nxt is None or (self.speed > 0 and nxt.ts != event.ts)):
                if not await self._send(ws, frame):
                    return
                frame = []
        frame.extend(self.closing(state))
        if frame:
            await self._send(ws, frame)
        self.say("recording played to its end; the stream stays open")

    def messages_of(self, event: Event, state: dict[str, Any]) -> list[dict[str, Any]]:
        """What one recorded event streams: a market's news (a halt, a band) to whoever wants
        it (:meth:`market_wanted`), an action to ``on_action``, a quote as its vendor streams
        it (:meth:`quote_messages`). ``state`` is the stream's own (``last``: each symbol's
        last print)."""
        if type(event) is TradingHalt or type(event) is Luld:
            # A market's own news, in the stream's order.
            return self.render_market(event) if self.market_wanted(event) else []
        if type(event) is not Quote:
            if self.on_action is not None:
                self.on_action(event)
            return []
        last = state["last"]
        printed = event.last is not None and last.get(event.symbol) != event.last
        last[event.symbol] = event.last
        return self.quote_messages(event, printed, state)

    def market_wanted(self, event: TradingHalt | Luld) -> bool:
        """Whether the client subscribed to what carries this halt or band."""
        return event.symbol in self.subscribed

    def quote_messages(self, quote: Quote, printed: bool, state: dict[str, Any]) -> list[dict[str, Any]]:
        """A recorded quote as the vendor streams it (``printed``: its ``last`` is a new print)."""
        return self.render(quote, printed) if quote.symbol in self.subscribed else []

    def closing(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """What the end of the recording streams (bars still open): nothing by default."""
        return []

    async def _send(self, ws: ServerConnection, frame: list[dict[str, Any]]) -> bool:
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        self.frames_sent += 1
        return True

    def drop(self) -> None:
        """Drop the client's connection at once, mid-stream (call on the server's loop)."""
        if self.active is not None:
            self.active.transport.abort()

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


class FeedThread:
    """Run a fake feed on its own event loop in a daemon thread (tests, the live demo)."""

    def __init__(self, server: FakeFeed) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fake-feed", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await self.server.run(started=lambda port: self._ready.set(), stop=self._stop)

        try:
            self.loop.run_until_complete(main())
        finally:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

    def start(self) -> FeedThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake feed did not start")
        return self

    def push(self, *messages: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(self.server.push(*messages), self.loop).result(5)

    def drop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.drop)

    def stop(self) -> None:
        if self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self) -> FeedThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


MarketEvent = Quote | TradingHalt | Luld


def market_events(files: Sequence[str]) -> list[MarketEvent]:
    """The quotes, halts and LULD bands of recorded files, for a fake to stream; InputError."""
    from momobot_core.sources.recorded import read_events

    return [e for e in read_events(files) if isinstance(e, Quote | TradingHalt | Luld)]


def command_events(files: Sequence[str]) -> list[MarketEvent]:
    """:func:`market_events` for a ``fake-server`` command: a bad file is one line, exit 2."""
    import sys

    from momobot_core.config import InputError

    try:
        return market_events(files)
    except InputError as exc:
        print(f"momobot: error: {exc}", file=sys.stderr)
        sys.exit(2)


def serve_fake(server: FakeFeed, name: str, path: str = "") -> None:
    """Run a fake feed from the command line until Ctrl-C; a port it cannot take is exit 2."""
    import sys

    def started(bound: int) -> None:
        symbols = {e.symbol for e in server.quotes if isinstance(e, Quote | TradingHalt | Luld)}
        print(
            f"fake {name} stream on ws://{server.host}:{bound}{path}: {len(server.quotes)} events of"
            f" {len(symbols)} symbols at {server.speed:g}x; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )

    try:
        asyncio.run(server.run(started=started))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"momobot: error: cannot listen on {server.host}:{server.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        sys.exit(2)


def fake_server_options(port: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The recorded FILEs, ``--host``, ``--port`` and ``--speed`` every ``fake-server`` command
    takes (a vendor's command adds its keys)."""
    import click

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        options = [
            click.argument("files", nargs=-1, required=True, metavar="FILE..."),
            click.option(
                "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback)."
            ),
            click.option(
                "--port",
                default=port,
                show_default=True,
                type=click.IntRange(0, 65535),
                help="Port to listen on (0 picks a free one).",
            ),
            click.option(
                "--speed",
                default=1.0,
                show_default=True,
                type=click.FloatRange(min=0),
                help="How many times faster than recorded (0: as fast as it goes).",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
