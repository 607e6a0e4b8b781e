"""``momobot backtest report``: one self-contained HTML page of a results file.

No script and nothing fetched: inline SVG and CSS only, so the page opens anywhere, from a
mail attachment too. It shows what was swept and how fills were modelled, the days that
failed (first, in red), the best sets by expectancy, their equity curves day by day, a heat
map of expectancy over the first two swept keys, and the day-by-day table.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from momobot_core.backtest.results import compute_stats, open_results
from momobot_core.config import InputError

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def write_report(results_path: Path | str, target: Path | str, *, top: int = 5) -> Path:
    db = open_results(results_path)
    try:
        page = render(db, title=Path(results_path).name, top=top)
    except (sqlite3.Error, ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputError(f"{results_path}: not a backtest results file ({exc})") from None
    finally:
        db.close()
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"{target}: cannot write the report: {exc.strerror or exc}") from None
    return target


def _label(params: Mapping[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(as recorded)"


def _pf(value: float | None, trades: int) -> str:
    if value is None:
        return "no loss" if trades else "-"
    return f"{value:.2f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def render(db: sqlite3.Connection, *, title: str, top: int = 5) -> str:
    meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM run")}
    sets = {sid: json.loads(p) for sid, p in db.execute("SELECT set_id, params FROM sets ORDER BY set_id")}
    stats = {
        row[0]: row
        for row in db.execute(
            "SELECT set_id, trades, win_rate, expectancy_r, expectancy_usd, profit_factor, max_drawdown,"
            " total, days_ok, days_failed FROM stats"
        )
    }
    finished = "seconds" in meta
    if not finished:  # a run cut short: its statistics from the tasks that did finish
        keys = (
            "trades",
            "win_rate",
            "expectancy_r",
            "expectancy_usd",
            "profit_factor",
            "max_drawdown",
            "total",
        )
        stats = {
            row["set_id"]: (row["set_id"], *(row[k] for k in keys), row["days_ok"], row["days_failed"])
            for row in compute_stats(db)
        }
    ranked = sorted(stats, key=lambda sid: (stats[sid][4] is None, -(stats[sid][4] or 0.0), sid))
    best = ranked[:top]
    days = [row[0] for row in db.execute("SELECT DISTINCT day FROM tasks ORDER BY day")]
    by_day: dict[tuple[int, str], tuple[int, float]] = {
        (sid, day): (n, pnl or 0.0)
        for sid, day, n, pnl in db.execute(
            "SELECT set_id, day, COUNT(*), SUM(pnl) FROM trades GROUP BY set_id, day"
        )
    }
    failed = {
        (sid, day): error
        for sid, day, error in db.execute("SELECT set_id, day, error FROM tasks WHERE status = 'failed'")
    }
    failed_days: dict[str, str] = {}
    for (_, day), error in sorted(failed.items(), key=lambda item: item[0][1]):
        failed_days.setdefault(day, error or "failed")

    parts = [_HEAD.format(title=escape(title))]
    parts.append(f"<h1>Backtest: {escape(title)}</h1>")
    parts.append(_meta(meta, len(days), len(sets)))
    if not finished:
        done = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        parts.append(
            '<section class="failed"><h2>This run was cut short</h2>'
            f"<p>{done} of {escape(str(meta.get('tasks_planned', '?')))} tasks finished; the figures"
            " below are theirs alone.</p></section>"
        )
    if failed_days:
        items = "".join(f"<li><b>{escape(d)}</b>: {escape(e)}</li>" for d, e in failed_days.items())
        parts.append(f'<section class="failed"><h2>Days that failed</h2><ul>{items}</ul></section>')
    warned = db.execute(
        "SELECT DISTINCT day, warnings FROM tasks WHERE warnings IS NOT NULL ORDER BY day LIMIT 20"
    ).fetchall()
    if warned:
        items = "".join(
            f"<li><b>{escape(day)}</b>: {escape(line)}</li>"
            for day, text in warned
            for line in text.splitlines()
        )
        parts.append(f'<section class="warned"><h2>Warnings</h2><ul>{items}</ul></section>')
    parts.append(_best_table(best, sets, stats))
    parts.append("<h2>Equity of the best sets, day by day</h2>")
    parts.append(_equity(best, sets, days, by_day))
    parts.append(_heat_map(sets, stats))
    parts.append("<h2>Day by day</h2>")
    parts.append(_day_table(best, sets, days, by_day, failed))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _meta(meta: Mapping[str, Any], n_days: int, n_sets: int) -> str:
    rows = [
        ("strategy", meta.get("strategy") or "as recorded"),
        ("grid", " ".join(meta.get("grid") or []) or "none"),
        ("symbols", meta.get("symbols")),
        ("days", f"{n_days} ({', '.join(meta.get('days') or [])})" if n_days <= 12 else f"{n_days}"),
        ("parameter sets", n_sets),
        ("fills", meta.get("fills")),
        (
            "run",
            f"{meta.get('tasks', '?')} tasks on {meta.get('workers', '?')} worker(s)"
            f" in {meta.get('seconds', '?')} s",
        ),
    ]
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="meta">{body}</table>'


def _best_table(best: Sequence[int], sets: Mapping[int, Any], stats: Mapping[int, Any]) -> str:
    head = (
        "<tr><th>set</th><th>params</th><th>trades</th><th>win rate</th><th>expectancy R</th>"
        "<th>expectancy $</th><th>profit factor</th><th>max drawdown $</th><th>total $</th>"
        "<th>days failed</th></tr>"
    )
    rows = []
    for i, sid in enumerate(best):
        _, n, wr, er, eu, pf, dd, total, _ok, bad = stats[sid]
        swatch = f'<span class="sw" style="background:{COLOURS[i % len(COLOURS)]}"></span>'
        rows.append(
            f"<tr><td>{swatch}{sid}</td><td class='params'>{escape(_label(sets[sid]))}</td><td>{n}</td>"
            f"<td>{'-' if wr is None else f'{100 * wr:.0f}%'}</td>"
            f"<td>{'-' if er is None else f'{er:.2f}'}</td>"
            f"<td>{_money(eu)}</td><td>{_pf(pf, n)}</td><td>{dd:,.2f}</td>"
            f"<td>{_money(total)}</td><td>{bad}</td></tr>"
        )
    return f"<h2>Best sets by expectancy</h2><table>{head}{''.join(rows)}</table>"


def _equity(
    best: Sequence[int],
    sets: Mapping[int, Any],
    days: Sequence[str],
    by_day: Mapping[tuple[int, str], tuple[int, float]],
) -> str:
    if not days or not best:
        return "<p>No trades.</p>"
    curves = []
    for sid in best:
        equity, points = 0.0, [0.0]
        for day in days:
            equity += by_day.get((sid, day), (0, 0.0))[1]
            points.append(equity)
        curves.append(points)
    width, height, pad = 760, 260, 40
    low = min(min(c) for c in curves)
    high = max(max(c) for c in curves)
    span = (high - low) or 1.0

    def xy(i: int, v: float) -> str:
        x = pad + i * (width - 2 * pad) / max(len(days), 1)
        y = height - pad - (v - low) * (height - 2 * pad) / span
        return f"{x:.1f},{y:.1f}"

    lines = []
    zero_y = height - pad - (0 - low) * (height - 2 * pad) / span
    lines.append(f'<line x1="{pad}" x2="{width - pad}" y1="{zero_y:.1f}" y2="{zero_y:.1f}" class="zero"/>')
    for i, (sid, points) in enumerate(zip(best, curves, strict=True)):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(xy(j, v) for j, v in enumerate(points))
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
            f"<title>set {sid}: {escape(_label(sets[sid]))}: {_money(points[-1])}</title></polyline>"
        )
    lines.append(f'<text x="4" y="{pad}" class="axis">{_money(high)}</text>')
    lines.append(f'<text x="4" y="{height - pad}" class="axis">{_money(low)}</text>')
    lines.append(f'<text x="{pad}" y="{height - 8}" class="axis">{escape(days[0])}</text>')
    lines.append(
        f'<text x="{width - pad}" y="{height - 8}" text-anchor="end" class="axis">{escape(days[-1])}</text>'
    )
    size = f'viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
    return f'<svg {size} role="img">{"".join(lines)}</svg>'


def _heat_map(sets: Mapping[int, Mapping[str, object]], stats: Mapping[int, Any]) -> str:
    keys: list[str] = []
    for params in sets.values():
        for key in params:
            if key not in keys:
                keys.append(key)
    if len(keys) < 2:
        return "<p class='note'>A heat map needs a grid over two keys (two --grid options).</p>"
    kx, ky = keys[0], keys[1]
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    xs: list[str] = []
    ys: list[str] = []
    for sid, params in sets.items():
        x, y = str(params.get(kx)), str(params.get(ky))
        if x not in xs:
            xs.append(x)
        if y not in ys:
            ys.append(y)
        value = stats[sid][4] if sid in stats else None
        if value is not None:
            cells[(x, y)].append(value)
    means = {cell: sum(v) / len(v) for cell, v in cells.items()}
    extent = max((abs(v) for v in means.values()), default=1.0) or 1.0
    head = "".join(f"<th>{escape(kx)}={escape(x)}</th>" for x in xs)
    rows = []
    for y in ys:
        tds = []
        for x in xs:
            value = means.get((x, y))
            if value is None:
                tds.append('<td class="cell">-</td>')
                continue
            share = min(abs(value) / extent, 1.0)
            colour = (
                f"rgba(44,160,44,{0.15 + 0.75 * share:.2f})"
                if value >= 0
                else f"rgba(214,39,40,{0.15 + 0.75 * share:.2f})"
            )
            tds.append(f'<td class="cell" style="background:{colour}">{_money(value)}</td>')
        rows.append(f"<tr><th>{escape(ky)}={escape(y)}</th>{''.join(tds)}</tr>")
    others = [k for k in keys if k not in (kx, ky)]
    note = f" (the mean over {', '.join(others)})" if others else ""
    return (
        f"<h2>Expectancy $ a trade over {escape(kx)} and {escape(ky)}{escape(note)}</h2>"
        f'<table class="heat"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
    )


def _day_table(
    best: Sequence[int],
    sets: Mapping[int, Any],
    days: Sequence[str],
    by_day: Mapping[tuple[int, str], tuple[int, float]],
    failed: Mapping[tuple[int, str], str | None],
) -> str:
    head = "".join(f"<th>set {sid}<br><small>{escape(_label(sets[sid]))}</small></th>" for sid in best)
    rows = []
    for day in days:
        tds = []
        for sid in best:
            if (sid, day) in failed:
                tds.append(f'<td class="bad" title="{escape(failed[(sid, day)] or "")}">failed</td>')
                continue
            n, pnl = by_day.get((sid, day), (0, 0.0))
            tds.append(f"<td>{_money(pnl)} <small>({n})</small></td>")
        rows.append(f"<tr><th>{escape(day)}</th>{''.join(tds)}</tr>")
    return f"<table><tr><th>day</th>{head}</tr>{''.join(rows)}</table><p class='note'>P&amp;L $ (trades)</p>"


_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
th {{ background: #f5f5f5; }}
table.meta th, table.meta td, td.params {{ text-align: left; }}
th {{ white-space: nowrap; }}
.failed {{ border: 2px solid #d62728; padding: 4px 12px; color: #a00; }}
.warned {{ border: 2px solid #ff7f0e; padding: 4px 12px; color: #8a4b00; }}
td.bad {{ background: #fdd; color: #a00; }}
.sw {{ display: inline-block; width: 10px; height: 10px; margin-right: 6px; }}
.zero {{ stroke: #999; stroke-dasharray: 4 3; }}
.axis {{ font-size: 11px; fill: #555; }}
.note {{ color: #666; }}
</style></head><body>"""
