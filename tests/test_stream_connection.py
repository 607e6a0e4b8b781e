"""A stream's WebSocket connection (picows underneath) against real servers on 127.0.0.1: what
websockets did for the sources before, it must still do: messages in fragments, a message too
long, a vendor's close codes, an upgrade refused, a server that stops answering."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from source_helpers import until
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from momobot_alpaca import protocol
from momobot_alpaca.source import AlpacaSource
from momobot_core.config import Config
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.sources import Watchlist

from conftest import make_hooks

SYMBOLS = ["ABCD", "WXYZ"]
T = "2026-11-24T14:30:00Z"


def engine_for(url: str) -> tuple[Engine, AlpacaSource]:
    config = Config(
        tables={
            "alpaca": {
                "key_id": "k",
                "secret_key": "s",
                "url": url,
                "feed": "sip",
                "reconnect_max_delay": 0.2,
            },
            "risk": {"stale_quote_s": 0},
        }
    )
    engine = Engine(config=config, hooks=make_hooks(), journal=Journal(), mode="live")
    engine.start()
    source = AlpacaSource(engine)
    engine.source = source
    return engine, source


async def opening(ws: ServerConnection) -> None:
    """Alpaca's banner, authentication and subscription, as the fake sends them."""
    await ws.send(json.dumps([protocol.success("connected")]))
    await ws.recv()
    await ws.send(json.dumps([protocol.success("authenticated")]))
    await ws.recv()
    await ws.send(json.dumps([protocol.subscription(SYMBOLS)]))


def quotes(symbol: str, bid: float) -> str:
    return json.dumps([protocol.quote(symbol, bid, round(bid + 0.01, 2), T)])


async def streaming(
    vendor: Callable[[ServerConnection], Awaitable[None]],
    done: Callable[[Engine, AlpacaSource], bool],
    **server: Any,
) -> tuple[Engine, AlpacaSource]:
    async with serve(vendor, "127.0.0.1", 0, **server) as listening:
        port = listening.sockets[0].getsockname()[1]
        engine, source = engine_for(f"ws://127.0.0.1:{port}")
        engine.loop = asyncio.get_running_loop()
        task = asyncio.create_task(source.run(engine, Watchlist(SYMBOLS)))
        try:
            assert await until(lambda: done(engine, source)), [a.message for a in engine.alerts]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return engine, source


def alerts(engine: Engine) -> list[str]:
    return [a.message for a in engine.alerts]


def test_a_message_sent_in_fragments_is_put_together() -> None:
    async def vendor(ws: ServerConnection) -> None:
        await opening(ws)
        text = quotes("ABCD", 1.99)
        await ws.send([text[:7], text[7:20], text[20:]])  # one message, three frames
        await ws.wait_closed()

    engine, source = asyncio.run(streaming(vendor, lambda e, s: "ABCD" in e.last_quotes))
    assert engine.last_quotes["ABCD"].bid == 1.99
    assert source.errors == 0 and source.connections == 1


def test_a_message_over_the_limit_closes_the_connection_1009_and_none_of_it_is_applied() -> None:
    codes: list[int | None] = []

    async def vendor(ws: ServerConnection) -> None:
        await opening(ws)
        if not codes:
            big = json.dumps([protocol.quote("ABCD", 1.99, 2.00, T)] * 100)  # over 2,000 bytes
            await ws.send([big[:1000], big[1000:]])
            await ws.wait_closed()
            codes.append(ws.close_code)
            return
        await ws.send(quotes("WXYZ", 2.99))
        await ws.wait_closed()

    def done(engine: Engine, source: AlpacaSource) -> bool:
        source.max_message = 2_000
        return "WXYZ" in engine.last_quotes

    engine, source = asyncio.run(streaming(vendor, done))
    assert codes == [1009]
    assert "ABCD" not in engine.last_quotes and source.connections == 2
    assert any("1009" in a for a in alerts(engine)), alerts(engine)


