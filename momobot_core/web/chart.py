"""A symbol's chart: its candles, the lines to draw on them and its fills as markers
(``GET /candles``, the dashboard's ``chart`` events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from momobot_core.candles import Timeframe, bucket_start

if TYPE_CHECKING:
    from momobot_core.candles import Candle
    from momobot_core.engine import Engine

#: Candles a ``chart`` event carries: the one forming and the one before (it may just have closed).
UPDATE_CANDLES = 2


def chart_data(engine: Engine, symbol: str, timeframe: str) -> dict[str, Any]:
    """``GET /candles``: a symbol's candles (the history kept and the one forming), lines and
    markers.

    ``time`` is the candle's start on the exchange's wall clock, as seconds since 1970 read as
    UTC (what a chart shows as it is); ``start`` is the same instant in ISO 8601."""
    if symbol not in engine.charts.symbols:
        engine.chart(symbol)
    candles = engine.charts.candles(symbol, timeframe)
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": _rows(candles),
        "lines": chart_lines(engine, symbol),
        "markers": chart_markers(engine, symbol, timeframe, candles[0].start if candles else None),
    }


def chart_update(engine: Engine, symbol: str, timeframe: str) -> dict[str, Any]:
    """What a page's chart needs after a change: the last candles and the lines, not the history."""
    candles = engine.charts.last(symbol, timeframe, UPDATE_CANDLES)
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": _rows(candles),
        "lines": chart_lines(engine, symbol),
    }


def chart_lines(engine: Engine, symbol: str) -> dict[str, float]:
    """The open trade's entry, TP1, TP2 and stop, and the arm's breakout level, where there are."""
    lines: dict[str, float] = {}
    trade = engine.open_trades.get(symbol)
    if trade is not None:
        lines.update(entry=trade.entry_price, tp1=trade.tp1, tp2=trade.tp2, stop=trade.stop)
    level = engine.arm_level(symbol)
    if level is not None:
        lines["level"] = level
    return lines


def chart_markers(
    engine: Engine, symbol: str, timeframe: str, since: datetime | None
) -> list[dict[str, Any]]:
    """One marker per journaled execution of the symbol within the candles shown (the engine's
    fills at its prices), on the candle it fell in: an arrow up under a buy, down over a sell."""
    journal = engine.journal
    if journal is None or since is None:
        return []
    seconds = Timeframe.parse(timeframe).seconds
    markers = []
    for side, qty, price, intent, ts in journal.executions_of(symbol):
        if ts < since:
            continue
        start = bucket_start(ts, seconds, engine.settings.tz)
        buy = side == "buy"
        markers.append(
            {
                "time": int(start.replace(tzinfo=UTC).timestamp()),
                "position": "belowBar" if buy else "aboveBar",
                "shape": "arrowUp" if buy else "arrowDown",
                "color": "#58a6ff" if buy else "#d29922",
                "text": f"{intent.replace('_', ' ')} {qty} @ {price:g}",
            }
        )
    return markers


def _rows(candles: list[Candle]) -> list[dict[str, Any]]:
    return [
        {
            "time": int(c.start.replace(tzinfo=UTC).timestamp()),
            "start": c.start.isoformat(),
            "open": c.open,
            "high": c.high,
            "low": c.low,
            "close": c.close,
            "volume": c.volume,
        }
        for c in candles
    ]
