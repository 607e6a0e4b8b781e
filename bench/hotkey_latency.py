"""Hotkey latency: the original design against the hotkey_ws plugin, in one run.

A receiving WebSocket server runs in a separate process on 127.0.0.1 and
stamps each frame with ``time.monotonic_ns()`` (one clock for every process on
Linux). For each design and scenario the bench fires N commands, one every
2 ms after W warm-up commands, each through the core's hook dispatch
(``Hooks.notify("on_order_submitted", ...)``) exactly as the engine does, and
measures:

* hook call: the time the dispatch takes on the caller's thread (the cost on
  the trading path);
* latency: server receipt time minus the time the hook was called.

Designs:

* original: for each command open a new WebSocket connection, send, close;
  fire-and-forget with ``asyncio.create_task`` when a loop is running,
  else on a new thread with a new event loop (the monolithic bot's code);
* hotkey_ws: this plugin (one persistent link, inline send), its hook called directly;
* bare write: the floor of any design that sends a WebSocket frame from the hook to this
  server: each frame built before the shots, one ``send`` on a held connection, then the CPU
  given up once as hotkey_ws does for a server on this machine. No TTL, no order, no proof
  of a live link, nothing logged: a floor, not a design. 10x the original needs this row's
  p50 under a tenth of the original's, with room for everything else;
* hotkey_ws + record: the least of the engine's record, before the hook: the
  journal's write lock asked and the entry's event written into the side file
  (one ``os.pwrite``); then the hook, and the fold into SQLite as the engine does
  it. No checks, no engine. It is the floor of "engine + journal": what that row adds
  above it is the engine's own work;
* engine, no journal: ``Engine.open_trade`` with the plugin registered: the whole
  event (validation, the hook dispatch) but nothing written;
* engine + journal: the same with a WAL journal on disk, recorded before the
  hooks run (the order of work since the "journal first" change): the
  difference to the row above is the cost of the record on the event-to-wire
  path;
* hotkey_ws, no yield and engine + journal, no yield: those two rows without the CPU
  given up right after each write (hotkey_ws does, to a server on this machine): that
  change's baseline in the same run.

Scenarios: caller idle on an asyncio loop (like ``momobot serve``), caller
idle on a plain thread, and caller replaying quotes at full speed on a plain
thread (like ``momobot replay``), the commands fired between quotes.

Run: ``python bench/hotkey_latency.py`` (see README). Prints a Markdown table
of medians over R rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import inspect
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import websockets

from hotkey_ws.config import HotkeyConfig
from hotkey_ws.plugin import HotkeyPlugin
from momobot_core import hookimpl, net
from momobot_core.engine import Engine
from momobot_core.journal import Journal, JournalEvent
from momobot_core.models import Intent, Order, Quote, Side, Trade
from momobot_core.plugins import Hooks

# -- the receiving server (its own process) --------------------------------------------

SERVER = r"""
import asyncio, json, sys, time
from websockets.asyncio.server import serve

received = []

async def handler(ws):
    async for message in ws:
        now = time.monotonic_ns()
        if message == "__report__":
            await ws.send(json.dumps(received))
            received.clear()
        else:
            received.append((message, now))
            if message.startswith("{"):  # a JSON command: answered as the reference server does
                command = json.loads(message).get("command")
                await ws.send(json.dumps({"status": "accepted", "command": command}))

async def main():
    async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"ws://127.0.0.1:{port}"


def fetch_receipts(url: str) -> list[tuple[str, int]]:
    from websockets.sync.client import connect

    with connect(url, compression=None, proxy=None) as ws:
        ws.send("__report__")
        return [(str(item[0]), int(item[1])) for item in json.loads(ws.recv(timeout=30))]


# -- the original design, as the monolithic bot had it ------------------------------------

log = logging.getLogger("bench.original")