def test_a_vendor_close_with_an_error_code_is_an_alert_naming_it_and_a_reconnect() -> None:
    connections: list[int] = []

    async def vendor(ws: ServerConnection) -> None:
        connections.append(1)
        await opening(ws)
        if len(connections) == 1:
            await ws.close(4009, "slow client")
            return
        await ws.send(quotes("ABCD", 1.99))
        await ws.wait_closed()

    engine, source = asyncio.run(streaming(vendor, lambda e, s: "ABCD" in e.last_quotes))
    assert len(connections) == 2 and source.errors == 1
    assert any("4009" in a and "slow client" in a for a in alerts(engine)), alerts(engine)


def test_a_clean_close_is_no_error_and_the_source_reconnects() -> None:
    connections: list[int] = []

    async def vendor(ws: ServerConnection) -> None:
        connections.append(1)
        await opening(ws)
        if len(connections) == 1:
            await ws.close()  # 1000
            return
        await ws.send(quotes("ABCD", 1.99))
        await ws.wait_closed()

    engine, source = asyncio.run(streaming(vendor, lambda e, s: "ABCD" in e.last_quotes))
    assert len(connections) == 2 and source.errors == 0
    assert any("the stream closed" in a for a in alerts(engine)), alerts(engine)


def test_an_upgrade_the_server_refuses_is_an_alert_and_a_retry() -> None:
    asked: list[int] = []

    def refuse_first(connection: ServerConnection, request: Any) -> Response | None:
        asked.append(1)
        if len(asked) == 1:
            return Response(503, "Service Unavailable", Headers(), b"busy\n")
        return None

    async def vendor(ws: ServerConnection) -> None:
        await opening(ws)
        await ws.send(quotes("ABCD", 1.99))
        await ws.wait_closed()

    engine, source = asyncio.run(
        streaming(vendor, lambda e, s: "ABCD" in e.last_quotes, process_request=refuse_first)
    )
    assert len(asked) == 2 and source.errors == 1
    assert any("503" in a for a in alerts(engine)), alerts(engine)


def test_a_server_that_stops_answering_is_dropped_by_the_pings_and_the_source_reconnects() -> None:
    # The first server's loop blocks after the subscription (as a hung process would): it sends
    # nothing and answers no ping. The source must drop it within its ping interval and timeout,
    # say so, and take quotes from the next connection.
    release = threading.Event()
    hung: list[int] = []

    async def vendor(ws: ServerConnection) -> None:
        await opening(ws)
        if not hung:
            hung.append(1)
            release.wait(30)  # blocks this server's whole loop, pings unanswered
            return
        await ws.send(quotes("ABCD", 1.99))
        await ws.wait_closed()

    ready = threading.Event()
    port: list[int] = []

    def server_thread() -> None:
        async def main() -> None:
            async with serve(vendor, "127.0.0.1", 0) as listening:
                port.append(listening.sockets[0].getsockname()[1])
                ready.set()
                await asyncio.get_running_loop().run_in_executor(None, stopped.wait)

        asyncio.run(main())

    stopped = threading.Event()
    thread = threading.Thread(target=server_thread, daemon=True)
    thread.start()
    assert ready.wait(10)

    async def main() -> tuple[Engine, AlpacaSource]:
        engine, source = engine_for(f"ws://127.0.0.1:{port[0]}")
        source.ping_interval, source.ping_timeout = 0.3, 0.3
        engine.loop = asyncio.get_running_loop()
        task = asyncio.create_task(source.run(engine, Watchlist(SYMBOLS)))
        try:
            assert await until(lambda: source.connections == 1 and source.connected)
            assert await until(lambda: not source.connected and source.errors == 1)
            release.set()  # the server's loop runs again: the next connection is served
            assert await until(lambda: "ABCD" in engine.last_quotes), alerts(engine)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return engine, source

    try:
        engine, source = asyncio.run(main())
    finally:
        release.set()
        stopped.set()
        thread.join(10)
    assert source.connections == 2
    assert any("not even an answer to a ping" in a and "reconnecting" in a for a in alerts(engine)), alerts(
        engine
    )


