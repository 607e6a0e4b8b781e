"""The live loop at full speed: an Alpaca-format feed -> ``serve --source alpaca`` -> hotkey_ws.

Three processes on 127.0.0.1: a feed speaking Alpaca's protocol that sends
pre-built frames as fast as the socket takes them (500 symbols, 10 quotes per
frame), ``momobot serve --source alpaca`` with 20 trades open and hotkey_ws
attached, and a hotkey receiver that stamps each command with
``time.monotonic_ns()`` (one clock for every process on Linux). Some frames
carry a quote that reaches an open trade's TP1; the feed stamps when each of
those left it, so the latency is frame sent -> hotkey command received.

Reported: quotes/s ingested (all frames sent until the source has applied
them all), the serve process's peak RSS, and the trigger latency p50/p99.
At full speed the feed sends faster than any consumer reads, so that latency
is the backlog's; the paced rounds (``--paced``, default 100,000 quotes/s)
send on a schedule below the ingest rate and show the path's own latency.
Baselines in the same run: the same kind of quotes posted to ``POST /quotes``,
one request at a time; after each full-speed round, the same feed into a reader
that only takes the frames off the socket (the sources' own connection,
``StreamConnection`` on picows; no decoding): the most this feed sends on this
machine, the ceiling of serve's rate; and, after each paced round, a bare consumer
on the same feed and receiver: the same connection, that decodes each frame with
msgspec, looks for the open trades' symbols at TP1 and writes one hotkey frame (one
``send`` of a frame built before, the CPU given up once, as the bare write of
``bench/hotkey_latency.py``), with no engine. It is the floor of the paced rows:
serve's p50 less the bare consumer's is what serve adds on the way. With 20
trades a round, a p99 is the round's slowest TP1.

    python bench/live_feed.py                  # 200,000 quotes, 3 rounds
    python bench/live_feed.py --quotes 50000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

SYMBOLS = 500
PER_FRAME = 10
OPEN_TRADES = 20

FEED = r"""
import asyncio, json, sys, time
from websockets.asyncio.server import serve

with open(sys.argv[1]) as fh:
    frames, opening = json.load(fh)   # [[frame text, trigger symbol or ""], ...], the opening frame
rate = float(sys.argv[2])   # frames per second; 0: as fast as the socket takes them
sent = {}

async def handler(ws):
    await ws.send(json.dumps([{"T": "success", "msg": "connected"}]))
    await ws.recv()
    await ws.send(json.dumps([{"T": "success", "msg": "authenticated"}]))
    await ws.recv()
    await ws.send(json.dumps([{"T": "subscription", "quotes": [], "trades": []}]))
    await ws.send(opening)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)   # "go"
    start = time.monotonic_ns()
    for index, (text, trigger) in enumerate(frames):
        # Paced: never ahead of the schedule. What falls due within a millisecond goes in a
        # burst, and the sleep overshoots: at 100,000 quotes/s about 23 frames every 2.3 ms.
        if rate:
            due = start + int(index / rate * 1e9)
            if due > time.monotonic_ns() + 1_000_000:
                await asyncio.sleep((due - time.monotonic_ns()) / 1e9)
        if trigger:
            sent[trigger] = time.monotonic_ns()
        await ws.send(text)
    print(json.dumps({"start": start, "end": time.monotonic_ns(), "sent": sent}), flush=True)
    await asyncio.Future()

async def main():
    async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None, write_limit=2**22) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

RECEIVER = r"""
import asyncio, json, sys, time
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

received = []

async def handler(ws):
    try:
        async for message in ws:
            now = time.monotonic_ns()
            if message == "__report__":
                await ws.send(json.dumps(received))
            else:
                received.append((message, now))
    except ConnectionClosed:
        pass   # serve or the bare consumer stopped at the end of its round

async def main():
    async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


CONSUMER = r"""
import asyncio, json, logging, os, sys, msgspec
from websockets.sync.client import connect as connect_sync
from momobot_core.net import yield_cpu
from momobot_core.sources.connection import StreamConnection

decode = msgspec.json.Decoder().decode
trades = set(sys.argv[2].split(","))

def masked(payload):
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

