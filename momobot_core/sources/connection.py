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
connection with 1009. A server that stops answering is found by pings: picows waits
``ping_interval`` seconds, pings whatever else came meanwhile, and drops the connection if no
answer comes within ``ping_timeout``; then again (a ping every ``ping_interval`` +
``ping_timeout`` seconds). A server that sends bytes, or pings of its own, but never answers
ours is found too. A close frame or a bad frame that comes with the server's answer to the
upgrade is answered at once; the vendor's handshake reads what came before it, then the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

from picows import WSAutoPingStrategy, WSListener, WSMsgType, WSProtocolError, WSTransport, ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close, CloseCode

__all__ = ["ConnectionLost", "StreamConnection"]

#: The close codes of a connection that ended as it should (websockets' ConnectionClosedOK).
_CLEAN = (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD)


def _sendable(code: int) -> bool:
    """A close code one may put on the wire (RFC 6455 7.4): not 1004, 1005, 1006 or 1015, none
    under 1000 or over 4999."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


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
        self._parts = bytearray()  # a fragmented message so far (one buffer: no object a part)
        self._parts_text = False
        self._in_parts = False
        self._gone = asyncio.Event()
        self._lost = "the connection was lost with no close frame"
        self._lost_to_pings = False
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
        comes (it would ping on, unheld, and count against a vendor's limit of connections).
        A connection that ends with the upgrade's answer (a close frame, a frame that broke the
        rules) is answered at once; the handshake's :meth:`recv` reads what came before the end,
        then raises it."""
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose a cancel that comes as
            # the wait ends (the source then outlives serve's shutdown, reconnecting on).
            async with asyncio.timeout(timeout):
                transport, listener = await ws_connect(
                    lambda: _Listener(self),
                    url,
                    websocket_handshake_timeout=timeout,
                    enable_auto_ping=True,
                    auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
                    enable_auto_pong=False,  # _Listener answers: a server's ping counts as heard
                    auto_ping_idle_timeout=self.ping_interval,
                    auto_ping_reply_timeout=self.ping_timeout,
                    max_frame_size=self.max_size,
                    logger_name=self.logger,
                    proxy=None,
                )
        except TimeoutError as exc:
            self._abandoned = True
            if str(exc):
                raise
            raise TimeoutError(f"no answer to the upgrade within {timeout:g} s") from None
        except BaseException:
            self._abandoned = True
            raise
        # picows returns a transport already gone, and no listener (None), when the server closed
        # the socket before answering the upgrade.
        if not isinstance(listener, _Listener):
            self._abandoned = True
            transport.disconnect()
            raise ConnectionError("the server closed the connection before answering the upgrade")
        self.transport = transport

    # -- what a vendor's handshake calls (as websockets' ClientConnection) ----------------------

    async def send(self, message: str) -> None:
        transport = self.transport
        if transport is None or self._gone.is_set() or self._ending():
            if self._waiting.qsize() > self._gone.is_set():  # messages before the end's None
                return  # it cannot go; the vendor's next recv reads what came first, then the end
            await self._ended()
        transport.send(WSMsgType.TEXT, message.encode())

    async def recv(self) -> str | bytes:
        """The next message: a ``str`` for a text frame, ``bytes`` for a binary one. Raises
        ConnectionClosed once the connection has ended."""
        message = await self._waiting.get()
        if message is None:
            self._waiting.put_nowait(None)  # and for every later call
            await self._ended()
        return message

    def _ending(self) -> bool:
        """A close frame went or came, or a frame broke the rules: the connection is ending."""
        return self.sent is not None or self.rcvd is not None or self.error is not None

    async def _ended(self) -> NoReturn:
        """Raise what ended the connection, once it is gone: the frame that broke the rules (a
        text frame not UTF-8: ValueError), else the close frames as websockets says them (picows'
        own close for a frame it refused taken in first)."""
        if self.transport is not None:
            if not self._gone.is_set():
                self.transport.disconnect()
            await self._settle()
        if self.error is not None:
            raise self.error
        raise self.closed()

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
        if self._lost_to_pings:  # whatever close the server sent in answer to picows' own
            return ConnectionLost(self._lost)
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
            if not self._in_parts:
                self.close_now(CloseCode.PROTOCOL_ERROR, "continuation frame without a start")
                return
            if len(self._parts) + len(payload) > self.max_size:
                self._parts, self._in_parts = bytearray(), False
                self.close_now(CloseCode.MESSAGE_TOO_BIG, f"message over {self.max_size} bytes")
                return
            self._parts += payload
            if not fin:
                return
            payload, text = bytes(self._parts), self._parts_text
            self._parts, self._in_parts = bytearray(), False
        elif self._in_parts:
            self.close_now(CloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one")
            return
        elif not fin:
            self._parts, self._in_parts, self._parts_text = bytearray(payload), True, kind is WSMsgType.TEXT
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

    def _close_frame(self, code: int, reason: str, size: int) -> None:
        if not size:  # an empty close frame: no status, a clean close (RFC 6455)
            self.rcvd = Close(CloseCode.NO_STATUS_RCVD, "")
            code = CloseCode.NORMAL_CLOSURE  # the reply must carry a code one may send
        elif not _sendable(code):  # 1006, 5000, 0...: a code no server may send
            self.rcvd = Close(code, reason)
            self.close_now(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
            return
        else:
            self.rcvd = Close(code, reason)
        transport = self.transport
        if self.sent is None and transport is not None and transport.is_close_frame_sent:
            # The answer to a close picows sent itself (a ping unanswered, a frame it refused):
            # what ended the connection is that, said by _disconnected and _settle.
            self._rcvd_then_sent = False
            transport.disconnect()
        elif self.sent is None:
            self._rcvd_then_sent = True
            self.close_now(code, reason)  # the reply: the same code back, then the socket goes
        else:
            self._rcvd_then_sent = False  # the answer to ours
            if transport is not None:
                transport.disconnect()

    def _disconnected(self) -> None:
        now = time.monotonic()
        silent = now - self.heard
        if self.ping_sent is not None and now - self.ping_sent >= self.ping_timeout:
            # picows closed it for the ping (a close the server may have answered): said as such
            self._lost_to_pings = self.sent is None
            if silent >= self.ping_timeout:
                self._lost = (
                    f"nothing from the server for {silent:.1f} s, not even an answer to a ping"
                    f" (ping_timeout {self.ping_timeout:g} s): the connection is dropped"
                )
            else:
                self._lost = (
                    f"no answer to a ping within {self.ping_timeout:g} s (ping_timeout), though"
                    " the server still sent frames: the connection is dropped"
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
            if frame.rsv1 or frame.rsv2 or frame.rsv3:
                # No extension is asked for, so none may set these bits (RFC 6455 5.2).
                if connection.sent is None and connection.error is None:
                    connection.close_now(CloseCode.PROTOCOL_ERROR, "reserved bits set")
            elif kind is WSMsgType.TEXT or kind is WSMsgType.BINARY or kind is WSMsgType.CONTINUATION:
                connection._frame(kind, frame.fin, frame.get_payload_as_bytes())
            elif kind is WSMsgType.PING:  # answered here, not by picows: it is heard too
                transport.send_pong(frame.get_payload_as_bytes())
            elif kind is WSMsgType.CLOSE:
                reason = (frame.get_close_message() or b"").decode(errors="replace")
                connection._close_frame(int(frame.get_close_code()), reason, frame.payload_size)
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
        else:
            # Frames that came with the upgrade's answer reach on_ws_frame before open() has
            # the transport: a close among them is answered, a bad frame closed for, as later.
            self.connection.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.connection._disconnected()
