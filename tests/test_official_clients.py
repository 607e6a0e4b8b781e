"""The services' own Python clients (alpaca-py, massive) against our fakes: what a stranger's
client reads off them is what it reads off the service. Each client runs in a child process
(they run event loops of their own) and prints what it received."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from momobot_alpaca.fake import FakeAlpacaServer, FakeAlpacaThread
from momobot_core.models import Luld, Quote, TradingHalt
from momobot_core.sources.fakefeed import FeedThread
from momobot_massive.fake import FakeMassiveServer

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def recording() -> list[object]:
    return [
        Quote("ABCD", T0, 2.0, 2.01, 2.0),
        Quote("ABCD", T0 + timedelta(seconds=1), 2.01, 2.02, 2.01),
        TradingHalt("ABCD", True, "LULD pause", T0 + timedelta(seconds=2)),
        Luld("ABCD", 1.8, 2.2, T0 + timedelta(seconds=3)),
        Quote("ABCD", T0 + timedelta(seconds=65), 2.05, 2.06, 2.05),
    ]


ALPACA_CLIENT = r"""
import os, sys, threading
from alpaca.data.enums import DataFeed
from alpaca.data.live import StockDataStream

stream = StockDataStream("test-key", "test-secret", feed=DataFeed.SIP, url_override=sys.argv[1])
seen = set()

def done(kind):
    seen.add(kind)
    if {"quote", "trade", "bar", "status"} <= seen:
        sys.stdout.flush()
        os._exit(0)  # all seen; alpaca-py's stop() from its own handlers waits for its timeout

async def on_quote(q):
    print("QUOTE", q.symbol, q.bid_price, q.ask_price, type(q.timestamp).__name__, flush=True); done("quote")
async def on_trade(t):
    print("TRADE", t.symbol, t.price, t.id, flush=True); done("trade")
async def on_bar(b):
    print("BAR", b.symbol, b.open, b.high, b.low, b.close, flush=True); done("bar")
async def on_status(s):
    print("STATUS", s.symbol, s.status_code, s.status_message, flush=True); done("status")

stream.subscribe_quotes(on_quote, "ABCD")
stream.subscribe_trades(on_trade, "ABCD")
stream.subscribe_bars(on_bar, "ABCD")
stream.subscribe_trading_statuses(on_status, "ABCD")
threading.Timer(60, stream.stop).start()  # a bound, never reached when the fake answers
stream.run()
sys.exit("the stream ended before every channel was seen")
"""

MASSIVE_CLIENT = r"""
import asyncio, sys
from massive import WebSocketClient

client = WebSocketClient(api_key="test-key", feed=sys.argv[1], market="stocks", secure=False,
                         subscriptions=["Q.ABCD", "T.ABCD", "AM.ABCD", "LULD.ABCD"], max_reconnects=0)
seen = set()
finished = asyncio.Event()

def handle(messages):
    for m in messages:
        kind = type(m).__name__
        print(kind, m, flush=True)
        seen.add(kind)
    if {"EquityQuote", "EquityTrade", "EquityAgg", "LimitUpLimitDown"} <= seen:
        finished.set()

async def main():
    task = asyncio.create_task(client.connect(handle))
    await asyncio.wait_for(finished.wait(), 60)
    task.cancel()

asyncio.run(main())
"""


@pytest.fixture
def alpaca() -> Iterator[FakeAlpacaThread]:
    with FakeAlpacaThread(FakeAlpacaServer(recording(), speed=0)) as thread:  # type: ignore[arg-type]
        yield thread


def run(script: str, target: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", script, target], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def test_alpaca_py_reads_every_channel_off_the_fake_in_msgpack(alpaca: FakeAlpacaThread) -> None:
    lines = run(ALPACA_CLIENT, alpaca.server.url)
    assert "QUOTE ABCD 2.0 2.01 datetime" in lines  # msgpack, with t as a Timestamp
    assert [line for line in lines if line.startswith("TRADE")][:2] == [
        "TRADE ABCD 2.0 1",
        "TRADE ABCD 2.01 2",
    ]
    assert "BAR ABCD 2.0 2.01 2.0 2.01" in lines  # the first minute's trades
    assert "STATUS ABCD H LULD pause" in lines


def test_the_massive_client_reads_every_channel_off_the_fake() -> None:
    with FeedThread(FakeMassiveServer(recording(), speed=0)) as fake:  # type: ignore[arg-type]
        lines = run(MASSIVE_CLIENT, fake.server.url.removeprefix("ws://"))
    text = "\n".join(lines)
    assert "EquityQuote(event_type='Q', symbol='ABCD', bid_exchange_id=19, bid_price=2.0" in text
    assert "EquityTrade(event_type='T', symbol='ABCD', exchange=4, id='1', tape=3, price=2.0" in text
    assert "id='2'" in text  # each trade its own id
    assert "EquityAgg(event_type='AM', symbol='ABCD'" in text and "open=2.0, close=2.01" in text
    assert "LimitUpLimitDown(event_type='LULD', symbol='ABCD', high_price=2.2, low_price=1.8" in text


MASSIVE_UNSUBSCRIBE = r"""
import asyncio, json, sys
from massive import WebSocketClient

client = WebSocketClient(api_key="test-key", feed=sys.argv[1], market="stocks", secure=False, raw=True,
                         subscriptions=["Q.*", "LULD.*"], max_reconnects=0)
symbols, acked, after, done = set(), False, [], asyncio.Event()

async def handle(frame):
    global acked
    for m in json.loads(frame):
        if m.get("ev") == "Q":
            symbols.add(m["sym"])
            if acked:
                after.append(m["sym"])
            elif {"AAPL", "MSFT"} <= symbols and not getattr(handle, "sent", False):
                handle.sent = True
                client.unsubscribe("Q.*")
        elif m.get("message") == "unsubscribed to: Q.*":
            acked = True  # the fake answered in order: no quote may come after this
        elif m.get("ev") == "LULD" and acked:
            done.set()  # the recording's last event: it streamed on after the unsubscribe
    print("SEEN", sorted(symbols), "ACKED", acked, "AFTER", after, flush=True)

async def main():
    task = asyncio.create_task(client.connect(handle))
    await asyncio.wait_for(done.wait(), 60)
    task.cancel()

asyncio.run(main())
"""


def test_the_massive_client_by_wildcard_gets_every_symbol_and_nothing_after_its_unsubscribe() -> None:
    events: list[object] = [
        Quote(s, T0 + timedelta(seconds=n), 2.0 + n, 2.01 + n) for n in range(2) for s in ("AAPL", "MSFT")
    ]
    # Then more quotes well after (at 20x, a second later), and a LULD band to end on.
    events += [Quote("AAPL", T0 + timedelta(seconds=20 + n), 3.0, 3.01) for n in range(5)]
    events.append(Luld("AAPL", 1.8, 3.5, T0 + timedelta(seconds=30)))
    with FeedThread(FakeMassiveServer(events, speed=20)) as fake:  # type: ignore[arg-type]
        lines = run(MASSIVE_UNSUBSCRIBE, fake.server.url.removeprefix("ws://"))
    assert lines[-1] == "SEEN ['AAPL', 'MSFT'] ACKED True AFTER []"