@pytest.mark.parametrize("vendor_pings", [None, 0.1], ids=["vendor answers our pings", "vendor pings us"])
def test_a_quiet_connection_that_drops_after_pings_were_answered_is_not_called_silent(
    vendor_pings: float | None,
) -> None:
    # A feed with nothing to send for a while still answers our pings (and may send its own).
    # When its socket then goes (no close frame), the alert says the connection was lost, not
    # that the server went silent.
    connections: list[int] = []

    async def vendor(ws: ServerConnection) -> None:
        connections.append(1)
        await opening(ws)
        if len(connections) == 1:
            await asyncio.sleep(1.0)  # over three of our ping intervals, nothing sent
            assert ws.transport is not None
            ws.transport.abort()  # no close frame
            return
        await ws.send(quotes("ABCD", 1.99))
        await ws.wait_closed()

    def done(engine: Engine, source: AlpacaSource) -> bool:
        source.ping_interval, source.ping_timeout = 0.3, 0.3
        return "ABCD" in engine.last_quotes

    engine, source = asyncio.run(streaming(vendor, done, ping_interval=vendor_pings))
    assert len(connections) == 2 and source.errors == 1
    assert any("lost with no close frame" in a for a in alerts(engine)), alerts(engine)
    assert not any("not even an answer to a ping" in a for a in alerts(engine)), alerts(engine)


# -- a server written by hand: bytes on the wire no WebSocket library would send --------------


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked server frame (payloads under 64 KiB)."""
    size = len(payload)
    length = bytes([size]) if size < 126 else bytes([126]) + size.to_bytes(2, "big")
    return bytes([(0x80 if fin else 0) | opcode]) + length + payload


def upgrade_answer(request: bytes) -> bytes:
    """The 101 that accepts a client's upgrade request (RFC 6455 4.2.2)."""
    import base64
    import hashlib

    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


async def raw_vendor(
    after_upgrade: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None,
    with_upgrade: list[bytes] | None = None,
) -> tuple[asyncio.Server, int]:
    """A server that answers the upgrade (unless ``after_upgrade`` is None: then it reads the
    request and closes), speaks Alpaca's opening, then hands the socket to ``after_upgrade``.
    While ``with_upgrade`` holds bytes, a connection gets the first of them in the same write
    as the upgrade's answer instead of the opening, then goes to ``after_upgrade``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await speak(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went: what the test waits for has happened
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def speak(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if after_upgrade is None:
            return
        answer = upgrade_answer(request)
        if with_upgrade:
            writer.write(answer + with_upgrade.pop(0))  # one write: one read for the client
            await after_upgrade(reader, writer)
            return
        writer.write(answer)
        writer.write(frame(1, json.dumps([protocol.success("connected")]).encode()))
        await read_client_frame(reader)  # auth
        writer.write(frame(1, json.dumps([protocol.success("authenticated")]).encode()))
        await read_client_frame(reader)  # subscribe
        await after_upgrade(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One masked client frame: its opcode and payload."""
    head = await reader.readexactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4)
    data = await reader.readexactly(size)
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def raw_streaming(
    after_upgrade: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None,
    done: Callable[[Engine, AlpacaSource], bool],
    with_upgrade: list[bytes] | None = None,
    **settings: float,
) -> tuple[Engine, AlpacaSource]:
    server, port = await raw_vendor(after_upgrade, with_upgrade)
    async with server:
        engine, source = engine_for(f"ws://127.0.0.1:{port}")
        for name, value in settings.items():
            setattr(source, name, value)
        engine.loop = asyncio.get_running_loop()
        task = asyncio.create_task(source.run(engine, Watchlist(SYMBOLS)))
        try:
            assert await until(lambda: done(engine, source)), alerts(engine)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return engine, source


def short(symbol: str) -> bytes:
    return json.dumps([protocol.quote(symbol, 1.99, 2.0, T)]).encode()


def test_a_server_that_closes_before_answering_the_upgrade_is_an_alert_at_once() -> None:
    engine, source = asyncio.run(raw_streaming(None, lambda e, s: s.errors >= 1))
    assert source.connections == 0  # no session was counted for it
    assert any("before answering the upgrade" in a for a in alerts(engine)), alerts(engine)


