"""OHLCV candles per symbol and timeframe, on the exchange clock.

A timeframe is ``Ns``, ``Nm`` or ``Nh`` (``10s``, ``1m``, ``5m``); its buckets are aligned to
the exchange's wall clock (``[momobot] timezone``): a ``5m`` candle starts at 09:30:00,
09:35:00, ... local time, whatever the UTC offset of the day. A candle is built from prices
(:meth:`CandleBuilder.price`): trade prints where the source has them, the quote's mid where it
does not (:func:`quote_price` says which). It closes when the first price of a later bucket
arrives, or, live, when the clock passes its end (:meth:`CandleBuilder.tick`). A bucket with
no price makes no candle: gaps are gaps.

``volume`` is the number of prices the candle was built from (a tick count): the sources give
no print sizes.
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

import attrs

from momobot_core.models import Quote

__all__ = ["CHART_TIMEFRAMES", "Candle", "CandleBook", "CandleBuilder", "Timeframe", "quote_price"]

_TIMEFRAME = re.compile(r"^([1-9][0-9]{0,4})([smh])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
DAY_S = 86_400


@attrs.frozen
class Timeframe:
    """A candle's length; ``name`` as given (``1m``), ``seconds`` (60)."""

    name: str
    seconds: int

    @classmethod
    def parse(cls, text: object) -> Timeframe:
        """``10s``, ``1m``, ``5m``, any ``Ns``/``Nm``/``Nh`` that divides a day; ValueError otherwise."""
        name = text.strip().lower() if isinstance(text, str) else ""
        match = _TIMEFRAME.match(name)
        if match is None:
            raise ValueError(f"timeframe {text!r}: give seconds, minutes or hours such as 10s, 1m or 5m")
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
        if DAY_S % seconds:
            raise ValueError(
                f"timeframe {text!r}: {seconds} s does not divide a day, so its candles could not"
                " start at the same times every day"
            )
        return cls(name, seconds)

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class Candle:
    """One closed (or forming) candle: ``start`` is aware, in the exchange's time zone."""

    symbol: str
    timeframe: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int


