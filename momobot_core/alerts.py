"""Alerts: what a person must hear now, from any thread, kept for the day.

An alert is logged at once, kept in memory for the day (``GET /alerts``, the
dashboard), journaled, and sent through the ``on_alert`` hooks on the engine's
thread. Raised on another thread it waits in an inbox the engine's thread
empties: at once on an event loop (``loop``), else with the next event.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from momobot_core.models import Alert

if TYPE_CHECKING:
    import asyncio

    from momobot_core.journal import Journal

alert_log = logging.getLogger("momobot.alert")

#: The day's alerts kept in memory (GET /alerts, the dashboard); the journal keeps them all.
ALERTS_KEPT = 1000


class Alerts:
    """The day's alerts and the inbox of those raised off the engine's thread."""

    def __init__(self, journal: Journal | None, notify: Callable[..., None]) -> None:
        self.journal = journal
        self.notify = notify
        #: Today's alerts, newest last (at most :data:`ALERTS_KEPT`).
        self.kept: collections.deque[Alert] = collections.deque(maxlen=ALERTS_KEPT)
        #: Alerts of today raised before a restart (from the journal): shown, never raised again.
        self.earlier: list[Alert] = []
        self.inbox: collections.deque[Alert] = collections.deque()
        #: The engine's thread: alerts raised on it are published at once.
        self.owner = threading.get_ident()
        self.loop: asyncio.AbstractEventLoop | None = None

    def tell(self, kind: str, message: str, symbol: str | None = None, **detail: object) -> Alert:
        alert = Alert(kind=kind, message=message, symbol=symbol, ts=datetime.now(UTC), detail=dict(detail))
        alert_log.warning("[%s] %s", kind, message)
        if threading.get_ident() == self.owner:
            self.publish(alert)
        else:
            self.inbox.append(alert)
            loop = self.loop
            if loop is not None and not loop.is_closed():
                # RuntimeError: the loop closed meanwhile; the next event drains the inbox.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self.drain)
        return alert

    def publish(self, alert: Alert) -> None:
        self.kept.append(alert)
        if self.journal is not None:
            self.journal.record_alert(alert.kind, alert.message, alert.symbol, alert.ts)
        self.notify("on_alert", alert=alert)

    def drain(self) -> None:
        """Publish, on the engine's thread, what other threads raised."""
        inbox = self.inbox
        while inbox:
            self.publish(inbox.popleft())

    def new_day(self) -> None:
        """Yesterday's alerts are yesterday's."""
        self.kept.clear()
        self.earlier = []

    def restore(self, now: datetime, tz: tzinfo) -> None:
        """Earlier alerts of today (a restart), for the day's list; not raised again."""
        if self.journal is None or self.journal.in_memory:
            return
        local = now.astimezone(tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        mine = {(a.kind, a.message, a.ts) for a in self.kept}
        self.earlier = [
            Alert(kind=kind, message=message, symbol=symbol, ts=ts)
            for kind, message, symbol, ts in self.journal.alerts_since(midnight)
            if (kind, message, ts) not in mine
        ]