def close_code_after(first: bytes, *, with_upgrade: bool = False) -> tuple[Engine, AlpacaSource, int]:
    """``first`` written on the first connection (after the opening, or ``with_upgrade`` in the
    same write as the upgrade's answer): the code of the close frame the source answers it with.
    The next connection sends a quote for WXYZ (the source reconnected)."""
    closes: list[tuple[int, bytes]] = []

    async def after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if closes:
            writer.write(frame(1, short("WXYZ")))
            await reader.read()
            return
        if not with_upgrade:
            writer.write(first)
        closes.append(await read_client_frame(reader))

    engine, source = asyncio.run(
        raw_streaming(
            after, lambda e, s: "WXYZ" in e.last_quotes, with_upgrade=[first] if with_upgrade else None
        )
    )
    opcode, payload = closes[0]
    assert opcode == 8  # a close frame
    return engine, source, int.from_bytes(payload[:2], "big")


def test_after_a_frame_that_ends_the_connection_nothing_else_of_that_read_is_applied() -> None:
    # One write holds a good frame, a text frame that is not UTF-8, and another good frame:
    # the connection closes with 1007 at the bad one, and the frame after it is not applied.
    engine, _source, code = close_code_after(
        frame(1, short("ABCD")) + frame(1, b'["\xff"]') + frame(1, short("EFGH"))
    )
    assert code == 1007
    assert "ABCD" in engine.last_quotes and "EFGH" not in engine.last_quotes


def test_an_empty_close_frame_is_a_clean_close_answered_with_1000() -> None:
    engine, source, code = close_code_after(frame(8, b""))  # a close frame with no status
    assert code == 1000
    assert source.errors == 0  # a clean close, as websockets counted one
    assert any("the stream closed" in a for a in alerts(engine)), alerts(engine)


def test_a_new_message_inside_a_fragmented_one_closes_the_connection_1002_and_none_is_applied() -> None:
    first = short("ABCD")
    engine, _source, code = close_code_after(
        frame(1, first[:10], fin=False) + frame(1, short("EFGH")) + frame(0, first[10:])
    )
    assert code == 1002
    assert "ABCD" not in engine.last_quotes and "EFGH" not in engine.last_quotes


def test_ping_settings_no_connection_could_keep_stop_the_source_at_once() -> None:
    engine, source = engine_for("ws://127.0.0.1:9")
    source.ping_interval, source.ping_timeout = 0.2, 0.5

    async def main() -> None:
        await source.run(engine, Watchlist(SYMBOLS))

    from momobot_core.sources import SourceError

    try:
        asyncio.run(main())
    except SourceError as exc:
        assert "ping_timeout" in str(exc)
    else:
        raise AssertionError("the source ran with a ping_timeout over its ping_interval")


def with_bits(bits: int, whole: bytes) -> bytes:
    """A frame with these bits of its first byte set too (the reserved ones: 0x40, 0x20, 0x10)."""
    return bytes([whole[0] | bits]) + whole[1:]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def test_a_close_that_comes_with_the_upgrade_is_answered_with_its_code_and_named() -> None:
    # Sent in the same read as the 101, before the source holds the connection: it must still be
    # answered (the same code back), and the alert must name it, not wait out open_timeout.
    engine, _source, code = close_code_after(
        frame(8, close_payload(1013, b"try again later")), with_upgrade=True
    )
    assert code == 1013
    assert any("1013" in a and "try again later" in a for a in alerts(engine)), alerts(engine)
    assert not any("TimeoutError" in a for a in alerts(engine)), alerts(engine)


def test_a_frame_that_breaks_the_rules_with_the_upgrade_is_closed_for_and_named() -> None:
    # Not UTF-8: 1007, and the alert says why. An unknown opcode (3): picows closes 1002, and the
    # alert says so (not "lost with no close frame").
    engine, _source, code = close_code_after(frame(1, b'["\xff"]'), with_upgrade=True)
    assert code == 1007
    assert any("not UTF-8" in a for a in alerts(engine)), alerts(engine)
    engine, _source, code = close_code_after(frame(3, b""), with_upgrade=True)
    assert code == 1002
    assert any("1002" in a for a in alerts(engine)), alerts(engine)
    assert not any("lost with no close frame" in a for a in alerts(engine)), alerts(engine)


