"""The ``[hotkey_ws]`` configuration table, validated; every key can come from ``MOMOBOT_HOTKEY_<KEY>``."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import attrs
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from momobot_core.config import Config, ConfigError, Section

ENV_PREFIX = "MOMOBOT_HOTKEY_"
DEFAULT_URL = "ws://127.0.0.1:8765"

#: The hotkey commands of each event, in the order they are sent.
DEFAULT_COMMANDS: dict[str, tuple[str, ...]] = {
    "entry": ("buy_ask",),
    "tp1": ("sell_ask", "cancel_all", "break_even"),
    "tp2": ("sell_ask",),
    "stop": ("sell_all_bid",),
    "manual": ("sell_all_bid",),
    "kill": ("cancel_all", "flatten_all"),
}
EVENTS = tuple(DEFAULT_COMMANDS)
#: The sequences that protect the account: they wait up to exit_ttl, and a person hears of them.
EXIT_EVENTS = frozenset({"stop", "manual", "kill"})
KNOWN_COMMANDS = frozenset(c for commands in DEFAULT_COMMANDS.values() for c in commands)


@attrs.frozen
class HotkeyConfig:
    """Everything the plugin and its client need, checked once at start-up."""

    urls: tuple[str, ...] = (DEFAULT_URL,)
    sequence_delay: float = 0.1
    ttl: float = 2.0
    exit_ttl: float = 10.0
    token: str | None = attrs.field(default=None, repr=False)
    ca_file: str | None = None
    format: str = "text"
    replay: bool = False
    commands: dict[str, tuple[str, ...]] = attrs.field(factory=lambda: dict(DEFAULT_COMMANDS))
    #: The commands of the events that happen outside the regular session (pre-market,
    #: after-hours, a half day's afternoon): ``extended_<event>_commands``; an event not set
    #: there sends its regular commands. Empty: one command set all day.
    extended_commands: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    ping_interval: float = 0.25
    ping_timeout: float = 0.25
    open_timeout: float = 2.0
    reconnect_max_delay: float = 2.0
    queue_size: int = 64
    flush_timeout: float = 2.0

    def ssl_context(self) -> ssl.SSLContext | None:
        if not any(url.startswith("wss://") for url in self.urls):
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    def ttl_of(self, event: str) -> float:
        return self.exit_ttl if event in EXIT_EVENTS else self.ttl

    def with_urls(self, *urls: str) -> HotkeyConfig:
        return attrs.evolve(self, urls=tuple(check_url(url, "url", "") for url in urls))


KEYS = {
    "url",
    "urls",
    "sequence_delay",
    "ttl",
    "exit_ttl",
    "token",
    "ca_file",
    "format",
    "replay",
    "ping_interval",
    "ping_timeout",
    "open_timeout",
    "reconnect_max_delay",
    "queue_size",
    "flush_timeout",
    *(f"{event}_commands" for event in EVENTS),
    *(f"extended_{event}_commands" for event in EVENTS),
}


def check_url(url: str, key: str, where: str) -> str:
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:
        raise ConfigError(f"[hotkey_ws] {key} = {url!r}{where}: not a ws:// or wss:// URL ({exc})") from None
    if not uri.host:
        raise ConfigError(f"[hotkey_ws] {key} = {url!r}{where}: the URL has no host")
    return url


def load_hotkey_config(config: Config | dict[str, Any] | None = None) -> HotkeyConfig:
    """Read ``[hotkey_ws]`` from the core's configuration (or a plain dict) plus the environment."""
    if config is None:
        table: dict[str, Any] = {}
    elif isinstance(config, Config):
        table = config.table("hotkey_ws")
    else:
        table = dict(config)
    section = Section("hotkey_ws", table, env_prefix=ENV_PREFIX)
    section.check_known(KEYS)

    if section.has("url") and section.has("urls"):
        raise ConfigError(
            "[hotkey_ws] url and urls are both set: use url for one hotkey server, urls for several"
        )
    if section.has("urls"):
        urls = section.get_str_list("urls", [])
        if not urls:
            raise ConfigError("[hotkey_ws] urls = []: name at least one hotkey server")
        urls = [check_url(u, "urls", section.source("urls")) for u in urls]
    else:
        url = section.get_str("url", DEFAULT_URL)
        assert url is not None
        urls = [check_url(url, "url", section.source("url"))]
    if len(set(urls)) != len(urls):
        raise ConfigError(f"[hotkey_ws] urls = {urls!r}: a URL is listed twice")

    ca_file = section.get_str("ca_file", None)
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigError(f"[hotkey_ws] ca_file = {ca_file!r}: no such file")
    token = section.get_str("token", None)
    if token is not None and (not token or any(c in token for c in "\r\n")):
        raise ConfigError("[hotkey_ws] token: must be a non-empty single line (value not shown)")

    commands = {}
    for event in EVENTS:
        commands[event] = tuple(section.get_str_list(f"{event}_commands", list(DEFAULT_COMMANDS[event])))
    extended = {}
    for event in EVENTS:
        if section.has(f"extended_{event}_commands"):
            extended[event] = tuple(section.get_str_list(f"extended_{event}_commands", []))

    result = HotkeyConfig(
        urls=tuple(urls),
        sequence_delay=section.get_float("sequence_delay", 0.1),
        ttl=section.get_float("ttl", 2.0, strictly_positive=True),
        exit_ttl=section.get_float("exit_ttl", 10.0, strictly_positive=True),
        token=token,
        ca_file=ca_file,
        format=section.get_choice("format", "text", ("text", "json")),
        replay=section.get_bool("replay", False),
        commands=commands,
        extended_commands=extended,
        ping_interval=section.get_float("ping_interval", 0.25, strictly_positive=True),
        ping_timeout=section.get_float("ping_timeout", 0.25, strictly_positive=True),
        open_timeout=section.get_float("open_timeout", 2.0, strictly_positive=True),
        reconnect_max_delay=section.get_float("reconnect_max_delay", 2.0, strictly_positive=True),
        queue_size=section.get_int("queue_size", 64, minimum=1),
        flush_timeout=section.get_float("flush_timeout", 2.0),
    )
    longest = max((len(c) for c in (*commands.values(), *extended.values())), default=1)
    span = result.sequence_delay * (longest - 1)
    for key in ("ttl", "exit_ttl"):
        value = getattr(result, key)
        if span >= value:
            raise ConfigError(
                f"[hotkey_ws] {key} = {value:g}{section.source(key)}: must be longer"
                f" than the longest sequence takes ({longest} commands"
                f" {result.sequence_delay:g} s apart = {span:g} s)"
            )
    if result.ca_file and not any(u.startswith("wss://") for u in result.urls):
        raise ConfigError(
            f"[hotkey_ws] ca_file = {ca_file!r}: only used with wss:// URLs, and none is configured"
        )
    return result
