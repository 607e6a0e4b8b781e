"""What each notice says. Notices are built on the engine's thread as plain tuples (cheap) and
turned into text here, on the sender's thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from momobot_core.models import price_text
from momobot_notify.config import LEVELS

if TYPE_CHECKING:
    from momobot_core.models import Alert

#: Alert kinds a person must act on now; ``info`` ones only say that something is well again.
#: Every other kind (plugins' own included) is ``warning``.
CRITICAL = frozenset(
    {
        "halted",
        "journal_error",
        "link_down",
        "exit_dropped",
        "exit_held",
        "order_rejected",
        "reconcile_mismatch",
        "unconfirmed_trade",
        "sequence_cut",
        "queue_overflow",
        "record_failed",
        "hotkey_ws_dropped",
        "hotkey_ws_not_pressed",
        "das_entry_dropped",
        "das_catastrophic_stop",
    }
)
INFO = frozenset({"resumed", "exit_released", "notify_restored"})

#: A notice: ``(what, fields)``; ``what`` is alert, fill, closed, kill, summary or text.
Notice = tuple[str, dict[str, Any]]


def level_of(kind: str) -> str:
    if kind in CRITICAL:
        return "critical"
    if kind in INFO:
        return "info"
    return "warning"


def at_least(kind: str, minimum: str) -> bool:
    return LEVELS.index(level_of(kind)) >= LEVELS.index(minimum)


def money(value: float) -> str:
    return f"{'-' if value < 0 else '+'}${abs(value):,.2f}"


price = price_text  # cents at or above $1, four decimals below, as the page shows them


def alert_notice(alert: Alert) -> Notice:
    return "alert", {"kind": alert.kind, "message": alert.message, "ts": alert.ts}


def line(notice: Notice) -> str:
    """One notice as one line of a message."""
    what, f = notice
    if what == "alert":
        return f"{level_of(f['kind']).upper()} {f['kind']}: {f['message']}"
    if what == "fill":
        if f["symbol"] is None:
            return f"Fill: {f['qty']} at {price(f['price'])} (order {f['order_id']})"
        slip = f" (model {price(f['model'])})" if f["model"] != f["price"] else ""
        return f"Fill: {f['side']} {f['qty']} {f['symbol']} at {price(f['price'])}{slip}, {f['intent']}"
    if what == "closed":
        r = f" ({f['r']:+.1f}R)" if f["r"] is not None else ""
        return (
            f"Closed {f['symbol']} ({f['reason']}): {f['qty']} bought at {price(f['entry'])}, last sold"
            f" at {price(f['exit'])}: P&L {money(f['pnl'])}{r}"
        )
    if what == "kill":
        held = ", ".join(f"{symbol} {qty}" for symbol, qty in f["trades"]) or "nothing open"
        why = "the kill switch was pressed" if f["reason"] == "kill_switch" else "max_daily_loss reached"
        return f"KILL: {why}: flattening {held}; entries halted"
    if what == "summary":
        return summary_text(f)
    return str(f["text"])


def summary_text(f: dict[str, Any]) -> str:
    closed = f["closed"]
    parts = [
        f"Day {f['day']}: realised P&L {money(f['realised'])}",
        f"{f['entries']} entr{'y' if f['entries'] == 1 else 'ies'}",
        f"{len(closed)} trade{'' if len(closed) == 1 else 's'} closed this run"
        + (
            f" ({sum(1 for _, p in closed if p > 0)} won, {sum(1 for _, p in closed if p <= 0)} lost)"
            if closed
            else ""
        ),
    ]
    if len(closed) > 1:
        best = max(closed, key=lambda c: c[1])
        worst = min(closed, key=lambda c: c[1])
        parts.append(f"best {best[0]} {money(best[1])}, worst {worst[0]} {money(worst[1])}")
    if f["open"]:
        parts.append(f"still open: {', '.join(f['open'])}")
    if f["halted"]:
        parts.append(f"entries halted ({f['halted']})")
    return "Summary: " + "; ".join(parts)


def level_of_batch(notices: list[Notice]) -> str:
    """The most urgent level in a batch (``info``, ``warning``, ``critical``): the message's
    type at the service (its colour, its priority). A kill is critical; a fill, a closed trade
    and the summary are info."""
    levels = [
        level_of(f["kind"]) if what == "alert" else ("critical" if what == "kill" else "info")
        for what, f in notices
    ]
    return max(levels, key=LEVELS.index, default="info")


def message(notices: list[Notice], dropped: int) -> tuple[str, str]:
    """A batch of notices as one message: its title's tail and its body."""
    lines = [line(n) for n in notices]
    if dropped:
        lines.append(f"({dropped} earlier notice{'' if dropped == 1 else 's'} dropped: too many waited)")
    if len(notices) == 1 and not dropped:
        what, f = notices[0]
        head = f"{f['kind']}" if what == "alert" else what
        return head, lines[0]
    return f"{len(notices)} notices", "\n".join(lines)
