"""Trading halts and limit-up/limit-down bands in recordings: replayed, recorded, and streamed by
both market-data fakes as their services stream them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from source_helpers import streaming, until

from momobot_core.backtest.dayfile import DayRecorder, read_day
from momobot_core.config import Config
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Luld, Open, Quote, TradingHalt
from momobot_core.sources import Watchlist
from momobot_core.sources.fakefeed import FakeFeed, FeedThread
from momobot_core.sources.recorded import read_events

from conftest import make_hooks, momobot, write_jsonl

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_recorded_halt_refuses_entries_until_its_resume_and_bands_are_kept(tmp_path: Path) -> None:
    events = write_jsonl(
        tmp_path / "day.jsonl",
        [
            {"type": "quote", "ts": "2026-11-24T14:30:00Z", "symbol": "ABCD", "bid": 2.0, "ask": 2.01},
            {"type": "luld", "ts": "2026-11-24T14:30:00Z", "symbol": "ABCD", "lower": 1.8, "upper": 2.2},
            {
                "type": "trading_halt",
                "ts": "2026-11-24T14:30:01Z",
                "symbol": "ABCD",
                "halted": True,
                "reason": "LULD pause",
            },
            {
                "type": "open",
                "ts": "2026-11-24T14:30:02Z",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.1,
                "tp2": 2.3,
                "stop": 1.9,
            },
            {"type": "trading_halt", "ts": "2026-11-24T14:35:01Z", "symbol": "ABCD", "halted": False},
            {
                "type": "open",
                "ts": "2026-11-24T14:35:02Z",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.1,
                "tp2": 2.3,
                "stop": 1.9,
            },
        ],
    )
    engine = Engine(journal=Journal())
    engine.start()
    opened = []
    for event in read_events([events]):
        try:
            engine.apply(event)
        except TradeRefused as exc:
            opened.append(f"refused: {exc}")
            continue
        if type(event) is Open:
            opened.append(f"opened at {event.ts:%H:%M:%S}")
    assert opened == ["refused: ABCD: trading is halted on this symbol (LULD pause)", "opened at 14:35:02"]
    assert engine.luld_bands == {"ABCD": (1.8, 2.2)}
    kinds = [alert.kind for alert in engine.alerts]
    assert "trading_halt" in kinds and "resumed" in kinds
    replay = momobot("replay", str(events))
    assert replay.returncode == 0 and "Trades: 1 opened" in replay.stdout


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"type":"trading_halt","ts":"2026-11-24T14:30:01Z","symbol":"A","halted":"yes"}', "true or false"),
        ('{"type":"trading_halt","ts":"2026-11-24T14:30:01Z","symbol":"A"}', "lacks field 'halted'"),
        (
            '{"type":"luld","ts":"2026-11-24T14:30:01Z","symbol":"A","lower":2.2,"upper":1.8}',
            "0 < lower < upper",
        ),
        (
            '{"type":"luld","ts":"2026-11-24T14:30:01Z","symbol":"A","lower":"1","upper":2}',
            "must be a number",
        ),
        ('{"type":"luld","ts":"2026-11-24T14:30:01Z","symbol":"A","lower":1,"upper":1e309}', "finite"),
    ],
)
def test_bad_halt_and_band_lines_name_what_is_wrong(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    result = momobot("replay", str(path))
    assert result.returncode == 2
    assert "bad.jsonl:1: " in result.stderr and why in result.stderr


def test_a_live_halt_and_band_are_recorded_into_the_day_file(tmp_path: Path) -> None:
    engine = Engine(journal=Journal(), mode="live")
    engine.start()
    recorder = DayRecorder(tmp_path, engine.settings.tz)
    recorder.start_here()
    engine.recorder = recorder
    engine.trading_halt("ABCD", True, "news pending")  # as a source calls it
    engine.luld("ABCD", 1.8, 2.2)
    engine.recorder = None
    recorder.close()
    (day,) = tmp_path.glob("*.parquet")
    events = list(read_day(day))
    assert [type(e) for e in events] == [TradingHalt, Luld]
    assert (events[0].symbol, events[0].halted, events[0].reason) == ("ABCD", True, "news pending")  # type: ignore[union-attr]
    assert (events[1].lower, events[1].upper) == (1.8, 2.2)  # type: ignore[union-attr]


def _alpaca(url: str) -> Engine:
    from momobot_alpaca.source import AlpacaSource

    config = Config(
        tables={
            "alpaca": {"key_id": "test-key", "secret_key": "test-secret", "url": url, "feed": "sip"},
            "risk": {"stale_quote_s": 0},
        }
    )
    engine = Engine(config=config, hooks=make_hooks(), journal=Journal(), mode="live")
    engine.start()
    engine.source = AlpacaSource(engine)
    return engine


def _massive(url: str) -> Engine:
    from momobot_massive.source import MassiveSource

    config = Config(
        tables={
            "massive": {"key": "test-key", "url": url, "taken_over_wait_s": 60},
            "risk": {"stale_quote_s": 0},
        }
    )
    engine = Engine(config=config, hooks=make_hooks(), journal=Journal(), mode="live")
    engine.start()
    engine.source = MassiveSource(engine)
    return engine


def _alpaca_fake(events: list[object]) -> FakeFeed:
    from momobot_alpaca.fake import FakeAlpacaServer

    return FakeAlpacaServer(events, speed=0)  # type: ignore[arg-type]


def _massive_fake(events: list[object]) -> FakeFeed:
    from momobot_massive.fake import FakeMassiveServer

    return FakeMassiveServer(events, speed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make_fake", "make_engine"),
    [(_alpaca_fake, _alpaca), (_massive_fake, _massive)],
    ids=["alpaca", "massive"],
)
def test_both_fakes_stream_a_recordings_halt_and_band_and_the_sources_take_them(
    make_fake: Callable[[list[object]], FakeFeed], make_engine: Callable[[str], Engine]
) -> None:
    recording: list[object] = [
        Quote("ABCD", at(0), 2.0, 2.01, 2.0),
        Luld("ABCD", 1.8, 2.2, at(1)),
        TradingHalt("ABCD", True, "LULD pause", at(2)),
        Quote("WXYZ", at(3), 5.0, 5.01),  # not watched: its halt below never comes
        TradingHalt("WXYZ", True, "news", at(3)),
        Quote("ABCD", at(4), 2.01, 2.02, 2.01),
    ]
    with FeedThread(make_fake(recording)) as fake:
        engine = make_engine(fake.server.url)

        async def body(source: object, task: object) -> None:
            assert await until(lambda: engine.counters.quotes >= 2 and bool(engine.halted_symbols))

        streaming(engine, Watchlist(["ABCD"]), body)
    assert set(engine.halted_symbols) == {"ABCD"}
    assert engine.luld_bands == {"ABCD": (1.8, 2.2)}
    with pytest.raises(TradeRefused, match="trading is halted"):
        engine.open_trade("ABCD", 100, 2.1, 2.3, 1.9)


@pytest.mark.parametrize(
    ("make_fake", "make_engine", "quote"),
    [
        (
            _alpaca_fake,
            _alpaca,
            lambda s, p: {"T": "q", "S": s, "bp": p, "ap": p + 0.01, "t": "2026-11-24T14:30:00Z"},
        ),
        (_massive_fake, _massive, lambda s, p: {"ev": "Q", "sym": s, "bp": p, "ap": p + 0.01, "t": 1}),
    ],
    ids=["alpaca", "massive"],
)
def test_a_symbol_taken_off_the_watchlist_is_unsubscribed_and_nothing_of_it_follows(
    make_fake: Callable[[list[object]], FakeFeed], make_engine: Callable[[str], Engine], quote: Any
) -> None:
    recording: list[object] = [Quote("ABCD", at(0), 2.0, 2.01), Quote("WXYZ", at(1), 5.0, 5.01)]
    with FeedThread(make_fake(recording)) as fake:
        engine = make_engine(fake.server.url)
        watchlist = Watchlist(["ABCD", "WXYZ"])
        engine.watchlist = watchlist

        async def body(source: Any, task: object) -> None:
            assert await until(lambda: "WXYZ" in engine.last_quotes and "ABCD" in engine.last_quotes)
            assert engine.unwatch("WXYZ") and not engine.unwatch("WXYZ")
            assert await until(lambda: "WXYZ" not in fake.server.subscribed)  # the fake heard it
            assert "WXYZ" not in source.subscribed
            fake.push(quote("WXYZ", 6.0), quote("ABCD", 2.5))  # as if on the way before the unsubscribe
            assert await until(lambda: engine.last_quotes["ABCD"].bid == 2.5)

        streaming(engine, watchlist, body)
    assert engine.last_quotes["WXYZ"].bid == 5.0  # the quote after the unsubscribe was dropped
