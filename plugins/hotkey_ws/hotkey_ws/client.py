"""HotkeyClient: turns an event into command batches and hands them to one link per hotkey server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from hotkey_ws.config import HotkeyConfig
from hotkey_ws.link import Batch, HotkeyLink


class HotkeyClient:
    """Sends hotkey commands to every configured server; :meth:`send` never blocks.

    With ``record=True`` every batch of the first server is kept in
    :attr:`history` (``momobot hotkey demo`` reads the timings from it).
    """

    def __init__(self, config: HotkeyConfig, *, record: bool = False) -> None:
        self.config = config
        context = config.ssl_context()
        several = len(config.urls) > 1
        self.links = [HotkeyLink(url, config, ssl_context=context,
                                 label=f" to {url}" if several else "")
                      for url in config.urls]
        self.history: list[Batch] | None = [] if record else None
        self._json = config.format == "json"
        self._closed = False

    def start(self) -> None:
        for link in self.links:
            link.start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until every link has connected once (for tools and tests, not the trading path)."""
        deadline = time.monotonic() + timeout
        return all(link.connected_once.wait(max(deadline - time.monotonic(), 0)) for link in self.links)

    def send(self, names: Sequence[str], *, event: str = "manual_command",
             context: dict[str, object] | None = None, label: str = "",
             done: Callable[[bool], None] | None = None) -> bool:
        """Queue one batch of commands for every server. False if any server refused it."""
        fired_at = time.monotonic()
        names = tuple(names)
        if self._json:
            payloads = tuple(json.dumps({"command": name, "event": event, **(context or {})})
                             for name in names)
        else:
            payloads = names
        callback = _all_of(len(self.links), done) if done is not None else None
        ok = True
        for n, link in enumerate(self.links):
            batch = Batch(names=names, payloads=payloads, fired_at=fired_at,
                          gap=self.config.sequence_delay, done=callback, label=label)
            if n == 0 and self.history is not None:
                self.history.append(batch)
            ok = link.submit(batch) and ok
        return ok

    def send_event(self, event: str, *, symbol: str, qty: int, remaining: int, trade_id: str,
                   ts: datetime) -> None:
        """The commands configured for ``event`` (entry, tp1, tp2, stop, manual)."""
        names = self.config.commands[event]
        if not names:
            return
        context = None
        if self._json:
            context = {"symbol": symbol, "qty": qty, "remaining": remaining, "trade_id": trade_id,
                       "time": ts.isoformat()}
        self.send(names, event=event, context=context,
                  label=f"{symbol} {event}" if self.history is not None else "")

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
        threads = [threading.Thread(target=link.close, args=(max(deadline - time.monotonic(), 0),))
                   for link in self.links]
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
