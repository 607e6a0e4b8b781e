"""The link: one persistent connection to one hotkey server, kept up and kept honest.

Why it is built this way (figures in ``docs/PERFORMANCE.md``):

* A new connection per command costs a TCP and WebSocket handshake each time,
  8x the latency of a persistent link. So: one connection, kept open.
* A sender on another thread must win the GIL back from a busy engine for
  every command, and falls hundreds of milliseconds behind under load. So the
  engine's own thread writes a command itself when the link is up and idle
  (:class:`~hotkey_ws.wire.Wire`: framing plus one non-blocking ``send``),
  inside the hook, on a plain thread and on an event loop alike. (A write put
  off with ``call_soon`` waited for the rest of the loop's callback: the other
  hooks, the event's mark, the rest of a feed's frame; docs/PERFORMANCE.md.)
* The engine's thread never wakes the I/O thread from a healthy hook call: the
  woken thread would take the GIL in the middle of the hook. The I/O thread
  polls every few milliseconds instead (well under the sequence delay).

The wire rules (each one has a test):

* A sequence starts only on a connection that has proved it is reading: its
  last pong is younger than ``ping_interval + ping_timeout`` and nothing of
  ours waits in its outbox. Otherwise it waits for a pong, up to its TTL.
* A sequence belongs to one connection: if the connection that carried part
  of it is lost, the rest is skipped and an alert names the trade and what
  was and was not sent. It never continues on a new connection.
* A server that stops answering pings is aborted at once (TCP reset) and an
  alert raised. Bytes already in the server's receive buffer cannot be
  recalled: this limits which commands can go stale, not how late a waking
  text-mode server presses them (the JSON format's ``sent_at``/``ttl_ms``,
  checked by the server, does that).
* TTLs count from the moment the hook fired; exits have their own, longer
  ``exit_ttl``, and a person is told while one waits and if one is dropped.
* A command queued while the link is down hurries the reconnect.
* At most once: a command is framed once; written in part and cut off, it is
  reported and never written again.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

# From websockets 13 on (websockets.client re-exports it only from 17.4).
from websockets.asyncio.client import process_exception  # type: ignore[attr-defined]
from websockets.client import backoff
from websockets.uri import parse_uri

from hotkey_ws.batch import Batch
from hotkey_ws.config import EXIT_EVENTS, HotkeyConfig
from hotkey_ws.notes import AlertSink, Notes
from hotkey_ws.wire import Broken, Wire
from momobot_core.journal import WireLog
from momobot_core.net import is_loopback, yield_cpu

log = logging.getLogger("momobot.hotkey")

#: While a command waits for the link, reconnect attempts come this often (not the backoff's).
HURRY_DELAY = 0.05
#: A sequence starts only if it can end this long before its TTL: the room a busy machine takes
#: between its commands (each leaves a little after it is due).
START_MARGIN = 0.05
#: An exit not on the wire this long after its event is told to a person (exit_pending).
PENDING_AFTER = 0.5
#: A JSON command the server has not answered this long, though it answers pings, is not
#: waited for any more (a server that reads JSON commands but never answers them).
ANSWER_WAIT = 5.0


def _reconnect_delays(max_delay: float) -> Iterator[float]:
    # The library's backoff generator, tuned for a trading desk: the first retry
    # comes within 0.1 s and the wait never exceeds max_delay.
    return backoff(initial_delay=0.1, min_delay=0.1, max_delay=max_delay, factor=2.0)


class HotkeyLink:
    """A persistent, self-healing connection to one hotkey server.

    :meth:`submit` may be called from any thread and never blocks.
    ``alert`` is the engine's ``bot.alert`` (None outside the bot: then alerts
    are log lines); ``wire_log`` records what actually went out.
    """

    def __init__(
        self,
        url: str,
        config: HotkeyConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        label: str = "",
        alert: AlertSink | None = None,
        wire_log: WireLog | None = None,
    ) -> None:
        self.url = url
        self.settings = config
        self.ssl_context = ssl_context
        self.label = label  # appended to log lines when there are several servers
        self.uri = parse_uri(url)
        #: The server runs on this machine: after a command written on a caller's thread the CPU
        #: is given up once, so the server reads it before the bookkeeping (see _pump).
        self._local = is_loopback(self.uri.host)
        self.notes = Notes(alert)
        self.wire_log = wire_log or WireLog(None, "hotkey_ws")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when the queue drains
        self._queue: collections.deque[Batch] = collections.deque()
        self._wire: Wire | None = None  # the open connection, when there is one
        self._connection = 0  # which connection: a sequence stays on its own
        self._in_outbox: Batch | None = None  # the batch whose command is in the wire's outbox
        #: Commands written on this connection that the server has not yet shown it read: in
        #: order, (batch, command, when it left). JSON: until its answer; text: until a pong
        #: to a ping sent after it. If the connection dies first, a person is told which.
        self._unanswered: collections.deque[tuple[Batch, str, float]] = collections.deque()
        self._json = config.format == "json"
        self._broken_reason: str | None = None
        self._last_pong = 0.0  # monotonic time the server last proved it reads
        self._fresh_for = config.ping_interval + config.ping_timeout
        self._want_ping = False
        #: The wire log's records of a submit, written together at its end (None: at once).
        self._log_held: list[dict[str, Any]] | None = None
        #: The keepalive ping out now: when it was sent, and when its pong is due (None: none out).
        self._ping_sent_at = 0.0
        self._ping_deadline: float | None = None
        self._next_ping = 0.0  # when the next keepalive ping is due
        self._flushing = False  # someone waits in flush(): notify when drained
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        # How often the I/O thread looks for work the engine's thread left it (it is never
        # woken from a healthy hook call): well under the sequence delay, so no command is late.
        self._poll = min(0.05, max(config.sequence_delay / 2, 0.002))
        self._thread: threading.Thread | None = None
        self.connected_once = threading.Event()
        self.failed_attempts = 0  # connection attempts failed since the last success
        self.down_since: float | None = time.monotonic()
        self.last_rtt: float | None = None

    # -- public ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"hotkey-{self.url}", daemon=True)
            self._thread.start()

    def status(self) -> dict[str, Any]:
        """For people (``GET /ping``, the dashboard): state, queue and the last ping round trip."""
        with self._lock:
            now = time.monotonic()
            state = "down" if self._wire is None else "up" if self._fresh(now) else "not answering"
            return {
                "url": self.url,
                "state": state,
                "queued": len(self._queue),
                "failed_attempts": self.failed_attempts,
                "last_rtt_ms": round(self.last_rtt * 1e3, 3) if self.last_rtt is not None else None,
            }

    def submit(self, batch: Batch) -> bool:
        """Queue a batch; send its first command right now if the link is up, proven and idle.

        Returns False (and says why) when the batch is refused: link stopped, or queue full.
        """
        with self._lock:
            # What this call logs (queued, sent, done) goes in one write, after the command's.
            self._log_held = []
            try:
                return self._submit(batch)
            finally:
                held, self._log_held = self._log_held, None
                if held:
                    if _whole(held):
                        self.wire_log.hold(held)  # written a moment later (WireLog.hold)
                    else:
                        self.wire_log.write_all(held)

    def _submit(self, batch: Batch) -> bool:
        """:meth:`submit` with the lock held."""
        if self._stopping or len(self._queue) >= self.settings.queue_size:
            why = (
                "the hotkey link is shut down"
                if self._stopping
                else f"{len(self._queue)} sequences already waiting; queue full"
            )
            self._drop(batch, why)
            self._wake()
            return False
        self._queue.append(batch)
        now = time.monotonic()
        wire = self._wire
        if wire is not None and not self._fresh(now):
            wire = self._prove_here(wire, now)
        if wire is not None and not wire.outbox:
            # Written now, on the caller's thread: nothing goes before it.
            self._pump(now, give_way=self._local)
        if wire is None or not self._fresh(now):
            # The unhealthy path: hurry a reconnect or a ping; tell a person about an exit.
            self._want_ping = True
            self._wake()
            if batch.exit and not batch.pending_told:
                self._tell_pending(
                    batch,
                    "the hotkey server is down"
                    if wire is None
                    else "the hotkey server has not answered a ping lately",
                )
        elif wire.outbox:
            self._wake()  # the I/O thread must watch for the socket to drain
        self._log_queued(batch)  # after the write, off the event-to-wire path
        return True

    def _prove_here(self, wire: Wire, now: float) -> Wire | None:
        """A link not proven lately, on the caller's thread (the lock held). A busy caller (a
        replay, a feed at full speed) can keep the I/O thread from the GIL for hundreds of
        milliseconds: its pong waits in the socket unread, or its next ping is never sent. So
        the caller reads what waits (non-blocking), and sends the ping that is due itself: the
        next command finds the link proven, or the I/O thread's deadline breaks it. The wire,
        or None if it broke."""
        try:
            if self._ping_deadline is not None:
                self._read(wire, now)  # a pong read proves the link from its ping's sending
            if self._ping_deadline is None and not self._fresh(now) and not self._stopping:
                self._send_ping(wire, now)  # still unproven: the next command reads its pong
        except Broken as exc:
            self._break(str(exc))
            return None
        return wire

    def flush(self, timeout: float) -> bool:
        """Wait until every queued command has left (or been dropped), at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._idle:
            self._flushing = True
            try:
                while self._queue or self._in_outbox is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._idle.wait(min(remaining, 0.05))
            finally:
                self._flushing = False
        return True

    def close(self, flush_timeout: float = 2.0) -> None:
        """Flush within ``flush_timeout``, drop (and say) what is left, close cleanly."""
        if self._thread is not None:
            self.flush(flush_timeout)
        with self._lock:
            self._stopping = True
            for batch in list(self._queue):
                if batch is not self._in_outbox:  # a half-written one is _break's, with its alert
                    self._queue.remove(batch)
                    self._drop(batch, "not sent before shutdown")
            self._wake()
        if self._thread is not None:
            self._thread.join(timeout=flush_timeout + 2.0)
        self.notes.emit()
        self._wake_r.close()
        self._wake_w.close()

    # -- the queue (called with the lock held) -----------------------------------------

    def _is_stopping(self) -> bool:
        return self._stopping  # a method: set by close() on another thread while _serve runs

    def _fresh(self, now: float) -> bool:
        return now - self._last_pong <= self._fresh_for

    def _wake(self) -> None:
        # BlockingIOError: a wake-up is already pending; OSError: closing. Either way it will look.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _record(self, batch: Batch, status: str, **detail: Any) -> None:
        if self.wire_log.enabled:
            record = {"batch": batch.id, "status": status, **detail}
            if self._log_held is not None:
                self._log_held.append(record)
            else:
                self.wire_log.write(record)

    def _log_queued(self, batch: Batch) -> None:
        """The wire log's record of what a sequence is to send, written once.

        Written after the first command's write when that happens at once (a
        crash in between leaves the event undispatched: reported at restart
        as an unconfirmed trade), so it costs the event-to-wire path nothing.
        """
        if not batch.logged:
            batch.logged = True
            self._record(
                batch,
                "queued",
                commands=list(batch.names),
                event=batch.event,
                symbol=batch.symbol,
                trade_id=batch.trade_id,
                url=self.url,
                exit=batch.exit,
            )

    def _pump(self, now: float, *, give_way: bool = False) -> None:
        """Send whatever is due, in order. Never blocks. ``give_way`` (a caller's thread, the
        server on this machine): the CPU is given up once, right after the first write, before
        its bookkeeping, so the server reads it first (the link's own thread never does: it
        would hold the GIL, which the engine's thread may be waiting for)."""
        queue = self._queue
        wire = self._wire
        while queue and wire is not None and not wire.outbox:
            batch = queue[0]
            # A sequence is held to its TTL until it starts; once started it ends (its start
            # left room for all of it): a TP1 cut after cancel_all leaves the position without
            # a stop at the broker.
            if batch.sent == 0 and batch.expired(now):
                queue.popleft()
                self._drop(
                    batch,
                    f"not sent within {batch.ttl:g} s of its event ("
                    f"{'the server has not answered a ping' if batch.sent == 0 else 'late'})",
                )
                continue
            if batch.sent == 0:
                if not self._fresh(now):
                    self._want_ping = True  # prove the connection reads before starting
                    return
                finish = now + (len(batch.names) - 1) * batch.gap + START_MARGIN
                if finish - batch.fired_at > batch.ttl:
                    # Started now, it would be cut by its TTL half way: a partial TP1 at the
                    # broker is worse than none. Dropped whole, and said so.
                    queue.popleft()
                    self._drop(
                        batch,
                        f"not started: its {len(batch.names)} commands, {batch.gap:g} s apart, could"
                        f" not all go within {batch.ttl:g} s of its event",
                    )
                    continue
                batch.connection = self._connection
            elif now < batch.next_due:
                return
            try:
                done = wire.send_text(batch.payloads[batch.sent])
            except Broken as exc:
                # send() wrote none of it: a sequence not yet begun may still go on the next
                # connection; one already begun is cut by _break.
                self._break(str(exc))
                return
            if done:
                if give_way:
                    give_way = False
                    yield_cpu()
                self._command_left(batch, now)
            else:
                self._in_outbox = batch

    def _command_left(self, batch: Batch, now: float) -> None:
        """The current command of ``batch`` has fully left for the kernel."""
        name = batch.names[batch.sent]
        batch.sent += 1
        batch.receipts.append(now)
        self._unanswered.append((batch, name, now))
        batch.next_due = now + batch.gap
        self._log_queued(batch)
        self._record(batch, "sent", command=name)
        self.notes.log(logging.INFO, "[Hotkey] Sent: %s (%s)%s", name, batch, self.label)
        if batch.sent == len(batch.names):
            self._queue.popleft()
            self._record(batch, "done")
            batch.finish(True)
            if self._flushing and not self._queue:
                self._idle.notify_all()

    def _drop(self, batch: Batch, why: str) -> None:
        """A batch will not (all) go out: say so, and how loudly depends on what it was."""
        unsent = batch.unsent
        about = batch.about()
        self._log_queued(batch)  # a dropped exit is told again at the next start
        self._record(batch, "dropped", unsent=list(unsent), why=why)
        already = f"; {_names(batch.names[: batch.sent])} already sent" if batch.sent else ""
        self.notes.log(
            logging.ERROR,
            "[Hotkey] Failed to send %s (%s): %s%s%s",
            _names(unsent),
            about,
            why,
            already,
            self.label,
        )
        if batch.exit:
            self.notes.tell(
                "exit_dropped",
                f"{about}: {_names(unsent)} NOT sent to the hotkey server"
                f" ({why}): close the position by hand",
                batch.symbol or None,
                trade_id=batch.trade_id,
                unsent=list(unsent),
                url=self.url,
            )
        elif batch.sent:
            self._tell_cut(batch, why)
        elif batch.trade_id:
            self.notes.tell(
                "hotkey_ws_dropped",
                f"{about}: {_names(unsent)} not sent to the hotkey server ({why}): check your broker",
                batch.symbol or None,
                trade_id=batch.trade_id,
                unsent=list(unsent),
                url=self.url,
            )
        batch.finish(False)
        if self._flushing and not self._queue:
            self._idle.notify_all()

    def _tell_cut(self, batch: Batch, why: str) -> None:
        if batch.exit:
            self.notes.tell(
                "exit_dropped",
                f"{batch.about()}: exit cut short ({why}): sent"
                f" {_names(batch.names[: batch.sent]) or 'nothing'}, NOT sent"
                f" {_names(batch.unsent)}: close the position by hand",
                batch.symbol or None,
                trade_id=batch.trade_id,
                sent=list(batch.names[: batch.sent]),
                unsent=list(batch.unsent),
                url=self.url,
            )
            return
        self.notes.tell(
            "sequence_cut",
            f"{batch.about()}: sequence cut ({why}): sent"
            f" {_names(batch.names[: batch.sent]) or 'nothing'}, NOT sent"
            f" {_names(batch.unsent)}; check your broker",
            batch.symbol or None,
            trade_id=batch.trade_id,
            sent=list(batch.names[: batch.sent]),
            unsent=list(batch.unsent),
            url=self.url,
        )

    def _tell_pending(self, batch: Batch, why: str) -> None:
        batch.pending_told = True
        self.notes.tell(
            "exit_pending",
            f"{batch.about()}: exit pending: {_names(batch.names)} waits up to {batch.ttl:g} s because {why}",
            batch.symbol or None,
            trade_id=batch.trade_id,
            url=self.url,
        )

    def _tell_waiting_exits(self, now: float) -> None:
        """An exit that has waited longer than it should (behind other sequences, or for a link
        that went down after it was queued) is told to a person once."""
        for batch in self._queue:
            waited = now - batch.fired_at
            if batch.exit and not batch.pending_told and batch.sent == 0 and waited > PENDING_AFTER:
                self._tell_pending(
                    batch,
                    "the hotkey server has not taken it yet"
                    if self._wire is not None
                    else "the hotkey server is down",
                )

    def _proven(self, ping_sent_at: float) -> None:
        """A pong to a ping sent at ``ping_sent_at``: the server has read what came before it."""
        unanswered = self._unanswered
        # JSON commands wait for their own answers (reading is not pressing), within reason.
        upto = ping_sent_at - ANSWER_WAIT if self._json else ping_sent_at
        while unanswered and unanswered[0][2] <= upto:
            unanswered.popleft()

    def _tell_unanswered(self, reason: str) -> None:
        """The connection died with commands the server never showed it read: name them."""
        unanswered, self._unanswered = self._unanswered, collections.deque()
        batches: dict[str, tuple[Batch, list[str]]] = {}
        for batch, name, _ in unanswered:
            batches.setdefault(batch.id, (batch, []))[1].append(name)
        proof = "answered" if self._json else "shown it read (no pong since)"
        for batch, names in batches.values():
            self.notes.log(
                logging.ERROR,
                "[Hotkey] %s written for %s but the server never %s before the connection"
                " died (%s): they may not have been pressed%s",
                _names(tuple(names)),
                batch.about(),
                proof,
                reason,
                self.label,
            )
            self.notes.tell(
                "hotkey_ws_unconfirmed",
                f"{batch.about()}: {_names(tuple(names))} written to the hotkey server, which"
                f" never {proof} before the connection died ({reason}): may not have been"
                " pressed: check your broker",
                batch.symbol or None,
                trade_id=batch.trade_id,
                event=batch.event,
                commands=names,
                url=self.url,
            )

    def _answered(self, answers: list[str]) -> None:
        """The JSON format's answers: a command the server did not press is told to a person."""
        for text in answers:
            try:
                answer = json.loads(text)
            except ValueError:
                continue
            if isinstance(answer, dict) and answer.get("status") is not None and self._unanswered:
                self._unanswered.popleft()  # answers come in the order the commands were read
            if not isinstance(answer, dict) or answer.get("status") in (None, "accepted"):
                continue
            command, status = answer.get("command"), answer.get("status")
            event = str(answer.get("event", ""))
            symbol = answer.get("symbol") if isinstance(answer.get("symbol"), str) else None
            trade_id = str(answer.get("trade_id", ""))
            what = f"{symbol or ''} {event} of trade {trade_id}".strip() if trade_id else event
            reason = f" ({answer['reason']})" if answer.get("reason") else ""
            self.notes.log(
                logging.ERROR,
                "[Hotkey] The server did not press '%s' (%s): %s%s%s",
                command,
                what,
                status,
                reason,
                self.label,
            )
            if event in EXIT_EVENTS:
                self.notes.tell(
                    "exit_dropped",
                    f"{what}: the hotkey server did not press '{command}'"
                    f" ({status}{reason}): close the position by hand",
                    symbol,
                    trade_id=trade_id,
                    command=command,
                    status=status,
                    url=self.url,
                )
            else:
                self.notes.tell(
                    "hotkey_ws_not_pressed",
                    f"{what}: the hotkey server did not press"
                    f" '{command}' ({status}{reason}): check your broker",
                    symbol,
                    trade_id=trade_id,
                    command=command,
                    status=status,
                    url=self.url,
                )

    def _break(self, reason: str) -> None:
        """The connection is unusable: cut the sequence it carried; the I/O thread reconnects."""
        if self._broken_reason is None:
            self._broken_reason = reason
        wire, self._wire = self._wire, None
        owner, self._in_outbox = self._in_outbox, None
        queue = self._queue
        head = queue[0] if queue else None
        if owner is not None:
            # Part of this command may have reached the server: never send it again.
            if head is owner:
                queue.popleft()
            name = owner.names[owner.sent]
            self._record(owner, "cut", command=name, why=reason)
            self.notes.log(
                logging.ERROR,
                "[Hotkey] Failed to send %s (%s): %s; it may have partly"
                " reached the server and is not sent again%s",
                _names((name,)),
                owner.about(),
                reason,
                self.label,
            )
            owner.sent += 1  # counts as possibly sent: the rest is what was certainly not
            self._tell_cut(owner, reason)
            owner.finish(False)
        elif head is not None and head.sent:
            # A sequence belongs to one connection: the rest never goes out on another.
            queue.popleft()
            self._record(head, "cut", why=reason)
            self._tell_cut(head, reason)
            head.finish(False)
        if wire is not None and self._flushing and not queue:
            self._idle.notify_all()
        self._wake()

    # -- the I/O thread ------------------------------------------------------------

    def _run(self) -> None:
        delays: Iterator[float] | None = None
        failures = 0
        while not self._stopping:
            try:
                wire = Wire.connect(
                    self.uri,
                    token=self.settings.token,
                    ssl_context=self.ssl_context,
                    open_timeout=self.settings.open_timeout,
                )
            except Exception as exc:
                fatal = process_exception(exc)
                failures += 1
                self.failed_attempts = failures
                if delays is None:
                    delays = _reconnect_delays(self.settings.reconnect_max_delay)
                delay = next(delays)
                # The first failure and then one in twenty, so a long outage is visible, not noisy.
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "[Hotkey] Cannot connect to %s: %s%s; retrying every %.1f s at most",
                        self.url,
                        _describe(exc),
                        " (will keep trying; check the server's settings)" if fatal else "",
                        self.settings.reconnect_max_delay,
                    )
                self._idle_wait(delay)
                continue
            if failures:
                log.info("[Hotkey] Connected to %s after %d failed attempt(s)", self.url, failures)
            else:
                log.info("[Hotkey] Connected to %s", self.url)
            delays, failures = None, 0
            self.failed_attempts = 0
            self.connected_once.set()
            self._serve(wire)
        self.notes.emit()

    def _idle_wait(self, seconds: float) -> None:
        """Wait while disconnected, dropping what expires meanwhile; a queued command cuts it short."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            now = time.monotonic()
            with self._lock:
                while self._queue and self._queue[0].expired(now):
                    batch = self._queue.popleft()
                    self._drop(batch, f"not sent within {batch.ttl:g} s of its event (server down)")
                if self._queue:
                    deadline = min(deadline, now + HURRY_DELAY)
                self._tell_waiting_exits(now)
                next_expiry = min((b.fired_at + b.ttl for b in self._queue), default=deadline)
            self.notes.emit()
            self._flush_wire_log()
            end = deadline
            if now >= end:
                return
            self._wait_wake(min(max(min(end, next_expiry) - now, 0.001), self._poll))

    def _flush_wire_log(self) -> None:
        """Records held for a moment (WireLog.hold) reach the file from this thread too, within
        its poll, when no fold of the journal follows (a person's manual command)."""
        try:
            self.wire_log.flush()
        except Exception:  # the log must never stop the link
            log.exception("[Hotkey] could not write the wire log")

    def _wait_wake(self, timeout: float) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            if sel.select(timeout):
                self._drain_wake()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _read(self, wire: Wire, now: float) -> None:
        """Read what the server sent (pongs, answers); called with the lock held, on the I/O
        thread or on the caller's. Raises Broken."""
        if wire.read():
            # Proof from the ping's sending, not from this read: a pong read late (a thread kept
            # from the GIL) proves the server read what came before the ping, and nothing since.
            self._last_pong = self._ping_sent_at
            self.last_rtt = now - self._ping_sent_at
            self._ping_deadline = None
            self._proven(self._ping_sent_at)
        if wire.answers:
            self._answered(wire.answers)
            wire.answers = []

    def _ping_overdue(self, now: float) -> bool:
        deadline = self._ping_deadline
        return deadline is not None and now > deadline

    def _send_ping(self, wire: Wire, now: float) -> None:
        """A keepalive ping (the lock held, on either thread); its pong is due in ``ping_timeout``.
        Raises Broken."""
        wire.send_ping()
        self._want_ping = False
        self._ping_sent_at = now
        self._ping_deadline = now + self.settings.ping_timeout
        self._next_ping = now + self.settings.ping_interval

    def _serve(self, wire: Wire) -> None:
        settings = self.settings
        with self._lock:
            if self._stopping:  # connected just as the link was closed
                wire.sock.close()
                return
            self._connection += 1
            self._wire = wire
            self._broken_reason = None
            self._last_pong = time.monotonic()  # the handshake was just answered: it reads
            self._unanswered.clear()  # the last connection's were told when it died
            self.down_since = None
            self._pump(time.monotonic())
        self._next_ping = time.monotonic() + settings.ping_interval
        self._ping_deadline = None
        proof_by: float | None = None  # at shutdown: how long unanswered commands may prove read
        self._ping_sent_at = 0.0
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        sel.register(wire.sock, selectors.EVENT_READ)
        watching_write = False
        reason = "stopped"
        try:
            while True:
                now = time.monotonic()
                with self._lock:
                    if self._broken_reason is not None or self._wire is not wire:
                        reason = self._broken_reason or "lost"
                        break
                    if self._is_stopping():
                        # Commands not yet shown read: one more ping (its pong proves them
                        # read) or the answers, for a short while; what stays unproven is told.
                        if not self._unanswered:
                            break
                        if proof_by is None:
                            proof_by = now + min(settings.ping_timeout + 0.5, 2.0)
                            self._want_ping = True
                        elif now >= proof_by:
                            break
                    self._pump(now)
                    if self._ping_deadline is None and (now >= self._next_ping or self._want_ping):
                        try:
                            self._send_ping(wire, now)
                        except Broken as exc:
                            self._break(str(exc))
                            continue
                    self._tell_waiting_exits(now)
                    want_write = bool(wire.outbox)
                    timeout = min(self._next_ping, self._ping_deadline or self._next_ping) - now
                    if self._queue:
                        head = self._queue[0]
                        timeout = min(timeout, head.fired_at + head.ttl - now)
                        if head.sent:
                            timeout = min(timeout, head.next_due - now)
                self.notes.emit()
                self._flush_wire_log()
                if want_write != watching_write:
                    sel.modify(wire.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0))
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
                                self._read(wire, now)
                            if mask & selectors.EVENT_WRITE and wire.outbox and wire.flush():
                                owner, self._in_outbox = self._in_outbox, None
                                if owner is not None:
                                    self._command_left(owner, now)
                        except Broken as exc:
                            self._break(str(exc))
                with self._lock:  # under the lock: the caller may have read the pong meanwhile
                    if self._ping_overdue(now) and self._wire is wire:
                        self._break(f"no answer to a keepalive ping within {settings.ping_timeout:g} s")
        finally:
            sel.close()
            with self._lock:
                # A half-written command, or a server that has not answered lately: no closing
                # handshake (its close frame would follow the partial command), a reset instead.
                clean = reason == "stopped" and not wire.outbox and self._fresh(time.monotonic())
                if self._unanswered:
                    self._tell_unanswered(reason if reason != "stopped" else "closed at shutdown")
                if self._wire is wire:
                    self._break(reason)
                self.down_since = time.monotonic()
            if clean:
                wire.close_cleanly()
            elif reason == "stopped":
                wire.abort()
            else:
                wire.abort()
                log.warning("[Hotkey] Connection to %s lost: %s; reconnecting", self.url, reason)
                self.notes.tell(
                    "link_down",
                    f"hotkey server {self.url} lost: {reason}; commands wait"
                    " up to their TTL for it to come back",
                    None,
                    url=self.url,
                )
            self.notes.emit()


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


def _whole(records: list[dict[str, Any]]) -> bool:
    """Whether these records hold the whole life of every sequence they name: its ``queued``
    and its ``done``, so none can be read as cut if a crash keeps them from the file."""
    queued = {record["batch"] for record in records if record["status"] == "queued"}
    done = {record["batch"] for record in records if record["status"] == "done"}
    return queued == done and all(record["batch"] in done for record in records)
