"""Event to order line: plugins/das against hotkey_ws on the same trade events, in one run.

Each receiver runs in a process of its own on 127.0.0.1 and stamps what it reads with
``time.monotonic_ns()`` (one clock for every process on Linux):

* das: the fake DAS CMD API (``momobot_das.fake``), which acknowledges and fills each order
  as the platform would (six lines back per order), so the plugin's reader thread is busy as
  it would be live; "das, acks only": the same fake acknowledging each order, filling none
  (two lines back). On a 2-core machine the fake's own work competes with the bot for the
  CPU: a real platform runs on the trading PC;
* hotkey_ws: a WebSocket server (the one of ``bench/hotkey_latency.py``), JSON frames (they
  carry the symbol, so each frame is matched to its event).

The engine runs live with a WAL journal on disk, one plugin registered at a time, and is
driven on this thread. Latency is receipt time minus the time the engine was handed the
event (``open_trade`` for entries, the quote for stops).

Scenarios:

* spaced: N trades, an event every ``--gap-ms``; each trade's entry, then its stop;
* burst: four open trades; one quote each, back to back: three reach take profit 1, the
  fourth its stop. The figure is the stop's: with hotkey_ws it waits behind the three TP1
  sequences (three commands, ``sequence_delay`` 0.1 s apart, on one wire); with das every
  order is written when its event fires.

Run: ``python bench/das_orders.py`` (see README). Prints Markdown tables of medians.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hotkey_latency import fetch_receipts, start_server

from hotkey_ws.config import HotkeyConfig
from hotkey_ws.plugin import HotkeyPlugin
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote
from momobot_core.plugins import Hooks
from momobot_das.config import DasConfig
from momobot_das.plugin import DasPlugin

FAKE = r"""
import json, sys
from momobot_das.fake import FakeDas
fake = FakeDas().start()
fake.fill_buys = fake.fill_sells = sys.argv[1] == "fills"
print(fake.port, flush=True)
for command in sys.stdin:
    with fake._lock:
        rows = [(line, t) for t, line in fake.received if line.startswith("NEWORDER")]
        fake.received.clear()
    print(json.dumps(rows), flush=True)
