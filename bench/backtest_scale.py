"""Backtest scale: a grid of 8 parameter sets over 10 synthetic days of 500 symbols, on a Dask
LocalCluster of 1 worker and of 2 (each a process), rounds interleaved; and what each task costs
beyond its own replay: the engine's start and a Dask round trip.

* sweep: the wall time of ``sweep`` from the cluster up to the last result (the cluster's own
  start is timed apart, it is paid once a run);
* per task: the median task's own time (inside the worker), the engine's start inside it, and a
  Dask round trip (an empty task submitted and its result back, on the running cluster).

Prints a table with medians and the 2-worker speed-up. Not a test: run it with
``python bench/backtest_scale.py`` (see README; needs the ``backtest`` extra).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path


def noop(x: int) -> int:
    return x


def round_trips(workers: int, n: int) -> tuple[float, float]:
    """(cluster start seconds, median round trip of an empty task in ms)."""
    from dask.distributed import Client

    from momobot_core.backtest.sweep import local_cluster

    t = time.perf_counter()
    cluster = local_cluster(workers)  # the very cluster `momobot backtest` starts
    client = Client(cluster)
    client.wait_for_workers(workers)
    start_s = time.perf_counter() - t
    laps = []
    try:
        for i in range(n):
            t = time.perf_counter()
            client.submit(noop, i, pure=False).result()
            laps.append((time.perf_counter() - t) * 1000)
    finally:
        client.close()
        cluster.close()
    return start_s, statistics.median(laps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--quotes", type=int, default=200_000, help="quotes a day")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.WARNING)

    from momobot_core.backtest.sweep import Plan, find_days, parse_grid, sweep
    from momobot_core.backtest.synthetic import generate

    folder = args.out / f"backtest-{args.days}-{args.symbols}-{args.quotes}"
    if len(list(folder.glob("*.parquet"))) != args.days:
        generate(folder, days=args.days, symbols=args.symbols, quotes=args.quotes)
    sets = parse_grid(["tp1=0.05,0.10,0.20,0.30", "timeframe=1m,5m"])
    plan = Plan(days=tuple(find_days([folder])), sets=tuple(sets), strategy="pullback")
    walls: dict[int, list[float]] = {1: [], 2: []}
    task_s: list[float] = []
    engine_ms: list[float] = []
    trades: dict[int, list[int]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for workers in (1, 2):  # interleaved, so both see the same machine noise
            done = sweep(plan, workers=workers)
            walls[workers].append(done.seconds)  # the cluster's start is timed apart
            failed = [r for r in done.results if r["error"]]
            if failed:
                sys.exit(f"a task failed: {failed[0]['error']}")
            trades[workers].append(sum(len(r["trades"]) for r in done.results))
            task_s.extend(r["seconds"] for r in done.results)
            engine_ms.extend(r["engine_start_s"] * 1000 for r in done.results)
    assert len(set(trades[1] + trades[2])) == 1, "1 and 2 workers traded differently"
    starts, trips = zip(*(round_trips(2, 50) for _ in range(args.rounds)), strict=True)
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    tasks = len(plan.days) * len(plan.sets)
    print(
        f"{tasks} tasks ({len(plan.days)} days x {len(plan.sets)} sets), {args.symbols} symbols and"
        f" {args.quotes:,} quotes a day, {trades[1][0]:,} trades; median of {args.rounds} rounds;"
        f" {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print()
    print("| run | wall (median) | tasks/s | quotes/s |")
    print("|---|---|---|---|")
    for workers, wall in ((1, one), (2, two)):
        print(
            f"| {workers} worker{'s' if workers > 1 else ''} | {wall:.1f} s | {tasks / wall:.2f} |"
            f" {tasks * args.quotes / wall:,.0f} |"
        )
    print()
    print(f"2 workers / 1 worker speed-up: {one / two:.2f}x")
    print()
    print("| per task | median |")
    print("|---|---|")
    print(f"| the task in its worker (a day's replay, one set) | {statistics.median(task_s):.3f} s |")
    print(f"| the engine's start inside it | {statistics.median(engine_ms):.2f} ms |")
    print(f"| a Dask round trip (empty task, running cluster of 2) | {statistics.median(trips):.2f} ms |")
    print(f"| a LocalCluster of 2 workers up (once a run) | {statistics.median(starts):.2f} s |")


if __name__ == "__main__":
    main()
