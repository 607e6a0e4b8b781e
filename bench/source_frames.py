"""A stream source's frames into the engine, in one process: structs against a dict per message.

The Alpaca and Massive sources decode a frame of nothing but quotes and trades straight into
structs (``StreamSource.stream_decode``) and hand each on; any other frame goes message by
message, a dict each (``message``). This bench times both ways on the same frames, in the
same process, alternated round by round: ``live_feed.py``'s frames (10 quotes a frame over 500
symbols; Massive's spelling of them for Massive), an engine with a journal on disk and 20
trades open, no plugin, no socket. What it shows is the source's and the engine's own work per
quote, the part of ``serve``'s full-speed rate that is this process's Python; the socket and
websockets' framing are ``live_feed.py``'s.

    python bench/source_frames.py                 # 20,000 frames a round, 5 rounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from live_feed import OPEN_TRADES, build_frames, symbol

from momobot_alpaca.source import AlpacaSource
from momobot_core.config import Config
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.sources.stream import StreamSource
from momobot_massive.source import MassiveSource


def massive_spelling(text: str) -> str:
    """An Alpaca frame of quotes as Massive sends the same quotes."""
    return json.dumps(
        [
            {"ev": "Q", "sym": m["S"], "bp": m["bp"], "bs": 1, "ap": m["ap"], "as": 1, "t": 1_795_530_600_000}
            for m in json.loads(text)
        ]
    )


def run(vendor: str, count: int, rounds: int) -> dict[str, list[float]]:
    """Microseconds per quote of each way, a figure per round."""
    frames, opening = build_frames(count * 10)
    texts = [text for text, trigger in frames if not trigger]
    if vendor == "massive":
        texts, opening = [massive_spelling(t) for t in texts], massive_spelling(opening)
    data = [t.encode() for t in texts]  # as a source with stream_decode reads a frame: bytes
    tables: dict[str, Any] = {
        "alpaca": {"key_id": "bench", "secret_key": "bench", "url": "ws://127.0.0.1:9", "feed": "sip"},
        "massive": {"key": "bench", "url": "ws://127.0.0.1:9"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(
            config=Config(tables={vendor: tables[vendor]}), journal=Journal(f"{tmp}/bench.db"), mode="live"
        )
        engine.start()
        source: StreamSource = (AlpacaSource if vendor == "alpaca" else MassiveSource)(engine)
        structs = source.stream_decode
        times: dict[str, list[float]] = {"structs": [], "a dict per message": []}

        async def main() -> None:
            source.frame(engine, opening)
            for k in range(OPEN_TRADES):
                engine.open_trade(symbol(k), 100, 2.2, 9.0, 1.0)
            await asyncio.sleep(0.05)  # the entries' fold
            for frame in data[:1000]:  # warm both ways
                source.frame(engine, frame)
            ways = [("structs", structs), ("a dict per message", None)]
            for n in range(rounds):
                for way, decode in ways if n % 2 == 0 else ways[::-1]:  # each way first in turn
                    source.stream_decode = decode
                    began = time.perf_counter()
                    for frame in data:
                        source.frame(engine, frame)
                    times[way].append((time.perf_counter() - began) / (len(data) * 10) * 1e6)
                    await asyncio.sleep(0.05)  # the fold of any TP1 in them, between rounds

        asyncio.run(main())
        engine.shutdown()
        engine.journal.close()  # type: ignore[union-attr]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("APCA_API_KEY_ID", "bench")
    os.environ.setdefault("APCA_API_SECRET_KEY", "bench")
    print(
        f"{args.frames:,} frames of 10 quotes a round, {args.rounds} rounds alternated, journal on disk,"
        f" {OPEN_TRADES} trades open; medians"
    )
    print()
    print("| source | structs | a dict per message | ratio |")
    print("|---|---|---|---|")
    for vendor in ("alpaca", "massive"):
        times = run(vendor, args.frames, args.rounds)
        fast, slow = statistics.median(times["structs"]), statistics.median(times["a dict per message"])
        print(
            f"| {vendor} | {fast:.2f} us/quote ({1e6 / fast:,.0f}/s) | {slow:.2f} us/quote"
            f" ({1e6 / slow:,.0f}/s) | {slow / fast:.2f}x |"
        )


if __name__ == "__main__":
    main()
