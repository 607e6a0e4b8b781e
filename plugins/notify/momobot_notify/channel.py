"""One notification URL: its own thread, a bounded queue, one message per interval, retries.

The engine's thread only appends a notice under a lock (:meth:`Channel.put`). The channel's
thread sends: the first notice at once, then at most one message each ``min_interval_s``,
every notice that came meanwhile in it (a burst is one message, nothing dropped and no spam).
A failed send keeps the batch, waits ``retry_s`` doubling to ``retry_max_s``, and tries again
with whatever came meanwhile added; the first failure of an outage is told once
(``notify_down``), and its end too (``notify_restored``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from momobot_notify._apprise import load
from momobot_notify.config import NotifyConfig
from momobot_notify.messages import Notice, level_of_batch, message
from momobot_notify.secrets import redact, secrets_of, shown

log = logging.getLogger("momobot.notify")


#: Our levels as apprise's message types (a service shows them as colours, priorities).
TYPES = {"info": "info", "warning": "warning", "critical": "failure"}


def send_once(url: str, title: str, body: str, level: str = "info") -> tuple[bool, str]:
    """Send one message to ``url`` now, on this thread: (worked, why not). Secrets redacted."""
    apprise = load()

    # Sent on this thread, not on apprise's shared pool: a service that hangs holds its own
    # channel's thread only (bounded by the service's own socket timeouts), never the pool every
    # URL shares, and never the process's exit (the channel's thread is a daemon).
    notifier = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False, service_timeout=0))
    if not notifier.add(url):
        return False, "not a notification URL apprise knows"
    try:
        result = notifier.notify(body=body, title=title, notify_type=TYPES.get(level, "info"))
    except Exception as exc:  # a plugin of apprise's that raises: a failed send, said why
        return False, redact(f"{type(exc).__name__}: {exc}", secrets_of(url))
    if result:
        return True, ""
    return False, redact(_why(result), secrets_of(url))


def _why(result: Any) -> str:
    """The last warning or error apprise kept for this send (its result's own log)."""
    said = "the service did not accept it"
    for service in getattr(result, "results", None) or []:
        logs = getattr(service, "logs", None)
        for entry in logs() if callable(logs) else []:
            if str(getattr(entry, "level", "")) in ("WARNING", "ERROR", "CRITICAL"):
                said = str(getattr(entry, "message", said))
    return said


class Channel:
    def __init__(
        self,
        url: str,
        config: NotifyConfig,
        tell: Callable[..., Any],
        clock: Callable[[], float] = time.monotonic,
        number: int = 0,
    ) -> None:
        self._url = url
        self.shown = shown(url)
        #: Which of the configured URLs this is (0, 1, ...): two may look alike once masked.
        self.number = number
        #: Notices in the send under way (taken from the queue, not yet answered).
        self._in_flight = 0
        self._config = config
        self._tell = tell
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        #: The thread waits with nothing to do (no timeout): the next notice must wake it. Only
        #: that one does: waking it for each notice of a burst would take the GIL from the
        #: engine's thread each time, where it will wake at its own time anyway.
        self._idle = False
        self._waiting: deque[Notice] = deque()
        self._dropped = 0
        self._next_at = 0.0
        self._delay = config.retry_s
        self._stopping = False
        self._deadline = 0.0
        #: ``idle`` (nothing sent yet), ``up`` or ``down``.
        self.state = "idle"
        self.messages_sent = 0
        self.notices_sent = 0
        self.dropped_total = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_sent_wall: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"momobot-notify {self.shown}", daemon=True)
        self._thread.start()

    # -- the engine's thread ------------------------------------------------------------

    def put(self, notice: Notice) -> None:
        """Queue one notice (never blocks beyond a short lock; past ``queue_size`` the oldest goes)."""
        with self._cond:
            if len(self._waiting) >= self._config.queue_size:
                self._waiting.popleft()
                self._dropped += 1
                self.dropped_total += 1
            self._waiting.append(notice)
            if self._idle:
                self._idle = False
                self._cond.notify()

    def status(self) -> dict[str, Any]:
        with self._cond:
            waiting = len(self._waiting)
        return {
            "url": self.shown,
            "state": self.state,
            "sent": self.messages_sent,
            "notices_sent": self.notices_sent,
            "waiting": waiting,
            "dropped": self.dropped_total,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def stop(self, deadline: float) -> None:
        """Send what waits now (one try), and stop by ``deadline`` (``time.monotonic``)."""
        with self._cond:
            self._stopping = True
            self._deadline = self._clock() + max(0.0, deadline - time.monotonic())
            self._cond.notify()  # whether idle or waiting for its next time: what waits goes now

    def close(self, timeout: float) -> int:
        """Stop (see :meth:`stop`) and wait up to ``timeout``: how many notices were left unsent."""
        if not self._stopping:
            self.stop(time.monotonic() + timeout)
        self._thread.join(timeout)
        with self._cond:
            return len(self._waiting) + self._in_flight

    # -- the channel's thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # never a silent death: the state and the log say it
            self.state = "failed"
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("[Notify] %s: the sender stopped; notices to it are no longer sent", self.shown)
            self._tell(
                "notify_down",
                f"notifications to {self.shown} stopped ({self.last_error}); see the log",
                url=self.shown,
                channel=self.number,
            )

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = self._clock()
                    if self._stopping:
                        if not self._waiting or now >= self._deadline:
                            return
                        break
                    if self._waiting and now >= self._next_at:
                        break
                    if self._waiting:
                        self._cond.wait(self._next_at - now)
                    else:
                        self._idle = True
                        self._cond.wait()
                        self._idle = False
                batch = list(self._waiting)
                self._waiting.clear()
                dropped, self._dropped = self._dropped, 0
                self._in_flight = len(batch)
            tail, body = message(batch, dropped)
            ok, why = send_once(self._url, f"{self._config.title}: {tail}", body, level_of_batch(batch))
            with self._cond:
                self._in_flight = 0
            if ok:
                self._sent(batch)
            else:
                self._failed(batch, dropped, why)
                if self._stopping:
                    return

    def _sent(self, batch: list[Notice]) -> None:
        was_down = self.state == "down"
        self.state = "up"
        self.messages_sent += 1
        self.notices_sent += len(batch)
        self.last_sent_wall = time.time()
        self._delay = self._config.retry_s
        with self._cond:
            self._next_at = self._clock() + self._config.min_interval_s
        if was_down:
            self._tell(
                "notify_restored",
                f"notifications to {self.shown} go out again (what waited was sent as one message)",
                url=self.shown,
                channel=self.number,
            )

    def _failed(self, batch: list[Notice], dropped: int, why: str) -> None:
        self.failures += 1
        self.last_error = why
        with self._cond:
            # The batch goes back in front of what came meanwhile, within the bound.
            room = self._config.queue_size - len(self._waiting)
            keep = batch[-room:] if room > 0 else []
            lost = len(batch) - len(keep)
            self._waiting.extendleft(reversed(keep))
            self._dropped += dropped + lost
            self.dropped_total += lost
            self._next_at = self._clock() + self._delay
            waiting = len(self._waiting)
        retry_in = self._delay
        self._delay = min(self._delay * 2, self._config.retry_max_s)
        if self._stopping:
            log.warning("[Notify] %s failed at exit (%s)", self.shown, why)
        else:
            log.warning(
                "[Notify] %s failed (%s): %d notice(s) wait; next try in %g s",
                self.shown,
                why,
                waiting,
                retry_in,
            )
        if self.state != "down":
            self.state = "down"
            self._tell(
                "notify_down",
                f"notifications to {self.shown} fail ({why}): they wait and are retried (every"
                f" {self._config.retry_s:g} s, doubling to {self._config.retry_max_s:g} s); trading is"
                " not affected",
                url=self.shown,
                channel=self.number,
            )
