"""The engine's own call: what ``open_trade``, a TP1 and a stop cost on the caller's thread.

No plugin is registered: the figures are the engine's work and its record (the journal on
disk, as ``serve`` keeps it), not a plugin's. Each trade's symbol has quotes before its entry
and between its events, as a live day gives it. Two cadences:

* warm: the calls back to back, every cache hot;
* cold: one call every 2 ms, the loop or the thread idle in between, as on a quiet live day
  (a trader's events are milliseconds to minutes apart).

Both on an asyncio loop (what ``serve`` runs) and on a plain thread (a script driving the
engine). Baseline in the same run: the same calls with no journal (nothing recorded), so the
difference is what the record costs. Medians of R rounds.

    python bench/engine_call.py                 # 500 trades, 3 rounds
    python bench/engine_call.py --trades 200 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote

GAP_S = 0.002  # the cold cadence
CALLS = ("open_trade", "TP1", "stop")


def quote(symbol: str, bid: float, ask: float) -> Quote:
    return Quote(symbol, datetime.now(UTC), bid, ask, None)


class Day:
    """An engine, with or without a journal, and the trades' symbols quoted once."""

    def __init__(self, trades: int, directory: str | None) -> None:
        self.journal = Journal(f"{directory}/bench.db") if directory is not None else None
        if self.journal is not None:
            self.journal.checkpoint_in_background()  # as serve does
        self.engine = Engine(journal=self.journal, mode="live")
        self.engine.start()
        self.symbols = [f"E{n:05d}" for n in range(trades)]
        for symbol in self.symbols:
            self.engine.apply(quote(symbol, 1.99, 2.00))

    def steps(self, symbol: str) -> list[tuple[str | None, Callable[[], Callable[[], object]]]]:
        """One trade's calls in order: (what is timed, or None for a quote between them; what
        makes the call). A quote is made just before its call, outside the time: the source's
        work, not the engine's (as ``bench/engine_instructions.py`` counts it)."""
        engine = self.engine
        apply = engine.apply
        return [
            (None, lambda: partial(apply, quote(symbol, 1.99, 2.00))),
            ("open_trade", lambda: partial(engine.open_trade, symbol, 100, 2.2, 2.4, 1.9)),
            (None, lambda: partial(apply, quote(symbol, 2.05, 2.06))),
            (None, lambda: partial(apply, quote(symbol, 2.10, 2.11))),
            ("TP1", lambda: partial(apply, quote(symbol, 2.20, 2.21))),
            (None, lambda: partial(apply, quote(symbol, 2.10, 2.11))),
            ("stop", lambda: partial(apply, quote(symbol, 1.99, 2.00))),  # break-even after TP1
        ]

    def close(self) -> None:
        self.engine.shutdown()
        if self.journal is not None:
            self.journal.close()


def timed(step: Callable[[], object], costs: list[int]) -> None:
    start = time.perf_counter_ns()
    step()
    costs.append(time.perf_counter_ns() - start)


def run(day: Day, on_loop: bool, gap: float) -> dict[str, list[int]]:
    costs: dict[str, list[int]] = {name: [] for name in CALLS}
    steps = [step for symbol in day.symbols for step in day.steps(symbol)]

    if on_loop:

        async def main() -> None:
            for name, make in steps:
                step = make()
                if name is None:
                    step()
                else:
                    timed(step, costs[name])
                await asyncio.sleep(gap)  # 0: the loop still turns once

        asyncio.run(main())
    else:
        for name, make in steps:
            step = make()
            if name is None:
                step()
            else:
                timed(step, costs[name])
            if gap:
                time.sleep(gap)
    if day.engine.open_trades:  # every trade must have run its entry, TP1 and stop
        raise RuntimeError(f"trades left open: {sorted(day.engine.open_trades)[:5]}")
    return costs


def measure(trades: int, on_loop: bool, gap: float, journal: bool, directory: str) -> dict[str, float]:
    run_dir = tempfile.mkdtemp(dir=directory) if journal else None
    day = Day(trades, run_dir)
    try:
        costs = run(day, on_loop, gap)
    finally:
        day.close()
    skip = trades // 10  # the first trades warm the interpreter up
    out = {}
    for name, values in costs.items():
        kept = sorted(values[skip:])
        out[f"{name} p50"] = kept[len(kept) // 2] / 1e3
        out[f"{name} p99"] = kept[int(len(kept) * 0.99)] / 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="momobot-bench-", dir=".")  # the disk a journal lives on
    cases = [
        (where, cadence, journal)
        for where in ("asyncio loop", "plain thread")
        for cadence in ("warm", "cold")
        for journal in (False, True)
    ]
    results: dict[tuple[str, str, bool], list[dict[str, float]]] = {case: [] for case in cases}
    try:
        for _ in range(args.rounds):
            for where, cadence, journal in cases:
                gap = GAP_S if cadence == "cold" else 0.0
                results[(where, cadence, journal)].append(
                    measure(args.trades, where == "asyncio loop", gap, journal, directory)
                )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{args.trades} trades, median of {args.rounds} rounds; no plugin; us per call, p50 (p99)")
    print()
    print("| caller | cadence | journal | open_trade | TP1 | stop |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        where, cadence, journal = case

        def med(key: str, case: tuple[str, str, bool] = case) -> float:
            return statistics.median(r[key] for r in results[case])

        cells = " | ".join(f"{med(f'{name} p50'):.1f} ({med(f'{name} p99'):.0f})" for name in CALLS)
        print(f"| {where} | {cadence} | {'on disk' if journal else 'none'} | {cells} |")


if __name__ == "__main__":
    main()