async def main():
    with connect_sync(sys.argv[3], proxy=None, compression=None, ping_interval=None) as hotkey:
        frames = {name: masked(json.dumps({"event": "tp1", "symbol": name, "command": "sell_ask"}).encode())
                  for name in trades}
        ws = StreamConnection(max_size=2**22, ping_interval=5.0, ping_timeout=5.0,
                              logger=logging.getLogger("bare"))
        await ws.open(sys.argv[1], 30)
        for _ in range(2):   # connected, authenticated: answer each as a client would
            await ws.recv()
            await ws.send("{}")
        await ws.recv()   # the subscription
        print("ready", flush=True)
        hit = set()

        def take(frame):
            for item in decode(frame):
                name = item.get("S")
                if name in trades and name not in hit and item["ap"] >= 2.2:
                    hit.add(name)
                    hotkey.socket.send(frames[name])
                    yield_cpu()

        await ws.serve(take, decode=False)

asyncio.run(main())
"""

DRAIN = r"""
import asyncio, logging, sys, time
from websockets.exceptions import ConnectionClosed
from momobot_core.sources.connection import StreamConnection

async def main():
    frames = int(sys.argv[2])
    ws = StreamConnection(max_size=2**22, ping_interval=5.0, ping_timeout=5.0,
                          logger=logging.getLogger("drain"))
    await ws.open(sys.argv[1], 30)
    for _ in range(2):   # connected, authenticated
        await ws.recv()
        await ws.send("{}")
    await ws.recv()   # the subscription
    await ws.recv()   # the opening quotes
    print("ready", flush=True)
    count = 0

    def take(frame):
        nonlocal count
        count += 1
        if count == frames:
            print(time.monotonic_ns(), flush=True)
            ws.close_now(1000, "")

    try:
        await ws.serve(take, decode=False)
    except ConnectionClosed:
        pass

