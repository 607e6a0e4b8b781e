"""HotkeyClient: turns an event into command batches and hands them to one link per hotkey server."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from hotkey_ws.batch import Batch
from hotkey_ws.config import EXIT_EVENTS, HotkeyConfig
from hotkey_ws.link import HotkeyLink
from hotkey_ws.notes import AlertSink
from momobot_core.journal import WireLog

#: Batches kept in :attr:`HotkeyClient.history`.
HISTORY = 1000

#: A JSON command's text: msgspec, about a microsecond where ``json.dumps`` takes five warm and
#: several times that on an exit every few seconds (docs/PERFORMANCE.md). Compact, UTF-8.
_encode = msgspec.json.Encoder().encode


class HotkeyClient:
    """Sends hotkey commands to every configured server; :meth:`send` never blocks.

    With ``record=True`` every batch of the first server is kept in
    :attr:`history` (``momobot hotkey demo`` reads the timings from it).
    """

    def __init__(
        self,
        config: HotkeyConfig,
        *,
        record: bool = False,
        alert: AlertSink | None = None,
        wire_log: WireLog | None = None,
    ) -> None:
        self.config = config
        context = config.ssl_context()
        several = len(config.urls) > 1
        self.links = [
            HotkeyLink(
                url,
                config,
                ssl_context=context,
                label=f" to {url}" if several else "",
                alert=alert,
                wire_log=wire_log,
            )
            for url in config.urls
        ]
        #: The latest batches (the demo's table, the dashboard panel); None when not recorded.
        self.history: collections.deque[Batch] | None = collections.deque(maxlen=HISTORY) if record else None
        self._json = config.format == "json"
        self._closed = False

    def start(self) -> None:
        for link in self.links:
            link.start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until every link has connected once (for tools and tests, not the trading path)."""
        deadline = time.monotonic() + timeout
        return all(link.connected_once.wait(max(deadline - time.monotonic(), 0)) for link in self.links)

    def status(self) -> list[dict[str, Any]]:
        return [link.status() for link in self.links]

    def send(
        self,
        names: Sequence[str],
        *,
        event: str = "manual_command",
        symbol: str = "",
        trade_id: str = "",
        context: dict[str, object] | None = None,
        label: str = "",
        done: Callable[[bool], None] | None = None,
    ) -> bool:
        """Queue one batch of commands for every server. False if any server refused it.

        The TTL counts from now (wall clock), never from the event's timestamp.
        """
        fired_at = time.monotonic()
        names = tuple(names)
        ttl = self.config.ttl_of(event)
        if self._json:
            # sent_at and ttl_ms let the server drop a command it reads too late.
            header = {
                "event": event,
                "sent_at": int(time.time() * 1000),
                "ttl_ms": int(ttl * 1000),
                **({"symbol": symbol, "trade_id": trade_id} if symbol else {}),
                **(context or {}),
            }
            # A sequence starts only if it can end within its TTL (the link checks); each later
            # command's own deadline grows by its place in it, so a few milliseconds of delay
            # on the way never cut a started sequence at the server.
            gap_ms = self.config.sequence_delay * 1000
            payloads = tuple(
                _encode({"command": name, **header, "ttl_ms": int(ttl * 1000 + n * gap_ms)}).decode()
                for n, name in enumerate(names)
            )
        else:
            payloads = names
        callback = _all_of(len(self.links), done) if done is not None else None
        ok = True
        for n, link in enumerate(self.links):
            batch = Batch(
                names=names,
                payloads=payloads,
                fired_at=fired_at,
                ttl=ttl,
                gap=self.config.sequence_delay,
                exit=event in EXIT_EVENTS,
                event=event,
                symbol=symbol,
                trade_id=trade_id,
                done=callback,
                label=label,
            )
            if n == 0 and self.history is not None:
                self.history.append(batch)
            ok = link.submit(batch) and ok
        return ok

    def send_event(
        self,
        event: str,
        *,
        symbol: str,
        qty: int,
        remaining: int,
        trade_id: str,
        ts: datetime,
        names: Sequence[str] | None = None,
    ) -> None:
        """The commands configured for ``event`` (entry, tp1, tp2, stop, manual); ``ts`` is its time."""
        names = tuple(self.config.commands[event] if names is None else names)
        if not names:
            return
        context: dict[str, object] | None = None
        if self._json:
            context = {"qty": qty, "remaining": remaining, "time": ts.isoformat()}
        self.send(
            names,
            event=event,
            symbol=symbol,
            trade_id=trade_id,
            context=context,
            label=f"{symbol} {event}" if self.history is not None else "",
        )

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(link.flush(max(deadline - time.monotonic(), 0)) for link in self.links)

    def close(self, flush_timeout: float | None = None) -> None:
        """Flush within the bound (``flush_timeout`` config by default), then close every link."""
        if self._closed:
            return
        self._closed = True
        timeout = self.config.flush_timeout if flush_timeout is None else flush_timeout
        deadline = time.monotonic() + timeout
        threads = [
            threading.Thread(target=link.close, args=(max(deadline - time.monotonic(), 0),))
            for link in self.links
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _all_of(count: int, done: Callable[[bool], None]) -> Callable[[bool], None]:
    """A callback reporting once: False at the first link that failed, else True after the last."""
    lock = threading.Lock()
    left = [count]

    def one(ok: bool) -> None:
        with lock:
            if left[0] <= 0:
                return
            left[0] = left[0] - 1 if ok else 0
            if ok and left[0] > 0:
                return
            left[0] = 0
        done(ok)

    return one
