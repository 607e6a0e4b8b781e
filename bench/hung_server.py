"""How late can a text-mode hotkey server that hangs still press a command? Measured, not argued.

A receiving server runs in its own process on 127.0.0.1. The bot (hotkey_ws,
in this process) sends one command every 10 ms. At a random moment the
server freezes for ``--hang`` seconds, as a hung process does: it reads
nothing and completes no handshake, while the kernel keeps accepting bytes
into its receive buffer. When it wakes it reads (and would press) what the
buffer holds. A TCP reset from the bot does not take those bytes back.

For each keepalive setting the bench reports, medians over ``--rounds``:

* window: how long after the freeze the bot still wrote commands into the
  frozen connection (the newest command the server read on waking, minus
  the moment it froze): the commands of this window are pressed late;
* written late: how many commands that is;
* pressed late by: how late the waking server read them (its wake-up time
  minus the moment their hooks fired).

Baseline in the same run: the keepalive of the release before the wire rules
(``ping_interval`` 2 s, ``ping_timeout`` 2 s); the new defaults are 0.25 s + 0.25 s,
and a sequence may only start while the last pong is younger than their sum.

    python bench/hung_server.py            # 3 rounds, 3 s hangs
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time

from websockets.sync.client import connect

from hotkey_ws.client import HotkeyClient
from hotkey_ws.config import HotkeyConfig

SERVER = r"""
import asyncio, json, sys, time
from websockets.asyncio.server import serve

received = []          # (payload, monotonic_ns read, connection)
state = {"frozen_at": None, "woke_at": None, "frozen": []}
awake = None
bots = set()

async def check(connection, request):
    if state["frozen_at"] is not None and state["woke_at"] is None:
        await awake.wait()       # a frozen process completes no handshake

async def handler(ws):
    global awake
    if ws.request.headers.get("X-Control"):
        async for message in ws:
            command, _, arg = message.partition(" ")
            if command == "freeze":
                state["frozen_at"], state["woke_at"] = time.monotonic_ns(), None
                state["frozen"] = [id(bot) for bot in bots]
                awake.clear()
                for bot in bots:
                    bot.transport.pause_reading()
                await ws.send("frozen")
                await asyncio.sleep(float(arg))
                state["woke_at"] = time.monotonic_ns()
                awake.set()
                for bot in bots:
                    bot.transport.resume_reading()
            elif command == "report":
                await ws.send(json.dumps({"received": received, **state}))
                received.clear()
        return
    bots.add(ws)
    try:
        async for message in ws:
            received.append((message, time.monotonic_ns(), id(ws)))
    except Exception:
        pass
    finally:
        bots.discard(ws)

async def main():
    global awake
    awake = asyncio.Event()
    awake.set()
    async with serve(handler, "127.0.0.1", 0, compression=None, process_request=check,
                     ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def round_trip(url: str, hang: float, settings: tuple[float, float], rng: random.Random) -> dict[str, float]:
    interval, timeout = settings
    config = HotkeyConfig(
        urls=(url,),
        ttl=2.0,
        exit_ttl=10.0,
        ping_interval=interval,
        ping_timeout=timeout,
        reconnect_max_delay=0.5,
        queue_size=10_000,
    )
    client = HotkeyClient(config)
    client.start()
    assert client.wait_connected(5)
    fired: dict[str, int] = {}
    stop = threading.Event()

    def bot() -> None:
        n = 0
        while not stop.is_set():
            name = f"c{n:06d}"
            fired[name] = time.monotonic_ns()
            client.send([name])
            n += 1
            stop.wait(0.01)

    sender = threading.Thread(target=bot)
    sender.start()
    with connect(url, additional_headers={"X-Control": "1"}, proxy=None) as control:
        stop.wait(rng.uniform(0.3, 0.8))  # some traffic first, then a freeze at a random moment
        control.send(f"freeze {hang}")
        assert control.recv(timeout=10) == "frozen"
        # the freeze lasts `hang` s; the control connection's handler holds it
        time.sleep(hang + 0.5)
        stop.set()
        sender.join()
        client.close(0.5)
        control.send("report")
        report = json.loads(control.recv(timeout=30))
    frozen_at, woke_at, frozen = report["frozen_at"], report["woke_at"], set(report["frozen"])
    # Read on waking from the connection that froze: what the kernel had taken meanwhile.
    late = [(name, at) for name, at, conn in report["received"] if conn in frozen and at >= woke_at]
    late_fired = [fired[name] for name, _ in late if fired[name] >= frozen_at]
    window = (max(late_fired) - frozen_at) / 1e6 if late_fired else 0.0
    pressed_late = [(at - fired[name]) / 1e6 for name, at in late]
    return {
        "window_ms": window,
        "written_late": float(len(late)),
        "pressed_late_max_ms": max(pressed_late, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hang", type=float, default=3.0, help="seconds the server stays frozen")
    args = parser.parse_args()
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = f"ws://127.0.0.1:{int(proc.stdout.readline())}"
    rng = random.Random(1)
    settings = {"before (ping 2 s + 2 s)": (2.0, 2.0), "now (ping 0.25 s + 0.25 s)": (0.25, 0.25)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    try:
        for _ in range(args.rounds):
            for name, values in settings.items():
                results[name].append(round_trip(url, args.hang, values, rng))
    finally:
        proc.terminate()
        proc.wait()
    print(
        f"server frozen {args.hang:g} s at a random moment, one command every 10 ms,"
        f" median of {args.rounds} rounds"
    )
    print()
    print(
        "| keepalive | window (written into the frozen server) | commands pressed late"
        " | pressed late by (max) |"
    )
    print("|---|---|---|---|")
    for name, rows in results.items():

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        print(
            f"| {name} | {med('window_ms'):.0f} ms | {med('written_late'):.0f}"
            f" | {med('pressed_late_max_ms'):.0f} ms |"
        )
    before = statistics.median(r["window_ms"] for r in results["before (ping 2 s + 2 s)"])
    now = statistics.median(r["window_ms"] for r in results["now (ping 0.25 s + 0.25 s)"])
    if now:
        print(f"\nthe window is {before / now:.1f}x shorter than before")


if __name__ == "__main__":
    main()
