"""What a person reads: the run summary, and the journal as JSON or TraderVue CSV."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import attrs

from momobot_core.engine import Counters
from momobot_core.models import Leg, Trade


def _money(value: float) -> str:
    return f"{value:+,.2f}"


def _price(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.2f}"


def trades_table(trades: Sequence[Trade], legs: Sequence[Leg]) -> str:
    """One row per trade: entry, each exit, realised P&L and how it ended."""
    by_trade: dict[str, list[Leg]] = defaultdict(list)
    for leg in legs:
        by_trade[leg.trade_id].append(leg)
    rows = [("symbol", "qty", "entry", "exits", "P&L", "result")]
    for trade in trades:
        exits = ", ".join(f"{leg.reason} {leg.qty}@{_price(leg.exit_price)}"
                          for leg in by_trade[trade.id]) or "-"
        if trade.is_open:
            result = f"open, {trade.remaining} left, stop {_price(trade.stop)}"
        else:
            result = str(trade.close_reason)
        if trade.tp1_hit and trade.stop_hit:
            result += " (break-even)"
        pnl = sum(leg.pnl for leg in by_trade[trade.id])
        rows.append((trade.symbol, str(trade.qty), _price(trade.entry_price), exits, _money(pnl),
                     result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 2, 4}
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(trades: Sequence[Trade], legs: Sequence[Leg], counters: Counters,
            plugin_errors: int = 0, seconds: float | None = None) -> str:
    total = sum(leg.pnl for leg in legs)
    wins = sum(1 for leg in legs if leg.pnl > 0)
    lines = []
    if trades:
        lines.append(trades_table(trades, legs))
        lines.append("")
    else:
        lines.append("No trades.")
    open_count = sum(1 for t in trades if t.is_open)
    lines.append(f"Trades: {counters.trades_opened} opened, {counters.trades_closed} closed,"
                 f" {open_count} open; {len(legs)} exits, {wins} winning")
    rate = ""
    if seconds is not None and seconds > 0 and counters.quotes >= 10_000:
        rate = f" in {seconds:.2f} s ({counters.quotes / seconds:,.0f} quotes/s)"
    lines.append(f"Quotes: {counters.quotes:,} processed, {counters.rejected_quotes:,} rejected as"
                 f" malformed{rate}")
    lines.append(f"Refused actions: {counters.refused_actions}; plugin errors: {plugin_errors}")
    lines.append(f"Realised P&L: {_money(total)}")
    return "\n".join(lines)


def legs_json(legs: Sequence[Leg]) -> str:
    rows: list[dict[str, Any]] = [
        {**attrs.asdict(leg), "opened_at": leg.opened_at.isoformat(),
         "closed_at": leg.closed_at.isoformat()}
        for leg in legs
    ]
    return json.dumps(rows, indent=2)


def tradervue_csv(executions: Sequence[dict[str, Any]]) -> str:
    """Executions in TraderVue's generic import format (times in UTC: pick UTC on import)."""
    from datetime import datetime

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Date", "Time", "Symbol", "Quantity", "Price", "Side"])
    for row in executions:
        ts = datetime.fromisoformat(str(row["ts"])).astimezone(UTC)
        writer.writerow([ts.strftime("%Y-%m-%d"), ts.strftime("%H:%M:%S"), row["symbol"],
                         row["qty"], row["price"], "Buy" if row["side"] == "buy" else "Sell"])
    return out.getvalue()
