"""The momobot plugin: trade events in, hotkey commands out.

| event                                  | commands (defaults)                    |
|----------------------------------------|----------------------------------------|
| ``on_order_submitted``, intent entry   | ``buy_ask``                            |
| ``on_target_hit`` tp1                  | ``sell_ask``, ``cancel_all``, ``break_even`` |
| ``on_target_hit`` tp2                  | ``sell_ask``                           |
| ``on_target_hit`` stop                 | ``sell_all_bid``                       |
| ``on_position_closed``, reason manual  | ``sell_all_bid``                       |
| ``on_kill`` (once per kill)            | ``cancel_all``, ``flatten_all``        |

Replays are not live trading: in ``replay`` and ``demo`` mode nothing is sent
unless ``[hotkey_ws] replay = true`` (or ``MOMOBOT_HOTKEY_REPLAY=1``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hotkey_ws.batch import Batch
from hotkey_ws.client import HotkeyClient
from hotkey_ws.config import HotkeyConfig, load_hotkey_config
from hotkey_ws.panel import PANEL_PATH, PANEL_ROWS, panel_html
from momobot_core import Panel, hookimpl

if TYPE_CHECKING:
    from datetime import datetime

    import click
    from fastapi import FastAPI

    from momobot_core.engine import Engine
    from momobot_core.models import Order, Quote, Target, Trade

log = logging.getLogger("momobot.hotkey")

#: The longest start-up waits for the first connection before trading begins anyway.
STARTUP_WAIT = 2.0


class HotkeyPlugin:
    """One instance per process is registered by the ``hotkey_ws`` entry point.

    ``config`` fixes the configuration instead of reading ``[hotkey_ws]``;
    ``send_in_replay`` makes a replay or demo send (``momobot hotkey demo`` uses both,
    with its own dry-run server).
    """

    def __init__(
        self, config: HotkeyConfig | None = None, *, send_in_replay: bool = False, record: bool = False
    ) -> None:
        self._fixed_config = config
        self._send_in_replay = send_in_replay
        self._record = record
        self.config: HotkeyConfig | None = None
        self.client: HotkeyClient | None = None
        self.history: Sequence[Batch] = ()
        self._bot: Engine | None = None

    def _names(self, client: HotkeyClient, event: str, ts: datetime) -> tuple[str, ...] | None:
        """The extended-hours commands of ``event`` when it happens outside the regular session
        and ``extended_<event>_commands`` is set; None: the event's own commands."""
        extended = client.config.extended_commands
        if not extended or event not in extended or self._bot is None:
            return None
        if self._bot.market.is_regular(ts):
            return None
        return extended[event]

    def _sending(self) -> HotkeyClient | None:
        """The client, unless the bot says sending is off now (quotes from a delayed feed)."""
        bot = self._bot
        return self.client if bot is None or bot.sending_allowed else None

    @hookimpl
    def on_startup(self, bot: Engine) -> None:
        config = self._fixed_config or load_hotkey_config(bot.config)  # ConfigError stops start-up
        self.config = config
        where = ", ".join(config.urls)
        if bot.mode != "live" and not (config.replay or self._send_in_replay):
            log.info(
                "[Hotkey] %s mode: no hotkey commands are sent (a recorded session must not"
                " press buttons on a live account; set [hotkey_ws] replay = true or"
                " MOMOBOT_HOTKEY_REPLAY=1 to send them)",
                bot.mode,
            )
            return
        if bot.mode != "live" and not self._send_in_replay:
            log.warning("[Hotkey] %s mode with replay = true: commands ARE sent to %s", bot.mode, where)
        else:
            log.info("[Hotkey] sending hotkey commands to %s", where)
        self._bot = bot
        self.client = HotkeyClient(
            # Live, the latest batches are kept for the dashboard's panel.
            config,
            record=self._record or bot.mode == "live",
            alert=bot.alert,
            wire_log=bot.wire_log("hotkey_ws"),
        )
        if self.client.history is not None:
            self.history = self.client.history
        self.client.start()
        # Start-up (not the trading path) may wait a moment, so the first trade finds the link up
        # and a server that is not there is reported before trading starts.
        if not self.client.wait_connected(min(config.open_timeout, STARTUP_WAIT)):
            log.warning(
                "[Hotkey] %s not reachable yet: commands wait up to %g s for it, then are"
                " dropped and logged (check it with: momobot hotkey check)",
                where,
                config.ttl,
            )

    def status(self) -> list[dict[str, Any]]:
        """Each hotkey server's link (``GET /ping``): state, queue, last ping round trip."""
        client = self.client
        return client.status() if client is not None else []

    @hookimpl(tryfirst=True)  # a command leaves before any other plugin's work
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        client = self._sending()
        if client is not None and order.intent == "entry":
            client.send_event(
                "entry",
                symbol=trade.symbol,
                qty=trade.qty,
                remaining=trade.remaining,
                trade_id=trade.id,
                ts=order.ts,
                names=self._names(client, "entry", order.ts),
            )

    @hookimpl(tryfirst=True)
    def on_target_hit(self, trade: Trade, target: Target, quote: Quote) -> None:
        client = self._sending()
        if client is None:
            return
        names = self._names(client, target.value, quote.ts)
        if target == "tp1" and trade.qty // 2 == 0:
            # A 1-share trade's TP1 sells nothing: no sell_ask, but the stop still moves.
            chosen = names if names is not None else client.config.commands["tp1"]
            names = tuple(n for n in chosen if n != "sell_ask")
        # ``remaining`` is what is held after the event, for every event alike.
        after = trade.remaining - trade.qty // 2 if target == "tp1" else 0
        client.send_event(
            target.value,
            symbol=trade.symbol,
            qty=trade.qty,
            remaining=after,
            trade_id=trade.id,
            ts=quote.ts,
            names=names,
        )

    @hookimpl(tryfirst=True)
    def on_position_closed(self, trade: Trade, reason: str, price: float) -> None:
        client = self._sending()
        if client is not None and reason == "manual":
            assert trade.closed_at is not None
            client.send_event(
                "manual",
                symbol=trade.symbol,
                qty=trade.qty,
                remaining=trade.remaining,
                trade_id=trade.id,
                ts=trade.closed_at,
                names=self._names(client, "manual", trade.closed_at),
            )

    @hookimpl(tryfirst=True)
    def on_kill(self, trades: list[Trade], reason: str) -> None:
        # Once for the whole book: a keystroke acts on the active montage, so one sell_all_bid
        # per trade would sell one symbol N times. The per-trade closes (reason kill) send nothing.
        client = self._sending()
        if client is None:
            return
        symbols = [trade.symbol for trade in trades]
        bot = self._bot
        names = self._names(client, "kill", bot.clock.now()) if bot is not None else None
        client.send(
            names if names is not None else client.config.commands["kill"],
            event="kill",
            context={"reason": reason, "symbols": symbols} if client.config.format == "json" else None,
            label=f"kill ({', '.join(symbols) or 'nothing open'})" if client.history is not None else "",
        )

    @hookimpl
    def register_routes(self, app: FastAPI, bot: Engine) -> None:
        from fastapi.responses import HTMLResponse

        @app.get(PANEL_PATH, response_class=HTMLResponse, include_in_schema=False)
        async def panel() -> HTMLResponse:
            return HTMLResponse(panel_html(self.status(), list(self.history)[-PANEL_ROWS:]))

    @hookimpl
    def dashboard_panels(self, bot: Engine) -> list[Panel]:
        return [Panel("Hotkeys", PANEL_PATH)]

    @hookimpl
    def on_shutdown(self, bot: Engine) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from hotkey_ws.cli import hotkey

        cli.add_command(hotkey)


#: The instance the ``hotkey_ws`` entry point registers.
plugin = HotkeyPlugin()