@pytest.mark.parametrize(
    "first",
    [
        with_bits(0x40, frame(1, short("ABCD"))),  # RSV1 set
        with_bits(0x10, frame(1, short("ABCD"))),  # RSV3 set
        frame(8, close_payload(1006)),  # a code only an endpoint's report may hold
        frame(8, close_payload(5000)),  # out of range
        frame(8, close_payload(0)),  # an explicit 0: not the empty close frame
    ],
    ids=["rsv1", "rsv3", "close 1006", "close 5000", "close 0"],
)
def test_reserved_bits_or_a_close_code_no_server_may_send_close_the_connection_1002(first: bytes) -> None:
    engine, source, code = close_code_after(first)
    assert code == 1002
    assert "ABCD" not in engine.last_quotes  # a frame with reserved bits is not applied
    assert source.errors >= 1


@pytest.mark.parametrize("chatter", ["quotes", "pings", "quotes, our close answered"])
def test_a_server_that_sends_but_never_answers_our_pings_is_dropped(chatter: str) -> None:
    # Frames (or pings of its own) keep coming, so the connection is never idle; our pings go
    # out anyway, and one left unanswered drops it. picows then sends a close (1001): a server
    # that answers it must not make the end read as a clean close.
    async def echo_closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            opcode, payload = await read_client_frame(reader)
            if opcode == 8:
                writer.write(frame(8, payload))
                return

    async def after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if served:
            writer.write(frame(1, short("WXYZ")))
            await reader.read()
            return
        served.append(1)
        if chatter.endswith("answered"):
            answering = asyncio.create_task(echo_closes(reader, writer))
        for n in range(400):  # 20 s at most; the client drops it long before
            writer.write(frame(9, b"%d" % n) if chatter == "pings" else frame(1, short("ABCD")))
            await writer.drain()
            await asyncio.sleep(0.05)  # the server's pace, not a wait of the test
        if chatter.endswith("answered"):
            answering.cancel()

    served: list[int] = []
    engine, _source = asyncio.run(
        raw_streaming(after, lambda e, s: "WXYZ" in e.last_quotes, ping_interval=0.3, ping_timeout=0.3)
    )
    assert any("no answer to a ping" in a for a in alerts(engine)), alerts(engine)
    assert not any("the stream closed" in a for a in alerts(engine)), alerts(engine)


def test_an_error_that_ends_the_run_leaves_nothing_subscribed_for_the_next_run() -> None:
    # A bug in the engine (or a plugin) raises out of a quote: the source's run ends (serve
    # says so and starts it again). The next run must subscribe again, or no quote ever comes.
    subscribes: list[Any] = []

    async def vendor(ws: ServerConnection) -> None:
        await ws.send(json.dumps([protocol.success("connected")]))
        await ws.recv()
        await ws.send(json.dumps([protocol.success("authenticated")]))
        subscribes.append(json.loads(await ws.recv()))
        await ws.send(json.dumps([protocol.subscription(SYMBOLS)]))
        await ws.send(quotes("ABCD" if len(subscribes) == 1 else "WXYZ", 1.99))
        await ws.wait_closed()

    async def main() -> tuple[Engine, AlpacaSource]:
        async with serve(vendor, "127.0.0.1", 0) as listening:
            port = listening.sockets[0].getsockname()[1]
            engine, source = engine_for(f"ws://127.0.0.1:{port}")
            engine.loop = asyncio.get_running_loop()
            apply = engine.apply

            def broken(event: Any) -> Any:
                engine.apply = apply  # type: ignore[method-assign]  # once
                raise RuntimeError("a bug on the quote path")

            engine.apply = broken  # type: ignore[method-assign]
            with pytest.raises(RuntimeError):
                await source.run(engine, Watchlist(SYMBOLS))
            assert not source.connected and not source.subscribed
            task = asyncio.create_task(source.run(engine, Watchlist(SYMBOLS)))
            try:
                assert await until(lambda: "WXYZ" in engine.last_quotes), alerts(engine)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return engine, source

    asyncio.run(main())
    assert len(subscribes) == 2 and subscribes[1]["quotes"] == SYMBOLS, subscribes