asyncio.run(main())
"""


def symbol(n: int) -> str:
    return f"S{n:03d}"


def build_frames(total: int) -> tuple[list[tuple[str, str]], str]:
    """Frames of quotes cycling over the symbols; every so often one reaches an open trade's TP1."""
    ts = "2026-11-26T14:30:00.000000001Z"
    frames: list[tuple[str, str]] = []
    n = 0
    step = total // PER_FRAME // (OPEN_TRADES + 1)
    triggers = {step * (k + 1): symbol(k) for k in range(OPEN_TRADES)}
    for index in range(total // PER_FRAME):
        messages = []
        for _ in range(PER_FRAME):
            s = n % SYMBOLS
            wiggle = (n // SYMBOLS) % 5 / 1000
            messages.append(
                {
                    "T": "q",
                    "S": symbol(s),
                    "bp": round(1.99 + wiggle, 4),
                    "bs": 1,
                    "ap": round(2.00 + wiggle, 4),
                    "as": 1,
                    "t": ts,
                }
            )
            n += 1
        trigger = triggers.get(index, "")
        if trigger:  # TP1 of that trade (tp1 2.2)
            messages[-1] = {"T": "q", "S": trigger, "bp": 2.20, "bs": 1, "ap": 2.21, "as": 1, "t": ts}
        frames.append((json.dumps(messages), trigger))
    opening = json.dumps(
        [
            {"T": "q", "S": symbol(s), "bp": 1.99, "bs": 1, "ap": 2.00, "as": 1, "t": ts}
            for s in range(SYMBOLS)
        ]
    )
    return frames, opening


def start(code: str, *args: str, stdin: bool = False) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.PIPE if stdin else None,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(tmp: str, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "momobot_core.cli",
            "-q",
            "serve",
            "--port",
            str(port),
            "--db",
            f"{tmp}/j{port}.db",
            *args,
        ],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    for _ in range(600):
        try:
            client.get("/ping")
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, client


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_feed(total: int, rate: float) -> tuple[subprocess.Popen[str], int, subprocess.Popen[str], int]:
    """A feed of ``total`` quotes waiting for "go" (paced at ``rate`` quotes/s, 0: full speed),
    and a hotkey receiver: each process and its port."""
    frames, opening = build_frames(total)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump([frames, opening], fh)
    feed, feed_port = start(FEED, fh.name, str(rate / PER_FRAME), stdin=True)
    os.unlink(fh.name)
    receiver, receiver_port = start(RECEIVER)
    return feed, feed_port, receiver, receiver_port


def live_round(total: int, rate: float = 0) -> dict[str, Any]:
    """One round; ``rate`` paces the feed in quotes/s (0: full speed)."""
    feed, feed_port, receiver, receiver_port = start_feed(total, rate)
    assert feed.stdin is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    env.update(
        {
            "MOMOBOT_ALPACA_URL": f"ws://127.0.0.1:{feed_port}",
            "MOMOBOT_ALPACA_FEED": "sip",
            "APCA_API_KEY_ID": "bench",
            "APCA_API_SECRET_KEY": "bench",
            "MOMOBOT_HOTKEY_URL": f"ws://127.0.0.1:{receiver_port}",
            "MOMOBOT_HOTKEY_FORMAT": "json",
            "MOMOBOT_HOTKEY_SEQUENCE_DELAY": "0",
            "MOMOBOT_HOTKEY_QUEUE_SIZE": "1000",
            "MOMOBOT_WATCHLIST": ",".join(symbol(s) for s in range(SYMBOLS)),
            "MOMOBOT_RISK_STALE_QUOTE_S": "0",
            "MOMOBOT_DISABLE_PLUGINS": "voice",
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        serve, client = start_serve(tmp, env, "--source", "alpaca")
        try:
            while (client.get("/ping").json()["source"] or {}).get("messages", 0) < SYMBOLS:
                time.sleep(0.05)
            for k in range(OPEN_TRADES):
                response = client.post(
                    "/trades", json={"symbol": symbol(k), "qty": 100, "tp1": 2.2, "tp2": 9.0, "stop": 1.0}
                )
                assert response.status_code == 201, response.text
            before = client.get("/ping").json()["source"]["messages"]
            feed.stdin.write("go\n")
            feed.stdin.flush()
            assert feed.stdout is not None
            report = json.loads(feed.stdout.readline())
            while client.get("/ping").json()["source"]["messages"] < before + total:
                time.sleep(0.01)
            done = time.monotonic_ns()
            rss = peak_rss_mb(serve.pid)
            received = receipts(receiver_port, OPEN_TRADES * 2)
        finally:
            client.close()
            serve.terminate()
            serve.wait(30)
            feed.kill()
            receiver.kill()
    return {"rate": total / ((done - report["start"]) / 1e9), "rss": rss, **tp1_latency(report, received)}


def receipts(port: int, tp1_commands: int) -> list[Any]:
    """What the receiver got, (message, monotonic ns), once it holds ``tp1_commands`` TP1
    commands (or after 10 s)."""
    from websockets.sync.client import connect

    deadline = time.monotonic() + 10
    while True:
        with connect(f"ws://127.0.0.1:{port}", proxy=None) as ws:
            ws.send("__report__")
            received: list[Any] = json.loads(ws.recv(timeout=30))  # [message, ns] pairs
        tp1 = sum(json.loads(m)["event"] == "tp1" for m, _ in received)
        if tp1 >= tp1_commands or time.monotonic() > deadline:
            return received
        time.sleep(0.1)


def tp1_latency(report: dict[str, Any], received: list[Any]) -> dict[str, Any]:
    """Frame sent -> first TP1 command received, per trade: p50, p99 and how many triggered."""
    first_tp1: dict[str, int] = {}
    for message, at in received:
        data = json.loads(message)
        if data["event"] == "tp1":
            first_tp1.setdefault(data["symbol"], at)
    latencies = sorted((first_tp1[s] - ns) / 1e6 for s, ns in report["sent"].items() if s in first_tp1)
    return {
        "p50": latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan"),
        "triggered": len(latencies),
    }


def floor_round(total: int, rate: float) -> dict[str, Any]:
    """The paced feed through a bare consumer (no engine): the floor of serve's latency."""
    feed, feed_port, receiver, receiver_port = start_feed(total, rate)
    trades = ",".join(symbol(k) for k in range(OPEN_TRADES))
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CONSUMER,
            f"ws://127.0.0.1:{feed_port}",
            trades,
            f"ws://127.0.0.1:{receiver_port}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert consumer.stdout is not None and feed.stdin is not None and feed.stdout is not None
        ready, _, _ = select.select([consumer.stdout], [], [], 30)
        if not ready or consumer.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare consumer did not start within 30 s")
        feed.stdin.write("go\n")
        feed.stdin.flush()
        report = json.loads(feed.stdout.readline())
        received = receipts(receiver_port, OPEN_TRADES)
    finally:
        for proc in (consumer, feed, receiver):
            proc.kill()
            proc.wait()
    return tp1_latency(report, received)


def ceiling_round(total: int) -> float:
    """The full-speed feed into a reader that only takes its frames off the socket (the sources'
    own connection, no decoding): the most this feed sends on this machine, the ceiling of serve's
    full-speed rate here."""
    feed, feed_port, receiver, _ = start_feed(total, 0)
    receiver.kill()  # no hotkeys here
    drain = subprocess.Popen(
        [sys.executable, "-c", DRAIN, f"ws://127.0.0.1:{feed_port}", str(total // PER_FRAME)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert drain.stdout is not None and feed.stdin is not None and feed.stdout is not None
        ready, _, _ = select.select([drain.stdout], [], [], 30)
        if not ready or drain.stdout.readline().strip() != "ready":
            raise RuntimeError("the reader did not start within 30 s")
        feed.stdin.write("go\n")
        feed.stdin.flush()
        report = json.loads(feed.stdout.readline())
        done = int(drain.stdout.readline())
    finally:
        for proc in (drain, feed, receiver):
            proc.kill()
            proc.wait()
    return float(total / ((done - report["start"]) / 1e9))


def baseline_round(total: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    env.update(
        {"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,voice,alpaca,massive", "MOMOBOT_RISK_STALE_QUOTE_S": "0"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        serve, client = start_serve(tmp, env)
        try:
            began = time.perf_counter()
            for n in range(total):
                client.post("/quotes", json={"symbol": symbol(n % SYMBOLS), "bid": 1.99, "ask": 2.00})
            return float(total / (time.perf_counter() - began))
        finally:
            client.close()
            serve.terminate()
            serve.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--baseline-quotes", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--paced",
        type=float,
        default=100_000,
        help="quotes/s of the paced rounds, where latency is the path's, not a backlog's (0: skip)",
    )
    args = parser.parse_args()
    live: list[dict[str, Any]] = []
    ceiling: list[float] = []
    for _ in range(args.rounds):  # alternated, as the paced rounds below
        live.append(live_round(args.quotes))
        ceiling.append(ceiling_round(args.quotes))
    paced: list[dict[str, Any]] = []
    floor: list[dict[str, Any]] = []
    for _ in range(args.rounds if args.paced else 0):  # alternated: a change in the machine's load hits both
        paced.append(live_round(args.quotes, args.paced))
        floor.append(floor_round(args.quotes, args.paced))
    base = [baseline_round(args.baseline_quotes) for _ in range(args.rounds)]

    def med(key: str, rounds: list[dict[str, Any]] = live) -> float:
        return float(statistics.median(r[key] for r in rounds))

    print(
        f"{args.quotes:,} quotes, {SYMBOLS} symbols, {PER_FRAME} per frame, {OPEN_TRADES} trades open,"
        f" hotkey_ws attached; median of {args.rounds} rounds"
    )
    print()
    print("| path | quotes/s | peak RSS (serve) | frame -> hotkey p50 | p99 |")
    print("|---|---|---|---|---|")
    print(
        f"| Alpaca stream -> serve --source alpaca | {med('rate'):,.0f} | {med('rss'):.0f} MB |"
        f" {med('p50'):.3f} ms | {med('p99'):.3f} ms |"
    )
    print(
        f"| the same feed into a reader that only reads (the ceiling) | {statistics.median(ceiling):,.0f}"
        " | | | |"
    )
    if paced:
        print(
            f"| the same, feed paced at {args.paced:,.0f} quotes/s | {med('rate', paced):,.0f} |"
            f" {med('rss', paced):.0f} MB | {med('p50', paced):.3f} ms | {med('p99', paced):.3f} ms |"
        )
        print(
            f"| the paced feed through a bare consumer (no engine: the floor) | | |"
            f" {med('p50', floor):.3f} ms | {med('p99', floor):.3f} ms |"
        )
    print(f"| POST /quotes, one request at a time | {statistics.median(base):,.0f} | | | |")
    print()
    print(
        f"the stream ingests {med('rate') / statistics.median(base):.0f}x more quotes/s than POST /quotes;"
        f" TP1 triggered on {min(r['triggered'] for r in live + paced)} of {OPEN_TRADES} trades"
        " in every round"
    )
    print(
        f"full speed: serve takes {med('rate') / statistics.median(ceiling):.0%} of what the feed sends a"
        " reader that only reads (medians; each round of serve alternated with one of the reader)"
    )
    if paced:
        print(
            f"paced: serve's p50 is {(med('p50', paced) - med('p50', floor)) * 1e3:+.0f} us above the bare"
            f" consumer's ({med('p50', paced) / med('p50', floor):.2f}x); TP1 reached the bare consumer on"
            f" {min(r['triggered'] for r in floor)} of {OPEN_TRADES} trades in every round"
        )


if __name__ == "__main__":
    main()
