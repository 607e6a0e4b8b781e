"""The wire: one persistent WebSocket connection to one hotkey server.

Why it is built this way (figures in ``shared/MEASUREMENTS.md`` and ``docs/PERFORMANCE.md``):

* A new connection per command costs a TCP and WebSocket handshake each time,
  8x the latency of a persistent link. So: one connection, kept open.
* A sender on another thread must win the GIL back from a busy engine for
  every command, and falls hundreds of milliseconds behind under load. So the
  engine's own thread writes a command to the socket itself when the link is
  up and idle: framing (websockets' Sans-I/O protocol) plus one non-blocking
  ``send``, which never blocks. Called on a plain thread (a replay), the hook
  writes inline; called on a running event loop (``momobot serve``), it
  schedules the write with ``call_soon`` on that loop, so the write happens on
  the same thread right after the current callback and the hook itself makes
  no system call.
* The engine's thread never wakes the I/O thread from a hook call: the woken
  thread would take the GIL in the middle of the hook. The I/O thread polls
  every few milliseconds instead (well under the sequence delay).
* Everything that may wait (connecting, reconnecting with backoff, keepalive
  pings, the delay between the commands of a sequence, a socket buffer that
  is full) is done by a background I/O thread, which needs the GIL only when
  something is due.

Guarantees:

* Order: batches (an event's commands) leave in submission order, and the
  commands of a batch go out contiguously, ``sequence_delay`` apart, with
  nothing interleaved.
* At most once: a command is framed only when the previous one has fully left
  for the kernel; once any byte of it is written it is never written again.
  If the connection drops with it half-written, it is reported and the rest
  of its batch is skipped.
* Never stale: a command not written within ``ttl`` seconds of its event
  (wall clock, from when the hook fired) is dropped and logged, never sent
  late after a reconnect. The queue is bounded.
* Loud: every send, failure, drop, skip, connect and disconnect is logged
  with the ``[Hotkey]`` prefix. Log records are handed to the I/O thread, so
  the engine's thread never waits on a log handler.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
from websockets.client import ClientProtocol, backoff, process_exception
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from hotkey_ws.config import HotkeyConfig

log = logging.getLogger("momobot.hotkey")

_RECV_SIZE = 65536
_CLOSE_WAIT = 0.5  # how long to wait for the server's close frame at shutdown


@attrs.define(eq=False)
class Batch:
    """One event's commands, sent in order ``gap`` seconds apart."""

    names: tuple[str, ...]           # the commands, for logs
    payloads: tuple[str, ...]        # what goes on the wire (the name, or JSON)
    fired_at: float                  # time.monotonic() when the hook fired
    gap: float = 0.0
    done: Callable[[bool], None] | None = None
    sent: int = 0                    # how many commands have left
    next_due: float = 0.0            # when the next command may go (monotonic)
    receipts: list[float] = attrs.field(factory=list)  # monotonic time each command left
    label: str = ""                  # the event, for people (demo table)

    def finish(self, ok: bool) -> None:
        if self.done is not None:
            done, self.done = self.done, None
            try:
                done(ok)
            except Exception:  # a caller's callback must not break the link
                log.exception("[Hotkey] completion callback failed")


class _Broken(Exception):
    """The connection is unusable; the message says why."""


def _reconnect_delays(max_delay: float) -> Iterator[float]:
    # The library's backoff generator, tuned for a trading desk: the first retry
    # comes within 0.1 s and the wait never exceeds max_delay (default 2 s, the TTL).
    return backoff(initial_delay=0.1, min_delay=0.1, max_delay=max_delay, factor=2.0)


