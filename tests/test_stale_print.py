"""The break-even stop never fires on a print older than its own move (trust III, fault 5).

After TP1 the stop moves to the entry price. The symbol's last print is often the entry's own
(a print at the entry price): comparing the moved stop with it sold the rest on the very quote
that hit TP1, and TP2 never had a chance. A stop moved by an event is not tested against that
same event, and a print older than the stop's last move never triggers it (the bid does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from source_helpers import streaming, until

from momobot_alpaca import protocol as alpaca
from momobot_alpaca.fake import FakeAlpacaServer
from momobot_alpaca.source import AlpacaSource
from momobot_core.config import Config
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote, Target
from momobot_core.session import run_recorded
from momobot_core.sources import Watchlist
from momobot_core.sources.fakefeed import FeedThread
from momobot_massive import protocol as massive
from momobot_massive.fake import FakeMassiveServer
from momobot_massive.source import MassiveSource

from conftest import Recorder, make_hooks

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


class Feed:
    """One vendor's fake, and its quote and trade messages."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "alpaca":
            self.server: Any = FakeAlpacaServer([], speed=0)
            self.tables: dict[str, Any] = {"key_id": "test-key", "secret_key": "test-secret", "feed": "sip"}
        else:
            self.server = FakeMassiveServer([], speed=0)
            self.tables = {"key": "test-key", "taken_over_wait_s": 60}

    def quote(self, bid: float, ask: float, ms: int = 1) -> dict[str, Any]:
        """A quote the vendor stamped ``ms`` milliseconds into the session."""
        if self.name == "alpaca":
            return alpaca.quote("ABCD", bid, ask, self._rfc3339(ms))
        return massive.quote("ABCD", bid, ask, 1_764_000_000_000 + ms)

    def trade(self, price: float, ms: int = 1) -> dict[str, Any]:
        if self.name == "alpaca":
            return alpaca.trade("ABCD", price, self._rfc3339(ms))
        return massive.trade("ABCD", price, 1_764_000_000_000 + ms)

    @staticmethod
    def _rfc3339(ms: int) -> str:
        at = T0 + timedelta(milliseconds=ms)
        return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, as Alpaca sends them

    def source(self, engine: Engine) -> Any:
        return AlpacaSource(engine) if self.name == "alpaca" else MassiveSource(engine)


def live_on(vendor: Feed, thread: FeedThread, *plugins: object) -> tuple[Engine, Journal]:
    """A live engine (no stale-quote halt) with the vendor's source on the fake's stream."""
    journal = Journal()
    config = Config(
        tables={vendor.name: {**vendor.tables, "url": thread.server.url}, "risk": {"stale_quote_s": 0}}
    )
    engine = Engine(config=config, hooks=make_hooks(*plugins), journal=journal, mode="live")
    engine.start()
    engine.source = vendor.source(engine)
    return engine, journal


@pytest.fixture(params=["alpaca", "massive"])
def feed(request: pytest.FixtureRequest) -> Iterator[tuple[Feed, FeedThread]]:
    vendor = Feed(request.param)
    with FeedThread(vendor.server) as thread:
        yield vendor, thread


def test_the_quote_that_hits_tp1_never_fires_the_moved_stop_on_the_entrys_own_print(
    feed: tuple[Feed, FeedThread],
) -> None:
    vendor, thread = feed
    recorder = Recorder()
    engine, journal = live_on(vendor, thread, recorder)

    def targets() -> list[Target]:
        return [call["target"] for name, call in recorder.calls if name == "on_target_hit"]

    async def body(source: Any, task: asyncio.Task[None]) -> None:
        assert await until(lambda: bool(thread.server.subscriptions))
        thread.push(vendor.quote(1.99, 2.00), vendor.trade(2.00))  # the print at the entry price
        assert await until(lambda: (q := engine.last_quotes.get("ABCD")) is not None and q.last == 2.00)
        trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        seen = engine.counters.quotes
        thread.push(vendor.quote(2.20, 2.21))  # TP1; the last print is still the entry's 2.00
        thread.push(vendor.quote(2.10, 2.11))  # a later quote: the print is still older than the move
        assert await until(lambda: engine.counters.quotes >= seen + 2)
        assert targets() == [Target.TP1]
        assert engine.open_trades["ABCD"].remaining == 50 and engine.open_trades["ABCD"].stop == 2.00
        thread.push(vendor.quote(2.39, 2.40))  # TP2 had its chance, and takes it
        assert await until(lambda: "ABCD" not in engine.open_trades)
        assert targets() == [Target.TP1, Target.TP2]
        assert [leg.reason for leg in journal.legs() if leg.trade_id == trade.id] == ["tp1", "tp2"]

    streaming(engine, Watchlist(["ABCD"]), body)
    engine.shutdown()


