"""A stream's WebSocket connection: picows underneath, and what a vendor's handshake uses of it.

A quote stream sends thousands of frames a second. websockets, the client the sources used
before, parses each frame in Python and hands it over through a queue and a task switch: about
43,000 instructions a frame, more than the engine spends on the frame's quotes
(docs/PERFORMANCE.md). picows parses frames in Cython and calls back from the socket's read, so
:class:`StreamConnection` gives each frame to the source's handler right there: no queue, no
task switch, a few thousand instructions a frame.

Until the handshake is done, frames wait in a queue for :meth:`StreamConnection.recv`, and the
connection has the three coroutines a vendor's handshake calls (``send``, ``recv``, ``close``),
as websockets' ``ClientConnection`` has them. A connection that ends raises websockets' own
``ConnectionClosedOK`` (the vendor closed with 1000, 1001 or an empty close frame) or
``ConnectionClosedError`` (another code; :class:`ConnectionLost` when no close frame came
either way), with the close frames received and sent, so a source's alert reads as it did.
Messages split into several frames are put together; one longer than ``max_size`` closes the
connection with 1009. A server that stops answering is found by pings: one after
``ping_interval`` seconds without a byte from it, and the connection is dropped if no answer
comes within ``ping_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from picows import WSListener, WSMsgType, WSProtocolError, WSTransport, ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close, CloseCode

__all__ = ["ConnectionLost", "StreamConnection"]

#: The close codes of a connection that ended as it should (websockets' ConnectionClosedOK).
_CLEAN = (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD)


class ConnectionLost(ConnectionClosedError):
    """A connection that ended with no close frame either way: the socket went, or the server
    stopped answering pings. It says which."""

    def __init__(self, why: str) -> None:
        super().__init__(None, None, None)
        self.why = why

    def __str__(self) -> str:
        return self.why


class StreamConnection:
    """One WebSocket connection of a quote source (see the module's docstring)."""

    def __init__(
        self,
        *,
        max_size: int,
        ping_interval: float,
        ping_timeout: float,
        logger: logging.Logger,
    ) -> None:
        self.check_pings(ping_interval, ping_timeout)
        self.max_size = max_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.logger = logger
        self.transport: WSTransport | None = None
        #: The close frame received from the server, and the one sent to it (None: none).
        self.rcvd: Close | None = None
        self.sent: Close | None = None
        self._rcvd_then_sent: bool | None = None
        #: When a frame (or the answer to a ping) last came, monotonic seconds: the alert of a
        #: connection lost to the pings says how long the server was silent.
        self.heard = time.monotonic()
        #: What the frame handler raised (the connection was closed for it).
        self.error: BaseException | None = None
        self._waiting: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._handler: Callable[[str | bytes], None] | None = None
        self._decode = True
        self._parts: list[bytes] = []
        self._parts_text = False
        self._parts_size = 0
        self._gone = asyncio.Event()
        self._lost = "the connection was lost with no close frame"
        self._abandoned = False
        #: When our ping went without its answer yet (None: none waits).
        self.ping_sent: float | None = None

    @staticmethod
    def check_pings(interval: float, timeout: float) -> None:
        """picows' own rule for its pings: ValueError unless 0 < ``timeout`` <= ``interval``."""
        if not 0 < timeout <= interval:
            raise ValueError(
                f"ping_timeout {timeout:g} must be above 0 and at most ping_interval {interval:g}"
            )

    async def open(self, url: str, timeout: float) -> None:
        """Connect and upgrade within ``timeout`` seconds. Raises OSError (ConnectionError: the
        server closed before its answer), TimeoutError, or picows' WSError (the server refused
        the upgrade). A connection that completes after a timeout or a cancel is dropped as it
        comes (it would ping on, unheld, and count against a vendor's limit of connections)."""
        try:
            transport, listener = await asyncio.wait_for(
                ws_connect(
                    lambda: _Listener(self),
                    url,
                    websocket_handshake_timeout=timeout,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=self.ping_interval,
                    auto_ping_reply_timeout=self.ping_timeout,
                    max_frame_size=self.max_size,
                    logger_name=self.logger,
                    proxy=None,
                ),
                timeout,
            )
        except BaseException:
            self._abandoned = True
            raise
        # picows returns a transport already gone, and no listener, when the server closed the
        # socket before answering the upgrade.
        if listener is None or transport.is_disconnected:
            self._abandoned = True
            transport.disconnect()
            raise ConnectionError("the server closed the connection before answering the upgrade")
        self.transport = transport

    # -- what a vendor's handshake calls (as websockets' ClientConnection) ----------------------

    async def send(self, message: str) -> None:
        transport = self.transport
        if transport is None or self._gone.is_set():
            raise self.closed()
        transport.send(WSMsgType.TEXT, message.encode())

    async def recv(self) -> str | bytes:
        """The next message: a ``str`` for a text frame, ``bytes`` for a binary one. Raises
        ConnectionClosed once the connection has ended."""
        message = await self._waiting.get()
        if message is None:
            self._waiting.put_nowait(None)  # and for every later call
            raise self.closed()
        return message

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        self.close_now(code, reason)

    # -- after the handshake -----------------------------------------------------------------

    async def serve(self, handler: Callable[[str | bytes], None], *, decode: bool) -> None:
        """Give every message from now on to ``handler``, in the socket's read callback, until the
        connection ends: return if the server closed it cleanly, else raise what ended it (the
        handler's exception, or ConnectionClosedError). ``decode``: text frames as ``str`` (False:
        every message as the bytes that came)."""
        self._decode = decode
        while not self._waiting.empty():  # what came with or right after the handshake
            message = self._waiting.get_nowait()
            if message is None:
                self._waiting.put_nowait(None)
                break
            if not decode and isinstance(message, str):
                message = message.encode()
            handler(message)
        self._handler = handler
        await self._gone.wait()
        await self._settle()
        if self.error is not None:
            raise self.error
        ended = self.closed()
        if isinstance(ended, ConnectionClosedOK):
            return
        raise ended

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame (unless one was) and drop the connection."""
        transport = self.transport
        if transport is None or self._gone.is_set():
            return
        if self.sent is None:
            self.sent = Close(code, reason)
            if self.rcvd is not None:
                self._rcvd_then_sent = True
            with contextlib.suppress(Exception):
                transport.send_close(code, reason.encode())  # type: ignore[arg-type]  # any code
        transport.disconnect()

    async def aclose(self) -> None:
        """Drop the connection (if it is not gone already) and wait until it is."""
        if self.transport is None:
            return
        if not self._gone.is_set():
            self.transport.disconnect()
        await self._settle()

    async def _settle(self) -> None:
        """picows' own reason for ending a connection (a frame it would not take: too long, not
        WebSocket), taken as the close frame it sent for it."""
        assert self.transport is not None
        try:
            await self.transport.wait_disconnected()
        except WSProtocolError as exc:
            code = exc.args[0] if exc.args else CloseCode.PROTOCOL_ERROR
            reason = str(exc.args[1]) if len(exc.args) > 1 else ""
            if self.sent is None:
                self.sent = Close(int(code), reason)
                self._rcvd_then_sent = False if self.rcvd is not None else None
        except Exception:
            pass  # gone either way (a WSError, an OSError...): closed() says how

    def closed(self) -> ConnectionClosed:
        """The exception a connection that ended raises, websockets' own."""
        rcvd, sent = self.rcvd, self.sent
        order = self._rcvd_then_sent if rcvd is not None and sent is not None else None
        if rcvd is not None and rcvd.code in _CLEAN and (sent is None or sent.code in _CLEAN):
            return ConnectionClosedOK(rcvd, sent, order)
        if rcvd is None and sent is None:
            return ConnectionLost(self._lost)
        return ConnectionClosedError(rcvd, sent, order)

    # -- the listener's callbacks ------------------------------------------------------------

    def _frame(self, kind: WSMsgType, fin: bool, payload: bytes) -> None:
        if self.sent is not None or self.error is not None:
            return  # closing: nothing after what closed it is applied (the rest of the read)
        if kind is WSMsgType.CONTINUATION:
            if not self._parts:
                self.close_now(CloseCode.PROTOCOL_ERROR, "continuation frame without a start")
                return
            self._parts.append(payload)
            self._parts_size += len(payload)
            if self._parts_size > self.max_size:
                self._parts = []
                self.close_now(CloseCode.MESSAGE_TOO_BIG, f"message over {self.max_size} bytes")
                return
            if not fin:
                return
            payload, text = b"".join(self._parts), self._parts_text
            self._parts, self._parts_size = [], 0
        elif self._parts:
            self.close_now(CloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one")
            return
        elif not fin:
            self._parts, self._parts_size, self._parts_text = [payload], len(payload), kind is WSMsgType.TEXT
            return
        else:
            text = kind is WSMsgType.TEXT
        message: str | bytes = payload
        if text:
            # A text frame must be UTF-8 (RFC 6455): one that is not ends the connection with
            # 1007, as websockets ends it. Taken as bytes, an all-ASCII frame needs no check.
            try:
                if self._decode or self._handler is None:
                    message = payload.decode()
                elif not payload.isascii():
                    payload.decode()
            except UnicodeDecodeError as exc:
                self.error = ValueError(
                    f"the stream sent a frame that is not UTF-8 ({exc.reason} at byte {exc.start})"
                )
                self.close_now(CloseCode.INVALID_DATA, "invalid UTF-8")
                return
        handler = self._handler
        if handler is None:
            self._waiting.put_nowait(message)
            return
        try:
            handler(message)
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            self.close_now(CloseCode.INTERNAL_ERROR, "")

    def _close_frame(self, code: int, reason: str) -> None:
        if not code:  # an empty close frame (picows says 0): no status, a clean close (RFC 6455)
            self.rcvd = Close(CloseCode.NO_STATUS_RCVD, "")
            code = CloseCode.NORMAL_CLOSURE  # the reply must carry a code one may send
        else:
            self.rcvd = Close(code, reason)
        if self.sent is None:
            self._rcvd_then_sent = True
            self.close_now(code, reason)  # the reply: the same code back, then the socket goes
        else:
            self._rcvd_then_sent = False  # the answer to ours
            if self.transport is not None:
                self.transport.disconnect()

    def _disconnected(self) -> None:
        now = time.monotonic()
        silent = now - self.heard
        if self.ping_sent is not None and now - self.ping_sent >= self.ping_timeout:
            self._lost = (
                f"nothing from the server for {silent:.1f} s, not even an answer to a ping"
                f" (ping_timeout {self.ping_timeout:g} s): the connection is dropped"
            )
        else:
            self._lost = "the connection was lost with no close frame"
        self._waiting.put_nowait(None)
        self._gone.set()


class _Listener(WSListener):
    """picows' callbacks, passed on to the connection."""

    def __init__(self, connection: StreamConnection) -> None:
        super().__init__()
        self.connection = connection

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        connection = self.connection
        connection.heard = time.monotonic()
        kind = frame.msg_type
        try:
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY or kind is WSMsgType.CONTINUATION:
                connection._frame(kind, frame.fin, frame.get_payload_as_bytes())
            elif kind is WSMsgType.CLOSE:
                reason = (frame.get_close_message() or b"").decode(errors="replace")
                connection._close_frame(int(frame.get_close_code()), reason)
        except BaseException as exc:  # the session raises it once the connection is gone
            if connection.error is None:
                connection.error = exc
            connection.close_now(CloseCode.INTERNAL_ERROR, "")

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        # picows' keepalive: a ping now waits for its answer (a connection dropped meanwhile
        # was dropped for want of one).
        self.connection.ping_sent = time.monotonic()
        transport.send_ping()

    def is_user_specific_pong(self, frame: Any) -> bool:
        # Called for a frame while a ping waits for its answer (picows keeps pongs from
        # on_ws_frame).
        if frame.msg_type is WSMsgType.PONG:
            self.connection.heard = time.monotonic()
            self.connection.ping_sent = None
            return True
        return False

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self.connection._abandoned:  # open() gave up on it (a timeout, a cancel)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.connection._disconnected()