class HotkeyLink:
    """A persistent, self-healing connection to one hotkey server.

    :meth:`submit` may be called from any thread and never blocks.
    """

    def __init__(self, url: str, config: HotkeyConfig, *, ssl_context: ssl.SSLContext | None = None,
                 label: str = "") -> None:
        self.url = url
        self.settings = config
        self.ssl_context = ssl_context
        self.label = label                 # appended to log lines when there are several servers
        self.uri = parse_uri(url)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)   # notified when the queue drains
        self._queue: collections.deque[Batch] = collections.deque()
        self._sock: socket.socket | None = None
        self._protocol: ClientProtocol | None = None
        self._open = False
        self._outbox = b""                 # bytes of the current command not yet written
        self._outbox_owner: Batch | None = None
        self._broken_reason: str | None = None
        self._flush_scheduled = False
        self._flushing = False             # someone waits in flush(): notify when drained
        self._notes: collections.deque[tuple[int, str, tuple[Any, ...]]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        # How often the I/O thread looks for work the engine's thread left it (it is never
        # woken from a hook call): well under the sequence delay, so no command is late.
        self._poll = min(0.05, max(config.sequence_delay / 2, 0.002))
        self._thread: threading.Thread | None = None
        self.connected_once = threading.Event()
        self.stats = collections.Counter[str]()
        self._sent_seq = 0
        # Commands written but not yet confirmed by a pong (bounded: only for the warning).
        self._unconfirmed: collections.deque[tuple[int, str]] = collections.deque(maxlen=100)
        self.last_rtt: float | None = None

    # -- public ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"hotkey-{self.url}",
                                            daemon=True)
            self._thread.start()

    @property
    def is_open(self) -> bool:
        return self._open

    def submit(self, batch: Batch) -> bool:
        """Queue a batch; send its first command right now if the link is up and idle.

        Returns False (and logs why) when the batch is refused: link stopped, or queue full.
        """
        with self._lock:
            if self._stopping:
                self._note(logging.ERROR, "[Hotkey] Failed to send %s: hotkey link is shut down%s",
                           _names(batch.names), self.label)
                self._wake()
                batch.finish(False)
                return False
            if len(self._queue) >= self.settings.queue_size:
                self.stats["refused"] += 1
                self._note(logging.ERROR, "[Hotkey] Failed to send %s: %d commands already waiting%s;"
                           " queue full", _names(batch.names), len(self._queue), self.label)
                self._wake()
                batch.finish(False)
                return False
            self._queue.append(batch)
            if self._open and not self._outbox and len(self._queue) == 1:
                loop = asyncio._get_running_loop()
                if loop is None:
                    self._pump(time.monotonic())   # a plain thread: write it now
                elif not self._flush_scheduled:
                    # On an event loop (momobot serve): write it on this same thread as soon
                    # as the current callback returns, so the hook call does no system call.
                    self._flush_scheduled = True
                    loop.call_soon(self._flush_on_loop)
            if self._outbox:
                self._wake()   # the I/O thread must watch for the socket to drain
        # No wake-up otherwise: waking the I/O thread here would hand it the GIL in the
        # middle of the hook call. It polls every few milliseconds for what is left
        # (a sequence's next command, log lines, expired commands).
        return True

    def _flush_on_loop(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            self._pump(time.monotonic())
            if self._outbox:
                self._wake()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued command has left (or been dropped), at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._idle:
            self._flushing = True
            try:
                while self._queue or self._outbox:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._idle.wait(min(remaining, 0.05))
            finally:
                self._flushing = False
        return True

    def close(self, flush_timeout: float = 2.0) -> None:
        """Flush within ``flush_timeout``, drop (and log) what is left, close cleanly."""
        if self._thread is not None:
            self.flush(flush_timeout)
        with self._lock:
            self._stopping = True
            while self._queue:
                batch = self._queue.popleft()
                if batch is self._outbox_owner:
                    continue
                self._drop(batch, "not sent before shutdown")
            self._wake()
        if self._thread is not None:
            self._thread.join(timeout=flush_timeout + _CLOSE_WAIT + 1.0)
        self._emit_notes()
        self._wake_r.close()
        self._wake_w.close()

    # -- engine-side helpers (called with the lock held) ---------------------------

    def _note(self, level: int, message: str, *args: Any) -> None:
        self._notes.append((level, message, args))

    def _wake(self) -> None:
        # BlockingIOError: a wake-up is already pending; OSError: closing. Either way it will look.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _pump(self, now: float) -> None:
        """Send whatever is due, in order. Lock held. Never blocks."""
        queue = self._queue
        while queue and self._open and not self._outbox:
            batch = queue[0]
            if now - batch.fired_at > self.settings.ttl:
                queue.popleft()
                self._drop(batch, f"not sent within {self.settings.ttl:g} s of its event"
                                  f" ({'connection down' if not self._open else 'link busy'})")
                continue
            if batch.sent and now < batch.next_due:
                return
            payload = batch.payloads[batch.sent]
            try:
                self._write_frame(payload, batch)
            except _Broken as exc:
                self._break(str(exc))
                return
            if not self._outbox:
                self._command_left(batch, now)

    def _write_frame(self, payload: str, batch: Batch) -> None:
        protocol, sock = self._protocol, self._sock
        assert protocol is not None and sock is not None
        protocol.send_text(payload.encode())
        data = b"".join(protocol.data_to_send())
        written = self._send_some(sock, data)
        if written < len(data):
            self._outbox = data[written:]
            self._outbox_owner = batch

    @staticmethod
    def _send_some(sock: socket.socket, data: bytes) -> int:
        try:
            return sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            raise _Broken(f"send failed: {exc.strerror or exc}") from None

    def _command_left(self, batch: Batch, now: float) -> None:
        """The current command of ``batch`` has fully left for the kernel."""
        name = batch.names[batch.sent]
        batch.sent += 1
        batch.receipts.append(now)
        batch.next_due = now + batch.gap
        self.stats["sent"] += 1
        self._sent_seq += 1
        self._unconfirmed.append((self._sent_seq, name))
        self._note(logging.INFO, "[Hotkey] Sent: %s%s", name, self.label)
        if batch.sent == len(batch.names):
            self._queue.popleft()
            if batch.done is not None:
                batch.finish(True)
            if self._flushing and not self._queue:
                self._idle.notify_all()

    def _drop(self, batch: Batch, why: str) -> None:
        unsent = batch.names[batch.sent:]
        self.stats["dropped"] += len(unsent)
        if batch.sent:
            self._note(logging.ERROR, "[Hotkey] Failed to send %s: %s; %s already sent%s",
                       _names(unsent), why, _names(batch.names[:batch.sent]), self.label)
        else:
            self._note(logging.ERROR, "[Hotkey] Failed to send %s: %s%s", _names(unsent), why,
                       self.label)
        batch.finish(False)
        if self._flushing and not self._queue:
            self._idle.notify_all()

    def _break(self, reason: str) -> None:
        """Mark the connection unusable; the I/O thread reconnects. Lock held."""
        if self._broken_reason is None:
            self._broken_reason = reason
        self._open = False
        owner = self._outbox_owner
        self._outbox = b""
        self._outbox_owner = None
        if owner is not None:
            # Part of this command may have reached the server: never send it again.
            if self._queue and self._queue[0] is owner:
                self._queue.popleft()
            name = owner.names[owner.sent]
            skipped = owner.names[owner.sent + 1:]
            self.stats["failed"] += 1
            self.stats["dropped"] += len(skipped)
            self._note(logging.ERROR, "[Hotkey] Failed to send %s: %s; it may have partly reached"
                       " the server and is not sent again%s%s", _names((name,)), reason,
                       f"; skipped {_names(skipped)}" if skipped else "", self.label)
            owner.finish(False)
        self._wake()

    # -- the I/O thread ------------------------------------------------------------

    def _emit_notes(self) -> None:
        while self._notes:
            try:
                level, message, args = self._notes.popleft()
            except IndexError:
                return
            log.log(level, message, *args)

    def _run(self) -> None:
        delays: Iterator[float] | None = None
        failures = 0
        while not self._stopping:
            try:
                sock, protocol = self._connect()
            except Exception as exc:
                fatal = process_exception(exc)
                failures += 1
                if delays is None:
                    delays = _reconnect_delays(self.settings.reconnect_max_delay)
                delay = next(delays)
                # The first failure and then one in twenty, so a long outage is visible, not noisy.
                if failures == 1 or failures % 20 == 0:
                    log.warning("[Hotkey] Cannot connect to %s: %s%s; retrying every %.1f s at most",
                                self.url, _describe(exc),
                                " (will keep trying; check the server's settings)" if fatal else "",
                                self.settings.reconnect_max_delay)
                self._idle_wait(delay)
                continue
            if failures:
                log.info("[Hotkey] Connected to %s after %d failed attempt(s)", self.url,
                         failures)
            else:
                log.info("[Hotkey] Connected to %s", self.url)
            delays, failures = None, 0
            self.connected_once.set()
            self._serve(sock, protocol)
        self._emit_notes()

    def _idle_wait(self, seconds: float) -> None:
        """Sleep while disconnected, dropping commands whose TTL runs out meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            now = time.monotonic()
            with self._lock:
                self._expire(now)
                next_expiry = min((b.fired_at + self.settings.ttl for b in self._queue), default=deadline)
            self._emit_notes()
            timeout = min(deadline, next_expiry) - now
            if now >= deadline:
                return
            self._wait_wake(min(max(timeout, 0.001), self._poll))

    def _expire(self, now: float) -> None:
        while self._queue and now - self._queue[0].fired_at > self.settings.ttl:
            batch = self._queue.popleft()
            self._drop(batch, f"not sent within {self.settings.ttl:g} s of its event (connection down)")
        # Batches behind the head expire by the same rule when they reach the head.

    def _wait_wake(self, timeout: float) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            if sel.select(timeout):
                self._drain_wake()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _connect(self) -> tuple[socket.socket, ClientProtocol]:
        """Open TCP (and TLS), do the WebSocket handshake. Blocking, bounded by open_timeout."""
        settings = self.settings
        deadline = time.monotonic() + settings.open_timeout
        assert self.uri.port is not None
        sock = socket.create_connection((self.uri.host, self.uri.port), timeout=settings.open_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.uri.secure:
                context = self.ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self.uri.host)
            protocol = ClientProtocol(self.uri, max_size=2**16)
            request = protocol.connect()
            if settings.token:
                request.headers["Authorization"] = f"Bearer {settings.token}"
            request.headers["User-Agent"] = "momobot-hotkey-ws"
            protocol.send_request(request)
            sock.sendall(b"".join(protocol.data_to_send()))
            while protocol.state is State.CONNECTING:
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
        return sock, protocol

    def _serve(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        settings = self.settings
        if not self._publish(sock, protocol):   # connected just as the link was closed
            sock.close()
            return
        next_ping = time.monotonic() + settings.ping_interval
        ping_deadline: float | None = None
        ping_payload = b""
        ping_sent_at = 0.0
        ping_covers = 0     # the pong confirms every command written before its ping
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        sel.register(sock, selectors.EVENT_READ)
        watching_write = False
        reason = "stopped"
        try:
            while True:
                now = time.monotonic()
                with self._lock:
                    if self._broken_reason is not None:
                        reason = self._broken_reason
                        break
                    if self._stopping:
                        reason = "stopped"
                        break
                    self._pump(now)
                    want_write = bool(self._outbox)
                    timeout = next_ping - now
                    if ping_deadline is not None:
                        timeout = min(timeout, ping_deadline - now)
                    if self._queue:
                        head = self._queue[0]
                        timeout = min(timeout, head.fired_at + settings.ttl - now)
                        if head.sent:
                            timeout = min(timeout, head.next_due - now)
                self._emit_notes()
                if want_write != watching_write:
                    sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0))
                    watching_write = want_write
                ready = sel.select(min(max(timeout, 0.0005), self._poll))
                now = time.monotonic()
                for key, mask in ready:
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                        continue
                    with self._lock:
                        try:
                            if mask & selectors.EVENT_READ:
                                for frame in self._read(sock, protocol):
                                    if frame.opcode is Opcode.PONG and frame.data == ping_payload:
                                        self.last_rtt = now - ping_sent_at
                                        ping_deadline = None
                                        unconfirmed = self._unconfirmed
                                        while unconfirmed and unconfirmed[0][0] <= ping_covers:
                                            unconfirmed.popleft()
                            if mask & selectors.EVENT_WRITE and self._outbox:
                                self._flush_outbox(sock, protocol, now)
                        except _Broken as exc:
                            self._break(str(exc))
                if ping_deadline is not None and now > ping_deadline:
                    with self._lock:
                        self._break(f"no answer to a keepalive ping within {settings.ping_timeout:g} s")
                elif ping_deadline is None and now >= next_ping:
                    # The pong also confirms every command written before the ping (TCP
                    # keeps order): the server has read them.
                    with self._lock:
                        if self._open:
                            ping_covers = self._sent_seq
                            ping_payload = os.urandom(4)
                            ping_sent_at = now
                            protocol.send_ping(ping_payload)
                            if not self._outbox:
                                try:
                                    self._write_control(sock, protocol)
                                except _Broken as exc:
                                    self._break(str(exc))
                            ping_deadline = now + settings.ping_timeout
                    next_ping = now + settings.ping_interval
        finally:
            sel.close()
            with self._lock:
                self._open = False
                if self._broken_reason is None and reason == "stopped":
                    self._broken_reason = reason
                self._break(reason)
                self._sock, self._protocol = None, None
            if reason == "stopped":
                self._close_cleanly(sock, protocol)
            else:
                log.warning("[Hotkey] Connection to %s lost: %s; reconnecting", self.url, reason)
                sock.close()
            with self._lock:
                lost = tuple(name for _, name in self._unconfirmed)
                self._unconfirmed.clear()
            if lost and reason != "stopped":
                log.warning("[Hotkey] The server never confirmed %s before the connection was lost:"
                            " check your trading platform (these are not sent again)", _names(lost))
            self._emit_notes()

    def _publish(self, sock: socket.socket, protocol: ClientProtocol) -> bool:
        """Make a fresh connection the one commands go to, and send what waited for it."""
        with self._lock:
            if self._stopping:
                return False
            self._sock, self._protocol = sock, protocol
            self._broken_reason = None
            self._open = True
            self._pump(time.monotonic())
        return True

    def _read(self, sock: socket.socket, protocol: ClientProtocol) -> list[Frame]:
        """Read what the socket has, feed the protocol, answer pings. Lock held."""
        frames: list[Frame] = []
        while True:
            try:
                data = sock.recv(_RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as exc:
                raise _Broken(f"receive failed: {exc.strerror or exc}") from None
            if not data:
                protocol.receive_eof()
                raise _Broken("the server closed the connection")
            protocol.receive_data(data)
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                break
        for event in protocol.events_received():
            if isinstance(event, Frame):
                frames.append(event)
        if not self._outbox:
            self._write_control(sock, protocol)   # pongs and close replies
        if protocol.state is State.CLOSED or protocol.state is State.CLOSING:
            code = protocol.close_rcvd.code if protocol.close_rcvd else None
            raise _Broken(f"the server closed the connection (code {code})")
        return frames

    def _write_control(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        data = b"".join(protocol.data_to_send())
        if data:
            written = self._send_some(sock, data)
            if written < len(data):
                # Rare: a control frame that did not fit. It goes out before the next command.
                self._outbox = data[written:]

    def _flush_outbox(self, sock: socket.socket, protocol: ClientProtocol, now: float) -> None:
        written = self._send_some(sock, self._outbox)
        self._outbox = self._outbox[written:]
        if self._outbox:
            return
        if self._outbox_owner is not None:
            batch, self._outbox_owner = self._outbox_owner, None
            self._command_left(batch, now)
        self._write_control(sock, protocol)   # a ping queued while the command was stuck

    def _close_cleanly(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        try:
            if protocol.state is State.OPEN:
                protocol.send_close()
            sock.setblocking(True)
            sock.settimeout(_CLOSE_WAIT)
            for data in protocol.data_to_send():
                if data:
                    sock.sendall(data)
            deadline = time.monotonic() + _CLOSE_WAIT
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


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" if len(n) <= 40 else f"'{n[:37]}...'" for n in names)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the hotkey server running?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
