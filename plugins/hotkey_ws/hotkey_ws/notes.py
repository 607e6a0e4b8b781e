"""Log lines and alerts handed from the trading path to the link's own thread.

The engine's thread must never wait on a log handler or on other plugins'
``on_alert``, and must never call back into the engine while the link's lock
is held. So the link writes what it has to say here (a deque append), and its
I/O thread says it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("momobot.hotkey")

#: ``alert(kind, message, symbol, **detail)``: the engine's ``bot.alert``.
AlertSink = Callable[..., Any]


class Notes:
    def __init__(self, alert: AlertSink | None = None) -> None:
        self._items: collections.deque[tuple[int, str, tuple[Any, ...], dict[str, Any] | None]] = (
            collections.deque()
        )
        self.alert = alert

    def log(self, level: int, message: str, *args: Any) -> None:
        self._items.append((level, message, args, None))

    def tell(self, kind: str, message: str, symbol: str | None = None, **detail: Any) -> None:
        """An alert for a person (and a log line, which ``bot.alert`` writes)."""
        if self.alert is None:
            self._items.append((logging.ERROR, "%s", (message,), None))
        else:
            self._items.append((0, message, (), {"kind": kind, "symbol": symbol, **detail}))

    def emit(self) -> None:
        """Say everything noted so far. Only the link's own thread (or close()) calls this."""
        items = self._items
        while items:
            try:
                level, message, args, alert = items.popleft()
            except IndexError:
                return
            if alert is None:
                log.log(level, message, *args)
                continue
            assert self.alert is not None
            kind = alert.pop("kind")
            symbol = alert.pop("symbol")
            try:
                self.alert(kind, message, symbol=symbol, **alert)
            except Exception:
                log.exception("[Hotkey] could not raise the alert: %s", message)
