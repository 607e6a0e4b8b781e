"""One WebSocket connection over a non-blocking socket, framed by websockets' Sans-I/O protocol.

The trading path writes a command with :meth:`Wire.send_text`: framing plus
one non-blocking ``send``, which never waits. Whatever the kernel did not
take stays in :attr:`Wire.outbox` for the link's thread to finish; a command
is never framed twice, so once any byte of it is written it is never written
again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import time

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import WebSocketURI

try:  # the library's C mask where it was built, as its own frames use
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without its C extension
    from websockets.utils import apply_mask

_RECV_SIZE = 65536
_MASKS_DRAWN = 1024  # client masks drawn from the OS at a time (4 bytes each)
CLOSE_WAIT = 0.5  # how long a clean close waits for the server's close frame


class Broken(Exception):
    """The connection is unusable; the message says why."""


class Wire:
    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol
        self.outbox = b""  # bytes already framed, not yet taken by the kernel
        self.answers: list[str] = []  # text frames from the server (the JSON format's answers)
        self._ping_payload = b""
        self._masks = b""
        self._mask_at = 0

    @classmethod
    def connect(
        cls, uri: WebSocketURI, *, token: str | None, ssl_context: ssl.SSLContext | None, open_timeout: float
    ) -> Wire:
        """TCP (and TLS), then the WebSocket handshake; blocking, bounded by ``open_timeout``."""
        deadline = time.monotonic() + open_timeout
        assert uri.port is not None
        sock = socket.create_connection((uri.host, uri.port), timeout=open_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if uri.secure:
                context = ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=uri.host)
            protocol = ClientProtocol(uri, max_size=2**16)
            request = protocol.connect()
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
            request.headers["User-Agent"] = "momobot-hotkey-ws"
            protocol.send_request(request)
            sock.sendall(b"".join(protocol.data_to_send()))
            while _state(protocol) is State.CONNECTING:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = sock.recv(_RECV_SIZE)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                for event in protocol.events_received():
                    if isinstance(event, Response) and protocol.handshake_exc is not None:
                        raise protocol.handshake_exc
                if protocol.handshake_exc is not None:
                    raise protocol.handshake_exc
                if _state(protocol) is State.CLOSED:
                    raise ConnectionError("server closed the connection during the handshake")
            sock.settimeout(None)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return cls(sock, protocol)

    # -- writing -------------------------------------------------------------------

    def send_text(self, payload: str) -> bool:
        """Frame one command and write what the kernel takes now. True if all of it left."""
        protocol = self.protocol
        if (
            protocol.state is State.OPEN
            and not protocol.extensions
            and not protocol.expect_continuation_frame
        ):
            data = self._frame_text(payload.encode())
        else:
            protocol.send_text(payload.encode())  # raises what the protocol's rules say
            data = b"".join(protocol.data_to_send())
        self.outbox = data[self._send_some(data) :]
        return not self.outbox

    def _frame_text(self, data: bytes) -> bytes:
        """One whole text frame, masked as a client's must be (RFC 6455 5.3), without the
        protocol's frame objects: a few microseconds less on the path of every command. Its
        masks come from the OS's random source as the protocol's do, drawn 1,024 at a
        time; a connection with an extension (none is offered) frames through the protocol."""
        if self._mask_at >= len(self._masks):
            self._masks, self._mask_at = os.urandom(4 * _MASKS_DRAWN), 0
        mask = self._masks[self._mask_at : self._mask_at + 4]
        self._mask_at += 4
        length = len(data)
        if length < 126:
            head = struct.pack("!BB", 0x81, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        return head + mask + apply_mask(data, mask)

    def flush(self) -> bool:
        """Write more of the outbox. True once it is empty."""
        if self.outbox:
            self.outbox = self.outbox[self._send_some(self.outbox) :]
        return not self.outbox

    def send_ping(self) -> None:
        self._ping_payload = os.urandom(4)
        self.protocol.send_ping(self._ping_payload)
        self.write_control()

    def write_control(self) -> None:
        """Pongs, pings and close replies; queued behind a command still in the outbox."""
        data = b"".join(self.protocol.data_to_send())
        if data:
            if self.outbox:
                self.outbox += data
            else:
                self.outbox = data[self._send_some(data) :]

    def _send_some(self, data: bytes) -> int:
        try:
            return self.sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            raise Broken(f"send failed: {exc.strerror or exc}") from None

    # -- reading -------------------------------------------------------------------

    def read(self) -> bool:
        """Read what the socket has and answer pings. True if it held the pong to our last ping."""
        protocol, sock = self.protocol, self.sock
        while True:
            try:
                data = sock.recv(_RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as exc:
                raise Broken(f"receive failed: {exc.strerror or exc}") from None
            if not data:
                protocol.receive_eof()
                raise Broken("the server closed the connection")
            protocol.receive_data(data)
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                break
        ponged = False
        for event in protocol.events_received():
            if not isinstance(event, Frame):
                continue
            if event.opcode is Opcode.PONG:
                ponged = ponged or (bool(self._ping_payload) and event.data == self._ping_payload)
            elif event.opcode is Opcode.TEXT and len(self.answers) < 1000:
                self.answers.append(bytes(event.data).decode("utf-8", "replace"))
        self.write_control()
        if _state(protocol) in (State.CLOSED, State.CLOSING):
            code = protocol.close_rcvd.code if protocol.close_rcvd else None
            raise Broken(f"the server closed the connection (code {code})")
        return ponged

    # -- closing -------------------------------------------------------------------

    def abort(self) -> None:
        """Drop the connection at once with a TCP reset: no closing handshake with a hung server."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close_cleanly(self) -> None:
        protocol, sock = self.protocol, self.sock
        try:
            if protocol.state is State.OPEN:
                protocol.send_close()
            sock.setblocking(True)
            sock.settimeout(CLOSE_WAIT)
            for data in protocol.data_to_send():
                if data:
                    sock.sendall(data)
            deadline = time.monotonic() + CLOSE_WAIT
            while protocol.state is not State.CLOSED and time.monotonic() < deadline:
                data = sock.recv(_RECV_SIZE)
                if not data:
                    break
                protocol.receive_data(data)
                for data in protocol.data_to_send():
                    if data:
                        sock.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()


def _state(protocol: ClientProtocol) -> State:
    # A function, so type checkers do not narrow the state across protocol calls.
    return protocol.state
