"""The results file of a backtest: one SQLite file per run (docs/backtest.md).

Tables: ``run`` (what was swept: key, value), ``sets`` (set_id, params as JSON), ``tasks``
(one row per day and set: ok or failed, and why), ``trades`` (one row per trade, the model's
prices beside the fills'), and ``stats`` (per set, written when the run ends: trades, win
rate, expectancy in R and dollars, profit factor, max drawdown, total). Each task's rows go in
one transaction as the task comes back, so a run cut short keeps every task it finished.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from momobot_core.config import InputError

SCHEMA = """
CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sets (set_id INTEGER PRIMARY KEY, params TEXT NOT NULL);
CREATE TABLE tasks (
    day TEXT NOT NULL, set_id INTEGER NOT NULL, status TEXT NOT NULL, error TEXT,
    quotes INTEGER, seconds REAL, warnings TEXT, PRIMARY KEY (day, set_id)
);
CREATE TABLE trades (
    set_id INTEGER NOT NULL, day TEXT NOT NULL, symbol TEXT NOT NULL, strategy TEXT,
    timeframe TEXT, opened_at TEXT NOT NULL, closed_at TEXT, qty INTEGER NOT NULL,
    entry_model REAL NOT NULL, entry_fill REAL NOT NULL, initial_stop REAL,
    pnl_model REAL NOT NULL, pnl REAL NOT NULL, r REAL, exits TEXT NOT NULL
);
CREATE INDEX trades_by_set ON trades (set_id, day, opened_at);
CREATE TABLE stats (
    set_id INTEGER PRIMARY KEY, trades INTEGER, wins INTEGER, win_rate REAL,
    expectancy_r REAL, expectancy_usd REAL, profit_factor REAL, max_drawdown REAL,
    total REAL, days_ok INTEGER, days_failed INTEGER
);
"""

TRADE_COLUMNS = (
    "day",
    "symbol",
    "strategy",
    "timeframe",
    "opened_at",
    "closed_at",
    "qty",
    "entry_model",
    "entry_fill",
    "initial_stop",
    "pnl_model",
    "pnl",
    "r",
    "exits",
)


class ResultsFile:
    """Writes one run's results; :meth:`finish` adds the statistics."""

    def __init__(self, path: Path | str, *, replace: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder: give --out a file name such as backtest.db")
        if self.path.exists():
            if not replace:
                raise InputError(f"{self.path}: already exists: give another --out, or --replace")
            self.path.unlink()
        #: Tasks written so far.
        self.added = 0
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot write the results: {exc}") from None

    def start(self, meta: Mapping[str, object], sets: Sequence[Mapping[str, object]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO run VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
            )
            self.db.executemany(
                "INSERT INTO sets VALUES (?, ?)",
                [(i, json.dumps(dict(params))) for i, params in enumerate(sets)],
            )

    def add(self, result: Mapping[str, Any]) -> None:
        """One task's outcome, in one transaction."""
        day = Path(result["day"]).stem
        status = "failed" if result.get("error") else "ok"
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    day,
                    result["set_id"],
                    status,
                    result.get("error"),
                    result.get("quotes"),
                    result.get("seconds"),
                    "\n".join(result.get("warnings") or []) or None,
                ),
            )
            self.db.executemany(
                f"INSERT INTO trades (set_id, {', '.join(TRADE_COLUMNS)}) VALUES"
                f" (?, {', '.join('?' for _ in TRADE_COLUMNS)})",
                [(result["set_id"], *(trade[c] for c in TRADE_COLUMNS)) for trade in result["trades"]],
            )
        self.added += 1

    def finish(self, meta: Mapping[str, object]) -> None:
        rows = compute_stats(self.db)
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO run VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO stats VALUES (:set_id, :trades, :wins, :win_rate, :expectancy_r,"
                " :expectancy_usd, :profit_factor, :max_drawdown, :total, :days_ok, :days_failed)",
                rows,
            )

    def close(self) -> None:
        self.db.close()


