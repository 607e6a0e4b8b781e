"""Synthetic trading days with momentum to try a backtest on (``momobot backtest sample``).

Each day has a watchlist of symbols drifting without a trend and a few *gappers*: symbols
that open well above the day before and then move in legs, a push up on rising volume, a
pullback of a few minutes on lower highs, a breakout above the pullback's high, and so on,
some legs failing. The gappers are armed at the open (an ``arm`` row per gapper, strategy
``pullback`` on ``1m``), as a trader's scanner would arm them. Quotes arrive at random times,
the gappers far more often; spreads widen with price; most quotes carry a print.

Same seed, same days: a day's rows depend only on (seed, day, symbols, quotes).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from momobot_core.backtest.dayfile import ROW_GROUP, SCHEMA, day_path

NEW_YORK = ZoneInfo("America/New_York")
OPEN = time(9, 30)
#: How long each synthetic day trades: the morning, when momentum names move.
SESSION_S = 2 * 3600


def trading_days(first: date, count: int) -> list[date]:
    """``count`` weekdays from ``first`` on."""
    days: list[date] = []
    day = first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _ticker(n: int) -> str:
    letters = ""
    n += 26 * 26  # three letters at least
    while n:
        n, r = divmod(n, 26)
        letters = chr(65 + r) + letters
    return letters


def _path(rng: np.random.Generator, n: int, start: float, gapper: bool) -> np.ndarray:
    """``n`` mid prices: a random walk; a gapper's in legs (push, pullback, breakout)."""
    if n == 0:
        return np.empty(0)
    vol = 0.0008 if not gapper else 0.0016
    steps = rng.normal(0.0, vol, n)
    if gapper:
        drift = np.empty(n)
        i = 0
        up = True
        while i < n:
            length = int(rng.integers(n // 60 + 5, n // 12 + 10))
            # A push up, or a pullback; two legs in five up fail (drifts down instead).
            strength = (0.0003 if rng.random() > 0.4 else -0.0002) if up else -0.00025
            drift[i : i + length] = strength
            i += length
            up = not up
        steps += drift
    return start * np.exp(np.cumsum(steps))


def generate_day(
    directory: Path | str,
    day: date,
    *,
    symbols: int = 500,
    gappers: int = 10,
    quotes: int = 200_000,
    seed: int = 1,
) -> Path:
    """Write one synthetic day file; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, day.toordinal(), symbols, quotes])
    gappers = min(gappers, symbols)
    names = [_ticker(i) for i in range(symbols)]
    weight = np.ones(symbols)
    weight[:gappers] = 20.0  # gappers trade far more often
    counts = rng.multinomial(quotes, weight / weight.sum())
    open_at = datetime.combine(day, OPEN, NEW_YORK).astimezone(UTC)
    open_us = int(open_at.timestamp()) * 1_000_000
    parts_ts, parts_sym, parts_bid, parts_ask, parts_last = [], [], [], [], []
    for i, n in enumerate(counts.tolist()):
        gapper = i < gappers
        base = float(rng.uniform(2.0, 20.0)) if gapper else float(rng.uniform(1.0, 80.0))
        start = base * (1 + float(rng.uniform(0.2, 1.0))) if gapper else base
        times = np.sort(rng.integers(0, SESSION_S * 1_000_000, n)) + open_us
        mid = _path(rng, n, start, gapper)
        tick = np.where(mid >= 1, 0.01, 0.0001)
        half = np.maximum(tick, np.round(mid * 0.0005 / tick) * tick)
        bid = np.round((mid - half) / tick) * tick
        ask = np.round((mid + half) / tick) * tick
        bid = np.maximum(bid, tick)
        ask = np.maximum(ask, bid + tick)
        printed = rng.random(n) < 0.8
        last = np.where(printed, np.where(rng.random(n) < 0.5, bid, ask), np.nan)
        parts_ts.append(times)
        parts_sym.append(np.full(n, i, dtype=np.int32))
        parts_bid.append(np.round(bid, 4))
        parts_ask.append(np.round(ask, 4))
        parts_last.append(np.round(last, 4))
    ts = np.concatenate(parts_ts)
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    sym = np.concatenate(parts_sym)[order]
    bid = np.concatenate(parts_bid)[order]
    ask = np.concatenate(parts_ask)[order]
    last = np.concatenate(parts_last)[order]
    has_last = ~np.isnan(last)
    # The arms first, at the open: one row each, before any quote.
    arm_rows = [
        json.dumps(
            {
                "type": "arm",
                "ts": open_at.isoformat(),
                "symbol": names[i],
                "strategy": "pullback",
                "timeframe": "1m",
            },
            separators=(",", ":"),
        )
        for i in range(gappers)
    ]
    n_arms = len(arm_rows)
    table = pa.table(
        {
            "ts": pa.array(np.concatenate([np.full(n_arms, open_us), ts]), pa.timestamp("us", tz="UTC")),
            "kind": pa.array(["arm"] * n_arms + ["quote"] * len(ts), pa.string()),
            "symbol": pa.array(
                [names[i] for i in range(gappers)] + [names[i] for i in sym.tolist()], pa.string()
            ),
            "bid": pa.array(np.concatenate([np.full(n_arms, np.nan), bid]), pa.float64(), from_pandas=True),
            "ask": pa.array(np.concatenate([np.full(n_arms, np.nan), ask]), pa.float64(), from_pandas=True),
            "last": pa.array(np.concatenate([np.full(n_arms, np.nan), last]), pa.float64(), from_pandas=True),
            "last_at": pa.array(
                np.concatenate([np.full(n_arms, -1), np.where(has_last, ts, -1)]).tolist(), pa.int64()
            ),
            "data": pa.array(arm_rows + [None] * len(ts), pa.string()),
        }
    )
    last_at = table.column("last_at")
    import pyarrow.compute as pc

    last_at = pc.if_else(pc.equal(last_at, -1), pa.scalar(None, pa.int64()), last_at).cast(
        pa.timestamp("us", tz="UTC")
    )
    table = table.set_column(table.schema.get_field_index("last_at"), "last_at", last_at).cast(SCHEMA)
    target = day_path(directory, day)
    partial = target.with_name(target.name + ".partial")
    pq.write_table(table, str(partial), row_group_size=ROW_GROUP, use_dictionary=["kind", "symbol"])
    os.replace(partial, target)
    return target


def generate(
    directory: Path | str,
    *,
    days: int = 5,
    first: date = date(2026, 11, 2),
    symbols: int = 500,
    gappers: int = 10,
    quotes: int = 200_000,
    seed: int = 1,
) -> list[Path]:
    """``days`` synthetic day files in ``directory`` (weekdays from ``first``)."""
    return [
        generate_day(directory, day, symbols=symbols, gappers=gappers, quotes=quotes, seed=seed)
        for day in trading_days(first, days)
    ]
