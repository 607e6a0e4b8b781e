"""What a person reads: the run summary, and the journal as JSON or TraderVue CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import attrs

from momobot_core.engine import Counters
from momobot_core.models import Fill, Leg, Trade


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


def broker_prices(fills: Sequence[Fill]) -> dict[str, float]:
    """Each order's average broker fill price (volume-weighted), by the engine's order id."""
    qty: dict[str, int] = defaultdict(int)
    value: dict[str, float] = defaultdict(float)
    for fill in fills:
        qty[fill.order_id] += fill.qty
        value[fill.order_id] += fill.qty * fill.price
    return {order_id: round(value[order_id] / n, 6) for order_id, n in qty.items()}


def legs_json(
    legs: Sequence[Leg],
    fills: Sequence[Fill] = (),
    entry_orders: dict[str, str] | None = None,
    strategies: dict[str, str] | None = None,
) -> str:
    """Closed legs for ``momobot trades``. With an order plugin's broker fills, each leg also
    shows ``broker_entry_price`` and ``broker_exit_price`` (volume-weighted; null when the broker
    reported nothing for that order) and ``slippage``: dollars the broker's prices made or cost
    this leg against the engine's model prices (negative: a cost), from the sides known."""
    prices = broker_prices(fills)
    entries = entry_orders or {}
    rows: list[dict[str, Any]] = []
    for leg in legs:
        row = {**attrs.asdict(leg), "opened_at": iso_z(leg.opened_at), "closed_at": iso_z(leg.closed_at)}
        row.pop("order_id")
        if strategies is not None:
            row["strategy"] = strategies.get(leg.trade_id, "manual")
        if prices:
            entry = prices.get(entries.get(leg.trade_id, ""))
            exit_ = prices.get(leg.order_id or "")
            row["broker_entry_price"] = entry
            row["broker_exit_price"] = exit_
            if entry is None and exit_ is None:
                row["slippage"] = None
            else:
                worse = (0.0 if entry is None else entry - leg.entry_price) - (
                    0.0 if exit_ is None else exit_ - leg.exit_price
                )
                row["slippage"] = round(-worse * leg.qty, 6)
        rows.append(row)
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


# -- the day report (momobot report) -----------------------------------------------------------


@attrs.frozen
class TradeResult:
    """One trade's legs closed on the reported day, added up."""

    trade: Trade
    pnl: float
    closed_at: datetime
    #: P&L in units of the risk taken at entry ((entry - initial stop) x qty); None if unknown.
    r_multiple: float | None


@attrs.frozen
class DayStats:
    day: str
    trades: list[TradeResult]
    legs: list[Leg]
    total: float
    wins: int
    losses: int
    win_rate: float | None
    average_win: float | None
    average_loss: float | None
    profit_factor: float | None
    largest_loss: float | None
    max_drawdown: float
    by_symbol: dict[str, float]
    equity: list[tuple[datetime, float]]
    #: P&L per strategy (a person's entries under ``manual``).
    by_strategy: dict[str, float] = attrs.field(factory=dict)
    #: The day on the exchange's calendar: ``regular 09:30-16:00``, ``half day: ...``, ``closed (holiday)``.
    market: str = ""


def day_stats(trades: Sequence[Trade], legs: Sequence[Leg], day: str, tz: tzinfo) -> DayStats:
    """The statistics of one trading day (``YYYY-MM-DD`` in ``tz``): every leg closed that day.

    Money is summed leg by leg exactly as ``momobot trades`` lists them, so the totals agree to the
    cent.
    """
    today = sorted(
        (leg for leg in legs if leg.closed_at.astimezone(tz).date().isoformat() == day),
        key=lambda leg: leg.closed_at,
    )
    by_id = {trade.id: trade for trade in trades}
    pnl: dict[str, float] = defaultdict(float)
    last: dict[str, datetime] = {}
    for leg in today:
        pnl[leg.trade_id] += leg.pnl
        last[leg.trade_id] = leg.closed_at
    results = []
    for trade_id, total in pnl.items():
        trade = by_id.get(trade_id)
        if trade is None:
            continue
        risk = None
        if trade.initial_stop is not None and trade.entry_price > trade.initial_stop:
            risk = (trade.entry_price - trade.initial_stop) * trade.qty
        results.append(
            TradeResult(trade, round(total, 6), last[trade_id], round(total / risk, 2) if risk else None)
        )
    results.sort(key=lambda r: r.closed_at)
    wins = [r.pnl for r in results if r.pnl > 0]
    losses = [r.pnl for r in results if r.pnl < 0]
    equity: list[tuple[datetime, float]] = []
    running = peak = drawdown = 0.0
    for leg in today:
        running += leg.pnl
        equity.append((leg.closed_at, round(running, 6)))
        peak = max(peak, running)
        drawdown = max(drawdown, peak - running)
    by_symbol: dict[str, float] = defaultdict(float)
    by_strategy: dict[str, float] = defaultdict(float)
    for leg in today:
        by_symbol[leg.symbol] += leg.pnl
        trade = by_id.get(leg.trade_id)
        by_strategy[strategy_of(trade)] += leg.pnl
    return DayStats(
        day=day,
        trades=results,
        legs=today,
        total=round(sum(leg.pnl for leg in today), 6),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(results) if results else None,
        average_win=sum(wins) / len(wins) if wins else None,
        average_loss=sum(losses) / len(losses) if losses else None,
        profit_factor=sum(wins) / -sum(losses) if losses else None,
        largest_loss=min(losses) if losses else None,
        max_drawdown=round(drawdown, 6),
        by_symbol={s: round(v, 6) for s, v in sorted(by_symbol.items())},
        equity=equity,
        by_strategy={s: round(v, 6) for s, v in sorted(by_strategy.items())},
        market=_market_day(day),
    )


