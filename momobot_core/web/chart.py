"""A symbol's chart: its candles and the lines to draw on them (``GET /candles``, the
dashboard's ``chart`` events)."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from momobot_core.candles import Candle
    from momobot_core.engine import Engine

#: Candles a ``chart`` event carries: the one forming and the one before (it may just have closed).
UPDATE_CANDLES = 2


def chart_data(engine: Engine, symbol: str, timeframe: str) -> dict[str, Any]:
    """``GET /candles``: a symbol's candles (the history kept and the one forming) and lines.

    ``time`` is the candle's start on the exchange's wall clock, as seconds since 1970 read as
    UTC (what a chart shows as it is); ``start`` is the same instant in ISO 8601."""
    if symbol not in engine.charts.symbols:
        engine.charts.chart(symbol)
    candles = engine.charts.candles(symbol, timeframe)
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": _rows(candles),
        "lines": chart_lines(engine, symbol),
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
