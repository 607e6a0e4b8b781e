"""What a person reads: the run summary, and the journal as JSON or TraderVue CSV."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import attrs

from momobot_core.engine import Counters
from momobot_core.models import Leg, Trade


def _money(value: float) -> str:
    return f"{value:+,.2f}"


def _price(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.2f}"


def iso_z(ts: datetime) -> str:
    """A time for machines: RFC 3339 in UTC with a ``Z``, as the HTTP API writes it."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def trades_table(trades: Sequence[Trade], legs: Sequence[Leg], tz: tzinfo = UTC) -> str:
    """One row per trade: when it opened (exchange time), entry, exits, realised P&L, how it ended."""
    by_trade: dict[str, list[Leg]] = defaultdict(list)
    for leg in legs:
        by_trade[leg.trade_id].append(leg)
    zone = datetime.now(tz).strftime("%Z") or "local"
    rows = [("symbol", f"opened ({zone})", "qty", "entry", "exits", "P&L", "result")]
    for trade in trades:
        exits = (
            ", ".join(f"{leg.reason} {leg.qty}@{_price(leg.exit_price)}" for leg in by_trade[trade.id]) or "-"
        )
        if trade.is_open:
            result = f"open, {trade.remaining} left, stop {_price(trade.stop)}"
        else:
            result = str(trade.close_reason)
        if trade.tp1_hit and trade.stop_hit:
            result += " (break-even)"
        pnl = sum(leg.pnl for leg in by_trade[trade.id])
        opened = trade.opened_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            (trade.symbol, opened, str(trade.qty), _price(trade.entry_price), exits, _money(pnl), result)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 5}
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(
    trades: Sequence[Trade],
    legs: Sequence[Leg],
    counters: Counters,
    plugin_errors: int = 0,
    seconds: float | None = None,
    tz: tzinfo = UTC,
) -> str:
    total = sum(leg.pnl for leg in legs)
    lines = []
    if trades:
        lines.append(trades_table(trades, legs, tz))
        lines.append("")
    else:
        lines.append("No trades.")
    open_count = sum(1 for t in trades if t.is_open)
    pnl_by_trade: dict[str, float] = defaultdict(float)
    for leg in legs:
        pnl_by_trade[leg.trade_id] += leg.pnl
    closed = [t for t in trades if not t.is_open]
    won = sum(1 for t in closed if pnl_by_trade[t.id] > 0)
    lost = sum(1 for t in closed if pnl_by_trade[t.id] < 0)
    even = len(closed) - won - lost
    lines.append(
        f"Trades: {counters.trades_opened} opened, {counters.trades_closed} closed"
        f" ({won} won, {lost} lost{f', {even} break-even' if even else ''}),"
        f" {open_count} open; {_plural(len(legs), 'exit')}"
    )
    rate = ""
    if seconds is not None and seconds > 0 and counters.quotes >= 10_000:
        rate = f" in {seconds:.2f} s ({counters.quotes / seconds:,.0f} quotes/s)"
    lines.append(
        f"Quotes: {counters.quotes:,} processed, {counters.rejected_quotes:,} rejected as malformed{rate}"
    )
    lines.append(f"Refused actions: {counters.refused_actions}; plugin errors: {plugin_errors}")
    if counters.refused_by_rule:
        by_rule = ", ".join(f"{rule} {n}" for rule, n in sorted(counters.refused_by_rule.items()))
        lines.append(f"Entries refused by a limit: {by_rule}")
    lines.append(f"Realised P&L: {_money(total)}")
    return "\n".join(lines)


def legs_json(legs: Sequence[Leg]) -> str:
    rows: list[dict[str, Any]] = [
        {**attrs.asdict(leg), "opened_at": iso_z(leg.opened_at), "closed_at": iso_z(leg.closed_at)}
        for leg in legs
    ]
    return json.dumps(rows, indent=2)


def tradervue_csv(executions: Sequence[dict[str, Any]]) -> str:
    """Executions in TraderVue's generic import format (times in UTC: pick UTC on import)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Date", "Time", "Symbol", "Quantity", "Price", "Side"])
    for row in executions:
        ts = datetime.fromisoformat(str(row["ts"])).astimezone(UTC)
        writer.writerow(
            [
                ts.strftime("%Y-%m-%d"),
                ts.strftime("%H:%M:%S"),
                row["symbol"],
                row["qty"],
                row["price"],
                "Buy" if row["side"] == "buy" else "Sell",
            ]
        )
    return out.getvalue()
