"""The dashboard panel: each hotkey server's link, and the latest sequences with their latency."""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

from hotkey_ws.batch import Batch

PANEL_PATH = "/ui/hotkey_ws"
PANEL_ROWS = 8


def panel_html(links: Sequence[dict[str, Any]], batches: Sequence[Batch]) -> str:
    """An HTML fragment: a table of links, then the latest batches, newest first."""
    if not links:
        return '<p class="dim">Not sending in this mode.</p>'
    rows = []
    for link in links:
        state = str(link["state"])
        badge = "good" if state == "up" else "bad"
        rtt = link.get("last_rtt_ms")
        rows.append(
            f"<tr><td>{escape(str(link['url']))}</td>"
            f'<td><span class="badge {badge}">{escape(state)}</span></td>'
            f"<td>{int(link['queued'])}</td><td>{'' if rtt is None else f'{rtt:.2f} ms'}</td></tr>"
        )
    html = [
        "<table><thead><tr><th>server</th><th>link</th><th>queued</th><th>ping</th></tr></thead>",
        f"<tbody>{''.join(rows)}</tbody></table>",
    ]
    if batches:
        now = time.monotonic()
        lines = []
        for batch in reversed(batches):
            wire = f"{(batch.receipts[0] - batch.fired_at) * 1e3:.3f} ms" if batch.receipts else "waiting"
            sent = f"{batch.sent}/{len(batch.names)}"
            ago = f"{now - batch.fired_at:.0f} s ago"
            lines.append(
                f'<tr class="hotkey"><td>{escape(batch.label or batch.about())}</td>'
                f"<td>{escape(', '.join(batch.names))}</td><td>{sent}</td><td>{wire}</td>"
                f'<td class="dim">{ago}</td></tr>'
            )
        html.append(
            '<table style="margin-top:.5rem"><thead><tr><th>event</th><th>commands</th><th>sent</th>'
            f"<th>event to wire</th><th></th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
        )
    return "".join(html)
