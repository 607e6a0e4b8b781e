"""The Massive source against a fake of the Massive stocks stream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_helpers import start_api
from source_helpers import streaming, until
from websockets.sync.client import connect

from momobot_core.config import Config, ConfigError
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote
from momobot_core.sources import SourceError, Watchlist
from momobot_core.sources.fakefeed import FeedThread
from momobot_massive import protocol
from momobot_massive.fake import FakeMassiveServer
from momobot_massive.source import MassiveSource

from conftest import make_hooks
from hotkey_helpers import HotkeyTestServer, wait_until

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FeedThread]:
    quotes = [
        Quote(
            "ABCD",
            T0 + timedelta(seconds=n),
            round(2.0 + n / 100, 2),
            round(2.01 + n / 100, 2),
            round(2.0 + n / 100, 2),
        )
        for n in range(4)
    ]
    with FeedThread(FakeMassiveServer(quotes, speed=0)) as thread:
        yield thread


def engine_for(url: str, *, source: bool = True, **massive: Any) -> Engine:
    config = Config(
        tables={
            "massive": {"key": "test-key", "url": url, "taken_over_wait_s": 60, **massive},
            "risk": {"stale_quote_s": 0},
        }
    )
    engine = Engine(config=config, hooks=make_hooks(), journal=Journal(), mode="live")
    engine.start()
    if source:
        engine.source = MassiveSource(engine)
    return engine


def test_a_recorded_session_streams_into_the_engine(fake: FeedThread) -> None:
    engine = engine_for(fake.server.url)

    async def body(source: Any, task: asyncio.Task[None]) -> None:
        assert await until(lambda: engine.counters.quotes >= 7)
        fake.push(protocol.trade("ABCD", 9.0, 1, [37]))  # an odd lot: last stays
        fake.push(protocol.quote("ABCD", 0, 2.5, 1))  # one-sided: skipped
        assert await until(lambda: source.one_sided == 1)

    streaming(engine, Watchlist(["ABCD"]), body)
    quote = engine.last_quotes["ABCD"]
    assert (quote.bid, quote.ask, quote.last) == (2.03, 2.04, 2.03)
    assert fake.server.subscriptions == [["ABCD"]]


def test_a_refused_key_at_the_start_stops_start_up(fake: FeedThread) -> None:
    engine = engine_for(fake.server.url, source=False, key="wrong")
    with pytest.raises(SourceError, match="Massive refused the key: authentication failed"):
        asyncio.run(MassiveSource(engine).run(engine, Watchlist(["ABCD"])))


def test_another_connection_with_the_key_is_reported_and_never_fought(fake: FeedThread) -> None:
    engine = engine_for(fake.server.url)

    async def body(source: Any, task: asyncio.Task[None]) -> None:
        assert await until(lambda: source.connected)

        def other_program() -> None:
            with connect(fake.server.url, proxy=None) as other:
                other.recv(5)
                other.send(protocol.auth("test-key"))
                assert json.loads(other.recv(5))[0]["status"] == "auth_success"
                taken.wait(10)

        taken = threading.Event()
        thread = threading.Thread(target=other_program)
        thread.start()
        try:
            assert await until(lambda: "not fighting it: trying again in 60 s" in source.status().detail)
        finally:
            taken.set()
            thread.join(10)

    streaming(engine, Watchlist(["ABCD"]), body)
    server = fake.server
    assert isinstance(server, FakeMassiveServer)
    assert server.connections == 2 and server.taken_over == 1  # no attempt to take it back
    assert any("another program connected with the same key" in a.message for a in engine.alerts)


def test_an_luld_halt_blocks_entries_until_the_resumption(fake: FeedThread) -> None:
    engine = engine_for(fake.server.url)

    async def body(source: Any, task: asyncio.Task[None]) -> None:
        assert await until(lambda: "ABCD" in engine.last_quotes)
        fake.push(protocol.luld("ABCD", [17], 1))
        assert await until(lambda: "ABCD" in engine.halted_symbols)
        fake.push(protocol.luld("ABCD", [18], 2))
        assert await until(lambda: "ABCD" not in engine.halted_symbols)

    streaming(engine, Watchlist(["ABCD"]), body)


def test_the_delayed_feed_is_refused_unless_allowed_and_a_key_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SourceError, match="delayed feed"):
        engine_for(protocol.DELAYED_URL)
    assert engine_for(protocol.DELAYED_URL, allow_delayed=True).sending_allowed is False
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="MASSIVE_API_KEY"):
        MassiveSource(Engine(config=Config(tables={"massive": {}}), mode="live"))


def test_serve_with_the_massive_source_trades_end_to_end(tmp_path: Path) -> None:
    with FeedThread(FakeMassiveServer(speed=0)) as feed, HotkeyTestServer() as hotkeys:
        env = {
            "MOMOBOT_DISABLE_PLUGINS": "",
            "MOMOBOT_HOTKEY_URL": hotkeys.url,
            "MOMOBOT_QUOTE_WAIT_S": "30",  # the held entry waits on the test's push, not on luck
            "MOMOBOT_MASSIVE_URL": feed.server.url,
            "MASSIVE_API_KEY": "test-key",
            "MOMOBOT_WATCHLIST": "ABCD",
        }
        server = start_api(tmp_path, "--source", "massive", env=env)
        try:
            assert wait_until(lambda: "ABCD" in feed.server.subscribed)
            feed.push(protocol.quote("ABCD", 1.99, 2.00, 1))
            assert wait_until(
                lambda: bool(
                    server.client.get("/positions").status_code == 200
                    and server.client.post(
                        "/trades", json={"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
                    ).status_code
                    == 201
                )
            )
            assert hotkeys.wait_for(1) == ["buy_ask"]
            feed.push(protocol.quote("ABCD", 2.20, 2.21, 2))
            assert hotkeys.wait_for(4)[1:] == ["sell_ask", "cancel_all", "break_even"]
            feed.push(protocol.quote("ABCD", 1.95, 1.96, 3), protocol.trade("ABCD", 1.99, 3))  # the stop
            assert hotkeys.wait_for(5)[4:] == ["sell_all_bid"]
            legs = server.client.get("/trades").json()
            assert [(leg["reason"], leg["qty"]) for leg in legs] == [("tp1", 50), ("stop", 50)]
        finally:
            code, err = server.stop()
        assert code == 0, err