def test_a_print_after_the_move_still_fires_the_break_even_stop(feed: tuple[Feed, FeedThread]) -> None:
    vendor, thread = feed
    engine, journal = live_on(vendor, thread)

    async def body(source: Any, task: asyncio.Task[None]) -> None:
        assert await until(lambda: bool(thread.server.subscriptions))
        thread.push(vendor.quote(1.99, 2.00), vendor.trade(2.00))
        assert await until(lambda: (q := engine.last_quotes.get("ABCD")) is not None and q.last == 2.00)
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        thread.push(vendor.quote(2.20, 2.21))
        assert await until(lambda: engine.open_trades["ABCD"].tp1_hit)
        thread.push(vendor.trade(1.99))  # a new print, at the bid above the stop: it is the price now
        assert await until(lambda: "ABCD" not in engine.open_trades)
        assert journal.legs()[-1].reason == "stop"

    streaming(engine, Watchlist(["ABCD"]), body)
    engine.shutdown()


@pytest.mark.parametrize("when", ["same frame, after the quote", "a later frame"])
def test_a_print_the_vendor_stamped_before_tp1s_quote_never_fires_the_moved_stop(
    feed: tuple[Feed, FeedThread], when: str
) -> None:
    # Found by attack: a print stamped (by the vendor) before TP1's quote, arriving after it,
    # looked new (stamped with its arrival) and sold the rest at break-even.
    vendor, thread = feed
    engine, journal = live_on(vendor, thread)

    async def body(source: Any, task: asyncio.Task[None]) -> None:
        assert await until(lambda: bool(thread.server.subscriptions))
        thread.push(vendor.quote(1.99, 2.00, ms=10), vendor.trade(2.00, ms=10))
        assert await until(lambda: (q := engine.last_quotes.get("ABCD")) is not None and q.last == 2.00)
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        old_print = vendor.trade(1.99, ms=900)  # it happened before TP1's quote (ms=1000)
        if when == "same frame, after the quote":
            thread.push(vendor.quote(2.20, 2.21, ms=1000), old_print)
        else:
            thread.push(vendor.quote(2.20, 2.21, ms=1000))
            assert await until(lambda: engine.open_trades["ABCD"].tp1_hit)
            thread.push(old_print)
        seen = engine.counters.quotes
        thread.push(vendor.quote(2.10, 2.11, ms=1100))
        assert await until(lambda: engine.counters.quotes > seen)
        assert engine.open_trades["ABCD"].remaining == 50  # the stop held
        thread.push(vendor.quote(2.39, 2.40, ms=1200))
        assert await until(lambda: "ABCD" not in engine.open_trades)
        assert [leg.reason for leg in journal.legs()] == ["tp1", "tp2"]

    streaming(engine, Watchlist(["ABCD"]), body)
    engine.shutdown()


# -- the rule on any path (the engine alone, quotes with print times) ------------------------

Step = tuple[float, float, float | None, float | None]  # seconds, bid, last, how long ago it printed


@st.composite
def paths(draw: Callable[..., Any]) -> list[Step]:
    steps: list[Step] = []
    t = 1.0
    for _ in range(draw(st.integers(2, 25))):
        t += draw(st.sampled_from([0.0, 0.5, 1.0]))
        bid = draw(st.sampled_from([1.85, 1.95, 1.99, 2.00, 2.05, 2.19, 2.20, 2.30, 2.39, 2.40]))
        if draw(st.booleans()):
            steps.append((t, bid, None, None))
        else:
            last = draw(st.sampled_from([1.90, 1.99, 2.00, 2.01, 2.10]))
            steps.append((t, bid, last, draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))))
    return steps


@settings(max_examples=300)
@given(path=paths())
def test_on_any_path_the_moved_stop_fires_only_on_a_newer_print_or_the_bid(path: list[Step]) -> None:
    recorder = Recorder()
    engine = Engine(hooks=make_hooks(recorder), journal=Journal(), mode="replay")
    engine.start()
    engine.apply(Quote("ABCD", T0, 1.99, 2.00, 2.00, T0))  # the entry's own print
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90, ts=T0)
    moved_at = T0
    known: tuple[float | None, datetime | None] = (2.00, T0)
    for seconds, bid, last, age in path:
        before = engine.open_trades.get("ABCD")
        if before is None:
            break
        ts = T0 + timedelta(seconds=seconds)
        printed = None if age is None else ts - timedelta(seconds=age)
        ask = round(bid + 0.01, 2)
        quote = Quote("ABCD", ts, bid, ask, last, printed)
        engine.apply(quote)
        fired = [c["target"] for n, c in recorder.calls if n == "on_target_hit" and c["quote"] is quote]
        said = f"{fired} at bid {bid}, print {last} from {printed}, stop {before.stop} moved at {moved_at}"
        if not before.tp1_hit and ask >= before.tp1:
            assert fired[:1] == [Target.TP1] and Target.STOP not in fired, said
            moved_at, known = ts, (last, printed)
        elif before.tp1_hit and ask >= before.tp2:
            assert fired == [Target.TP2], said
        else:
            when = printed or ts
            newer = when > moved_at or (when == moved_at and (last, printed) != known)
            fresh = last is not None and (not before.tp1_hit or newer)
            price = last if fresh and last is not None else bid
            assert (Target.STOP in fired) == (price <= before.stop), said
    engine.shutdown()


