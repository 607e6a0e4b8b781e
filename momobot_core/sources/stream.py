"""What every WebSocket quote source does the same way: stay connected, say so, follow the watchlist.

A vendor's source subclasses :class:`StreamSource` and writes only its
protocol: :meth:`~StreamSource.handshake` (banner and authentication),
:meth:`~StreamSource.subscribe_message`, :meth:`~StreamSource.decode` and
:meth:`~StreamSource.message` (hand quotes to ``bot.apply``), and for a fast path
:attr:`~StreamSource.stream_decode`, :meth:`~StreamSource.quote` and
:meth:`~StreamSource.trade`. The base runs on the engine's event loop:

* it reconnects with backoff, forever: a bot with open positions never exits
  on its own; only keys refused before the first success stop start-up
  (:class:`~momobot_core.sources.SourceError`, exit 2);
* a vendor's "go away" (:class:`Refused` with ``wait``) is waited out, never
  hammered;
* each kind of failure is an alert once (and every twentieth time), so a
  long outage is visible and not noisy;
* it subscribes to the watchlist, and to every symbol it gains later;
* its connection (:mod:`momobot_core.sources.connection`) hands each frame over from
  the socket's read callback, and drops a vendor that stops answering pings;
* the connection's own logger (``momobot.<source>.wire``) says only what went wrong
  (WARNING and above): a library logs every frame at DEBUG, the authentication
  message and its secret included, and a connection made or lost at INFO (the
  source says that itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from picows import WSError
from websockets.client import backoff
from websockets.exceptions import ConnectionClosed

from momobot_core.models import new_quote
from momobot_core.sources import SourceError, SourceStatus, Watchlist
from momobot_core.sources.connection import StreamConnection

if TYPE_CHECKING:
    from momobot_core.engine import Engine


class Refused(Exception):
    """The vendor said no. ``auth``: the keys or the subscription; ``wait``: seconds to stay away."""

    def __init__(self, message: str, *, auth: bool = False, wait: float | None = None) -> None:
        super().__init__(message)
        self.auth = auth
        self.wait = wait


class QuoteMessage(msgspec.Struct, gc=False):
    """A quote as a vendor's stream sends it, decoded straight from a frame's JSON (no dict).

    A vendor subclasses it with its tag (``tag_field``, ``tag``) and its key names
    (``rename={"symbol": "S", ...}``), declaring every field again: a rename applies only to
    the fields a class declares itself. Keys it does not name are skipped unread. A price
    given as an integer is taken as its float; a bool is refused."""

    symbol: str
    bid: float
    ask: float
    vendor: Any = None  # the vendor's time for it, as sent


class TradeMessage(msgspec.Struct, gc=False):
    """A trade print, as :class:`QuoteMessage` is a quote."""

    symbol: str
    price: float
    vendor: Any = None
    conditions: Any = None


class StreamSource:
    """The shared half of a WebSocket quote source (see the module's docstring)."""

    name = "stream"
    url = ""
    open_timeout = 5.0
    reconnect_max_delay = 10.0
    #: A connection that brought quotes and lasted this many seconds was a working one: when it
    #: ends, the reconnect's backoff starts afresh (0.2 s) and the end is always an alert. Any
    #: other keeps backing off (up to ``reconnect_max_delay``), and its end is an alert once
    #: per kind of failure (and every twentieth time).
    steady_s = 10.0
    #: A ping this many seconds after the last one's answer, whatever else comes; no answer
    #: within ``ping_timeout`` drops the connection (alert, reconnect).
    ping_interval = 5.0
    ping_timeout = 5.0
    #: The longest message taken (bytes); a longer one closes the connection with 1009.
    max_message = 2**22
    #: A vendor's frames of nothing but quotes and trades, decoded straight into its
    #: :class:`QuoteMessage` and :class:`TradeMessage` subclasses:
    #: ``msgspec.json.Decoder(list[MyQuote | MyTrade]).decode``. Any other frame
    #: (it raises msgspec.DecodeError, or another ValueError or RecursionError) goes message by
    #: message through :meth:`decode` and :meth:`message`. None: every frame does. A subclass
    #: that overrides :meth:`decode` or :meth:`message` and does not set this itself gets None
    #: (:meth:`__init_subclass__`): what it overrides sees every message.
    stream_decode: Callable[[str | bytes], Sequence[QuoteMessage | TradeMessage]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that overrides :meth:`decode` or :meth:`message` and leaves
        :attr:`stream_decode` to its parent would never see a frame the parent's structs take:
        its override would quietly miss nearly every quote. It takes None instead."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "stream_decode" not in own and ("decode" in own or "message" in own):
            cls.stream_decode = None

    def __init__(self) -> None:
        self.connected = False
        self.messages = 0
        self.errors = 0
        self.one_sided = 0
        self.connections = 0
        self.subscribed: set[str] = set()
        #: Symbols unsubscribed: what of theirs was already on the way is dropped, not fed.
        self.dropped: set[str] = set()
        self.detail = ""
        self.log = logging.getLogger(f"momobot.{self.name}")
        self.wire_log = logging.getLogger(f"momobot.{self.name}.wire")
        self.wire_log.setLevel(logging.WARNING)
        self._ever_connected = False
        self._connected_at = 0.0  # when the current connection's handshake ended (monotonic)
        self._quotes_at_connect = 0  # the quotes seen by then (applied and one-sided)
        self._last_message: float | None = None
        self._last_told = ""
        #: The latest bid and ask per symbol (a print goes in with them); a halt drops them.
        self._book: dict[str, tuple[float, float]] = {}
        #: The last regular print per symbol and when it happened (older than a stop's move: not
        #: used).
        self._last: dict[str, tuple[float | None, datetime | None]] = {}
        #: Each symbol's last quote: when it came, and the vendor's time for it, as sent.
        self._quoted_at: dict[str, tuple[datetime, Any]] = {}
        #: The vendor's time of the last quote, as sent (the status shows it).
        self.vendor_time: Any = None

    # -- what a vendor writes ----------------------------------------------------------

    async def handshake(self, ws: StreamConnection) -> None:
        """Read the banner, authenticate; raise Refused (``auth=True`` for keys) if refused."""
        raise NotImplementedError

    def subscribe_message(self, symbols: list[str]) -> str:
        raise NotImplementedError

    def unsubscribe_message(self, symbols: list[str]) -> str | None:
        """The message that stops ``symbols`` (None: the vendor has none; they stay subscribed)."""
        return None

    def decode(self, frame: str | bytes) -> list[dict[str, Any]]:
        """The messages of one frame; ValueError if it holds none (the frame is skipped, counted)."""
        raise NotImplementedError

    def message(self, bot: Engine, item: dict[str, Any], now: datetime) -> None:
        """Act on one message that arrived ``now``: ``bot.apply`` a quote, ``bot.trading_halt``...

        KeyError or TypeError skips the message (counted); Refused ends the connection.
        """
        raise NotImplementedError

    def quote(self, bot: Engine, symbol: str, bid: float, ask: float, vendor: Any, now: datetime) -> None:
        """A quote, read from a message of either kind (:attr:`stream_decode`, :meth:`message`):
        to the engine with the symbol's last print. A symbol unsubscribed is dropped (its quotes
        were on the way); a one-sided quote (common before the open) is counted, not fed."""
        if symbol in self.dropped:
            return
        if not bid or not ask:
            self.one_sided += 1
            return
        self._book[symbol] = (bid, ask)
        last, last_at = self._last.get(symbol, NO_PRINT)
        bot.apply(new_quote(symbol, now, bid, ask, last, last_at))
        self.vendor_time = vendor
        self._quoted_at[symbol] = (now, vendor)

    def printed(self, bot: Engine, symbol: str, last: float, at: datetime, now: datetime) -> None:
        """A regular print that happened ``at``: the symbol's last price from now on, fed to the
        engine with the symbol's bid and ask (a vendor's :meth:`trade` says which prints count
        and when they happened)."""
        self._last[symbol] = (last, at)
        if symbol in self._book:
            bid, ask = self._book[symbol]
            bot.apply(new_quote(symbol, now, bid, ask, last, at))

    def trade(
        self, bot: Engine, symbol: str, last: float, vendor: Any, conditions: Any, now: datetime
    ) -> None:
        """A trade print, read from a message of either kind: if it sets the last price, to
        :meth:`printed` with when it happened."""
        raise NotImplementedError

    def frame(self, bot: Engine, frame: str | bytes) -> None:
        """One frame, several messages: all arrived now (wall clock), the time live rules use.

        A frame of nothing but quotes and trades (a stream's nearly every frame) is decoded by
        :attr:`stream_decode` into structs, and each goes to :meth:`quote` or :meth:`trade` as
        :meth:`message` would send it: the frame in about four-fifths of the time of a dict per
        message (``bench/source_frames.py``). Any other frame goes message by message. A
        message that cannot be read (a field missing, of another type, a time out of range) is
        skipped and counted; a frame that cannot be read at all, likewise."""
        now = datetime.now(UTC)
        if self.stream_decode is not None:
            try:
                structs = self.stream_decode(frame)
            except (ValueError, RecursionError):  # msgspec's DecodeError is a ValueError
                pass
            else:
                self._quotes_and_trades(bot, structs, now)
                return
        try:
            items = self.decode(frame)
        except (ValueError, RecursionError) as exc:
            self.errors += 1
            self.log.warning(
                "[%s] a frame without messages was skipped (%s): %r",
                self.name,
                type(exc).__name__,
                frame[:200],
            )
            return
        for item in items:
            self.messages += 1
            try:
                self.message(bot, item, now)
            except (KeyError, TypeError, OverflowError) as exc:
                self._skipped(item, exc)

    def _quotes_and_trades(
        self, bot: Engine, structs: Sequence[QuoteMessage | TradeMessage], now: datetime
    ) -> None:
        taken = 0  # counted as the loop above counts, should a message's exception end the frame
        try:
            for item in structs:
                taken += 1
                try:
                    if isinstance(item, QuoteMessage):
                        self.quote(bot, item.symbol, item.bid, item.ask, item.vendor, now)
                    else:
                        self.trade(bot, item.symbol, item.price, item.vendor, item.conditions, now)
                except (KeyError, TypeError, OverflowError) as exc:
                    self._skipped(item, exc)
        finally:
            self.messages += taken

    def _skipped(self, item: object, exc: Exception) -> None:
        self.errors += 1
        self.log.warning(
            "[%s] a message that could not be read was skipped (%s: %s): %r",
            self.name,
            type(exc).__name__,
            exc,
            item,
        )

    def describe(self) -> str:
        """A line for the status: the feed, the last vendor time."""
        return ""

    # -- QuoteSource -----------------------------------------------------------------------

    def status(self) -> SourceStatus:
        age = None if self._last_message is None else time.monotonic() - self._last_message
        return SourceStatus(
            connected=self.connected,
            symbols=len(self.subscribed),
            last_message_age_s=age,
            messages=self.messages,
            errors=self.errors,
            detail=self.detail or self.describe(),
        )

    async def run(self, bot: Engine, watchlist: Watchlist) -> None:
        """Stream until cancelled, reconnecting with backoff."""
        try:  # at start, never a retry that cannot succeed
            StreamConnection.check_pings(self.ping_interval, self.ping_timeout)
        except ValueError as exc:
            raise SourceError(f"{self.name}: {exc}") from None
        delays = self._backoff()
        while True:
            wait: float | None = None
            try:
                await self._session(bot, watchlist)
                reason = "the stream closed"
            except Refused as exc:
                self.errors += 1
                if exc.auth and not self._ever_connected:
                    raise SourceError(f"{self.name}: {exc}") from None
                reason, wait = str(exc), exc.wait
            except (OSError, TimeoutError, ConnectionClosed, WSError, ValueError) as exc:
                self.errors += 1
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except BaseException:
                # Anything else ends this run (serve says so and starts the source again): the
                # next run starts with no connection and nothing subscribed.
                self.connected = False
                self.subscribed.clear()
                raise
            was_connected, self.connected = self.connected, False
            self.subscribed.clear()
            # Steady: quotes came on it, and it lasted steady_s. One that went silent after its
            # handshake lasts its ping window, and is a failure like any other.
            steady = (
                was_connected
                and bot.counters.quotes + self.one_sided > self._quotes_at_connect
                and time.monotonic() - self._connected_at >= self.steady_s
            )
            if wait is not None or steady:
                # The vendor asked us to stay away (waited out, then a fresh backoff), or a
                # working connection ended: its first retry comes at once, not after the waits
                # earlier failures built up.
                delays = self._backoff()
            if wait is None:
                wait = next(delays)
            self.detail = f"{reason}; reconnecting in {wait:.1f} s"
            kind = reason.split(":")[0]
            if steady or kind != self._last_told or not self.errors % 20:
                self._last_told = kind
                bot.alert(
                    "stale_quotes",
                    f"{self.name} stream: {reason}; reconnecting (entries halt if quotes stop)",
                    source=self.name,
                )
            await asyncio.sleep(wait)

    def _backoff(self) -> Iterator[float]:
        return backoff(initial_delay=0.2, min_delay=0.2, max_delay=self.reconnect_max_delay)

    async def _session(self, bot: Engine, watchlist: Watchlist) -> None:
        self.subscribed.clear()  # a new connection has no subscription yet
        ws = StreamConnection(
            max_size=self.max_message,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            logger=self.wire_log,
        )
        await ws.open(self.url, self.open_timeout)
        try:
            self.connections += 1
            await self.handshake(ws)
            self._ever_connected = self.connected = True
            self._connected_at = time.monotonic()
            self._quotes_at_connect = bot.counters.quotes + self.one_sided
            self.detail = ""
            self.log.info("[%s] connected to %s", self.name, self.url)
            await self._subscribe(ws, list(watchlist))
            follow = asyncio.create_task(self._follow(ws, watchlist))

            def take(frame: str | bytes) -> None:
                self._last_message = time.monotonic()
                self.frame(bot, frame)

            try:
                # Every frame from here on goes to the engine from the socket's read callback.
                # A source with stream_decode takes the bytes that came: msgspec reads bytes
                # faster than a str (docs/PERFORMANCE.md); a text frame that is not UTF-8 still
                # ends the connection (1007), with an alert and a reconnect.
                await ws.serve(take, decode=self.stream_decode is None)
            finally:
                follow.cancel()
                # Its end is taken (a send that met the closed connection), never left unread.
                await asyncio.gather(follow, return_exceptions=True)
        finally:
            await ws.aclose()

    async def _subscribe(self, ws: StreamConnection, symbols: list[str]) -> None:
        new = [s for s in symbols if s not in self.subscribed]
        if new:
            await ws.send(self.subscribe_message(new))
            self.subscribed.update(new)
            self.dropped.difference_update(new)

    async def _follow(self, ws: StreamConnection, watchlist: Watchlist) -> None:
        """Subscribe to symbols the watchlist gains (POST /watch, POST /trades, new trades), and
        unsubscribe from those it loses (the cockpit's unwatch)."""
        while True:
            symbols = await watchlist.changed()
            await self._subscribe(ws, symbols)
            gone = sorted(self.subscribed - set(symbols))
            message = self.unsubscribe_message(gone) if gone else None
            if message is not None:
                await ws.send(message)
                self.subscribed.difference_update(gone)
                self.dropped.update(gone)  # their quotes already on the way are not fed

    async def recv(self, ws: StreamConnection) -> Any:
        """One frame of the handshake, within ``open_timeout``."""
        try:
            async with asyncio.timeout(self.open_timeout):  # not wait_for: see connection.open
                return await ws.recv()
        except TimeoutError:
            raise TimeoutError(
                f"no message from the vendor within {self.open_timeout:g} s of its handshake"
            ) from None


#: A symbol's last print before any regular trade message came: (price, when).
NO_PRINT: tuple[float | None, datetime | None] = (None, None)


def printed_at(now: datetime, quoted: tuple[datetime, float] | None, print_s: float | None) -> datetime:
    """When a print happened, on this process's clock: when it came (``now``), unless the vendor
    stamps it earlier than the symbol's last quote (``quoted``: when that quote came, and its
    vendor time in seconds). Then it is as much older than that quote's arrival: a print that
    arrives after TP1's quote but happened before it never fires the stop TP1 moved."""
    if quoted is None or print_s is None:
        return now
    came, quote_s = quoted
    if print_s >= quote_s:
        return now
    return min(now, came - timedelta(seconds=quote_s - print_s))


def price(value: object) -> float:
    """A price from a stream; TypeError for anything that is not a number (the message is skipped)."""
    if type(value) is float:  # the common case, checked first: this runs for every message
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a price: {value!r}")
    return float(value)
