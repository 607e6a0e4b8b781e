"""The watchers: quotes that stop, trading halts and price bands. Each says what changed; the
engine tells.

None reads a clock of its own nor raises an alert: the engine passes the time (monotonic
seconds) and raises the :class:`Notice` each returns, so each is tested on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date

import attrs

__all__ = ["Bands", "Notice", "QuoteWaiters", "QuoteWatch", "TradingHalts"]

#: What ``QuoteWatch.stale`` holds for a live source that went silent (symbols are the rest).
SOURCE = "source"


@attrs.frozen
class Notice:
    """An alert a watcher asks the engine to raise."""

    kind: str
    message: str
    symbol: str | None = None
    detail: dict[str, object] = attrs.field(factory=dict)


class QuoteWatch:
    """Stale quotes: a live source silent, or an open trade's symbol without quotes, for longer
    than ``limit_s`` (0: never). Entries are halted while anything is stale; exits still go."""

    def __init__(self, limit_s: float, started_at: float) -> None:
        self.limit_s = limit_s
        self.started_at = started_at
        #: When each symbol with an open trade was last quoted (monotonic seconds).
        self.quoted_at: dict[str, float] = {}
        #: What is stale now: ``SOURCE`` and symbols.
        self.stale: frozenset[str] = frozenset()

    def quoted(self, symbol: str, now: float) -> None:
        self.quoted_at[symbol] = now

    def check(
        self, now: float, source_age: float | None, watching_source: bool, symbols: Iterable[str]
    ) -> list[Notice]:
        """What went stale since the last check, or the all-clear. ``source_age`` is the live
        source's last message age (None: none yet); ``symbols`` those with open trades."""
        limit = self.limit_s
        stale = set()
        if watching_source and (now - self.started_at if source_age is None else source_age) > limit:
            stale.add(SOURCE)
        for symbol in symbols:
            if now - self.quoted_at.get(symbol, self.started_at) > limit:
                stale.add(symbol)
        notices = []
        for what in sorted(stale - self.stale):
            name = "the live source" if what == SOURCE else what
            notices.append(
                Notice(
                    "stale_quotes",
                    f"no quotes from {name} for over {limit:g} s: entries are halted until"
                    " quotes flow again (exits still go out)",
                    symbol=None if what == SOURCE else what,
                )
            )
        if self.stale and not stale:
            notices.append(
                Notice("resumed", "quotes flow again: entries are allowed", detail={"what": "stale_quotes"})
            )
        self.stale = frozenset(stale)
        return notices

    def refusal(self, symbol: str) -> str | None:
        """Why an entry on ``symbol`` is refused now (None: nothing is stale)."""
        if not self.stale:
            return None
        what = ", ".join(sorted(self.stale)).replace(SOURCE, "the live source")
        return f"{symbol}: entries are halted: no quotes from {what} for over {self.limit_s:g} s"


class TradingHalts:
    """Symbols under a trading halt or a limit-up/limit-down pause, as a source reports them."""

    def __init__(self) -> None:
        #: Symbol -> the reason the source gave.
        self.symbols: dict[str, str] = {}
        #: Exits asked for while their symbol was halted (symbol -> ``manual`` or a kill's reason):
        #: held by the engine and sent on the first quote after the resume, at its price.
        self.held: dict[str, str] = {}

    def change(self, symbol: str, halted: bool, reason: str) -> Notice | None:
        """A halt began or ended on ``symbol``: the notice to raise (None: nothing changed)."""
        if halted and symbol not in self.symbols:
            self.symbols[symbol] = reason
            return Notice(
                "trading_halt",
                f"{symbol}: {reason}: entries on it are refused until it trades again",
                symbol=symbol,
            )
        if not halted and symbol in self.symbols:
            del self.symbols[symbol]
            held = self.held.get(symbol)
            then = f"; the held {held} exit goes out at the next quote's bid" if held else ""
            return Notice(
                "resumed",
                f"{symbol}: trading again ({reason}){then}",
                symbol=symbol,
                detail={"what": "trading_halt"},
            )
        return None

    def hold(self, symbol: str, reason: str) -> Notice | None:
        """An exit asked for while ``symbol`` is halted: held until a quote after the resume (the
        first one asked for stands; None when one is held already)."""
        if symbol in self.held:
            return None
        self.held[symbol] = reason
        return Notice(
            "exit_held",
            f"{symbol}: trading is halted ({self.symbols[symbol]}): the {reason} exit is held and"
            " goes out at the first quote after the resume, at its bid",
            symbol=symbol,
            detail={"reason": reason},
        )

    def quoted(self, symbol: str) -> str | None:
        """A quote for ``symbol``, which is not halted: the exit held for it, if any (taken)."""
        return self.held.pop(symbol, None)

    def refusal(self, symbol: str) -> str | None:
        reason = self.symbols.get(symbol)
        return None if reason is None else f"{symbol}: trading is halted on this symbol ({reason})"


class Bands:
    """Each symbol's limit-up/limit-down band ``(lower, upper)`` as its feed published it, and the
    trading day it was published on: a band is that day's only."""

    def __init__(self) -> None:
        self.bands: dict[str, tuple[float, float]] = {}
        self._days: dict[str, date] = {}

    def publish(self, symbol: str, lower: float, upper: float, day: date) -> None:
        self.bands[symbol] = (lower, upper)
        self._days[symbol] = day

    def clear(self) -> None:
        """A new trading day: yesterday's bands are gone."""
        self.bands.clear()
        self._days.clear()

    def refusal(self, symbol: str, stop: float, day: date) -> str | None:
        """Why an entry whose stop is ``stop`` is refused on ``day`` (None: it is not): a stop below
        today's lower band, where the market would pause before it could fill."""
        band = self.bands.get(symbol)
        if band is None or not stop < band[0] or self._days.get(symbol) != day:
            return None
        return (
            f"{symbol}: the stop {stop:g} lies below the lower limit-up/limit-down band"
            f" {band[0]:g} (band {band[0]:g}-{band[1]:g}): the market would pause before it"
            " could fill there"
        )


class QuoteWaiters:
    """Waits on the engine's loop for a symbol's first quote (an entry asked for a symbol the
    source has just subscribed: ``POST /open-position``'s ``wait``)."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future[None]]] = {}

    async def wait(self, symbol: str, timeout: float) -> bool:
        """True when :meth:`quoted` was called for ``symbol``, False after ``timeout`` seconds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(symbol, []).append(future)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can lose a cancel (3.11)
                await asyncio.shield(future)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self.waiting.get(symbol, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self.waiting.pop(symbol, None)

    def quoted(self, symbol: str) -> None:
        """``symbol``'s quote came: every wait for it ends."""
        for future in self.waiting.pop(symbol, ()):
            if not future.done():
                future.set_result(None)