def test_a_print_right_behind_tp1s_quote_in_the_same_frame_is_new_and_fires_the_stop() -> None:
    # A live source stamps every message of one frame with the same receipt time: the print
    # that follows TP1's quote in it is no older than the move, and it is not the print the
    # move knew: it counts.
    recorder = Recorder()
    engine = Engine(hooks=make_hooks(recorder), journal=Journal(), mode="replay")
    engine.start()
    engine.apply(Quote("ABCD", T0, 1.99, 2.00, 2.00, T0))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90, ts=T0)
    frame = T0 + timedelta(seconds=5)
    engine.apply(Quote("ABCD", frame, 2.20, 2.21, 2.00, T0))  # TP1; the entry's print
    engine.apply(Quote("ABCD", frame, 2.20, 2.21, 2.00, T0))  # the same print again: not new
    assert "ABCD" in engine.open_trades
    engine.apply(Quote("ABCD", frame, 2.20, 2.21, 1.95, frame))  # a print in the same frame
    assert "ABCD" not in engine.open_trades
    assert [c["target"] for n, c in recorder.calls if n == "on_target_hit"] == [Target.TP1, Target.STOP]
    engine.shutdown()


def opened_at_one_second(tmp_path: Path) -> Path:
    """Events that open ABCD 100 (TP1 2.20, TP2 2.40, stop 1.90) at 14:30:01."""
    opens = tmp_path / "e.jsonl"
    opens.write_text(
        '{"type": "open", "ts": "2026-11-24T14:30:01Z", "symbol": "ABCD", "qty": 100,'
        ' "tp1": 2.2, "tp2": 2.4, "stop": 1.9}\n'
    )
    return opens


def test_a_replay_whose_last_column_carries_the_entrys_print_forward_lets_tp2_happen(tmp_path: Path) -> None:
    quotes = tmp_path / "q.csv"
    quotes.write_text(
        "ts,symbol,bid,ask,last\n"
        "2026-11-24T14:30:00Z,ABCD,1.99,2.00,2.00\n"
        "2026-11-24T14:30:02Z,ABCD,2.20,2.21,2.00\n"
        "2026-11-24T14:30:03Z,ABCD,2.15,2.16,2.00\n"  # the same print, carried: older than the move
        "2026-11-24T14:30:04Z,ABCD,2.39,2.40,2.00\n"
    )
    opens = opened_at_one_second(tmp_path)
    result = run_recorded([quotes, opens], hooks=None, config=Config())
    assert [(leg.reason, leg.qty) for leg in result.legs] == [("tp1", 50), ("tp2", 50)]
    # A new print at break-even in the recording is a print: the stop takes it.
    quotes.write_text(
        quotes.read_text().replace("14:30:03Z,ABCD,2.15,2.16,2.00", "14:30:03Z,ABCD,2.15,2.16,1.99")
    )
    result = run_recorded([quotes, opens], hooks=None, config=Config())
    assert [(leg.reason, leg.qty) for leg in result.legs] == [("tp1", 50), ("stop", 50)]


def test_a_recorded_row_without_a_print_ends_the_chain(tmp_path: Path) -> None:
    # Found by attack: the code carried a print across rows without one, so a real print at
    # break-even after them never fired the stop (a backtest too kind); the docs say the chain
    # is the row before's.
    quotes = tmp_path / "q.csv"
    quotes.write_text(
        "ts,symbol,bid,ask,last\n"
        "2026-11-24T14:30:00Z,ABCD,1.99,2.00,2.00\n"
        "2026-11-24T14:30:02Z,ABCD,2.20,2.21,\n"
        "2026-11-24T14:30:03Z,ABCD,2.15,2.16,2.00\n"  # after a row without one: a new print
        "2026-11-24T14:30:04Z,ABCD,2.39,2.40,2.00\n"
    )
    opens = opened_at_one_second(tmp_path)
    result = run_recorded([quotes, opens], hooks=None, config=Config())
    assert [(leg.reason, leg.qty) for leg in result.legs] == [("tp1", 50), ("stop", 50)]