"""


class FakeProcess:
    """The fake DAS in a process of its own: ``fills`` answers each order with an acknowledgement
    and a fill (six lines), else with the acknowledgement only (two)."""

    def __init__(self, fills: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE, "fills" if fills else "acks"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def receipts(self) -> list[tuple[str, int]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        return [(str(line), int(t)) for line, t in json.loads(self.proc.stdout.readline())]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def pause(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # a busy wait: the engine's thread stays warm, as under load
        pass


class Rig:
    """A live engine with one plugin, its journal on disk."""

    def __init__(self, plugin: object, directory: str, name: str) -> None:
        hooks = Hooks()
        hooks.register(plugin, name=name)
        self.journal = Journal(Path(directory) / f"{name}-{time.monotonic_ns()}.db")
        self.engine = Engine(hooks=hooks, journal=self.journal, mode="live")
        self.engine.start()
        self.calls: list[int] = []  # how long each open_trade took on this thread

    def quote(self, symbol: str, bid: float, ask: float) -> int:
        stamp = time.monotonic_ns()
        self.engine.apply(Quote(symbol, datetime.now(UTC), bid, ask))
        return stamp

    def open(self, symbol: str) -> int:
        stamp = time.monotonic_ns()
        self.engine.open_trade(symbol, 100, 2.20, 2.40, 1.90)
        self.calls.append(time.monotonic_ns() - stamp)
        return stamp

    def settle(self, seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.engine.tick()
            threading.Event().wait(0.01)

    def close(self) -> None:
        self.engine.shutdown()
        self.journal.close()


def das_plugin(port: int) -> DasPlugin:
    return DasPlugin(DasConfig(user="trader", account="TR1234", route="SMAT", password="secret", port=port))


def hotkey_plugin(url: str) -> HotkeyPlugin:
    return HotkeyPlugin(HotkeyConfig(urls=(url,), format="json"))


def symbol_of(design: str, line: str) -> tuple[str, str]:
    """(symbol, "entry" or "exit") of a received line."""
    if design.startswith("das"):
        parts = line.split()
        return parts[3], "entry" if parts[2] == "B" else "exit"
    frame = json.loads(line)
    return str(frame["symbol"]), "entry" if frame["command"] == "buy_ask" else "exit"


def measure(
    design: str,
    receipts: Callable[[], list[tuple[str, int]]],
    make: Callable[[], object],
    args: Any,
    directory: str,
) -> dict[str, float]:
    receipts()  # clear what earlier rounds left
    rig = Rig(make(), directory, design)
    try:
        sent: dict[tuple[str, str], int] = {}
        total = args.warmup + args.count
        symbols = [f"S{n:04d}" for n in range(total)]
        gap = args.gap_ms / 1e3
        for n, symbol in enumerate(symbols):
            rig.quote(symbol, 1.99, 2.00)
            stamp = rig.open(symbol)
            if n >= args.warmup:
                sent[(symbol, "entry")] = stamp
            pause(gap)
        rig.settle()
        for n, symbol in enumerate(symbols):
            stamp = rig.quote(symbol, 1.85, 1.86)  # each trade's stop
            if n >= args.warmup:
                sent[(symbol, "exit")] = stamp
            pause(gap)
        rig.settle(1.0)
        stops: dict[str, int] = {}
        for r in range(args.bursts):
            names = [f"B{r:03d}{c}" for c in "ABCD"]
            for symbol in names:
                rig.quote(symbol, 1.99, 2.00)
                rig.open(symbol)
            rig.settle(0.2)
            for symbol in names[:3]:
                rig.quote(symbol, 2.19, 2.20)  # take profit 1
            stops[names[3]] = rig.quote(names[3], 1.85, 1.86)  # a stop, right behind them
            rig.settle(0.8 if design == "hotkey_ws" else 0.2)
            for symbol in names[:3]:
                rig.quote(symbol, 1.95, 1.96)  # their break-even stops: the book is flat again
            rig.settle(0.8 if design == "hotkey_ws" else 0.2)
    finally:
        rig.close()
    first: dict[tuple[str, str], int] = {}
    for line, at in receipts():
        key = symbol_of(design, line)
        first.setdefault(key, at)
    calls = sorted(rig.calls[args.warmup : args.warmup + args.count])
    if design.endswith("acks only"):
        sent = {key: t for key, t in sent.items() if key[1] == "entry"}
    spaced_lat = sorted(first[key] - t for key, t in sent.items() if key in first)
    burst_lat = sorted(first[(s, "exit")] - t for s, t in stops.items() if (s, "exit") in first)
    nan = float("nan")  # acks only: nothing is bought, so no exit has anything to sell
    return {
        "call_p50": calls[len(calls) // 2] / 1e3,
        "p50": spaced_lat[len(spaced_lat) // 2] / 1e6,
        "p99": spaced_lat[int(len(spaced_lat) * 0.99)] / 1e6,
        "delivered": len(spaced_lat) / len(sent),
        "burst_p50": burst_lat[len(burst_lat) // 2] / 1e6 if burst_lat else nan,
        "burst_max": burst_lat[-1] / 1e6 if burst_lat else nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300, help="trades per round (an entry and a stop each)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    fake = FakeProcess()
    quiet = FakeProcess(fills=False)
    server, url = start_server()
    directory = tempfile.mkdtemp(prefix="momobot-bench-", dir=".")
    designs: dict[str, tuple[Callable[[], list[tuple[str, int]]], Callable[[], object]]] = {
        "das": (fake.receipts, lambda: das_plugin(fake.port)),
        "das, acks only": (quiet.receipts, lambda: das_plugin(quiet.port)),  # entries only
        "hotkey_ws": (lambda: fetch_receipts(url), lambda: hotkey_plugin(url)),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in designs}
    try:
        for _ in range(args.rounds):
            for name, (receipts, make) in designs.items():
                results[name].append(measure(name, receipts, make, args, directory))
    finally:
        fake.close()
        quiet.close()
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(
        f"{args.count} trades (an entry, then a stop) {args.gap_ms:g} ms apart after {args.warmup} warm-up,"
        f" and {args.bursts} bursts; live engine, WAL journal on disk; median of {args.rounds} rounds;"
        f" Python {sys.version.split()[0]}"
    )
    print()
    print(
        "| plugin | open_trade call p50 | event to line p50 | p99 | delivered"
        " | burst: stop behind 3 TP1s, p50 | max |"
    )
    print("|---|---|---|---|---|---|---|")

    def ms(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.3f} ms"  # a design run without bursts

    for name in designs:
        print(
            f"| {name} | {med(name, 'call_p50'):.0f} us | {med(name, 'p50'):.3f} ms"
            f" | {med(name, 'p99'):.3f} ms | {med(name, 'delivered'):.0%}"
            f" | {ms(med(name, 'burst_p50'))} | {ms(med(name, 'burst_max'))} |"
        )
    print()
    ratio = med("das", "p50") / med("hotkey_ws", "p50")
    print(f"das event-to-line p50 / hotkey_ws event-to-wire p50: {ratio:.2f}")
    print(
        f"in a burst the stop reaches DAS {med('hotkey_ws', 'burst_p50') / med('das', 'burst_p50'):.0f}x"
        " sooner than its hotkey reaches the hotkey server"
    )


if __name__ == "__main__":
    main()
