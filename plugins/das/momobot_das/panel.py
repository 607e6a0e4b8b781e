"""The dashboard panel: the link to DAS, the last reconciliation, and this run's latest orders."""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from momobot_das.desk import Desk

PANEL_PATH = "/ui/das"
PANEL_ROWS = 8


def panel_html(desk: Desk | None) -> str:
    if desk is None:
        return '<p class="dim">Not sending orders in this mode.</p>'
    status = desk.status()
    state = str(status["state"])
    badge = "good" if state == "up" else "bad"
    error = status.get("last_error")
    html = [
        "<table><tbody>",
        f"<tr><th>DAS</th><td>{escape(str(status['host']))}, account {escape(str(status['account']))}</td>"
        f'<td><span class="badge {badge}">{escape(state)}</span>'
        + (f' <span class="dim">{escape(str(error))}</span>' if error and state != "up" else "")
        + "</td></tr>",
    ]
    reconcile = status.get("last_reconcile")
    if reconcile is None:
        html.append('<tr><th>reconciled</th><td colspan="2" class="dim">not yet</td></tr>')
    else:
        mismatches = reconcile["mismatches"]
        text = (
            "all positions match"
            if not mismatches
            else "; ".join(f"{m['symbol']}: DAS {m['broker']}, engine {m['engine']}" for m in mismatches)
        )
        kind = "good" if not mismatches else "bad"
        html.append(
            f"<tr><th>reconciled</th><td>{escape(str(reconcile['at'])[11:19])} UTC</td>"
            f'<td><span class="badge {kind}">{escape(text)}</span></td></tr>'
        )
    exits = status["exits_pending"]
    html.append(
        f"<tr><th>orders</th><td>{status['working_orders']} working, {status['fills']} fills,"
        f" {status['rejections']} rejected</td><td>"
        + (f'<span class="badge bad">exit pending: {escape(", ".join(exits))}</span>' if exits else "")
        + "</td></tr></tbody></table>"
    )
    recent = desk.recent_orders()[-PANEL_ROWS:]
    if recent:
        now = time.monotonic()
        rows = []
        for w in reversed(recent):
            rows.append(
                f"<tr><td>{escape(w.symbol)}</td><td>{escape(w.intent)}</td>"
                f"<td>{'buy' if w.side == 'B' else 'sell'} {w.qty} @ {w.price}</td>"
                f"<td>{escape((w.rejected and 'rejected: ' + w.rejected) or w.status)}</td>"
                f'<td>{w.filled}/{w.qty}</td><td class="dim">{now - w.sent_at:.0f} s ago</td></tr>'
            )
        html.append(
            '<table style="margin-top:.5rem"><thead><tr><th>symbol</th><th>why</th><th>order</th>'
            f"<th>status</th><th>filled</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(html)