class Original:
    """New connection per command, scheduled fire-and-forget."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def send_hotkey(self, action: str) -> bool:
        try:
            async with websockets.connect(self.url, compression=None, proxy=None) as ws:
                await ws.send(action)
            log.info("[Hotkey] Sent: %s", action)
            return True
        except Exception as exc:
            log.error("[Hotkey] Failed to send '%s': %s", action, exc)
            return False

    def trigger_hotkey(self, action: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            threading.Thread(target=lambda: asyncio.run(self.send_hotkey(action)), daemon=True).start()
        else:
            loop.create_task(self.send_hotkey(action))  # noqa: RUF006  (the original design, as it was)

    @hookimpl
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        # unique payloads: the original design does not keep order, so match by id
        self.trigger_hotkey(f"buy_ask#{order.id}")

    def close(self) -> None:
        pass


class LibrarySync:
    """websockets' own sync client, one persistent connection, the hook sending inline.

    It blocks the engine while the kernel buffer is full (a server that stops
    reading), and has no reconnect of its own: shown for its latency only.
    """

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        # Held open, not in a `with`: websockets 17 asks for legacy=True to say so (not in 15).
        held: dict[str, Any] = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
        self.ws = connect(url, compression=None, proxy=None, **held)

    @hookimpl
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        self.ws.send("buy_ask")

    def close(self) -> None:
        self.ws.close()


class LibraryAsyncThread:
    """websockets' own reconnect loop (``async for ws in connect(...)``) on a background thread;
    the hook hands each command over with ``call_soon_threadsafe``."""

    def __init__(self, url: str) -> None:
        from websockets.asyncio.client import connect

        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.ready = threading.Event()
        self.stop = threading.Event()

        async def run() -> None:
            links_iter: Any = aiter(connect(url, compression=None, proxy=None))
            async with contextlib.aclosing(links_iter) as links:
                async for ws in links:
                    await serve(ws)
                    return

        async def serve(ws: Any) -> None:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    payload = await asyncio.wait_for(self.queue.get(), 0.1)
                except TimeoutError:
                    continue
                await ws.send(payload)
            await ws.close()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(run(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(5)

    @hookimpl
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, "buy_ask")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


class BareWrite:
    """The least a hook can do to put a command on the wire (see the module's docstring)."""

    def __init__(self, url: str, total: int) -> None:
        from websockets.sync.client import connect

        held: dict[str, Any] = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
        # No keepalive: nothing else writes on this socket while the frames go.
        self.ws = connect(url, compression=None, proxy=None, ping_interval=None, **held)
        self.frames = [masked_text_frame(b"buy_ask") for _ in range(total)]
        self.sent = 0

    @hookimpl
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        self.ws.socket.send(self.frames[self.sent])
        self.sent += 1
        net.yield_cpu()

    def close(self) -> None:
        self.ws.close()


def masked_text_frame(payload: bytes) -> bytes:
    """One whole text frame as a client sends it (RFC 6455 5.2: masked; under 126 bytes)."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Plugin:
    def __init__(self, url: str) -> None:
        self.plugin = HotkeyPlugin(HotkeyConfig(urls=(url,), ttl=5.0, queue_size=10_000))
        self.engine = Engine(mode="live")
        self.plugin.on_startup(self.engine)

    def close(self) -> None:
        self.plugin.on_shutdown(self.engine)


class RecordFirst:
    """hotkey_ws behind the least of the engine's record: before the hook, the journal's write
    lock asked (an entry must not go while another process holds it) and the entry's event
    written into the side file; after it, the fold into SQLite as the engine does it (20 ms
    later on a loop, at once on a plain thread). No checks, no engine; the events are built
    before the shots."""

    def __init__(self, url: str, total: int, directory: str) -> None:
        self.plugin = HotkeyPlugin(HotkeyConfig(urls=(url,), ttl=5.0, queue_size=10_000))
        self.hooks = Hooks()
        self.hooks.register(self.plugin, name="hotkey_ws")
        self.journal = Journal(f"{directory}/bench.db")
        self.journal.checkpoint_in_background()  # as serve does
        self.events: list[JournalEvent] = []
        for n in range(total):
            trade = attrs.evolve(TRADE, id=f"r{n:05d}", symbol=f"R{n:05d}")
            entry = attrs.evolve(order(n), trade_id=trade.id, symbol=trade.symbol)
            self.events.append(JournalEvent("open", trade, entry))
        self.written: list[JournalEvent] = []
        self.fold_due = False
        self.engine = Engine(mode="live")
        self.plugin.on_startup(self.engine)

    def fire(self, n: int) -> None:
        event = self.events[n]
        if self.journal.writable() is not None:
            raise RuntimeError("the bench's journal is locked")
        self.journal.append_pending(event, sync=False)
        self.written.append(event)
        self.hooks.notify("on_order_submitted", order=event.order, trade=event.trade)
        loop = asyncio._get_running_loop()
        if loop is None:
            self.fold()
        elif not self.fold_due:
            self.fold_due = True
            loop.call_later(0.02, self.fold)

    def fold(self) -> None:
        self.fold_due = False
        events, self.written = self.written, []
        self.journal.fold(events, [event.id for event in events])

    def close(self) -> None:
        self.plugin.on_shutdown(self.engine)
        if self.written:
            self.fold()
        self.journal.close()


class EngineEvents:
    """Every shot is an ``Engine.open_trade`` on a symbol of its own, the plugin registered."""

    def __init__(self, url: str, total: int, journal_dir: str | None) -> None:
        self.plugin = HotkeyPlugin(HotkeyConfig(urls=(url,), ttl=5.0, queue_size=10_000))
        hooks = Hooks()
        hooks.register(self.plugin, name="hotkey_ws")
        self.journal = Journal(f"{journal_dir}/bench.db") if journal_dir else None
        if self.journal is not None:
            self.journal.checkpoint_in_background()  # as serve does
        self.engine = Engine(hooks=hooks, journal=self.journal, mode="live")
        self.engine.start()
        for n in range(total):
            self.engine.on_quote(Quote(f"E{n:05d}", T0, 1.99, 2.00, None))

    def fire(self, n: int) -> None:
        self.engine.open_trade(f"E{n:05d}", 100, 2.2, 2.4, 1.9)

    def close(self) -> None:
        self.engine.shutdown()
        if self.journal is not None:
            self.journal.close()


def journal_commit_cost(directory: str, count: int = 2000) -> tuple[float, float]:
    """p50 and p99 (us) of one journal commit of an entry, on disk, WAL, synchronous=NORMAL."""
    journal = Journal(f"{directory}/commit.db")
    costs = []
    for n in range(count):
        trade = attrs.evolve(TRADE, id=f"c{n}", symbol=f"C{n}")
        event = JournalEvent("open", trade, attrs.evolve(order(n), trade_id=trade.id, symbol=trade.symbol))
        start = time.perf_counter_ns()
        journal.write(event)
        costs.append(time.perf_counter_ns() - start)
    journal.close()
    costs.sort()
    return costs[len(costs) // 2] / 1e3, costs[int(len(costs) * 0.99)] / 1e3


# -- firing ---------------------------------------------------------------------------------

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
TRADE = Trade(
    id="t", symbol="ABCD", qty=100, remaining=100, entry_price=2.0, tp1=2.2, tp2=2.4, stop=1.9, opened_at=T0
)


def order(n: int) -> Order:
    return Order(
        id=f"{n:06d}",
        symbol="ABCD",
        side=Side.BUY,
        qty=100,
        price=2.0,
        intent=Intent.ENTRY,
        trade_id="t",
        ts=T0,
    )


class Shots:
    def __init__(self) -> None:
        self.fired_ns: list[int] = []
        self.cost_ns: list[int] = []


Trigger = Callable[[int], None]


def fire(trigger: Trigger, n: int, shots: Shots) -> None:
    fired = time.monotonic_ns()
    start = time.perf_counter_ns()
    trigger(n)
    shots.cost_ns.append(time.perf_counter_ns() - start)
    shots.fired_ns.append(fired)


def hook_trigger(hooks: Hooks) -> Trigger:
    def trigger(n: int) -> None:
        hooks.notify("on_order_submitted", order=order(n), trade=TRADE)

    return trigger


def run_idle_thread(trigger: Trigger, total: int, gap: float) -> Shots:
    shots = Shots()
    for n in range(total):
        fire(trigger, n, shots)
        time.sleep(gap)
    return shots


def run_idle_loop(trigger: Trigger, total: int, gap: float) -> Shots:
    shots = Shots()

    async def main() -> None:
        for n in range(total):
            fire(trigger, n, shots)
            await asyncio.sleep(gap)
        await asyncio.sleep(0.5)  # let create_task'd sends finish on this loop

    asyncio.run(main())
    return shots


def run_replay_load(trigger: Trigger, total: int, gap: float) -> Shots:
    """Replay quotes as fast as the engine goes; fire a command every ``gap`` s in between."""
    shots = Shots()
    engine = Engine(mode="replay")
    quotes = [
        Quote(f"S{n % 500:03d}", T0, 1.0 + (n % 7) / 100, 1.01 + (n % 7) / 100, None) for n in range(50_000)
    ]
    on_quote = engine.on_quote
    n = fired = 0
    next_fire = time.perf_counter() + gap
    while fired < total:
        on_quote(quotes[n % 50_000])
        n += 1
        if not n & 63 and time.perf_counter() >= next_fire:
            fire(trigger, fired, shots)
            fired += 1
            next_fire += gap
    shots.quotes = n  # type: ignore[attr-defined]
    return shots


SCENARIOS: dict[str, Callable[[Trigger, int, float], Shots]] = {
    "idle, asyncio loop": run_idle_loop,
    "idle, plain thread": run_idle_thread,
    "replay load, plain thread": run_replay_load,
}


DESIGNS = (
    "original",
    "websockets sync, inline",
    "websockets reconnect loop, thread",
    "bare write",
    "hotkey_ws",
    "hotkey_ws, no yield",
    "hotkey_ws + record",
    "engine, no journal",
    "engine + journal",
    "engine + journal, no yield",
)
NO_YIELD = ", no yield"


@contextlib.contextmanager
def no_yield() -> Iterator[None]:
    """hotkey_ws as it was before it gave up the CPU after each write to a server on this
    machine: that change's baseline, in the same run."""
    saved = net._yield
    net._yield = lambda: None
    try:
        yield
    finally:
        net._yield = saved


LIBRARY = {"websockets sync, inline": LibrarySync, "websockets reconnect loop, thread": LibraryAsyncThread}


def measure(
    design: str, scenario: str, url: str, warmup: int, count: int, gap: float, directory: str
) -> dict[str, float]:
    if design.endswith(NO_YIELD):
        with no_yield():
            return measure(design.removesuffix(NO_YIELD), scenario, url, warmup, count, gap, directory)
    hooks = Hooks()
    subject: Any
    if design == "original":
        subject = Original(url)
        hooks.register(subject, name=design)
        trigger = hook_trigger(hooks)
    elif design in LIBRARY:
        subject = LIBRARY[design](url)
        hooks.register(subject, name=design)
        trigger = hook_trigger(hooks)
    elif design == "bare write":
        subject = BareWrite(url, warmup + count)
        hooks.register(subject, name=design)
        trigger = hook_trigger(hooks)
    elif design == "hotkey_ws":
        subject = Plugin(url)
        hooks.register(subject.plugin, name=design)
        trigger = hook_trigger(hooks)
    elif design == "hotkey_ws + record":
        subject = RecordFirst(url, warmup + count, tempfile.mkdtemp(dir=directory))
        trigger = subject.fire
    else:
        run_dir = tempfile.mkdtemp(dir=directory) if design == "engine + journal" else None
        subject = EngineEvents(url, warmup + count, run_dir)
        trigger = subject.fire
    if design not in ("original", "bare write", *LIBRARY):
        assert subject.plugin.client.wait_connected(5)
    shots = SCENARIOS[scenario](trigger, warmup + count, gap)
    time.sleep(1.0 if design == "original" else 0.2)
    subject.close()
    receipts = fetch_receipts(url)
    fired = shots.fired_ns[warmup:]
    costs = shots.cost_ns[warmup:]
    if design == "original":
        at = {payload.split("#")[1]: ns for payload, ns in receipts}
        latencies = [
            at[f"{n:06d}"] - fired[n - warmup] for n in range(warmup, warmup + count) if f"{n:06d}" in at
        ]
    else:
        assert len(receipts) == warmup + count, f"lost commands: {len(receipts)}"
        latencies = [ns - f for (_, ns), f in zip(receipts[warmup:], fired, strict=True)]
    if len(latencies) < count:
        print(
            f"  note: {design}/{scenario}: {count - len(latencies)} commands never arrived", file=sys.stderr
        )
    latencies.sort()
    costs.sort()
    return {
        "cost_p50_us": costs[len(costs) // 2] / 1e3,
        "cost_p99_us": costs[int(len(costs) * 0.99)] / 1e3,
        "lat_p50_ms": latencies[len(latencies) // 2] / 1e6,
        "lat_p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6,
        "delivered": len(latencies) / count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    proc, url = start_server()
    directory = tempfile.mkdtemp(prefix="momobot-bench-", dir=".")  # the disk a journal lives on
    try:
        commit_p50, commit_p99 = journal_commit_cost(directory)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for scenario in SCENARIOS:
                for design in DESIGNS:
                    results.setdefault((design, scenario), []).append(
                        measure(design, scenario, url, args.warmup, args.count, args.gap_ms / 1e3, directory)
                    )
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)

    def med(design: str, scenario: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(design, scenario)])

    print(
        f"{args.count} commands {args.gap_ms:g} ms apart after {args.warmup} warm-up,"
        f" median of {args.rounds} rounds; Python {sys.version.split()[0]},"
        f" websockets {importlib.metadata.version('websockets')}"
    )
    print()
    print("| scenario | design | hook call p50 | hook call p99 | latency p50 | latency p99 | delivered |")
    print("|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        for design in DESIGNS:
            print(
                f"| {scenario} | {design} | {med(design, scenario, 'cost_p50_us'):.1f} us"
                f" | {med(design, scenario, 'cost_p99_us'):.1f} us"
                f" | {med(design, scenario, 'lat_p50_ms'):.3f} ms"
                f" | {med(design, scenario, 'lat_p99_ms'):.3f} ms"
                f" | {med(design, scenario, 'delivered'):.0%} |"
            )
    print()
    for scenario in SCENARIOS:
        ratio = med("original", scenario, "lat_p50_ms") / med("hotkey_ws", scenario, "lat_p50_ms")
        print(f"{scenario}: hotkey_ws latency p50 is {ratio:.1f}x better than the original")
        journal = (
            med("engine + journal", scenario, "lat_p50_ms")
            - med("engine, no journal", scenario, "lat_p50_ms")
        ) * 1e3
        print(f"{scenario}: the journal commit adds {journal:+.0f} us to the event-to-wire p50")
        record = (
            med("hotkey_ws + record", scenario, "lat_p50_ms") - med("hotkey_ws", scenario, "lat_p50_ms")
        ) * 1e3
        engine = (
            med("engine + journal", scenario, "lat_p50_ms")
            - med("hotkey_ws + record", scenario, "lat_p50_ms")
        ) * 1e3
        print(
            f"{scenario}: giving up the CPU after the write takes hotkey_ws's p50 from"
            f" {med('hotkey_ws' + NO_YIELD, scenario, 'lat_p50_ms'):.3f} to"
            f" {med('hotkey_ws', scenario, 'lat_p50_ms'):.3f} ms, the engine + journal's from"
            f" {med('engine + journal' + NO_YIELD, scenario, 'lat_p50_ms'):.3f} to"
            f" {med('engine + journal', scenario, 'lat_p50_ms'):.3f} ms"
        )
        tenth = med("original", scenario, "lat_p50_ms") / 10
        print(
            f"{scenario}: the record alone adds {record:+.0f} us to hotkey_ws, the engine {engine:+.0f} us"
            f" above that; 10x the original needs a p50 of {tenth:.3f} ms or less"
        )
        bare = med("bare write", scenario, "lat_p50_ms")
        above = (med("hotkey_ws", scenario, "lat_p50_ms") - bare) * 1e3
        print(
            f"{scenario}: the bare write (the floor) is {med('original', scenario, 'lat_p50_ms') / bare:.1f}x"
            f" the original; hotkey_ws adds {above:+.0f} us to it"
        )
    print(
        f"one journal commit (entry, WAL, synchronous=NORMAL, on disk): p50 {commit_p50:.1f} us,"
        f" p99 {commit_p99:.1f} us"
    )


if __name__ == "__main__":
    main()
