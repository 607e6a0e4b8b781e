"""The hand-off from other threads to the engine's thread: a bounded queue, never blocking.

A plugin's thread (a broker's fill, a source's halt) hands an event over with
``submit``; the engine's thread applies what waits at once on an event loop,
else with its next event or tick. Past :data:`SUBMIT_QUEUE` waiting events a
new one is refused and a person told (``queue_overflow``), never dropped in
silence.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from momobot_core.errors import TradeRefused

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("momobot.engine")

#: Events other threads may have waiting for the engine (``Engine.submit``).
SUBMIT_QUEUE = 100_000


class SubmitQueue:
    """Events handed over by other threads, applied in the order they came on the engine's thread."""

    def __init__(self, apply: Callable[[Any], object], tell: Callable[..., object]) -> None:
        self.apply = apply
        self.tell = tell
        self.waiting: collections.deque[Any] = collections.deque()
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._overflows = 0

    def __bool__(self) -> bool:
        return bool(self.waiting)

    def submit(self, event: object) -> bool:
        with self.lock:
            if len(self.waiting) >= SUBMIT_QUEUE:
                self._overflows += 1
                overflows = self._overflows
            else:
                self.waiting.append(event)
                overflows = 0
                wake = not self._scheduled
                self._scheduled = True
        if overflows:
            if overflows == 1 or not overflows % 1000:
                self.tell(
                    "queue_overflow",
                    f"{overflows} event(s) refused: {SUBMIT_QUEUE} were already"
                    " waiting for the engine (it is falling behind its sources)",
                )
            return False
        loop = self.loop
        if wake and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing: the next event drains it
                loop.call_soon_threadsafe(self.drain)
        return True

    def take(self) -> collections.deque[Any]:
        """Everything waiting, taken off the queue."""
        with self.lock:
            events, self.waiting = self.waiting, collections.deque()
            self._scheduled = False
        return events

    def drain(self) -> None:
        """Apply what waits, on the engine's thread; a refused event is logged, never raised."""
        for event in self.take():
            try:
                self.apply(event)
            except TradeRefused as exc:
                log.warning("refused %s: %s", type(event).__name__.lower(), exc)