def _market_day(day: str) -> str:
    from datetime import date

    from momobot_core.market import MarketHours

    try:
        return MarketHours().hours(date.fromisoformat(day)).describe()
    except ValueError:
        return ""


def strategy_of(trade: Trade | None) -> str:
    """The strategy a trade's entry came from; ``manual`` for a person's."""
    return trade.strategy if trade is not None and trade.strategy else "manual"


def by_strategy_json(trades: Sequence[Trade], legs: Sequence[Leg]) -> str:
    """``momobot trades --by-strategy``: each strategy's closed trades, wins, losses and P&L."""
    by_id = {trade.id: trade for trade in trades}
    per_trade: dict[str, float] = defaultdict(float)
    for leg in legs:
        per_trade[leg.trade_id] += leg.pnl
    groups: dict[str, dict[str, Any]] = {}
    for trade_id, pnl in per_trade.items():
        trade = by_id.get(trade_id)
        if trade is None or trade.closed_at is None:
            continue  # a trade still open (its TP1 leg closed) is counted once it is over
        group = groups.setdefault(strategy_of(trade), {"trades": 0, "wins": 0, "losses": 0, "pnl": 0.0})
        group["trades"] += 1
        group["wins"] += pnl > 0
        group["losses"] += pnl < 0
        group["pnl"] = round(group["pnl"] + pnl, 6)
    return json.dumps(dict(sorted(groups.items())), indent=2)


def trading_days(legs: Sequence[Leg], tz: tzinfo) -> list[str]:
    """The days (``YYYY-MM-DD`` in ``tz``) on which legs closed, oldest first."""
    return sorted({leg.closed_at.astimezone(tz).date().isoformat() for leg in legs})


_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)


def svg_of(chart: Any) -> str:
    """A pygal chart as inline SVG without its script (tooltips): nothing runs, nothing is fetched."""
    return _SCRIPT.sub("", str(chart.render(is_unicode=True)))


def day_report_html(stats: DayStats, tz: tzinfo) -> str:
    """One self-contained HTML file: the day's numbers, its trades, and two pictures (inline SVG)."""
    import jinja2
    import pygal

    style = pygal.style.Style(
        background="white",
        plot_background="white",
        colors=("#1f6feb", "#2da44e", "#cf222e"),
        font_family="system-ui, sans-serif",
    )
    common: dict[str, Any] = {
        "width": 760,
        "height": 260,
        "show_legend": False,
        "js": [],
        "disable_xml_declaration": True,
        "style": style,
        "value_formatter": lambda v: f"{v:+,.2f}",
    }
    equity = pygal.DateTimeLine(
        **common, x_value_formatter=lambda t: t.astimezone(tz).strftime("%H:%M:%S"), show_dots=True
    )
    equity.add("realised P&L", stats.equity or [])
    per_trade = pygal.Bar(**common)
    per_trade.x_labels = [f"{r.trade.symbol} {r.closed_at.astimezone(tz):%H:%M}" for r in stats.trades]
    per_trade.add(
        "P&L",
        [{"value": r.pnl, "color": "#2da44e" if r.pnl >= 0 else "#cf222e"} for r in stats.trades],
    )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("momobot_core", "web/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["money"] = lambda v: "" if v is None else f"{v:+,.2f}"
    env.filters["price"] = _price
    return env.get_template("report.html").render(
        stats=stats,
        tz=tz,
        equity_svg=svg_of(equity) if stats.equity else "",
        trades_svg=svg_of(per_trade) if stats.trades else "",
    )
