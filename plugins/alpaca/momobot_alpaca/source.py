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

import asyncio
import logging
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from websockets.asyncio.client import connect
from websockets.client import backoff
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from momobot_alpaca import protocol
from momobot_core.config import Config, ConfigError
from momobot_core.models import Quote
from momobot_core.sources import SourceError, SourceStatus, Watchlist

if TYPE_CHECKING:
    from momobot_core.engine import Engine

log = logging.getLogger("momobot.alpaca")
#: websockets logs every frame at DEBUG, the auth message with the secret included: this
#: connection's logger never goes below INFO, whatever -vv asks for.
wire_log = logging.getLogger("momobot.alpaca.wire")
wire_log.setLevel(logging.INFO)

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


class _Refused(Exception):
    """The stream said no (an error message); ``code`` says which."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


class AlpacaSource:
    """A :class:`momobot_core.sources.QuoteSource` speaking Alpaca's stream."""

    name = "alpaca"

    def __init__(self, bot: Engine) -> None:
        self.settings = AlpacaSettings.from_config(bot.config)
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
        self.connected = False
        self.messages = 0
        self.errors = 0
        self.one_sided = 0
        self.connections = 0
        self._ever_connected = False
        self._last_message: float | None = None
        self._vendor_time = ""
        self._last: dict[str, float] = {}  # last regular trade price per symbol
        self._book: dict[str, tuple[float, float]] = {}  # latest bid and ask per symbol
        self._subscribed: set[str] = set()
        self._detail = ""
        self._last_told = ""  # the last kind of failure a person was told about

    # -- QuoteSource -------------------------------------------------------------------

    def status(self) -> SourceStatus:
        age = None if self._last_message is None else time.monotonic() - self._last_message
        detail = self._detail or (
            f"feed {self.settings.feed}, last vendor time {self._vendor_time}"
            if self._vendor_time
            else f"feed {self.settings.feed}"
        )
        return SourceStatus(
            connected=self.connected,
            symbols=len(self._subscribed),
            last_message_age_s=age,
            messages=self.messages,
            errors=self.errors,
            detail=detail,
        )

    async def run(self, bot: Engine, watchlist: Watchlist) -> None:
        """Stream until cancelled, reconnecting with backoff; keys refused at the start: SourceError."""
        delays = backoff(initial_delay=0.2, min_delay=0.2, max_delay=self.settings.reconnect_max_delay)
        while True:
            wait: float | None = None
            try:
                await self._session(bot, watchlist)
                reason = "the stream closed"
            except _Refused as exc:
                self.errors += 1
                if exc.code in protocol.AUTH_ERRORS and not self._ever_connected:
                    raise SourceError(
                        f"Alpaca refused the keys or the feed {self.settings.feed!r}: {exc} (check"
                        " APCA_API_KEY_ID, APCA_API_SECRET_KEY and your subscription)"
                    ) from None
                reason = f"Alpaca said {exc}"
                if exc.code == protocol.CONNECTION_LIMIT:
                    wait = self.settings.limit_backoff_s
                    reason += (
                        ": another program is connected with these keys (Alpaca allows one"
                        f" connection per feed); trying again in {wait:g} s"
                    )
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, ValueError) as exc:
                self.errors += 1
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            was_connected, self.connected = self.connected, False
            self._subscribed.clear()
            if wait is None:
                wait = next(delays)
            else:
                delays = backoff(
                    initial_delay=0.2, min_delay=0.2, max_delay=self.settings.reconnect_max_delay
                )
            self._detail = f"{reason}; reconnecting in {wait:.1f} s"
            kind = reason.split(":")[0]
            if was_connected or kind != self._last_told or not self.errors % 20:
                self._last_told = kind
                bot.alert(
                    "stale_quotes",
                    f"Alpaca stream: {reason}; reconnecting (entries halt if quotes stop)",
                    source=self.name,
                )
            await asyncio.sleep(wait)

    # -- one connection -------------------------------------------------------------------

    async def _session(self, bot: Engine, watchlist: Watchlist) -> None:
        settings = self.settings
        async with connect(
            settings.url,
            open_timeout=settings.open_timeout,
            compression=None,
            proxy=None,
            ping_interval=5,
            ping_timeout=5,
            max_size=2**22,
            max_queue=None,
            logger=wire_log,
        ) as ws:
            self.connections += 1
            self._expect(await asyncio.wait_for(ws.recv(), settings.open_timeout), "connected")
            await ws.send(protocol.auth(settings.key_id, settings.secret_key))
            self._expect(await asyncio.wait_for(ws.recv(), settings.open_timeout), "authenticated")
            self._ever_connected = self.connected = True
            self._detail = ""
            log.info("[Alpaca] connected to the %s feed", settings.feed)
            await self._subscribe(ws, list(watchlist))
            follow = asyncio.create_task(self._follow(ws, watchlist))
            try:
                async for frame in ws:
                    self._frame(bot, frame)
            finally:
                follow.cancel()

    async def _subscribe(self, ws: Any, symbols: list[str]) -> None:
        if self.settings.feed == "test":
            symbols = [protocol.TEST_SYMBOL] if symbols else []
        new = [s for s in symbols if s not in self._subscribed]
        if new:
            await ws.send(protocol.subscribe(new))
            self._subscribed.update(new)

    async def _follow(self, ws: Any, watchlist: Watchlist) -> None:
        """Subscribe to symbols the watchlist gains (POST /watch, POST /trades, new trades)."""
        while True:
            await self._subscribe(ws, await watchlist.changed())

    def _expect(self, frame: str | bytes, msg: str) -> None:
        for item in protocol.messages(frame):
            if item.get("T") == "error":
                raise _Refused(int(item.get("code", 0)), str(item.get("msg", "")))
            if item.get("T") == "success" and item.get("msg") == msg:
                return
        raise ValueError(f"expected {msg!r} from the stream, got {frame!r:.200}")

    def _frame(self, bot: Engine, frame: str | bytes) -> None:
        """One frame: several messages. Every message of it arrived now (wall clock)."""
        self._last_message = time.monotonic()
        now = datetime.now(UTC)
        try:
            items = protocol.messages(frame)
        except ValueError:
            self.errors += 1
            log.warning("[Alpaca] a frame that is not JSON messages was skipped: %r", frame[:200])
            return
        for item in items:
            self.messages += 1
            try:
                self._message(bot, item, now)
            except (KeyError, TypeError):
                self.errors += 1
                log.warning("[Alpaca] a message without the fields it needs was skipped: %r", item)

    def _message(self, bot: Engine, item: dict[str, Any], now: datetime) -> None:
        kind = item.get("T")
        if kind == "q":
            symbol, bid, ask = item["S"], _price(item["bp"]), _price(item["ap"])
            if not bid or not ask:  # one-sided (common before the open): counted, not fed
                self.one_sided += 1
                return
            self._book[symbol] = (bid, ask)
            bot.apply(Quote(symbol, now, bid, ask, self._last.get(symbol)))
            self._vendor_time = item.get("t", "")
        elif kind == "t":
            symbol, price = item["S"], _price(item["p"])
            if price and protocol.regular(item.get("c")):
                self._last[symbol] = price
                if symbol in self._book:
                    bid, ask = self._book[symbol]
                    bot.apply(Quote(symbol, now, bid, ask, price))
        elif kind == "s":
            code = str(item.get("sc", ""))
            reason = str(item.get("sm") or f"status {code}")
            if code in protocol.HALTED:
                bot.trading_halt(item["S"], True, reason)
            elif code in protocol.RESUMED:
                bot.trading_halt(item["S"], False, reason)
        elif kind == "error":
            raise _Refused(int(item.get("code", 0)), str(item.get("msg", "")))


def _price(value: object) -> float:
    """A price from the stream; TypeError for anything that is not a number (the message is skipped)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a price: {value!r}")
    return float(value)
