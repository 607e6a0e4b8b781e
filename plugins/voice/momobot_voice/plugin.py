"""The voice plugin: one spoken sentence per trade event.

| event | sentence |
|---|---|
| entry order | "New trade taken for ABCD at 1.23" |
| TP1 reached | "Take profit one for ABCD at 1.35: half sold, stop to break even" |
| closed at TP2 | "... due to take profit two" |
| closed at the stop | "... due to stop loss" |
| manual close | "... due to manual close" |
| an alert (``on_alert``) | "Alert: halted, max daily loss", "Alert: link down" |

A kill's per-trade closes are not spoken one by one: its ``halted`` alert says it once.

Configuration, table ``[voice]`` (environment ``MOMOBOT_VOICE_<KEY>``):
``command`` (speech engine; default the first of espeak-ng, espeak, say found),
``output_dir`` (write one WAV file per sentence there instead of speaking),
``rate`` (words per minute), ``voice`` (the engine's voice name),
``queue_size`` (sentences that may wait; default 32).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from momobot_core import ConfigError, hookimpl
from momobot_voice.speech import Speaker, find_engine

if TYPE_CHECKING:
    from momobot_core.engine import Engine
    from momobot_core.models import Alert, Order, Quote, Target, Trade

log = logging.getLogger("momobot.voice")

REASONS = {
    "tp1": "take profit one",
    "tp2": "take profit two",
    "stop": "stop loss",
    "manual": "manual close",
    "kill": "the kill switch",
}
SHUTDOWN_SECONDS = 5.0


def spoken_price(price: float) -> str:
    return f"{price:.2f}" if price >= 1 else f"{price:.4f}".rstrip("0")


def entry_sentence(symbol: str, price: float) -> str:
    return f"New trade taken for {symbol} at {spoken_price(price)}"


def exit_sentence(symbol: str, price: float, reason: str) -> str:
    if reason == "tp1":  # a partial exit: the trade goes on
        return f"Take profit one for {symbol} at {spoken_price(price)}: half sold, stop to break even"
    return f"Trade closed for {symbol} at {spoken_price(price)} due to {REASONS[reason]}"


def alert_sentence(alert: Alert) -> str:
    """A short sentence for an alert: its kind, the symbol, and the rule or reason if any."""
    words = alert.kind.replace("_", " ")
    if alert.symbol:
        words += f" for {alert.symbol}"
    why = alert.detail.get("rule") or alert.detail.get("reason")
    if isinstance(why, str) and why:
        words += ", " + why.replace("_", " ")
    return f"Alert: {words}"


class VoicePlugin:
    def __init__(self) -> None:
        self.speaker: Speaker | None = None

    @hookimpl
    def on_startup(self, bot: Engine) -> None:
        section = bot.config.section("voice", env_prefix="MOMOBOT_VOICE_")
        section.check_known({"command", "output_dir", "rate", "voice", "queue_size"})
        command = section.get_str("command", None)
        output = section.get_str("output_dir", None)
        rate = section.get_int("rate", 0, minimum=0) or None
        if rate is not None and not 80 <= rate <= 500:
            raise ConfigError(f"[voice] rate = {rate}: must be between 80 and 500 words per minute")
        voice = section.get_str("voice", None)
        queue_size = section.get_int("queue_size", 32, minimum=1)
        output_dir = None
        if output:
            output_dir = Path(output)
            try:
                output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"[voice] output_dir = {output!r}: cannot create it: {exc}") from None
        executable = find_engine(command)
        if executable is None:
            wanted = command or "espeak-ng, espeak or say"
            log.warning(
                "[Voice] no speech engine found (%s): trade events are not spoken;"
                " install espeak-ng or set [voice] command",
                wanted,
            )
            return
        self.speaker = Speaker(
            executable, output_dir=output_dir, rate=rate, voice=voice, queue_size=queue_size
        )

    @hookimpl
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        if self.speaker is not None and order.intent == "entry":
            self.speaker.say(entry_sentence(order.symbol, order.price))

    @hookimpl
    def on_target_hit(self, trade: Trade, target: Target, quote: Quote) -> None:
        # TP1 is a partial exit at the ask: its own sentence (the others come with the close).
        if self.speaker is not None and target == "tp1":
            self.speaker.say(exit_sentence(trade.symbol, quote.ask, "tp1"))

    @hookimpl
    def on_position_closed(self, trade: Trade, reason: str, price: float) -> None:
        if self.speaker is not None and reason != "kill":
            self.speaker.say(exit_sentence(trade.symbol, price, reason))

    @hookimpl
    def on_alert(self, alert: Alert) -> None:
        if self.speaker is not None:
            self.speaker.say(alert_sentence(alert))

    @hookimpl
    def on_shutdown(self, bot: Engine) -> None:
        speaker, self.speaker = self.speaker, None
        if speaker is not None:
            speaker.close(SHUTDOWN_SECONDS)


#: The instance the ``voice`` entry point registers.
plugin = VoicePlugin()
