"""Where a backtest's results go: SQLite (the standard library) against DuckDB, on the driver's
work: each task's trades written in one transaction as the task comes back, then the
statistics read back per parameter set.

Runs SQLite always, DuckDB when it is installed (``pip install duckdb``; it is not a dependency
of momobot). Prints medians of R rounds. Not a test: ``python bench/results_store.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CREATE = (
    "CREATE TABLE trades (set_id INTEGER, day TEXT, symbol TEXT, opened_at TEXT, closed_at TEXT,"
    " qty INTEGER, entry REAL, pnl REAL, r REAL)"
)
INSERT = "INSERT INTO trades VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
STATS = (
    "SELECT set_id, COUNT(*), AVG(pnl), AVG(r), SUM(CASE WHEN pnl > 0 THEN pnl ELSE 0 END),"
    " SUM(CASE WHEN pnl < 0 THEN -pnl ELSE 0 END) FROM trades GROUP BY set_id ORDER BY set_id"
)


def tasks(n_tasks: int, per_task: int, sets: int) -> list[list[tuple[Any, ...]]]:
    rng = random.Random(3)
    out = []
    for t in range(n_tasks):
        out.append(
            [
                (
                    t % sets,
                    f"2026-11-{t // sets % 28 + 1:02d}",
                    f"S{i:03d}",
                    "09:31",
                    "09:40",
                    100,
                    rng.uniform(2, 20),
                    rng.gauss(2, 15),
                    rng.gauss(0.2, 1.2),
                )
                for i in range(per_task)
            ]
        )
    return out


def run_sqlite(path: Path, work: list[list[tuple[Any, ...]]]) -> tuple[float, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(CREATE)
    t = time.perf_counter()
    for rows in work:
        db.execute("BEGIN")
        db.executemany(INSERT, rows)
        db.execute("COMMIT")
    write = time.perf_counter() - t
    t = time.perf_counter()
    db.execute(STATS).fetchall()
    read = time.perf_counter() - t
    db.close()
    return write, read


def run_duckdb(path: Path, work: list[list[tuple[Any, ...]]]) -> tuple[float, float]:
    import duckdb

    db = duckdb.connect(str(path))
    db.execute(CREATE)
    t = time.perf_counter()
    for rows in work:
        db.execute("BEGIN TRANSACTION")
        db.executemany(INSERT, rows)
        db.execute("COMMIT")
    write = time.perf_counter() - t
    t = time.perf_counter()
    db.execute(STATS).fetchall()
    read = time.perf_counter() - t
    db.close()
    return write, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2_000)
    parser.add_argument("--trades", type=int, default=25, help="trades a task")
    parser.add_argument("--sets", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = tasks(args.tasks, args.trades, args.sets)
    stores = {"SQLite": run_sqlite}
    if importlib.util.find_spec("duckdb") is not None:
        stores["DuckDB"] = run_duckdb
    else:
        print("DuckDB is not installed (pip install duckdb): its row is left out", file=sys.stderr)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
    for _ in range(args.rounds):
        for name, run in stores.items():
            with tempfile.TemporaryDirectory() as tmp:
                results[name].append(run(Path(tmp) / "r.db", work))
    print(
        f"{args.tasks:,} tasks of {args.trades} trades ({args.tasks * args.trades:,} rows),"
        f" median of {args.rounds}"
    )
    print()
    print("| store | write, a transaction a task | per task | statistics query |")
    print("|---|---|---|---|")
    for name, laps in results.items():
        write = statistics.median(w for w, _ in laps)
        read = statistics.median(r for _, r in laps)
        print(f"| {name} | {write:.2f} s | {write / args.tasks * 1000:.3f} ms | {read * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
