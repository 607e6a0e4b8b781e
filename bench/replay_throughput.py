"""Replay throughput: the engine end to end against merely parsing the same input.

Generates a CSV of N quotes over S symbols (a random walk per symbol) and a
JSONL file opening T trades early on with levels wide enough to stay open, so
the engine checks targets on the quotes of T symbols all the way through. Then,
each in a fresh child process so peak RSS is its own, R rounds of:

* parse: read the CSV into Quote objects and drop them (the floor);
* replay: ``momobot replay`` end to end (both files merged, no plugins,
  journal in memory);
* armed: the same with A other symbols armed on ``pullback 1m`` from the start
  (a third file of ``arm`` events): candles built and the strategy run on their
  quotes, and the entries their breakouts make;
* day file: the same quotes and opens (and arms) written once as a day file
  (``momobot record --from``, Parquet) and replayed from it: read a row group at a
  time and fed to the engine batch by batch (needs the ``backtest`` extra).

Prints a table with medians and the ratio replay/parse. Not a test: run it
with ``python bench/replay_throughput.py`` (see README).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path


def generate_arms(out: Path, symbols: int, trades: int, armed: int) -> Path:
    """``arm`` events for ``armed`` symbols after the ones with open trades, at the start."""
    path = out / f"arms-{armed}.jsonl"
    start = datetime(2026, 11, 24, 14, 30, tzinfo=UTC).isoformat()
    names = [f"S{n:03d}" for n in range(trades, min(symbols, trades + armed))]
    with path.open("w") as fh:
        for name in names:
            arm = {"type": "arm", "ts": start, "symbol": name, "strategy": "pullback", "timeframe": "1m"}
            fh.write(json.dumps(arm) + "\n")
    return path


def generate(out: Path, quotes: int, symbols: int, trades: int, seed: int = 7) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"quotes-{quotes}-{symbols}.csv"
    jsonl_path = out / f"opens-{trades}.jsonl"
    rng = random.Random(seed)
    names = [f"S{n:03d}" for n in range(symbols)]
    start = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    if not csv_path.exists():
        prices = {name: rng.uniform(1.0, 20.0) for name in names}
        step = timedelta(microseconds=20_000)
        with csv_path.open("w") as fh:
            fh.write("ts,symbol,bid,ask,last\n")
            for n in range(quotes):
                name = names[n % symbols]
                p = max(0.5, prices[name] * (1 + rng.gauss(0, 0.0005)))
                prices[name] = p
                ts = (start + step * n).isoformat()
                fh.write(f"{ts},{name},{p - 0.01:.2f},{p:.2f},{p - 0.005:.3f}\n")
    # Open trades right after each symbol's first quote, levels far away: they stay open.
    with jsonl_path.open("w") as fh:
        for n in range(trades):
            ts = (start + timedelta(microseconds=20_000) * (symbols + n)).isoformat()
            fh.write(
                json.dumps(
                    {
                        "type": "open",
                        "ts": ts,
                        "symbol": names[n],
                        "qty": 100,
                        "tp1": 1000.0,
                        "tp2": 2000.0,
                        "stop": 0.01,
                    }
                )
                + "\n"
            )
    return csv_path, jsonl_path


CHILD = r"""
import resource, sys, time, json
mode, files = sys.argv[1], sys.argv[2:]
if mode == "parse":
    from momobot_core.sources.recorded import read_events
    t = time.perf_counter()
    n = 0
    for _ in read_events(files[:1]):
        n += 1
    seconds = time.perf_counter() - t
else:
    from momobot_core.config import Config
    from momobot_core.session import run_recorded
    t = time.perf_counter()
    result = run_recorded(files, hooks=None, config=Config(), progress=False)
    seconds = time.perf_counter() - t
    n = result.counters.quotes
    assert sum(1 for tr in result.trades if tr.is_open) > 0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"quotes": n, "seconds": seconds, "rss_mb": rss_mb}))
