"""One TCP connection to DAS Trader Pro's CMD API, kept up by a thread of its own.

Why it is built this way:

* Orders are written on the caller's thread, the engine's (:meth:`DasLink.send`): a
  non-blocking ``send`` on a connected socket puts the line on the wire within microseconds,
  with no thread to wake (a sender thread must win the GIL back from a busy engine for
  every order; see docs/PERFORMANCE.md). What the kernel does not take at once is kept
  and written by the link's thread when the socket drains: the caller never blocks.
* The link's thread reads: it connects, logs in, hands every line to ``on_message``, calls
  ``on_tick`` a few times a second (re-pricing exits, dropping stale entries), and reconnects
  with backoff when the connection is lost.
* The password is written once per connection and never logged: any line read back that
  holds it (a platform echoing commands) is logged with it masked.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from momobot_das.config import DasConfig
from momobot_das.protocol import EOL, LoginReply, Message, ProtocolError, login_line, parse

log = logging.getLogger("momobot.das")

#: How often ``on_tick`` runs while connected (seconds).
TICK = 0.05
#: A connection up this long was good: the next reconnect starts again from a short wait.
STABLE = 10.0
#: The longest a line may be: past it the connection is not DAS (or is broken), and is dropped.
MAX_LINE = 64 * 1024


class LoginRefused(Exception):
    """DAS answered the login with something other than ``#LOGIN SUCCESSED``."""


