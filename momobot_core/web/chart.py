"""A symbol's chart: its candles and the lines to draw on them (``GET /candles``, the
dashboard's ``chart`` events)."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from momobot_core.engine import Engine

#: Candles a ``chart`` event carries: the one forming and the one before (it may just have closed).
UPDATE_CANDLES = 2


def chart_data(engine: Engine, symbol: str, timeframe: str) -> dict[str, Any]:
    """``GET /candles`` and the dashboard's ``chart`` events: candles and lines of one symbol.

    ``time`` is the candle's start on the exchange's wall clock, as seconds since 1970 read as
    UTC (what a chart shows as it is); ``start`` is the same instant in ISO 8601."""
    if symbol not in engine.charts.symbols:
        engine.charts.chart(symbol)
    rows = [
        {
            "time": int(c.start.replace(tzinfo=UTC).timestamp()),
            "start": c.start.isoformat(),
            "open": c.open,
            "high": c.high,
            "low": c.low,
            "close": c.close,
            "volume": c.volume,
        }
        for c in engine.charts.candles(symbol, timeframe)
    ]
    lines: dict[str, float] = {}
    trade = engine.open_trades.get(symbol)
    if trade is not None:
        lines.update(entry=trade.entry_price, tp1=trade.tp1, tp2=trade.tp2, stop=trade.stop)
    arm = next((a for a in engine.arms if a["symbol"] == symbol), None)
    level = arm["state"].get("level") if arm is not None else None
    if isinstance(level, int | float) and not isinstance(level, bool):
        lines["level"] = float(level)
    return {"symbol": symbol, "timeframe": timeframe, "candles": rows, "lines": lines}


def chart_update(engine: Engine, symbol: str, timeframe: str) -> dict[str, Any]:
    """What a page's chart needs after a change: the last candles and the lines, not the history."""
    data = chart_data(engine, symbol, timeframe)
    data["candles"] = data["candles"][-UPDATE_CANDLES:]
    return data
