"""Log lines and alerts handed from the trading path to the link's own thread.

The engine's thread must never wait on a log handler or on other plugins'
``on_alert``, and must never call back into the engine while the link's lock
is held. So the link writes what it has to say here (a deque append), and its
I/O thread says it. A log line carries the time it was noted (when the command
left, say), not the moment the I/O thread wrote it out.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("momobot.hotkey")

#: ``alert(kind, message, symbol, **detail)``: the engine's ``bot.alert``.
AlertSink = Callable[..., Any]


class Notes:
    def __init__(self, alert: AlertSink | None = None) -> None:
        self._items: collections.deque[tuple[int, str, tuple[Any, ...], dict[str, Any] | None, float]] = (
            collections.deque()
        )
        self.alert = alert

    def log(self, level: int, message: str, *args: Any) -> None:
        self._items.append((level, message, args, None, time.time()))

    def tell(self, kind: str, message: str, symbol: str | None = None, **detail: Any) -> None:
        """An alert for a person (and a log line, which ``bot.alert`` writes)."""
        if self.alert is None:
            self._items.append((logging.ERROR, "%s", (message,), None, time.time()))
        else:
            self._items.append((0, message, (), {"kind": kind, "symbol": symbol, **detail}, 0.0))

    def emit(self) -> None:
        """Say everything noted so far. Only the link's own thread (or close()) calls this."""
        items = self._items
        while items:
            try:
                level, message, args, alert, noted = items.popleft()
            except IndexError:
                return
            if alert is None:
                if log.isEnabledFor(level):
                    record = log.makeRecord(log.name, level, __file__, 0, message, args, None)
                    # Moved back to when it was noted (relativeCreated by the same step: its
                    # base is logging's own and differs between Python versions).
                    record.relativeCreated -= (record.created - noted) * 1000
                    record.created = noted
                    record.msecs = int((noted - int(noted)) * 1000) + 0.0
                    log.handle(record)
                continue
            assert self.alert is not None
            kind = alert.pop("kind")
            symbol = alert.pop("symbol")
            try:
                self.alert(kind, message, symbol=symbol, **alert)
            except Exception:
                log.exception("[Hotkey] could not raise the alert: %s", message)
