"""``momobot alpaca fake-server`` answers as Alpaca's stream documents, to any client: each
control message and error code at its moment, every channel, JSON and msgpack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from source_helpers import fake_server_command
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from momobot_alpaca.fake import FakeAlpacaServer, FakeAlpacaThread
from momobot_core.models import Luld, Quote, TradingHalt

from conftest import write_jsonl

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
AUTH = {"action": "auth", "key": "test-key", "secret": "test-secret"}


def recording() -> list[object]:
    events: list[object] = []
    for n in range(6):  # ABCD over two minutes: prints at 2.00, 2.01, ... and WXYZ quotes
        events.append(
            Quote("ABCD", T0 + timedelta(seconds=30 * n), 2.0 + n / 100, 2.01 + n / 100, 2.0 + n / 100)
        )
        events.append(Quote("WXYZ", T0 + timedelta(seconds=30 * n + 1), 5.0, 5.01))
    events.append(TradingHalt("ABCD", True, "LULD pause", T0 + timedelta(seconds=200)))
    events.append(Luld("ABCD", 1.8, 2.2, T0 + timedelta(seconds=201)))
    events.append(Quote("ABCD", T0 + timedelta(seconds=400), 2.1, 2.11, 2.1))  # closes the 2nd bar
    return events


@pytest.fixture
def fake() -> Iterator[FakeAlpacaThread]:
    server = FakeAlpacaServer(recording(), speed=0)  # type: ignore[arg-type]
    server.auth_timeout_s = 0.5
    with FakeAlpacaThread(server) as thread:
        yield thread


def received(ws: ClientConnection, msgpack: bool = False) -> list[dict[str, Any]]:
    frame = ws.recv(timeout=10)
    data = msgspec.msgpack.decode(frame) if msgpack and isinstance(frame, bytes) else json.loads(frame)
    assert isinstance(data, list)
    return data


def until(ws: ClientConnection, predicate: Any, msgpack: bool = False) -> list[dict[str, Any]]:
    """Every message up to the one ``predicate`` accepts (the stream plays at once)."""
    seen: list[dict[str, Any]] = []
    while True:
        for message in received(ws, msgpack):
            seen.append(message)
            if predicate(message):
                return seen


def closed(ws: ClientConnection) -> bool:
    try:
        ws.recv(timeout=10)
    except ConnectionClosed:
        return True
    return False


def test_the_control_messages_come_at_their_documented_moments(fake: FakeAlpacaThread) -> None:
    with connect(fake.server.url) as ws:
        assert received(ws) == [{"T": "success", "msg": "connected"}]
        ws.send(json.dumps({"action": "subscribe", "quotes": ["ABCD"]}))
        assert received(ws) == [{"T": "error", "code": 401, "msg": "not authenticated"}]
        ws.send("not json")
        assert received(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        ws.send("[" * 100_000)  # past any parser's depth
        assert received(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        ws.send(json.dumps(AUTH))
        assert received(ws) == [{"T": "success", "msg": "authenticated"}]
        ws.send(json.dumps(AUTH))
        assert received(ws) == [{"T": "error", "code": 403, "msg": "already authenticated"}]
        ws.send(json.dumps({"action": "subscribe", "quotes": "AAPL"}))  # a string, not a list
        assert received(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        with connect(fake.server.url) as second:  # one connection per feed and account
            assert received(second) == [{"T": "success", "msg": "connected"}]
            second.send(json.dumps(AUTH))
            assert received(second) == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
            assert closed(second)
    with connect(fake.server.url) as wrong:
        received(wrong)
        wrong.send(json.dumps({**AUTH, "secret": "nope"}))
        assert received(wrong) == [{"T": "error", "code": 402, "msg": "auth failed"}]
        assert closed(wrong)
    with connect(fake.server.url) as silent:
        received(silent)
        assert received(silent) == [{"T": "error", "code": 404, "msg": "auth timeout"}]  # after 0.5 s
        assert closed(silent)


def test_each_channel_streams_only_what_was_subscribed_and_unsubscribe_stops_it(
    fake: FakeAlpacaThread,
) -> None:
    with connect(fake.server.url) as ws:
        received(ws)
        ws.send(json.dumps(AUTH))
        received(ws)
        ws.send(json.dumps({"action": "subscribe", "bars": ["ABCD"], "statuses": ["ABCD"], "lulds": ["*"]}))
        (ack,) = received(ws)
        assert (
            ack["T"] == "subscription"
            and ack["bars"] == ["ABCD"]
            and ack["quotes"] == []
            and ack["lulds"] == ["*"]
        )
        seen = until(ws, lambda m: m["T"] == "b" and m["t"] == "2026-11-24T14:32:00Z")
        kinds = {m["T"] for m in seen}
        assert kinds == {"b", "s", "l"}  # a bars-only subscription streams bars, and no quote
        first = next(m for m in seen if m["T"] == "b")
        assert (first["S"], first["o"], first["h"], first["l"], first["c"], first["n"]) == (
            "ABCD",
            2.0,
            2.01,
            2.0,
            2.01,
            2,
        )
        status = next(m for m in seen if m["T"] == "s")
        assert (status["S"], status["sc"], status["sm"]) == ("ABCD", "H", "LULD pause")
        luld = next(m for m in seen if m["T"] == "l")
        assert (luld["S"], luld["d"], luld["u"]) == ("ABCD", 1.8, 2.2)
        ws.send(json.dumps({"action": "unsubscribe", "bars": ["ABCD"]}))
        (ack,) = until(ws, lambda m: m["T"] == "subscription")[-1:]
        assert ack["bars"] == [] and ack["statuses"] == ["ABCD"]


def test_trades_carry_their_own_ids_and_quotes_only_their_symbols(fake: FakeAlpacaThread) -> None:
    with connect(fake.server.url) as ws:
        received(ws)
        ws.send(json.dumps(AUTH))
        received(ws)
        ws.send(json.dumps({"action": "subscribe", "trades": ["ABCD"], "quotes": ["WXYZ"]}))
        received(ws)
        seen = until(ws, lambda m: m["T"] == "t" and m["p"] == 2.1)
        trades = [m for m in seen if m["T"] == "t"]
        assert [t["i"] for t in trades] == sorted({t["i"] for t in trades}) and len(trades) == 7
        assert {m["S"] for m in seen if m["T"] == "q"} == {"WXYZ"}


def test_msgpack_by_content_type_with_timestamps(fake: FakeAlpacaThread) -> None:
    with connect(fake.server.url, additional_headers={"Content-Type": "application/msgpack"}) as ws:
        assert received(ws, msgpack=True) == [{"T": "success", "msg": "connected"}]
        ws.send(msgspec.msgpack.encode(AUTH))
        assert received(ws, msgpack=True) == [{"T": "success", "msg": "authenticated"}]
        ws.send(msgspec.msgpack.encode({"action": "subscribe", "quotes": ["ABCD"]}))
        received(ws, msgpack=True)
        seen = until(ws, lambda m: m["T"] == "q", msgpack=True)
        assert isinstance(seen[-1]["t"], datetime)  # a msgpack Timestamp, as alpaca-py reads it


def test_momobot_alpaca_fake_server_plays_a_recording_with_its_halts(tmp_path: Path) -> None:
    day = write_jsonl(
        tmp_path / "day.jsonl",
        [
            {"type": "quote", "ts": "2026-11-24T14:30:00Z", "symbol": "ABCD", "bid": 2.0, "ask": 2.01},
            {
                "type": "trading_halt",
                "ts": "2026-11-24T14:30:01Z",
                "symbol": "ABCD",
                "halted": True,
                "reason": "news",
            },
        ],
    )
    with fake_server_command(tmp_path, "alpaca", day) as port:
        with connect(f"ws://127.0.0.1:{port}") as ws:
            received(ws)
            ws.send(json.dumps(AUTH))
            received(ws)
            ws.send(json.dumps({"action": "subscribe", "quotes": ["ABCD"], "statuses": ["ABCD"]}))
            seen = until(ws, lambda m: m["T"] == "s")
        assert any(m["T"] == "q" and m["bp"] == 2.0 for m in seen) and seen[-1]["sm"] == "news"
