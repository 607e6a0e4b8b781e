"""The Alpaca source against a fake of Alpaca's stream on 127.0.0.1 that speaks its protocol."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_helpers import start_api
from source_helpers import streaming, until
from websockets.sync.client import connect

from momobot_alpaca import protocol
from momobot_alpaca.fake import FakeAlpacaServer, FakeAlpacaThread
from momobot_alpaca.source import AlpacaSource
from momobot_core.config import Config, ConfigError
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Quote
from momobot_core.sources import SourceError, Watchlist

from conftest import make_hooks
from hotkey_helpers import HotkeyTestServer, wait_until

KEYS = {"key_id": "test-key", "secret_key": "test-secret"}
T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def recording() -> list[Quote]:
    quotes = []
    for n, (bid, ask, last) in enumerate(
        [(1.99, 2.00, None), (2.00, 2.01, 2.0), (2.05, 2.06, 2.05), (2.10, 2.11, 2.10)]
    ):
        quotes.append(Quote("ABCD", T0 + timedelta(seconds=n), bid, ask, last))
    return quotes


@pytest.fixture
def fake() -> Iterator[FakeAlpacaThread]:
    with FakeAlpacaThread(FakeAlpacaServer(recording(), speed=0)) as thread:
        yield thread


def engine_for(url: str, *, source: bool = True, **alpaca: Any) -> Engine:
    config = Config(
        tables={"alpaca": {**KEYS, "url": url, "feed": "sip", **alpaca}, "risk": {"stale_quote_s": 0}}
    )
    engine = Engine(config=config, hooks=make_hooks(), journal=Journal(), mode="live")
    engine.start()
    if source:
        engine.source = AlpacaSource(engine)
    return engine


def test_a_recorded_session_streams_into_the_engine_with_trades_setting_last(fake: FakeAlpacaThread) -> None:
    engine = engine_for(fake.server.url)

    async def body(source: AlpacaSource, task: asyncio.Task[None]) -> None:
        assert await until(lambda: engine.counters.quotes >= 7)  # 4 quotes, 3 trade prints
        status = source.status()
        assert status.connected and status.symbols == 1 and status.messages >= 7

    streaming(engine, Watchlist(["abcd"]), body)
    quote = engine.last_quotes["ABCD"]
    assert (quote.bid, quote.ask, quote.last) == (2.10, 2.11, 2.10)
    assert abs((quote.ts - datetime.now(UTC)).total_seconds()) < 60  # receipt time, not the recording's
    assert fake.server.subscriptions == [["ABCD"]]


def test_one_sided_quotes_are_skipped_and_irregular_prints_do_not_move_last(fake: FakeAlpacaThread) -> None:
    engine = engine_for(fake.server.url)

    async def body(source: AlpacaSource, task: asyncio.Task[None]) -> None:
        assert await until(
            lambda: engine.last_quotes.get("ABCD") is not None and engine.last_quotes["ABCD"].last == 2.10
        )
        fake.push(
            protocol.quote("ABCD", 0, 2.20, "x"),
            protocol.trade("ABCD", 9.99, "x", ["I"]),
            protocol.trade("ABCD", 2.12, "x", ["@", "F"]),
        )
        assert await until(lambda: engine.last_quotes["ABCD"].last == 2.12)
        assert source.one_sided == 1

    streaming(engine, Watchlist(["ABCD"]), body)
    assert engine.last_quotes["ABCD"].ask == 2.11  # the one-sided quote was not fed


def test_keys_refused_at_the_start_stop_start_up_with_a_clear_error(fake: FakeAlpacaThread) -> None:
    engine = engine_for(fake.server.url, source=False, secret_key="wrong")
    source = AlpacaSource(engine)

    async def main() -> None:
        await source.run(engine, Watchlist(["ABCD"]))

    with pytest.raises(SourceError, match="Alpaca refused the keys or the feed 'sip': 402 auth failed"):
        asyncio.run(main())


def test_after_a_first_success_a_refusal_is_an_alert_and_the_source_keeps_trying(
    fake: FakeAlpacaThread,
) -> None:
    engine = engine_for(fake.server.url, reconnect_max_delay=0.2)
    watchlist = Watchlist(["ABCD"])

    async def body(source: AlpacaSource, task: asyncio.Task[None]) -> None:
        assert await until(lambda: source.connected)
        fake.server.refuse_auth = True
        fake.drop()  # the connection drops mid-stream
        assert await until(lambda: 402 in fake.server.refused)
        assert not task.done()  # still trying, never exiting with positions open
        watchlist.add("WXYZ")  # added while down: subscribed at the next connection
        fake.server.refuse_auth = False
        assert await until(lambda: source.connected and fake.server.subscriptions[-1] == ["ABCD", "WXYZ"])

    streaming(engine, watchlist, body)
    assert any(a.kind == "stale_quotes" and "402 auth failed" in a.message for a in engine.alerts)


def test_a_second_connection_is_refused_406_and_the_source_backs_off_long(fake: FakeAlpacaThread) -> None:
    engine = engine_for(fake.server.url)
    with connect(fake.server.url, proxy=None) as other:  # another program, same keys
        assert json.loads(other.recv(5))[0]["msg"] == "connected"
        other.send(protocol.auth("test-key", "test-secret"))
        assert json.loads(other.recv(5))[0]["msg"] == "authenticated"

        async def body(source: AlpacaSource, task: asyncio.Task[None]) -> None:
            assert await until(lambda: protocol.CONNECTION_LIMIT in fake.server.refused)
            assert await until(lambda: "trying again in 30 s" in source.status().detail)

        streaming(engine, Watchlist(["ABCD"]), body)
    assert fake.server.refused.count(protocol.CONNECTION_LIMIT) == 1  # no hammering
    assert any("another program is connected with these keys" in a.message for a in engine.alerts)


def test_a_trading_halt_blocks_entries_on_that_symbol_until_it_resumes(fake: FakeAlpacaThread) -> None:
    engine = engine_for(fake.server.url)

    async def body(source: AlpacaSource, task: asyncio.Task[None]) -> None:
        assert await until(lambda: "ABCD" in engine.last_quotes)
        fake.push(protocol.status("ABCD", "H", "Trading Halt", "x"))
        assert await until(lambda: "ABCD" in engine.halted_symbols)
        with pytest.raises(TradeRefused) as refused:
            engine.open_trade("ABCD", 100, 2.5, 2.8, 1.9)
        assert refused.value.rule == "trading_halt"
        fake.push(protocol.status("ABCD", "T", "Resume", "x"))
        assert await until(lambda: "ABCD" not in engine.halted_symbols)

    streaming(engine, Watchlist(["ABCD"]), body)
    assert [a.kind for a in engine.alerts if a.symbol == "ABCD"] == [
        "trading_halt",
        "risk_refused",
        "resumed",
    ]


def test_a_delayed_feed_is_refused_unless_allowed_and_then_nothing_is_sent() -> None:
    with pytest.raises(SourceError, match="15 minutes late"):
        AlpacaSource(engine_for("ws://127.0.0.1:9", source=False, feed="delayed_sip"))
    engine = engine_for("ws://127.0.0.1:9", source=False, feed="delayed_sip", allow_delayed=True)
    AlpacaSource(engine)
    assert engine.sending_allowed is False


def test_missing_keys_are_a_config_error_naming_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    engine = Engine(config=Config(tables={"alpaca": {"url": "ws://127.0.0.1:9"}}), mode="live")
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        AlpacaSource(engine)


def test_the_keys_never_reach_a_log(fake: FakeAlpacaThread, caplog: pytest.LogCaptureFixture) -> None:
    engine = engine_for(fake.server.url, source=False, secret_key="s3cret-never-logged")
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as refused:
        asyncio.run(AlpacaSource(engine).run(engine, Watchlist(["ABCD"])))
    assert "s3cret" not in caplog.text and "s3cret" not in str(refused.value)
    assert "s3cret" not in repr(AlpacaSource.__init__) and "s3cret" not in repr(engine.config.table("x"))


def test_serve_with_the_alpaca_source_trades_end_to_end(tmp_path: Path) -> None:
    # Fake feed -> serve --source alpaca -> POST /trades -> quotes through TP1 and TP2 -> hotkeys.
    with FakeAlpacaThread(FakeAlpacaServer(speed=0)) as feed, HotkeyTestServer() as hotkeys:
        env = {
            "MOMOBOT_DISABLE_PLUGINS": "",
            "MOMOBOT_HOTKEY_URL": hotkeys.url,
            "MOMOBOT_QUOTE_WAIT_S": "30",  # the held entry waits on the test's push, not on luck
            "MOMOBOT_ALPACA_URL": feed.server.url,
            "MOMOBOT_ALPACA_FEED": "sip",
            "APCA_API_KEY_ID": "test-key",
            "APCA_API_SECRET_KEY": "test-secret",
        }
        server = start_api(tmp_path, "--source", "alpaca", env=env)
        try:
            assert wait_until(
                lambda: bool((server.client.get("/ping").json()["source"] or {}).get("connected"))
            )

            def quote(bid: float, ask: float) -> None:
                feed.push(protocol.quote("ABCD", bid, ask, "x"))

            # The symbol is not watched yet: the entry adds it and waits for its first quote.
            opening = server.client.build_request(
                "POST", "/trades", json={"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
            )
            result: list[Any] = []
            sender = threading.Thread(target=lambda: result.append(server.client.send(opening)))
            sender.start()
            assert wait_until(lambda: "ABCD" in feed.server.subscribed)
            quote(1.99, 2.00)
            sender.join(10)
            assert result and result[0].status_code == 201, result
            assert hotkeys.wait_for(1) == ["buy_ask"]
            quote(2.20, 2.21)
            assert hotkeys.wait_for(4)[1:] == ["sell_ask", "cancel_all", "break_even"]
            quote(2.40, 2.41)
            assert hotkeys.wait_for(5)[4:] == ["sell_ask"]
            legs = server.client.get("/trades").json()
            assert [(leg["reason"], leg["qty"], leg["exit_price"]) for leg in legs] == [
                ("tp1", 50, 2.21),
                ("tp2", 50, 2.41),
            ]
        finally:
            code, err = server.stop()
        assert code == 0, err
        assert "test-secret" not in err


def test_a_text_frame_that_is_not_utf8_ends_the_connection_and_none_of_it_is_applied() -> None:
    """The source reads its frames as bytes (websockets leaves their UTF-8 unchecked then): a
    frame that is not UTF-8 ends the connection, as websockets would have, with an alert and a
    reconnect; its quotes never reach the engine."""
    from websockets.asyncio.server import ServerConnection, serve

    connections: list[int] = []
    codes: list[int | None] = []

    async def vendor(ws: ServerConnection) -> None:
        connections.append(1)
        await ws.send(json.dumps([protocol.success("connected")]))
        await ws.recv()
        await ws.send(json.dumps([protocol.success("authenticated")]))
        await ws.recv()
        await ws.send(json.dumps([protocol.subscription(["ABCD", "WXYZ", "EFGH"])]))
        if len(connections) == 1:
            await ws.send(json.dumps([protocol.quote("ABCD", 1.99, 2.00, "2026-11-24T14:30:00Z")]))
            bad = json.dumps([protocol.quote("WXYZ", 2.99, 3.00, "2026-11-24T14:30:00Z")]).encode()
            await ws.send(bad.replace(b'"q"', b'"q", "x": "\xff"'), text=True)
            await ws.wait_closed()
            codes.append(ws.close_code)
            return
        else:
            await ws.send(json.dumps([protocol.quote("EFGH", 4.99, 5.00, "2026-11-24T14:30:01Z")]))
        await ws.wait_closed()

    async def main() -> Engine:
        async with serve(vendor, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            engine = engine_for(f"ws://127.0.0.1:{port}", reconnect_max_delay=0.2)
            source = engine.source
            assert isinstance(source, AlpacaSource)
            engine.loop = asyncio.get_running_loop()
            task = asyncio.create_task(source.run(engine, Watchlist(["ABCD", "WXYZ", "EFGH"])))
            try:
                assert await until(lambda: "EFGH" in engine.last_quotes)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            return engine

    engine = asyncio.run(main())
    assert "ABCD" in engine.last_quotes and "WXYZ" not in engine.last_quotes
    assert len(connections) == 2
    assert codes == [1007]  # websockets' own close code for it
    assert any("not UTF-8" in a.message for a in engine.alerts), [a.message for a in engine.alerts]
