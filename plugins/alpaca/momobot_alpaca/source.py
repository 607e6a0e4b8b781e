"""The Alpaca source: connect, authenticate, subscribe, hand every quote to the engine, reconnect.

Runs on the engine's own event loop (``momobot serve``), so each quote goes
into ``bot.apply`` directly, with no thread handoff. Live rules run on the
wall-clock time a frame arrived, never the vendor's timestamp (that is kept
in the status, for people).

Why plain ``websockets`` and not Alpaca's SDK (``alpaca-py``): the SDK runs
its own event loop on its own thread and hands data over through callbacks,
which is the thread handoff MomoBot's measurements show falling hundreds of
milliseconds behind under load; it also pulls in pandas, requests and its own
websockets range. The stream's protocol is a few JSON messages (see
``protocol.py``): we speak it directly on the engine's loop.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from momobot_alpaca import protocol
from momobot_core.config import Config, ConfigError
from momobot_core.sources import SourceError
from momobot_core.sources.connection import StreamConnection
from momobot_core.sources.stream import Refused, StreamSource, price, printed_at

if TYPE_CHECKING:
    from momobot_core.engine import Engine

log = logging.getLogger("momobot.alpaca")

#: After "connection limit exceeded" (another program uses these keys): wait this long, then try.
LIMIT_BACKOFF_S = 30.0


@attrs.frozen
class AlpacaSettings:
    """The ``[alpaca]`` table; keys from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` by default."""

    feed: str = "iex"
    url: str = ""
    key_id: str = attrs.field(default="", repr=False)
    secret_key: str = attrs.field(default="", repr=False)
    allow_delayed: bool = False
    open_timeout: float = 5.0
    reconnect_max_delay: float = 10.0
    limit_backoff_s: float = LIMIT_BACKOFF_S

    @classmethod
    def from_config(cls, config: Config) -> AlpacaSettings:
        section = config.section("alpaca", env_prefix="MOMOBOT_ALPACA_")
        section.check_known(
            {
                "feed",
                "url",
                "key_id",
                "secret_key",
                "allow_delayed",
                "open_timeout",
                "reconnect_max_delay",
                "limit_backoff_s",
            }
        )
        feed = section.get_choice("feed", "iex", protocol.FEEDS)
        url = section.get_str("url", None) or protocol.DEFAULT_URL.format(feed=feed)
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ConfigError(f"[alpaca] url = {url!r}: not a ws:// or wss:// URL ({exc})") from None
        key_id = section.get_str("key_id", None) or os.environ.get("APCA_API_KEY_ID", "")
        secret = section.get_str("secret_key", None) or os.environ.get("APCA_API_SECRET_KEY", "")
        if not key_id or not secret:
            raise ConfigError(
                "Alpaca needs API keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (or [alpaca]"
                " key_id and secret_key)"
            )
        return cls(
            feed=feed,
            url=url,
            key_id=key_id,
            secret_key=secret,
            allow_delayed=section.get_bool("allow_delayed", False),
            open_timeout=section.get_float("open_timeout", 5.0, strictly_positive=True),
            reconnect_max_delay=section.get_float("reconnect_max_delay", 10.0, strictly_positive=True),
            limit_backoff_s=section.get_float("limit_backoff_s", LIMIT_BACKOFF_S, strictly_positive=True),
        )


class AlpacaSource(StreamSource):
    """A :class:`momobot_core.sources.QuoteSource` speaking Alpaca's stream."""

    name = "alpaca"

    def __init__(self, bot: Engine) -> None:
        self.settings = AlpacaSettings.from_config(bot.config)
        super().__init__()
        self.url = self.settings.url
        self.open_timeout = self.settings.open_timeout
        self.reconnect_max_delay = self.settings.reconnect_max_delay
        feed = self.settings.feed
        if feed in protocol.DELAYED_FEEDS:
            if not self.settings.allow_delayed:
                raise SourceError(
                    f"[alpaca] feed = {feed!r} is 15 minutes late: refused for live trading"
                    " (set [alpaca] allow_delayed = true to watch it; nothing is then sent to"
                    " your broker)"
                )
            bot.sending_allowed = False
            log.warning(
                "[Alpaca] delayed feed: quotes are 15 minutes old; plugins that send orders or"
                " hotkeys stay quiet"
            )
        elif feed == "iex":
            log.warning(
                "[Alpaca] the iex feed is one exchange's quotes, not the national best bid and offer:"
                ' prices can differ from your broker\'s (feed = "sip" is the consolidated tape)'
            )

    def describe(self) -> str:
        vendor = f", last vendor time {self.vendor_time!s:.40}" if self.vendor_time else ""
        return f"feed {self.settings.feed}{vendor}"

    async def handshake(self, ws: StreamConnection) -> None:
        self._expect(await self.recv(ws), "connected")
        await ws.send(protocol.auth(self.settings.key_id, self.settings.secret_key))
        self._expect(await self.recv(ws), "authenticated")

    def subscribe_message(self, symbols: list[str]) -> str:
        if self.settings.feed == "test":  # the test stream has one symbol
            symbols = [protocol.TEST_SYMBOL]
        return protocol.subscribe(symbols)

    def unsubscribe_message(self, symbols: list[str]) -> str | None:
        if self.settings.feed == "test":
            return None
        return protocol.unsubscribe(symbols)

    def _print_time(self, symbol: str, vendor: object, now: datetime) -> datetime:
        """When a print happened on this clock (see ``printed_at``): RFC 3339 vendor times."""
        quoted = self._quoted_at.get(symbol)
        if quoted is None or not isinstance(vendor, str) or not quoted[1]:
            return now
        try:
            print_s = datetime.fromisoformat(vendor).timestamp()
            quote_s = datetime.fromisoformat(quoted[1]).timestamp()
        except ValueError:
            return now
        return printed_at(now, (quoted[0], quote_s), print_s)

    def _expect(self, frame: str | bytes, msg: str) -> None:
        for item in protocol.messages(frame):
            if item.get("T") == "error":
                raise _refused(item, self.settings)
            if item.get("T") == "success" and item.get("msg") == msg:
                return
        raise ValueError(f"expected {msg!r} from the stream, got {frame!r:.200}")

    def decode(self, frame: str | bytes) -> list[dict[str, Any]]:
        return protocol.messages(frame)

    #: Frames of quotes and trades into structs; anything else goes through :meth:`message`.
    stream_decode = protocol.stream_decode

    def message(self, bot: Engine, item: dict[str, Any], now: datetime) -> None:
        kind = item.get("T")
        if kind == "q":
            self.quote(bot, item["S"], price(item["bp"]), price(item["ap"]), item.get("t", ""), now)
        elif kind == "t":
            self.trade(bot, item["S"], price(item["p"]), item.get("t"), item.get("c"), now)
        elif kind == "l":
            lower, upper = item.get("d"), item.get("u")
            if isinstance(lower, int | float) and isinstance(upper, int | float) and 0 < lower < upper:
                bot.luld(item["S"], float(lower), float(upper))
        elif kind == "s":
            code = str(item.get("sc", ""))
            reason = str(item.get("sm") or f"status {code}")
            if code in protocol.HALTED or code in protocol.RESUMED:
                # The bid and ask from before the halt are not a price after it: a print waits
                # for the next quote (a held exit goes out at a fresh bid, never an old one).
                self._book.pop(item["S"], None)
                bot.trading_halt(item["S"], code in protocol.HALTED, reason)
        elif kind == "error":
            raise _refused(item, self.settings)

    def trade(
        self, bot: Engine, symbol: str, last: float, vendor: Any, conditions: Any, now: datetime
    ) -> None:
        if last and symbol not in self.dropped and protocol.regular(conditions):
            self.printed(bot, symbol, last, self._print_time(symbol, vendor, now), now)


def _refused(item: dict[str, Any], settings: AlpacaSettings) -> Refused:
    code = int(item.get("code", 0))
    said = f"{code} {item.get('msg', '')}"
    if code in protocol.AUTH_ERRORS:
        return Refused(
            f"Alpaca refused the keys or the feed {settings.feed!r}: {said} (check APCA_API_KEY_ID,"
            " APCA_API_SECRET_KEY and your subscription)",
            auth=True,
        )
    if code == protocol.CONNECTION_LIMIT:
        return Refused(
            f"Alpaca said {said}: another program is connected with these keys (Alpaca allows one"
            f" connection per feed); trying again in {settings.limit_backoff_s:g} s",
            wait=settings.limit_backoff_s,
        )
    return Refused(f"Alpaca said {said}")
