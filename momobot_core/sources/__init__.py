"""Every way an event comes in: recorded files (``recorded``) and live quote sources (plugins).

A live source is a :class:`QuoteSource` a plugin offers through the
``register_sources(register)`` hook. ``momobot serve --source NAME`` runs one
on the engine's event loop: it connects, authenticates, subscribes to the
:class:`Watchlist` (and to symbols added later), and hands every quote to the
engine with ``bot.apply(quote)`` (it runs on the engine's thread), reconnecting
and resubscribing by itself. An authentication failure before the first
successful connection raises :class:`SourceError` (start-up stops, exit 2);
after that, every failure is an alert and the source keeps trying: a bot with
open positions never exits on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from momobot_core.config import ConfigError

if TYPE_CHECKING:
    from momobot_core.engine import Engine

__all__ = ["QuoteSource", "SourceError", "SourceFactory", "SourceStatus", "Watchlist", "collect_sources"]


class SourceError(ConfigError):
    """A live source cannot start (bad keys, a refused feed): start-up stops with this message, exit 2."""


@attrs.frozen
class SourceStatus:
    """What a source reports about itself (``GET /ping``, the dashboard)."""

    connected: bool
    symbols: int
    last_message_age_s: float | None
    messages: int
    errors: int
    detail: str = ""


@runtime_checkable
class QuoteSource(Protocol):
    """A live quote source. ``run`` runs until cancelled; it never returns on its own while live."""

    name: str

    async def run(self, bot: Engine, watchlist: Watchlist) -> None: ...

    def status(self) -> SourceStatus: ...


SourceFactory = Callable[["Engine"], QuoteSource]


class Watchlist:
    """The symbols a live source must stream: the configured ones, open trades', and added ones.

    Sources iterate it to subscribe and ``await changed()`` to hear of symbols added (or taken
    off) later.
    """

    def __init__(self, symbols: Iterable[str] = ()) -> None:
        self._symbols: dict[str, None] = {}
        self._changed: asyncio.Event | None = None
        for symbol in symbols:
            self.add(symbol)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._symbols))

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._symbols

    def add(self, symbol: str) -> bool:
        """Add a symbol; True if it was new (the source subscribes to it)."""
        symbol = symbol.upper()
        if symbol in self._symbols:
            return False
        self._symbols[symbol] = None
        if self._changed is not None:
            self._changed.set()
        return True

    def remove(self, symbol: str) -> bool:
        """Take a symbol off; True if it was there (the source unsubscribes from it)."""
        symbol = symbol.upper()
        if symbol not in self._symbols:
            return False
        del self._symbols[symbol]
        if self._changed is not None:
            self._changed.set()
        return True

    async def changed(self) -> list[str]:
        """Wait until symbols are added or removed; return every symbol (the source subscribes to
        the new ones and unsubscribes from the ones gone)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()
        self._changed.clear()
        return list(self._symbols)


def collect_sources(hooks: Any) -> dict[str, tuple[str, SourceFactory]]:
    """``{source name: (plugin name, factory)}`` from every plugin's ``register_sources``."""
    sources: dict[str, tuple[str, SourceFactory]] = {}
    if hooks is None:
        return sources
    for plugin_name, function, _ in hooks.implementations("register_sources"):

        def register(name: str, factory: SourceFactory, plugin_name: str = plugin_name) -> None:
            if name in sources:
                raise ConfigError(
                    f"source {name!r} is offered by both {sources[name][0]!r} and {plugin_name!r}"
                )
            sources[name] = (plugin_name, factory)

        function(register)
    return sources
