"""Candles on their own: OHLC invariants and bucket alignment on random price paths."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from momobot_core.candles import Candle, CandleBuilder, Timeframe, bucket_start, quote_price
from momobot_core.models import Quote

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)  # the Friday before a DST change


def test_timeframes_are_seconds_minutes_or_hours_that_divide_a_day() -> None:
    assert [Timeframe.parse(t).seconds for t in ("10s", "1m", "5M", " 1h ")] == [10, 60, 300, 3600]
    for bad in ("7s", "0m", "1d", "m", "", None, 5):
        with pytest.raises(ValueError, match="timeframe"):
            Timeframe.parse(bad)


def test_a_candle_closes_on_the_first_price_of_a_later_bucket_and_gaps_make_none() -> None:
    builder = CandleBuilder("ABCD", Timeframe.parse("1m"), NY)
    assert builder.price(T0, 2.00) is None
    assert builder.price(T0 + timedelta(seconds=20), 2.10) is None
    assert builder.price(T0 + timedelta(seconds=40), 1.95) is None
    closed = builder.price(T0 + timedelta(minutes=3, seconds=5), 2.05)  # two empty minutes
    assert closed == Candle("ABCD", "1m", T0.astimezone(NY), 2.00, 2.10, 1.95, 1.95, 3)
    current = builder.current
    assert current is not None and current.start == (T0 + timedelta(minutes=3)).astimezone(NY)
    assert builder.tick(T0 + timedelta(minutes=3, seconds=59)) is None
    ended = builder.tick(T0 + timedelta(minutes=4))  # live: the clock passed its end
    assert ended is not None and ended.close == 2.05 and builder.current is None


def test_buckets_follow_the_exchange_wall_clock_across_a_dst_change() -> None:
    before = datetime(2026, 3, 6, 14, 32, 30, tzinfo=UTC)  # 09:32:30 EST
    after = datetime(2026, 3, 9, 13, 32, 30, tzinfo=UTC)  # 09:32:30 EDT
    for ts in (before, after):
        start = bucket_start(ts, 300, NY)
        assert (start.hour, start.minute, start.second) == (9, 30, 0)


def test_a_quote_adds_its_print_once_and_its_mid_without_one() -> None:
    seen: dict[str, tuple[float, datetime | None]] = {}
    assert quote_price(Quote("ABCD", T0, 2.00, 2.02), seen) == 2.01
    assert quote_price(Quote("ABCD", T0, 2.00, 2.02, 2.01), seen) == 2.01
    assert quote_price(Quote("ABCD", T0, 2.00, 2.03, 2.01), seen) is None  # the same print
    later = T0 + timedelta(seconds=1)
    assert quote_price(Quote("ABCD", later, 2.00, 2.03, 2.01, later), seen) == 2.01  # a new one


prices = st.floats(min_value=0.01, max_value=1000, allow_nan=False, allow_infinity=False)
steps = st.lists(st.tuples(st.integers(min_value=0, max_value=400), prices), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(steps=steps, timeframe=st.sampled_from(["10s", "1m", "5m", "15s"]))
def test_candles_keep_ohlc_invariants_and_alignment_on_random_paths(
    steps: list[tuple[int, float]], timeframe: str
) -> None:
    tf = Timeframe.parse(timeframe)
    builder = CandleBuilder("ABCD", tf, NY)
    ts = T0
    candles: list[Candle] = []
    fed: list[tuple[datetime, float]] = []
    for gap, price in steps:
        ts += timedelta(seconds=gap)
        fed.append((ts, price))
        closed = builder.price(ts, price)
        if closed is not None:
            candles.append(closed)
    last = builder.current
    assert last is not None
    candles.append(last)
    assert sum(c.volume for c in candles) == len(fed)  # every price in exactly one candle
    for before, after in itertools.pairwise(candles):
        assert before.start < after.start
    for candle in candles:
        assert candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high
        local = candle.start.astimezone(NY)
        assert (local.hour * 3600 + local.minute * 60 + local.second) % tf.seconds == 0
        assert local.microsecond == 0
        mine = [p for t, p in fed if candle.start <= t < candle.start + timedelta(seconds=tf.seconds)]
        assert mine and (candle.open, candle.close) == (mine[0], mine[-1])
        assert (candle.high, candle.low, candle.volume) == (max(mine), min(mine), len(mine))


def test_the_candle_book_keeps_history_of_charted_symbols_only_and_drops_the_oldest() -> None:
    from momobot_core.candles import CandleBook

    book = CandleBook(NY, keep=3, most=2)
    book.chart("AAAA")
    for n in range(5):  # five minutes, one price each
        book.on_quote(Quote("AAAA", T0 + timedelta(minutes=n), 1.99, 2.01, 2.00 + n / 100))
    candles = book.candles("AAAA", "1m")
    assert [c.close for c in candles] == [2.01, 2.02, 2.03, 2.04]  # 3 kept closed + the forming one
    assert book.version("AAAA") == 5 and book.version("ZZZZ") == -1
    assert [c.volume for c in book.candles("AAAA", "5m")] == [5]
    book.chart("BBBB")
    book.chart("AAAA")  # asked again: the newest
    book.chart("CCCC")  # one too many: BBBB, the oldest asked for, goes
    assert list(book.symbols) == ["AAAA", "CCCC"] and book.candles("BBBB", "1m") == []


def test_a_late_print_inside_a_candle_a_later_price_closed_is_dropped() -> None:
    builder = CandleBuilder("ABCD", Timeframe.parse("1m"), NY)
    builder.price(T0, 2.00)
    closed = builder.price(T0 + timedelta(minutes=1, seconds=5), 2.05)  # the next minute's first
    assert closed is not None and closed.close == 2.00
    assert builder.price(T0 + timedelta(seconds=30), 9.90) is None  # stamped inside the closed one
    current = builder.current
    assert current is not None and (current.high, current.close, current.volume) == (2.05, 2.05, 1)


def test_a_chart_a_page_asks_for_never_drops_a_traded_symbols_candles() -> None:
    from datetime import UTC, datetime

    from momobot_core.engine import Engine

    engine = Engine()
    engine.start()
    engine.charts.most = 2
    at = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    for symbol in ("AAAA", "BBBB", "CCCC"):  # three trades: held, past `most`, none dropped
        engine.on_quote(Quote(symbol, at, 1.99, 2.00, 2.00))
        engine.open_trade(symbol, 100, 2.2, 2.4, 1.9, ts=at)
    assert list(engine.charts.symbols) == ["AAAA", "BBBB", "CCCC"]
    engine.chart("PAGE")  # a page's chart: no symbol that is not held to drop, so the book grows
    engine.chart("MORE")  # another: the oldest not held (PAGE) goes, never a traded one
    assert list(engine.charts.symbols) == ["AAAA", "BBBB", "CCCC", "MORE"]


# A quote: seconds after the last (negative: a print that comes late), bid and spread in
# hundredths of a cent, a print (or none), and whether the live clock ticks after it.
book_steps = st.lists(
    st.tuples(
        st.integers(min_value=-30, max_value=200),
        st.integers(min_value=100, max_value=5_000_000),
        st.integers(min_value=0, max_value=500),
        st.one_of(st.none(), st.integers(min_value=100, max_value=5_000_000)),
        st.booleans(),
    ),
    min_size=1,
    max_size=150,
)


@settings(max_examples=200, deadline=None)
@given(steps=book_steps)
def test_the_candle_book_builds_what_a_builder_per_timeframe_builds_from_each_price_rounded(
    steps: list[tuple[int, int, int, int | None, bool]],
) -> None:
    # The book takes the common quote in line and rounds a candle's prices once, when it is made;
    # its candles, and those each quote closes, must be a plain builder's fed each quote's price
    # as quote_price gives it (a mid rounded to a millionth), late prints and clock ticks included.
    from momobot_core.candles import CHART_TIMEFRAMES, CandleBook

    book = CandleBook(NY)
    book.chart("ABCD")
    builders = {name: CandleBuilder("ABCD", Timeframe.parse(name), NY) for name in CHART_TIMEFRAMES}
    plain: dict[str, list[Candle]] = {name: [] for name in CHART_TIMEFRAMES}
    seen: dict[str, tuple[float, datetime | None]] = {}
    ts = T0
    for gap, bid, spread, last, tick in steps:
        ts += timedelta(seconds=gap)
        printed = None if last is None else last / 10_000
        quote = Quote(
            "ABCD", ts, bid / 10_000, (bid + spread) / 10_000, printed, ts if last is not None else None
        )
        price = quote_price(quote, seen)
        expected = []
        if price is not None:
            for name, builder in builders.items():
                closed = builder.price(ts, price)
                if closed is not None:
                    plain[name].append(closed)
                    expected.append(closed)
        assert book.on_quote(quote) == expected
        if tick:
            now = ts + timedelta(seconds=5)
            ended = [c for c in (b.tick(now) for b in builders.values()) if c is not None]
            for candle in ended:
                plain[candle.timeframe].append(candle)
            assert book.tick(now) == ended
    for name, builder in builders.items():
        forming = [builder.current] if builder.current is not None else []
        assert book.candles("ABCD", name) == plain[name] + forming
