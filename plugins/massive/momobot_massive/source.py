"""The Massive source: the stocks stream's protocol on the core's StreamSource.

Why plain ``websockets`` and not Massive's SDK (``massive``, formerly
``polygon-api-client``): its WebSocket client runs its own loop and hands
messages to a callback (the thread handoff that falls behind under load), and
it brings its own dependency pins; the protocol is a few JSON events
(``protocol.py``), spoken here directly on the engine's loop.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from momobot_core.config import Config, ConfigError
from momobot_core.sources import SourceError
from momobot_core.sources.connection import StreamConnection
from momobot_core.sources.stream import Refused, StreamSource, price, printed_at
from momobot_massive import protocol

if TYPE_CHECKING:
    from momobot_core.engine import Engine

log = logging.getLogger("momobot.massive")

#: Another program took over the key (``max_connections``): never fight it; try again this much later.
TAKEN_OVER_WAIT_S = 60.0


@attrs.frozen
class MassiveSettings:
    """The ``[massive]`` table; the key from ``MASSIVE_API_KEY`` (or ``POLYGON_API_KEY``) by default."""

    url: str = protocol.DEFAULT_URL
    key: str = attrs.field(default="", repr=False)
    allow_delayed: bool = False
    open_timeout: float = 5.0
    reconnect_max_delay: float = 10.0
    taken_over_wait_s: float = TAKEN_OVER_WAIT_S

    @property
    def delayed(self) -> bool:
        return parse_uri(self.url).host.startswith("delayed.")

    @classmethod
    def from_config(cls, config: Config) -> MassiveSettings:
        section = config.section("massive", env_prefix="MOMOBOT_MASSIVE_")
        section.check_known(
            {"url", "key", "allow_delayed", "open_timeout", "reconnect_max_delay", "taken_over_wait_s"}
        )
        url = section.get_str("url", protocol.DEFAULT_URL) or protocol.DEFAULT_URL
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ConfigError(f"[massive] url = {url!r}: not a ws:// or wss:// URL ({exc})") from None
        key = (
            section.get_str("key", None)
            or os.environ.get("MASSIVE_API_KEY")
            or os.environ.get("POLYGON_API_KEY", "")
        )
        if not key:
            raise ConfigError(
                "Massive needs an API key: set MASSIVE_API_KEY (or POLYGON_API_KEY, or [massive] key)"
            )
        return cls(
            url=url,
            key=key,
            allow_delayed=section.get_bool("allow_delayed", False),
            open_timeout=section.get_float("open_timeout", 5.0, strictly_positive=True),
            reconnect_max_delay=section.get_float("reconnect_max_delay", 10.0, strictly_positive=True),
            taken_over_wait_s=section.get_float(
                "taken_over_wait_s", TAKEN_OVER_WAIT_S, strictly_positive=True
            ),
        )


class MassiveSource(StreamSource):
    """A :class:`momobot_core.sources.QuoteSource` speaking the Massive stocks stream."""

    name = "massive"

    def __init__(self, bot: Engine) -> None:
        self.settings = MassiveSettings.from_config(bot.config)
        super().__init__()
        self.url = self.settings.url
        self.open_timeout = self.settings.open_timeout
        self.reconnect_max_delay = self.settings.reconnect_max_delay
        if self.settings.delayed:
            if not self.settings.allow_delayed:
                raise SourceError(
                    f"[massive] url = {self.url!r} is the delayed feed: refused for live trading"
                    " (set [massive] allow_delayed = true to watch it; nothing is then sent to"
                    " your broker)"
                )
            bot.sending_allowed = False
            log.warning("[Massive] delayed feed: plugins that send orders or hotkeys stay quiet")

    def describe(self) -> str:
        vendor = self.vendor_time  # milliseconds since the epoch, as the stream sends it
        if not vendor:
            return self.url
        try:
            when = datetime.fromtimestamp(vendor / 1000, UTC).isoformat()
        except (TypeError, ValueError, OverflowError, OSError):  # a quote's "t" is the vendor's word
            when = f"{vendor!r:.40} (not a time)"
        return f"{self.url}, last vendor time {when}"

    async def handshake(self, ws: StreamConnection) -> None:
        self._expect(await self.recv(ws), "connected")
        await ws.send(protocol.auth(self.settings.key))
        self._expect(await self.recv(ws), "auth_success")

    def subscribe_message(self, symbols: list[str]) -> str:
        return protocol.subscribe(symbols)

    def unsubscribe_message(self, symbols: list[str]) -> str | None:
        return protocol.unsubscribe(symbols)

    def _expect(self, frame: str | bytes, state: str) -> None:
        for item in protocol.events(frame):
            if item.get("ev") != "status":
                continue
            if item.get("status") == state:
                return
            self._status(item)
        raise ValueError(f"expected status {state!r} from the stream, got {frame!r:.200}")

    def trade(
        self, bot: Engine, symbol: str, last: float, vendor: Any, conditions: Any, now: datetime
    ) -> None:
        if last and symbol not in self.dropped and protocol.regular(conditions):
            at = now
            quoted = self._quoted_at.get(symbol)
            if quoted is not None and type(vendor) is int and type(quoted[1]) is int and quoted[1]:
                # Vendor times in milliseconds since the epoch.
                at = printed_at(now, (quoted[0], quoted[1] / 1000), vendor / 1000)
            self.printed(bot, symbol, last, at, now)

    def _status(self, item: dict[str, Any]) -> None:
        state, message = item.get("status"), item.get("message", "")
        if state == "auth_failed":
            raise Refused(
                f"Massive refused the key: {message} (check MASSIVE_API_KEY and your plan)", auth=True
            )
        if state == "max_connections":
            wait = self.settings.taken_over_wait_s
            raise Refused(
                f"Massive closed this connection: another program connected with the same key"
                f" ({message}); not fighting it: trying again in {wait:g} s",
                wait=wait,
            )

    def decode(self, frame: str | bytes) -> list[dict[str, Any]]:
        return protocol.events(frame)

    #: Frames of quotes and trades into structs; anything else goes through :meth:`message`.
    stream_decode = protocol.stream_decode

    def message(self, bot: Engine, item: dict[str, Any], now: datetime) -> None:
        kind = item.get("ev")
        if kind == "Q":
            self.quote(bot, item["sym"], price(item["bp"]), price(item["ap"]), item.get("t", 0), now)
        elif kind == "T":
            self.trade(bot, item["sym"], price(item["p"]), item.get("t"), item.get("c"), now)
        elif kind == "LULD":
            lower, upper = item.get("l"), item.get("h")
            if isinstance(lower, int | float) and isinstance(upper, int | float) and 0 < lower < upper:
                bot.luld(item["T"], float(lower), float(upper))  # the band (0: none published)
            indicators = set(item.get("i") or [])
            if indicators & (protocol.HALTED | protocol.RESUMED):
                # The bid and ask from before the halt are not a price after it: a print waits
                # for the next quote (a held exit goes out at a fresh bid, never an old one).
                self._book.pop(item["T"], None)
                halted = bool(indicators & protocol.HALTED)
                reason = "limit-up/limit-down halt" if halted else "limit-up/limit-down resumption"
                bot.trading_halt(item["T"], halted, reason)
        elif kind == "status":
            self._status(item)