class DasLink:
    """Connects, logs in, reads lines and writes orders; reconnects by itself until closed.

    ``state`` is ``connecting``, ``up`` (logged in), ``down`` (waiting to reconnect),
    ``refused`` (the first login was refused: it does not retry) or ``closed``.
    """

    def __init__(
        self,
        config: DasConfig,
        *,
        on_message: Callable[[Message], None],
        on_up: Callable[[], None] = lambda: None,
        on_down: Callable[[str], None] = lambda reason: None,
        on_tick: Callable[[], None] = lambda: None,
        on_refused: Callable[[str], None] = lambda answer: None,
        on_unreadable: Callable[[str, str, int], None] = lambda head, why, count: None,
    ) -> None:
        self.config = config
        self._on_message = on_message
        self._on_up = on_up
        self._on_down = on_down
        self._on_tick = on_tick
        self._on_refused = on_refused
        self._on_unreadable = on_unreadable
        #: A refused login ends the link only while this is True (start-up: the bot stops with the
        #: platform's answer). Once trading, a refusal is told and the link keeps trying.
        self.refusal_is_fatal = True
        self._drop: str | None = None  # the caller asked for a new connection (see drop)
        self.state = "connecting"
        self.last_error: str | None = None
        self.refused: str | None = None  # the platform's answer to a refused first login
        self.connected_at: float | None = None  # wall clock of the last login
        self.connects = 0
        self.lines_in = 0
        self.bad_lines = 0
        self.ever_up = False
        self._sock: socket.socket | None = None
        self._out = bytearray()  # what the kernel did not take yet
        self._wlock = threading.Lock()
        self._closed = threading.Event()
        self._first = threading.Event()  # the first login succeeded or was refused
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="momobot-das", daemon=True)

    # -- the caller's side ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wait_first_login(self, timeout: float) -> bool:
        """Wait (start-up only) until the first login succeeded or was refused."""
        return self._first.wait(timeout)

    @property
    def up(self) -> bool:
        return self.state == "up"

    def send(self, line: str) -> bool:
        """Write ``line`` now if the link is up (never blocks). False if it is not up."""
        data = line.encode("ascii")
        with self._wlock:
            sock = self._sock
            if sock is None or self.state != "up":
                return False
            if not self._out:
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self.last_error = f"write failed: {exc.strerror or exc}"
                    self._poke()
                    return False
                if sent == len(data):
                    return True
                data = data[sent:]
            self._out += data
        self._poke()  # the link's thread writes the rest when the socket drains
        return True

    def drop(self, reason: str) -> None:
        """Drop the connection and make a new one (the platform stopped answering)."""
        self._drop = reason
        self._poke()

    def close(self, timeout: float | None = None) -> None:
        self._closed.set()
        self._poke()
        if timeout is None:
            timeout = self.config.connect_timeout + 1.0  # a login under way ends by then
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("DAS: the link's thread did not stop within %g s", timeout)
            return  # it closes its socket when it stops; the wake pair stays for it
        self.state = "closed"
        with self._wlock:
            sock, self._sock = self._sock, None
        for closing in (sock, self._wake_r, self._wake_w):
            if closing is not None:
                with contextlib.suppress(OSError):
                    closing.close()

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def mask(self, text: str) -> str:
        """``text`` with the password masked, for logs: as written, and as ``repr`` writes it."""
        password = self.config.password
        if not password:
            return text
        for form in {password, repr(password)[1:-1], ascii(password)[1:-1]}:
            text = text.replace(form, "***")
        return text

    # -- the link's thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.1
        while not self._closed.is_set():
            self.state = "connecting"
            began = time.monotonic()
            try:
                self._session()
            except LoginRefused as exc:
                self.last_error = self.mask(f"login refused: {exc}")
                if self.refusal_is_fatal:
                    self.refused = self.mask(str(exc))
                    self.state = "refused"
                    self._first.set()
                    log.error("DAS at %s refused the login: %s", self.config.where, self.refused)
                    return
                self._lost(self.last_error)
                self._on_refused(self.mask(str(exc)))
            except (OSError, ProtocolError, UnicodeError) as exc:
                self._lost(self.mask(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__))
            except Exception as exc:  # a bug must not end the link: say so, reconnect
                log.exception("DAS: the link failed")
                self._lost(self.mask(f"{type(exc).__name__}: {exc}"))
            if self._closed.is_set():
                break
            if time.monotonic() - began > STABLE:
                delay = 0.1  # it was up a good while: reconnect at once; else keep backing off
            self.state = "down"
            self._idle(delay)  # upkeep goes on while down: entries expire, exits say they wait
            delay = min(delay * 2, self.config.reconnect_max_delay)
        self.state = "closed"

    def _idle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._closed.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self._closed.wait(min(TICK, left))
            self._tick()

    def _tick(self) -> None:
        try:
            self._on_tick()
        except Exception:  # a bug in the upkeep must not take the connection down
            log.exception("DAS: upkeep failed")

    def _lost(self, reason: str) -> None:
        was_up = self.state == "up"
        self.last_error = reason
        with self._wlock:
            self.state = "down"
            sock, self._sock = self._sock, None
            self._out.clear()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if was_up and not self._closed.is_set():
            self._on_down(reason)

    def _session(self) -> None:
        """One connection: connect, log in, then read until it is lost or the link is closed."""
        config = self.config
        sock = socket.create_connection((config.host, config.port), timeout=config.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(login_line(config.user, config.password, config.account).encode("ascii"))
            buffer = bytearray()
            reply = self._login_reply(sock, buffer)
            if not reply.ok:
                raise LoginRefused(reply.text or "no answer")
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._on_up()  # before any order can go on this connection: the lists that follow are new
        with self._wlock:
            self._sock = sock
            self._out.clear()
            self._drop = None
            self.state = "up"
        self.connects += 1
        self.ever_up = True
        self.connected_at = time.time()
        self.last_error = None
        self._first.set()
        log.info("DAS: logged in at %s as %s, account %s", config.where, config.user, config.account)
        self._read_loop(sock, buffer)

    def _login_reply(self, sock: socket.socket, buffer: bytearray) -> LoginReply:
        deadline = time.monotonic() + self.config.connect_timeout
        while True:
            while b"\n" in buffer:
                raw, _, rest = bytes(buffer).partition(b"\n")
                buffer[:] = rest
                message = parse(raw.decode("ascii", "replace"))
                if type(message) is LoginReply:
                    return message
                log.debug("DAS before login: %s", self.mask(raw.decode("ascii", "replace").strip()))
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError(f"no answer to LOGIN within {self.config.connect_timeout:g} s")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("the platform closed the connection without answering LOGIN")
            buffer += chunk
            if len(buffer) > MAX_LINE:
                raise ProtocolError("no line end in the first 64 KiB: is this DAS's CMD API port?")

    def _read_loop(self, sock: socket.socket, buffer: bytearray) -> None:
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        writing = False
        next_tick = time.monotonic() + TICK
        try:
            self._lines(buffer)
            while not self._closed.is_set():
                with self._wlock:
                    want_write = bool(self._out)
                if want_write != writing:
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                    selector.modify(sock, events)
                    writing = want_write
                for key, mask in selector.select(max(0.0, next_tick - time.monotonic())):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self._flush(sock)
                    if mask & selectors.EVENT_READ:
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise OSError("DAS closed the connection")
                        buffer += chunk
                        self._lines(buffer)
                if self.last_error is not None and self.state == "up":
                    raise OSError(self.last_error)  # a write on the caller's thread failed
                if self._drop is not None:
                    raise OSError(self._drop)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK
                    self._tick()
        except (OSError, ProtocolError) as exc:
            self._lost(self.mask(getattr(exc, "strerror", None) or str(exc)))  # closes the socket
            return
        finally:
            selector.close()
        self._lost("closed")

    def _flush(self, sock: socket.socket) -> None:
        with self._wlock:
            if self._out:
                try:
                    sent = sock.send(self._out)
                except BlockingIOError:
                    return
                del self._out[:sent]

    def _lines(self, buffer: bytearray) -> None:
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_LINE:
                    raise ProtocolError("a line longer than 64 KiB: the connection is dropped")
                return
            raw = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[: end + 1]
            text = raw.decode("ascii", "replace")
            self.lines_in += 1
            try:
                message = parse(text)
            except ProtocolError as exc:
                self.bad_lines += 1
                log.warning("DAS: a line was not understood (%s), skipped: %s", exc, self.mask(text)[:200])
                self._on_unreadable(text.split(" ", 1)[0], str(exc), self.bad_lines)
                continue
            try:
                self._on_message(message)
            except Exception:  # one line must not take the link down
                log.exception("DAS: handling %r failed", self.mask(text))


__all__ = ["EOL", "DasLink", "LoginRefused"]
