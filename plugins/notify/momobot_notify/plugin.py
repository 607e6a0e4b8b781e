"""The notify plugin: a trader's phone hears what the bot does.

| event | notice (toggle in ``[notify]``) |
|---|---|
| ``on_alert`` at ``min_level`` or above | the alert's kind and sentence (``alerts``) |
| ``on_fill`` | the broker's fill, its price beside the model's (``fills``) |
| ``on_position_closed`` | the trade, how it closed and its P&L and R (``closed``) |
| ``on_kill`` | what the kill flattens (``kill``) |
| the session's end (or ``summary_at``) | the day's summary (``summary``) |

Each URL has its own thread and bounded queue (:mod:`momobot_notify.channel`): the hooks only
append a small tuple. Nothing is sent from a replay or the demo unless ``[notify] replay``.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from momobot_core import Panel, hookimpl
from momobot_core.market import NEW_YORK, REGULAR_CLOSE
from momobot_core.models import leg_pnl
from momobot_notify.channel import Channel
from momobot_notify.config import NotifyConfig, load_notify_config
from momobot_notify.messages import Notice, alert_notice, at_least, summary_text

if TYPE_CHECKING:
    import click
    from fastapi import FastAPI

    from momobot_core.engine import Engine
    from momobot_core.models import Alert, Fill, Order, Trade

log = logging.getLogger("momobot.notify")

PANEL_PATH = "/ui/notify"
#: How long shutdown waits for what is queued to go out, all URLs together: under the 5 s the
#: core gives a plugin's on_shutdown.
SHUTDOWN_SECONDS = 4.0


class NotifyPlugin:
    def __init__(self) -> None:
        self.config = NotifyConfig()
        self.channels: list[Channel] = []
        self.bot: Engine | None = None
        #: Each open trade's realised P&L so far (its sells), to give the P&L when it closes.
        self._pnl: dict[str, float] = {}
        #: This run's closed trades: (symbol, P&L).
        self._closed: list[tuple[str, float]] = []
        self._summary_sent_for: str | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    # -- start and stop -------------------------------------------------------------------

    @hookimpl
    def on_startup(self, bot: Engine) -> None:
        config = load_notify_config(bot.config)
        self.config = config
        self.bot = bot
        if not config.urls:
            log.info("[Notify] no [notify] urls: nothing is sent")
            return
        if bot.mode != "live" and not config.replay:
            log.info("[Notify] %s mode: nothing is sent ([notify] replay = true sends)", bot.mode)
            return
        self.channels = [Channel(url, config, bot.alert, number=n) for n, url in enumerate(config.urls)]
        log.info("[Notify] sending to %s", ", ".join(c.shown for c in self.channels))
        if config.summary and bot.mode == "live":
            self._timer = threading.Thread(
                target=self._summary_clock, name="momobot-notify summary", daemon=True
            )
            self._timer.start()

    @hookimpl(trylast=True)  # after the others: what they tell while stopping is sent too
    def on_shutdown(self, bot: Engine) -> None:
        self._stop.set()
        if self.channels and self.config.summary and self._closed:
            self._summary(bot)
        channels, self.channels = self.channels, []
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for channel in channels:
            channel.stop(deadline)  # every URL sends what waits, all at once
        for channel in channels:
            left = channel.close(max(0.0, deadline - time.monotonic()))
            if left:
                log.warning("[Notify] %s: %d notice(s) could not be sent before exit", channel.shown, left)
        # The log filter that masks the URLs' secrets stays: a send still under way logs after this.

    # -- the event hooks (the engine's thread: a tuple appended, nothing more) -----------------

    def _put(self, notice: Notice, skip: int | None = None) -> None:
        for channel in self.channels:
            if channel.number != skip:
                channel.put(notice)

    @hookimpl
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        if self.channels and order.side == "sell":
            self._pnl[trade.id] = self._pnl.get(trade.id, 0.0) + leg_pnl(
                trade.entry_price, order.price, order.qty
            )

    @hookimpl
    def on_position_closed(self, trade: Trade, reason: str, price: float) -> None:
        if not self.channels:
            return
        pnl = self._pnl.pop(trade.id, 0.0)
        self._closed.append((trade.symbol, pnl))
        if self.config.closed:
            risk = (
                (trade.entry_price - trade.initial_stop) * trade.qty if trade.initial_stop is not None else 0
            )
            self._put(
                (
                    "closed",
                    {
                        "symbol": trade.symbol,
                        "reason": reason,
                        "qty": trade.qty,
                        "entry": trade.entry_price,
                        "exit": price,
                        "pnl": pnl,
                        "r": pnl / risk if risk > 0 else None,
                    },
                )
            )

    @hookimpl
    def on_fill(self, fill: Fill, order: Order | None) -> None:
        if self.channels and self.config.fills:
            self._put(
                (
                    "fill",
                    {
                        "order_id": fill.order_id,
                        "qty": fill.qty,
                        "price": fill.price,
                        "symbol": order.symbol if order else None,
                        "side": order.side.value.upper() if order else None,
                        "intent": order.intent.value if order else None,
                        "model": order.price if order else None,
                    },
                )
            )

    @hookimpl
    def on_kill(self, trades: list[Trade], reason: str) -> None:
        if self.channels and self.config.kill:
            self._put(("kill", {"trades": [(t.symbol, t.remaining) for t in trades], "reason": reason}))

    @hookimpl
    def on_alert(self, alert: Alert) -> None:
        if not self.channels or not self.config.alerts or not at_least(alert.kind, self.config.min_level):
            return
        # A URL that fails is told through the others, never queued to itself.
        number = alert.detail.get("channel") if alert.kind.startswith("notify_") else None
        self._put(alert_notice(alert), skip=number if isinstance(number, int) else None)

    # -- the day's summary ------------------------------------------------------------------

    def _summary_clock(self) -> None:
        """Wakes at the summary's time each day and has the engine's thread build it."""
        bot = self.bot
        assert bot is not None
        while True:
            due = self._next_summary(datetime.now(NEW_YORK))
            wait = (due - datetime.now(NEW_YORK)).total_seconds()
            if self._stop.wait(max(0.0, wait)):
                return
            loop = bot.loop
            if loop is not None:
                loop.call_soon_threadsafe(self._summary, bot)

    def _next_summary(self, now: datetime) -> datetime:
        """When the next summary is due after ``now`` (New York time): ``summary_at`` each day,
        else the end of the day's last configured session, on the day it falls (a half day's
        early close; a closed day has none)."""
        at = self.config.summary_at
        end = getattr(self.bot, "session_end", None)
        day = now.date()
        for _ in range(14):
            close = end(day) if callable(end) else REGULAR_CLOSE  # None: the market is closed
            when = at if at is not None and close is not None else close
            if when is not None:
                due = datetime.combine(day, when, NEW_YORK)
                if due > now:
                    return due
            day += timedelta(days=1)
        return now + timedelta(days=1)

    def _summary(self, bot: Engine) -> None:
        """On the engine's thread: the day against the limits, and this run's closed trades."""
        risk = bot.risk_status()
        day = str(risk.get("day"))
        if self._summary_sent_for == day or not (risk.get("trades_today") or self._closed):
            return  # sent already, or a day without a trade (a holiday, a day off): nothing to say
        self._summary_sent_for = day
        fields = {
            "day": day,
            "realised": float(risk.get("realised") or 0.0),  # type: ignore[arg-type]
            "entries": risk.get("trades_today") or 0,
            "closed": list(self._closed),
            "open": sorted(bot.open_trades),
            "halted": risk.get("halted"),
        }
        self._put(("summary", fields))
        log.info("[Notify] %s", summary_text(fields))

    # -- what is shown ------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Each URL (secrets masked): state, messages sent, notices waiting, dropped, failures."""
        return [channel.status() for channel in self.channels]

    @hookimpl
    def dashboard_panels(self, bot: Engine) -> list[Panel]:
        return [Panel("Notifications", PANEL_PATH)] if self.channels else []

    @hookimpl
    def register_routes(self, app: FastAPI, bot: Engine) -> None:
        from fastapi.responses import HTMLResponse

        @app.get(PANEL_PATH, response_class=HTMLResponse, include_in_schema=False)
        async def panel() -> HTMLResponse:
            return HTMLResponse(panel_html(self.status()))

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from momobot_notify.cli import notify

        cli.add_command(notify)


def panel_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="dim">No notification URLs.</p>'
    out = [
        "<table><thead><tr><th>to</th><th>state</th><th>sent</th><th>waiting</th><th>dropped</th>"
        "<th>last error</th></tr></thead><tbody>"
    ]
    for row in rows:
        badge = {"up": "good", "down": "bad"}.get(row["state"], "")
        out.append(
            f"<tr><td>{html.escape(row['url'])}</td>"
            f'<td><span class="badge {badge}">{row["state"]}</span></td>'
            f"<td>{row['sent']}</td><td>{row['waiting']}</td><td>{row['dropped']}</td>"
            f"<td>{html.escape(row['last_error'] or '')}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


#: The instance the ``notify`` entry point registers.
plugin = NotifyPlugin()