def _stats(pnls: Sequence[float], rs: Iterable[float | None]) -> dict[str, Any]:
    n = len(pnls)
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    r_values = [r for r in rs if r is not None]
    equity = peak = drawdown = 0.0
    for p in pnls:
        equity += p
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    gross_loss = -sum(losses)
    return {
        "trades": n,
        "wins": len(wins),
        "win_rate": len(wins) / n if n else None,
        "expectancy_r": sum(r_values) / len(r_values) if r_values else None,
        "expectancy_usd": sum(pnls) / n if n else None,
        "profit_factor": (sum(wins) / gross_loss) if gross_loss > 0 else None,
        "max_drawdown": round(drawdown, 6),
        "total": round(sum(pnls), 6),
    }


def compute_stats(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per set: its trades in the order they closed (day, then time), and the days it ran."""
    out = []
    for (set_id,) in db.execute("SELECT set_id FROM sets ORDER BY set_id").fetchall():
        rows = db.execute(
            "SELECT pnl, r FROM trades WHERE set_id = ? ORDER BY day, closed_at, opened_at, symbol", (set_id,)
        ).fetchall()
        stats = _stats([row[0] for row in rows], [row[1] for row in rows])
        ok, failed = db.execute(
            "SELECT COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(status = 'failed'), 0) FROM tasks"
            " WHERE set_id = ?",
            (set_id,),
        ).fetchone()
        stats.update(set_id=set_id, days_ok=ok, days_failed=failed)
        out.append(stats)
    return out


def open_results(path: Path | str) -> sqlite3.Connection:
    """A results file for reading; InputError names the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such results file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path}: not a backtest results file ({exc})") from None
    missing = {"run", "sets", "tasks", "trades", "stats"} - tables
    if missing:
        db.close()
        raise InputError(f"{path}: not a backtest results file (no {', '.join(sorted(missing))} table)")
    return db


def summary(db: sqlite3.Connection, top: int = 10) -> str:
    """The best sets by expectancy, and the failed days, as text."""
    sets = {sid: json.loads(p) for sid, p in db.execute("SELECT set_id, params FROM sets")}
    rows = db.execute(
        "SELECT set_id, trades, win_rate, expectancy_r, expectancy_usd, profit_factor, max_drawdown, total"
        " FROM stats ORDER BY expectancy_usd IS NULL, expectancy_usd DESC, set_id LIMIT ?",
        (top,),
    ).fetchall()
    lines = [
        f"{'set':>4}  {'trades':>6}  {'win%':>5}  {'exp R':>6}  {'exp $':>8}  {'PF':>5}  {'max DD':>8}"
        f"  {'total':>9}  params"
    ]
    for sid, n, wr, er, eu, pf, dd, total in rows:
        lines.append(
            f"{sid:>4}  {n:>6}  {_pct(wr):>5}  {_num(er, 2):>6}  {_num(eu, 2):>8}  {_pf(pf, n):>5}"
            f"  {dd:>8.2f}  {total:>+9.2f}  {_params(sets[sid])}"
        )
    failed = db.execute(
        "SELECT DISTINCT day, error FROM tasks WHERE status = 'failed' ORDER BY day"
    ).fetchall()
    for day, error in failed:
        lines.append(f"FAILED {day}: {error}")
    warned = db.execute(
        "SELECT DISTINCT day, warnings FROM tasks WHERE warnings IS NOT NULL ORDER BY day"
    ).fetchall()
    for day, text in warned[:10]:
        lines.extend(f"WARNING {day}: {line}" for line in text.splitlines())
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}"


def _pf(value: float | None, trades: int) -> str:
    """A profit factor: "-" without trades, "no loss" when nothing lost."""
    if value is None:
        return "no loss" if trades else "-"
    return f"{value:.2f}"


def _num(value: float | None, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def _params(params: Mapping[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(as recorded)"
