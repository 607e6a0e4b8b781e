"""The Massive fake answers as Massive's stocks stream documents, to any client: by channel,
wildcards, unsubscribe, the market from the path; and ``momobot massive fake-server``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from source_helpers import fake_server_command
from websockets.sync.client import ClientConnection, connect

from momobot_core.models import Luld, Quote, TradingHalt
from momobot_core.sources.fakefeed import FeedThread
from momobot_massive.fake import FakeMassiveServer

from conftest import write_jsonl

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def recording() -> list[object]:
    events: list[object] = []
    for n in range(4):
        events.append(Quote("AAPL", T0 + timedelta(seconds=30 * n), 200 + n, 200.01 + n, 200 + n))
        events.append(Quote("MSFT", T0 + timedelta(seconds=30 * n + 1), 400 + n, 400.01 + n, 400 + n))
    events.append(Luld("AAPL", 190.5, 210.25, T0 + timedelta(seconds=150)))
    events.append(TradingHalt("AAPL", True, "LULD pause", T0 + timedelta(seconds=151)))
    events.append(Quote("MSFT", T0 + timedelta(seconds=200), 410.0, 410.01, 410.0))  # the last
    return events


@pytest.fixture
def fake() -> Iterator[FeedThread]:
    with FeedThread(FakeMassiveServer(recording(), speed=0)) as thread:  # type: ignore[arg-type]
        yield thread


@contextlib.contextmanager
def session(url: str, topics: str) -> Iterator[ClientConnection]:
    with connect(url) as ws:
        assert json.loads(ws.recv(timeout=10))[0]["status"] == "connected"
        ws.send(json.dumps({"action": "auth", "params": "test-key"}))
        assert json.loads(ws.recv(timeout=10))[0]["status"] == "auth_success"
        ws.send(json.dumps({"action": "subscribe", "params": topics}))
        yield ws


def until(ws: ClientConnection, predicate: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        for event in json.loads(ws.recv(timeout=10)):
            seen.append(event)
            if predicate(event):
                return seen


def last_msft(event: dict[str, Any]) -> bool:
    """The recording's last event: MSFT at 410 (as a quote, a trade or an aggregate)."""
    return event.get("sym") == "MSFT" and 410.0 in (event.get("bp"), event.get("p"), event.get("c"))


def test_each_channel_streams_only_its_own_events(fake: FeedThread) -> None:
    with session(fake.server.url, "AM.MSFT,T.AAPL,LULD.*") as ws:
        acks = until(ws, lambda e: e.get("message") == "subscribed to: LULD.*")
        assert [a["message"] for a in acks] == [
            "subscribed to: AM.MSFT",
            "subscribed to: T.AAPL",
            "subscribed to: LULD.*",
        ]
        seen = until(ws, last_msft)
        assert {e["ev"] for e in seen} == {"AM", "T", "LULD"}  # no quote, no second aggregate
        assert {e["sym"] for e in seen if e["ev"] == "T"} == {"AAPL"}
        minute = next(e for e in seen if e["ev"] == "AM")
        assert (minute["sym"], minute["o"], minute["h"], minute["l"], minute["c"]) == (
            "MSFT",
            400,
            401,
            400,
            401,
        )
        assert minute["e"] - minute["s"] == 60_000
        band, halt = [e for e in seen if e["ev"] == "LULD"]
        assert (band["T"], band["l"], band["h"], band["i"]) == ("AAPL", 190.5, 210.25, [])
        assert (halt["T"], halt["i"]) == ("AAPL", [17])


def test_a_wildcard_streams_every_symbol_and_unsubscribe_stops_it(fake: FeedThread) -> None:
    with session(fake.server.url, "Q.*") as ws:
        seen = until(ws, last_msft)
        assert {e["sym"] for e in seen if e.get("ev") == "Q"} == {"AAPL", "MSFT"}
        ws.send(json.dumps({"action": "unsubscribe", "params": "Q.*"}))
        assert until(ws, lambda e: "message" in e)[-1]["message"] == "unsubscribed to: Q.*"


def test_another_markets_path_streams_none_of_the_stocks(fake: FeedThread) -> None:
    with session(fake.server.url + "/options", "Q.*,T.*") as ws:
        acks = until(ws, lambda e: e.get("message") == "subscribed to: T.*")
        assert all(e["ev"] == "status" for e in acks)
        ws.send(json.dumps({"action": "unsubscribe", "params": "Q.*"}))  # a marker: answered in order
        after = until(ws, lambda e: e.get("message") == "unsubscribed to: Q.*")
        assert all(e["ev"] == "status" for e in after)
    with session(fake.server.url + "/stocks", "Q.MSFT") as ws:
        assert any(e.get("ev") == "Q" for e in until(ws, last_msft))


def test_momobot_massive_fake_server_plays_a_recording(tmp_path: Path) -> None:
    day = write_jsonl(
        tmp_path / "day.jsonl",
        [
            {"type": "quote", "ts": "2026-11-24T14:30:00Z", "symbol": "ABCD", "bid": 2.0, "ask": 2.01},
            {"type": "luld", "ts": "2026-11-24T14:30:01Z", "symbol": "ABCD", "lower": 1.8, "upper": 2.2},
        ],
    )
    with fake_server_command(tmp_path, "massive", day) as port:
        with session(f"ws://127.0.0.1:{port}/stocks", "Q.ABCD,LULD.ABCD") as ws:
            seen = until(ws, lambda e: e.get("ev") == "LULD")
        assert any(e.get("ev") == "Q" and e["bp"] == 2.0 for e in seen)
        assert seen[-1]["l"] == 1.8 and seen[-1]["h"] == 2.2


def test_odd_frames_get_an_answer_and_only_a_signed_in_client_takes_over(fake: FeedThread) -> None:
    with session(fake.server.url + "/stocks", "Q.AAPL") as first:
        until(first, lambda e: e.get("message") == "subscribed to: Q.AAPL")
        with connect(fake.server.url + "/options") as other:  # connected, never signed in
            json.loads(other.recv(timeout=10))
            other.send(json.dumps({"action": "auth", "params": "WRONG"}))
            assert json.loads(other.recv(timeout=10))[0]["status"] == "auth_failed"
        with connect(fake.server.url) as odd:
            json.loads(odd.recv(timeout=10))
            odd.send("[" * 100_000)  # past any parser's depth: refused, no crash
            assert json.loads(odd.recv(timeout=10))[0]["status"] == "auth_failed"
        first.send(json.dumps([{"action": "subscribe", "params": "Q.MSFT"}]))  # a list, not an object
        answer = until(first, lambda e: e.get("ev") == "status")[-1]
        assert answer["status"] == "error"
        first.send(json.dumps({"action": "subscribe", "params": "Q.MSFT"}))  # still signed in
        assert until(first, lambda e: e.get("ev") == "status")[-1]["message"] == "subscribed to: Q.MSFT"
    assert fake.server.taken_over == 0  # type: ignore[attr-defined]