def bucket_start(ts: datetime, seconds: int, tz: tzinfo) -> datetime:
    """The start of the bucket of ``seconds`` holding ``ts``, on the wall clock of ``tz``."""
    local = ts.astimezone(tz)
    into_day = local.hour * 3600 + local.minute * 60 + local.second
    start = into_day - into_day % seconds
    return local.replace(hour=start // 3600, minute=start % 3600 // 60, second=start % 60, microsecond=0)


class CandleBuilder:
    """The candles of one symbol at one timeframe: feed prices in time order, get closed candles."""

    # Slots: every quote of a charted symbol (each open trade's) touches three builders.
    __slots__ = (
        "_close",
        "_closed_until",
        "_count",
        "_end",
        "_high",
        "_low",
        "_open",
        "_rounds",
        "_start",
        "_step",
        "symbol",
        "timeframe",
        "tz",
    )

    def __init__(self, symbol: str, timeframe: Timeframe, tz: tzinfo, *, rounds: bool = False) -> None:
        """``rounds``: the candles' prices are rounded to a millionth (the candle book's: it feeds
        quotes' mids as they come, unrounded); otherwise they are the prices given."""
        self.symbol = symbol
        self.timeframe = timeframe
        self.tz = tz
        self._rounds = rounds
        self._step = timedelta(seconds=timeframe.seconds)
        #: The candle being built: its start (the exchange's time zone) and end (None: none), open,
        #: high, low, close, count. The ends are kept in UTC: every price is compared with them, and
        #: two times in one zone compare in 23 ns where two in different zones take 750 to 850 (each
        #: one's offset looked up); a live source's quote time is in UTC. (In the same zone, too, an
        #: end kept in UTC is right in the hour a clock change repeats, where one in local time
        #: compared by wall clock was not.)
        self._start: datetime | None = None
        self._end: datetime | None = None
        self._open = self._high = self._low = self._close = 0.0
        self._count = 0
        #: The end of the last candle closed: a price older than it comes too late to count.
        self._closed_until: datetime | None = None

    @property
    def current(self) -> Candle | None:
        """The candle being built now (not closed), or None."""
        return self._candle() if self._start is not None else None

    def price(self, ts: datetime, price: float) -> Candle | None:
        """Add one price; the candle it closed (the first price of a later bucket), or None.

        A price older than the candle being built (a late print) counts in that candle; one
        older than the last candle closed is dropped (that candle is closed)."""
        end = self._end
        if self._closed_until is not None and ts < self._closed_until:
            return None
        if end is not None and ts < end:
            if price > self._high:
                self._high = price
            elif price < self._low:
                self._low = price
            self._close = price
            self._count += 1
            return None
        closed = self._candle() if self._start is not None else None
        if closed is not None:
            self._closed_until = end
        start = bucket_start(ts, self.timeframe.seconds, self.tz)
        self._start, self._end = start, (start + self._step).astimezone(UTC)
        self._open = self._high = self._low = self._close = price
        self._count = 1
        return closed

    def tick(self, now: datetime) -> Candle | None:
        """Live: the candle whose end the clock has passed, closed now (None if none)."""
        if self._end is None or now < self._end:
            return None
        closed = self._candle()
        self._closed_until = self._end
        self._start = self._end = None
        return closed

    def _candle(self) -> Candle:
        assert self._start is not None
        prices = (self._open, self._high, self._low, self._close)
        if self._rounds:
            # Rounding is monotone: the highest price rounded is the highest of the prices
            # rounded, so rounding here, once a candle, is rounding each price as it came.
            prices = (round(prices[0], 6), round(prices[1], 6), round(prices[2], 6), round(prices[3], 6))
        return Candle(self.symbol, self.timeframe.name, self._start, *prices, self._count)


def quote_price(
    quote: Quote, seen: dict[str, tuple[float, datetime | None]], *, rounded: bool = True
) -> float | None:
    """The price ``quote`` adds to its candles (``seen``: each symbol's last print), or None.
    A mid is rounded to a millionth, unless ``rounded`` is False (a builder's candles round
    their prices: :class:`CandleBook` leaves it to them)."""
    last = quote.last
    if last is None:
        mid = (quote.bid + quote.ask) / 2
        return round(mid, 6) if rounded else mid
    mark = (last, quote.last_at)
    if seen.get(quote.symbol) == mark:
        return None
    seen[quote.symbol] = mark
    return last


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _in_bucket(builders: list[CandleBuilder]) -> tuple[datetime, datetime]:
    """The times in which a price goes into every builder's forming candle (an empty span if one
    has none): from the latest end of a closed candle, to the earliest end of a forming one."""
    since, until = _EARLIEST, None
    for builder in builders:
        end, closed_until = builder._end, builder._closed_until
        if end is None:
            return _EARLIEST, _EARLIEST
        if until is None or end < until:
            until = end
        if closed_until is not None and closed_until > since:
            since = closed_until
    return since, until if until is not None else _EARLIEST


#: The timeframes a chart offers (the cockpit's 10 s / 1 m / 5 m).
CHART_TIMEFRAMES = ("10s", "1m", "5m")
_CHART_TIMEFRAMES = tuple(Timeframe.parse(name) for name in CHART_TIMEFRAMES)


class CandleBook:
    """Candle history of the symbols a person charts (and those armed or in a trade), at the
    chart's timeframes: the last ``keep`` closed candles and the one forming, with a version per
    symbol so each open page sends only what changed (throttled by its own cadence, never per
    quote). A quote for a symbol not charted costs one set look-up."""

    def __init__(self, tz: tzinfo, keep: int = 500, most: int = 50) -> None:
        self.tz = tz
        self.keep = keep
        self.most = most
        #: Charted symbols, oldest first (a page asking again moves one to the end).
        self.symbols: dict[str, int] = {}
        self._builders: dict[str, list[CandleBuilder]] = {}
        self._closed: dict[tuple[str, str], collections.deque[Candle]] = {}
        self._seen: dict[str, tuple[float, datetime | None]] = {}
        #: Per symbol, the times ``[since, until)`` in which a price is one more price of every
        #: builder's forming candle (none closes, none starts): the common case, done in line.
        self._in_bucket: dict[str, tuple[datetime, datetime]] = {}

    def chart(self, symbol: str, keep: Callable[[str], bool] = lambda _: False) -> None:
        """Build candles for ``symbol`` from now on (kept until ``most`` others are newer; a
        symbol ``keep`` holds on to, a traded or armed one, is never dropped for another)."""
        if symbol in self.symbols:
            self.symbols[symbol] = self.symbols.pop(symbol)  # the newest now
            return
        # A symbol held for good (traded, armed) takes no other's room, so its entry never scans
        # the book (with hundreds of open trades that scan cost the entry tens of microseconds):
        # only a chart a page asks for makes room, dropping the oldest symbol not held.
        while not keep(symbol) and len(self.symbols) >= self.most:
            oldest = next((s for s in self.symbols if not keep(s)), None)
            if oldest is None:
                break  # every one is held: the book grows past `most` rather than drop one
            del self.symbols[oldest]
            self._builders.pop(oldest, None)
            self._in_bucket.pop(oldest, None)
            for name in CHART_TIMEFRAMES:
                self._closed.pop((oldest, name), None)
        # Its builders come with its first price: an entry (or an arm) pays one dict store, and
        # a symbol charted but never quoted costs nothing more.
        self.symbols[symbol] = 0

    def _build(self, symbol: str) -> list[CandleBuilder]:
        builders = [CandleBuilder(symbol, timeframe, self.tz, rounds=True) for timeframe in _CHART_TIMEFRAMES]
        self._builders[symbol] = builders
        for name in CHART_TIMEFRAMES:
            self._closed[(symbol, name)] = collections.deque(maxlen=self.keep)
        return builders

    def on_quote(self, quote: Quote) -> list[Candle]:
        """Add the quote's price; the candles it closed (at most one per timeframe)."""
        price = quote_price(quote, self._seen, rounded=False)
        if price is None:
            return []
        symbol = quote.symbol
        ts = quote.ts
        window = self._in_bucket.get(symbol)
        if window is not None and window[0] <= ts < window[1]:
            # CandleBuilder.price's in-bucket branch, for each builder, without three calls: this
            # runs for every quote of every open trade's symbol (docs/PERFORMANCE.md).
            for builder in self._builders[symbol]:
                if price > builder._high:
                    builder._high = price
                elif price < builder._low:
                    builder._low = price
                builder._close = price
                builder._count += 1
            self.symbols[symbol] += 1
            return []
        builders = self._builders.get(symbol)
        if builders is None:
            builders = self._build(symbol)
        done = []
        for builder in builders:
            closed = builder.price(ts, price)
            if closed is not None:
                self._closed[(symbol, builder.timeframe.name)].append(closed)
                done.append(closed)
        self.symbols[symbol] += 1
        self._in_bucket[symbol] = _in_bucket(builders)
        return done

    def tick(self, now: datetime) -> list[Candle]:
        """Live: the candles whose end the clock passed, closed now."""
        done = []
        for symbol, builders in self._builders.items():
            for builder in builders:
                closed = builder.tick(now)
                if closed is not None:
                    self._in_bucket.pop(symbol, None)  # that builder has no forming candle now
                    self._closed[(symbol, builder.timeframe.name)].append(closed)
                    self.symbols[symbol] += 1
                    done.append(closed)
        return done

    def candles(self, symbol: str, timeframe: str) -> list[Candle]:
        """The closed candles kept and the one forming, oldest first."""
        closed = list(self._closed.get((symbol, timeframe), ()))
        for builder in self._builders.get(symbol, ()):
            if builder.timeframe.name == timeframe and builder.current is not None:
                closed.append(builder.current)
        return closed

    def last(self, symbol: str, timeframe: str, count: int) -> list[Candle]:
        """The newest ``count`` candles (the one forming last), without copying the history."""
        closed = self._closed.get((symbol, timeframe))
        current = None
        for builder in self._builders.get(symbol, ()):
            if builder.timeframe.name == timeframe:
                current = builder.current
        wanted = count - (current is not None)
        recent = list(itertools.islice(reversed(closed), wanted))[::-1] if closed and wanted > 0 else []
        return [*recent, current] if current is not None else recent

    def version(self, symbol: str) -> int:
        return self.symbols.get(symbol, -1)
