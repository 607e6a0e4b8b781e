"""The momobot plugin: trade events in, DAS Trader Pro orders out, broker fills back.

| event                                              | DAS                                        |
|----------------------------------------------------|--------------------------------------------|
| ``on_order_submitted``, intent entry               | limit buy at the ask + ``entry_offset``    |
| ``on_order_submitted``, take profit 1              | limit sell of its quantity at the ask      |
| ``on_order_submitted``, take profit 2              | the last exit: a limit at the ask first    |
| ``on_order_submitted``, stop, manual, kill         | the last exit: cancel the trade's other    |
|                                                    | orders, sell at the bid - ``exit_offset``  |

Replays are not live trading: in ``replay`` and ``demo`` mode nothing is sent unless
``[das] replay = true`` (or ``MOMOBOT_DAS_REPLAY=1``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from momobot_core import Panel, hookimpl
from momobot_core.config import ConfigError
from momobot_core.market import NAMES
from momobot_das.config import PASSWORD_ENV, DasConfig, configured, load_das_config, replay_wanted
from momobot_das.desk import Desk
from momobot_das.link import DasLink
from momobot_das.panel import PANEL_PATH, panel_html

if TYPE_CHECKING:
    import click
    from fastapi import FastAPI

    from momobot_core.engine import Engine
    from momobot_core.models import Order, Trade

log = logging.getLogger("momobot.das")

#: The longest start-up waits for the first login before trading begins anyway.
STARTUP_WAIT = 2.0
#: The longest shutdown waits for answers to orders still working (their fills, for the journal).
SHUTDOWN_WAIT = 3.0


class DasPlugin:
    """One instance per process is registered by the ``das`` entry point.

    ``config`` fixes the configuration instead of reading ``[das]`` (tests, benchmarks);
    ``wall`` replaces the wall clock of the catastrophic stop's regular-hours check (tests).
    """

    def __init__(
        self, config: DasConfig | None = None, *, wall: Callable[[], datetime] | None = None
    ) -> None:
        self._fixed_config = config
        self._wall = wall
        self.config: DasConfig | None = None
        self.desk: Desk | None = None
        self.link: DasLink | None = None
        self._bot: Engine | None = None
        self._state = "not started"

    def _sending(self) -> Desk | None:
        bot = self._bot
        return self.desk if bot is None or bot.sending_allowed else None

    @staticmethod
    def _resume_take_profits(bot: Engine, desk: Desk) -> None:
        """Take profits 1 a killed run queued but never wrote, of trades still open: again."""
        journal = bot.journal
        if journal is None:
            return
        for cut in journal.cut_sequences:
            if cut.plugin != "das" or cut.event != "tp1" or cut.sent or not cut.unsent:
                continue
            trade = next((t for t in bot.open_trades.values() if t.id == cut.trade_id), None)
            order = journal.order(cut.batch) if trade is not None else None
            if trade is not None and order is not None:
                desk.resume_take_profit(order, trade)

    def _tell_extended_hours(self, bot: Engine, config: DasConfig) -> None:
        """At start: outside the regular session no stop order goes to the broker; say so."""
        if config.catastrophic_stop_pct is None:
            return
        now = (self._wall or (lambda: datetime.now(UTC)))()
        session = bot.market.session_at(now)
        extended = [s for s in bot.settings.session or () if s != "regular"]
        if session == "regular" and not extended:
            return
        where = f"it is {NAMES[session]} now" if session != "regular" else "the bot trades extended hours"
        bot.alert(
            "das_extended_hours",
            f"{where}: outside the regular session the catastrophic stop is not placed at DAS"
            " (brokers take no stop orders then); the engine's own stop still watches every"
            " trade, and orders are limit orders (TIF=DAY+)",
            plugin="das",
            session=session,
        )

    @hookimpl
    def on_startup(self, bot: Engine) -> None:
        self._state = "not sending in this mode"
        if self._fixed_config is None and not configured(bot.config):
            self._state = "not configured: no [das] table"
            log.warning(
                "DAS: the das plugin is installed but not configured (no [das] table): no orders go"
                " to DAS Trader. Add [das] (docs/das.md) or uninstall momobot-das"
            )
            if bot.mode == "live":
                bot.alert(
                    "das_not_configured",
                    "the das plugin is installed but has no [das] table: no orders go to DAS Trader",
                    plugin="das",
                )
            return
        if bot.mode != "live" and not self._fixed_config and not replay_wanted(bot.config):
            log.info("DAS: %s mode: no orders are sent (set [das] replay = true to send them)", bot.mode)
            return
        config = self._fixed_config or load_das_config(bot.config)  # ConfigError stops start-up
        self.config = config
        if bot.mode != "live" and not config.replay:
            log.info(
                "DAS: %s mode: no orders are sent (a recorded session must not trade a live"
                " account; set [das] replay = true or MOMOBOT_DAS_REPLAY=1 to send them)",
                bot.mode,
            )
            return
        if bot.mode != "live":
            log.warning("DAS: %s mode with replay = true: orders ARE sent to %s", bot.mode, config.where)
        self._bot = bot
        desk = Desk(config, submit=bot.submit, alert=bot.alert, wire_log=bot.wire_log("das"), bot=bot)
        if self._wall is not None:
            desk.set_wall_clock(self._wall)
        link = DasLink(
            config,
            on_message=desk.handle,
            on_up=desk.connected,
            on_down=desk.disconnected,
            on_tick=desk.tick,
            on_refused=desk.refused,
            on_unreadable=desk.unreadable,
        )
        desk.link = link
        self.desk, self.link = desk, link
        self._tell_extended_hours(bot, config)
        self._resume_take_profits(bot, desk)
        link.start()
        # Start-up (not the trading path) may wait a moment: a refused login stops it here, and
        # the first trade finds the broker's lists in (so reconciliation compares settled books).
        deadline = time.monotonic() + STARTUP_WAIT
        link.wait_first_login(min(config.connect_timeout, STARTUP_WAIT))
        if link.up:
            desk.ready.wait(max(0.0, deadline - time.monotonic()))
        link.refusal_is_fatal = False  # from here on, a refusal is told and the link keeps trying
        if link.state == "refused":
            link.close()
            self.desk = self.link = None
            raise ConfigError(
                f"[das] DAS at {config.where} refused the login of user {config.user!r} on account"
                f" {config.account!r}: {link.refused} (check user, account and {PASSWORD_ENV})"
            )
        if not link.up:
            bot.alert(
                "link_down",
                f"DAS at {config.where} is not reachable ({link.last_error or 'connecting'}): no order"
                f" can be sent until it is; entries wait at most {config.entry_ttl:g} s, exits as long"
                " as it takes",
                plugin="das",
            )
            log.warning(
                "DAS: %s not reachable yet (%s): it keeps trying; entries wait up to %g s for it,"
                " exits as long as it takes (check it with: momobot das check)",
                config.where,
                link.last_error or "connecting",
                config.entry_ttl,
            )

    def status(self) -> dict[str, Any]:
        """The link, the orders working and the last reconciliation (``GET /ping``)."""
        desk = self.desk
        return desk.status() if desk is not None else {"state": self._state}

    @hookimpl(tryfirst=True)  # the order leaves before any other plugin's work
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        desk = self._sending()
        if desk is None or order.qty <= 0:
            return
        intent = order.intent.value
        if intent == "entry":
            desk.entry(order, trade)
        elif intent == "take_profit" and trade.is_open:
            desk.take_profit(order, trade)
        else:
            event = "tp2" if intent == "take_profit" else str(trade.close_reason or intent)
            desk.last_exit(order, trade, event)

    @hookimpl
    def register_routes(self, app: FastAPI, bot: Engine) -> None:
        from fastapi.responses import HTMLResponse

        @app.get(PANEL_PATH, response_class=HTMLResponse, include_in_schema=False)
        async def panel() -> HTMLResponse:
            desk = self.desk
            return HTMLResponse(panel_html(desk))

    @hookimpl
    def dashboard_panels(self, bot: Engine) -> list[Panel]:
        return [Panel("DAS Trader", PANEL_PATH)]

    @hookimpl
    def on_shutdown(self, bot: Engine) -> None:
        desk, link = self.desk, self.link
        self.desk = self.link = None
        if desk is not None and link is not None and link.up:
            # Bounded: orders just written get their answers (fills for the journal) first.
            deadline = time.monotonic() + SHUTDOWN_WAIT
            while desk.working_count() and time.monotonic() < deadline:
                threading.Event().wait(0.01)
        if desk is not None:
            desk.shutdown()
        if link is not None:
            link.close()

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from momobot_das.cli import das

        cli.add_command(das)


#: The instance the ``das`` entry point registers.
plugin = DasPlugin()