"""


def day_file(out: Path, files: list[Path], name: str) -> Path:
    """The files written once as a day file (``momobot record --from``), kept in ``out``. In a
    child process: this one stays small, and a child's peak RSS starts from its parent's."""
    folder = out / name
    existing = sorted(folder.glob("*.parquet"))
    if existing:
        return existing[0]
    froms = [arg for path in files for arg in ("--from", str(path))]
    made = subprocess.run(
        [sys.executable, "-m", "momobot_core.cli", "record", str(folder), *froms],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(made.stdout.strip().splitlines()[-1])


def run_child(mode: str, files: list[Path]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, *map(str, files)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quotes", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--trades", type=int, default=50)
    parser.add_argument("--armed", type=int, default=50, help="symbols armed on pullback 1m (0: skip)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument("--no-day-file", action="store_true", help="skip the day file rows")
    args = parser.parse_args()

    csv_path, jsonl_path = generate(args.out, args.quotes, args.symbols, args.trades)
    arms_path = generate_arms(args.out, args.symbols, args.trades, args.armed) if args.armed else None
    results: dict[str, list[dict[str, float]]] = {
        "parse": [],
        "replay": [],
        "armed": [],
        "day": [],
        "day armed": [],
    }
    tag = f"{args.quotes}-{args.symbols}-{args.trades}"
    day = None if args.no_day_file else day_file(args.out, [csv_path, jsonl_path], f"day-{tag}")
    day_armed = (
        day_file(args.out, [csv_path, jsonl_path, arms_path], f"day-{tag}-armed-{args.armed}")
        if day is not None and arms_path is not None
        else None
    )
    for _ in range(args.rounds):
        # interleaved, so all see the same machine noise
        results["parse"].append(run_child("parse", [csv_path]))
        results["replay"].append(run_child("replay", [csv_path, jsonl_path]))
        if arms_path is not None:
            results["armed"].append(run_child("replay", [csv_path, jsonl_path, arms_path]))
        if day is not None:
            results["day"].append(run_child("replay", [day]))
        if day_armed is not None:
            results["day armed"].append(run_child("replay", [day_armed]))

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    parse_rate = args.quotes / med("parse", "seconds")
    replay_rate = args.quotes / med("replay", "seconds")
    print(
        f"{args.quotes:,} quotes over {args.symbols} symbols, {args.trades} open trades,"
        f" median of {args.rounds} rounds, Python {sys.version.split()[0]}"
    )
    print()
    print("| run | seconds (median) | quotes/s | peak RSS |")
    print("|---|---|---|---|")
    for mode, rate in (
        ("parse only (CSV to Quote objects)", parse_rate),
        ("replay end to end (no plugins)", replay_rate),
    ):
        key = "parse" if mode.startswith("parse") else "replay"
        print(f"| {mode} | {med(key, 'seconds'):.2f} | {rate:,.0f} | {med(key, 'rss_mb'):.0f} MB |")
    if arms_path is not None:
        armed_rate = args.quotes / med("armed", "seconds")
        print(
            f"| replay, {args.armed} symbols armed on pullback 1m | {med('armed', 'seconds'):.2f} |"
            f" {armed_rate:,.0f} | {med('armed', 'rss_mb'):.0f} MB |"
        )
    for key, label in (("day", "day file (Parquet), batch by batch"), ("day armed", "day file, armed too")):
        if results[key]:
            print(
                f"| {label} | {med(key, 'seconds'):.2f} | {args.quotes / med(key, 'seconds'):,.0f} |"
                f" {med(key, 'rss_mb'):.0f} MB |"
            )
    print()
    if results["day"]:
        print(f"day file / CSV+JSONL speed: {med('replay', 'seconds') / med('day', 'seconds'):.2f}x")
    print(f"replay / parse time ratio: {med('replay', 'seconds') / med('parse', 'seconds'):.2f}x")
    if arms_path is not None:
        print(f"armed / none armed speed: {med('replay', 'seconds') / med('armed', 'seconds'):.2f}x")


if __name__ == "__main__":
    main()