@pytest.mark.parametrize(
    ("steady_s", "quoted"),
    [(0.0, True), (60.0, True), (0.0, False)],
    ids=["steady sessions", "short sessions", "sessions without quotes"],
)
def test_a_working_connection_that_ends_is_retried_at_once_and_said_each_time(
    steady_s: float, quoted: bool
) -> None:
    # Every connection streams a quote (or none), then the vendor closes it with 1011. One that
    # brought quotes and lasted steady_s starts the backoff afresh, and each of its ends is an
    # alert; ends of any other back off as failures do, and are said once.
    waits: list[float] = []

    async def vendor(ws: ServerConnection) -> None:
        if source_box:
            detail = source_box[0].detail  # "...; reconnecting in X s" of the end before
            if "reconnecting in" in detail:
                waits.append(float(detail.rsplit("reconnecting in ", 1)[1].split()[0]))
        await opening(ws)
        if quoted:
            await ws.send(quotes("ABCD", 1.99))
        await ws.close(1011, "internal error")

    source_box: list[AlpacaSource] = []

    def done(engine: Engine, source: AlpacaSource) -> bool:
        if not source_box:
            source_box.append(source)
            source.steady_s = steady_s
            source.reconnect_max_delay = 5.0
        return len(waits) >= 6

    engine, _source = asyncio.run(streaming(vendor, done))
    ends = [a for a in alerts(engine) if "1011" in a]
    if steady_s == 0 and quoted:
        assert max(waits) <= 0.2, waits
        assert len(ends) >= 6, ends
    else:
        assert max(waits) > 0.5, waits  # 0.2, 0.3, 0.5, 0.9...: backing off
        assert len(ends) == 1, ends


def test_an_upgrade_answered_after_open_timeout_is_dropped_as_it_comes() -> None:
    # The source gave up on the upgrade (TimeoutError, an alert, a retry); the server's 101 then
    # comes anyway. The connection must be dropped at once: kept, it would ping on beside the
    # next one and count against a vendor's limit of connections.
    after_101: list[bytes] = []
    box: list[AlpacaSource] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if after_101:  # later connections: refused at once
            writer.close()
            return
        assert await until(lambda: bool(box) and box[0].errors >= 1)  # it gave up
        writer.write(upgrade_answer(request))
        await writer.drain()
        # EOF (or a close frame): dropped; a ping here would mean it was kept.
        after_101.append(await asyncio.wait_for(reader.read(64), 10))
        writer.close()

    async def main() -> tuple[Engine, AlpacaSource]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            engine, source = engine_for(f"ws://127.0.0.1:{port}")
            source.open_timeout = 0.3
            source.ping_interval, source.ping_timeout = 0.3, 0.3
            box.append(source)
            engine.loop = asyncio.get_running_loop()
            task = asyncio.create_task(source.run(engine, Watchlist(SYMBOLS)))
            try:
                assert await until(lambda: bool(after_101)), alerts(engine)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return engine, source

    engine, _source = asyncio.run(main())
    assert after_101[0] == b"" or after_101[0][0] & 0x0F == 8, after_101
    assert any("no answer to the upgrade within 0.3 s" in a for a in alerts(engine)), alerts(engine)


def test_a_vendors_message_before_its_close_with_the_upgrade_is_read_first() -> None:
    # The vendor explains itself, then closes, all in the same read as the 101: its handshake
    # must read the explanation (the alert says what the vendor said), not only the close.
    said = json.dumps([{"T": "error", "code": 500, "msg": "internal error"}]).encode()
    engine, _source, code = close_code_after(
        frame(1, said) + frame(8, close_payload(1008, b"policy")), with_upgrade=True
    )
    assert code == 1008  # the close is still answered
    assert any("Alpaca said 500 internal error" in a for a in alerts(engine)), alerts(engine)
