"""The ``[das]`` table, validated; every key can come from ``MOMOBOT_DAS_<KEY>``.

The password is never a key of the file: it comes from ``MOMOBOT_DAS_PASSWORD`` only, so a
configuration file can be shared, committed or pasted into a bug report without it.
"""

from __future__ import annotations

import os
from datetime import tzinfo
from typing import Any

import attrs

from momobot_core.config import Config, ConfigError, Section, zone
from momobot_das.protocol import check_route

ENV_PREFIX = "MOMOBOT_DAS_"
PASSWORD_ENV = "MOMOBOT_DAS_PASSWORD"
DEFAULT_PORT = 9910
DEFAULT_TIMEZONE = "America/New_York"

KEYS = {
    "host",
    "port",
    "user",
    "account",
    "route",
    "entry_offset",
    "exit_offset",
    "exit_reprice_s",
    "entry_ttl",
    "lost_order_wait_s",
    "timezone",
    "catastrophic_stop_pct",
    "replay",
    "connect_timeout",
    "reconnect_max_delay",
}


@attrs.frozen
class DasConfig:
    """Everything the plugin needs, checked once at start-up."""

    user: str
    account: str
    route: str
    password: str = attrs.field(repr=False)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: Cents above the ask for an entry's marketable limit.
    entry_offset: float = 5.0
    #: Cents below the bid for a stop, manual or kill exit's marketable limit.
    exit_offset: float = 5.0
    #: An exit not filled within this many seconds is cancelled, re-priced from the bid and re-sent.
    exit_reprice_s: float = 1.0
    #: An entry not written to DAS within this many seconds of its event is dropped (and alerted).
    entry_ttl: float = 2.0
    #: A sell written on a connection that died unanswered may still reach the platform when it
    #: wakes: no sell of its symbol replaces it until this long after the next login's lists, and
    #: a position list asked for after that (so the replacement is sized on what the old one did).
    lost_order_wait_s: float = 3.0
    timezone: str = DEFAULT_TIMEZONE
    #: A stop order this far (percent) below each entry fill, regular hours only; None: none.
    catastrophic_stop_pct: float | None = None
    #: Send in replay and demo mode too (never by default: a recording must not trade).
    replay: bool = False
    connect_timeout: float = 2.0
    reconnect_max_delay: float = 5.0

    @property
    def tz(self) -> tzinfo:
        return zone(self.timezone)

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def configured(config: Config) -> bool:
    """Whether the user configured the plugin at all: a ``[das]`` table or a MOMOBOT_DAS_ key."""
    return "das" in config.tables or any(f"{ENV_PREFIX}{key.upper()}" in os.environ for key in KEYS)


def replay_wanted(config: Config) -> bool:
    """``[das] replay`` (or MOMOBOT_DAS_REPLAY), read alone: a replay need not check the rest."""
    return Section("das", config.table("das"), env_prefix=ENV_PREFIX).get_bool("replay", False)


def load_das_config(config: Config | dict[str, Any] | None = None) -> DasConfig:
    """Read ``[das]`` from the core's configuration (or a plain dict) plus the environment."""
    if config is None:
        table: dict[str, Any] = {}
    elif isinstance(config, Config):
        table = config.table("das")
    else:
        table = dict(config)
    if "password" in table:
        raise ConfigError(
            f"[das] password: not read from a file (files get shared); set {PASSWORD_ENV} in the"
            " environment instead, and remove the key (value not shown)"
        )
    section = Section("das", table, env_prefix=ENV_PREFIX)
    section.check_known(KEYS)
    missing = [key for key in ("user", "account", "route") if not section.get_str(key, None)]
    if missing:
        raise ConfigError(
            f"[das] {', '.join(missing)}: required (your DAS login, the account to trade, and the"
            " order route your broker gives you, such as SMAT)"
        )
    user = section.get_str("user", None) or ""
    account = section.get_str("account", None) or ""
    route = section.get_str("route", None) or ""
    for key, value in (("user", user), ("account", account)):
        if any(c.isspace() for c in value) or not value.isascii() or not value.isprintable():
            raise ConfigError(
                f"[das] {key} = {value!r}{section.source(key)}: printable ASCII without spaces only"
            )
    try:
        check_route(route)
    except ValueError as exc:
        raise ConfigError(f"[das] route = {route!r}{section.source('route')}: {exc}") from None
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise ConfigError(f"[das]: no password: set {PASSWORD_ENV} in the environment")
    if any(c.isspace() for c in password) or not password.isascii() or not password.isprintable():
        raise ConfigError(
            f"{PASSWORD_ENV}: printable ASCII without spaces or line breaks only (value not shown)"
        )
    host = section.get_str("host", "127.0.0.1") or ""
    if not host or any(c.isspace() for c in host) or not host.isascii():
        raise ConfigError(f"[das] host = {host!r}{section.source('host')}: not a host name or address")
    port = section.get_int("port", DEFAULT_PORT, minimum=1)
    if port > 65535:
        raise ConfigError(f"[das] port = {port}{section.source('port')}: must be from 1 to 65535")
    timezone = section.get_str("timezone", DEFAULT_TIMEZONE) or DEFAULT_TIMEZONE
    try:
        zone(timezone)
    except ConfigError:
        raise ConfigError(
            f"[das] timezone = {timezone!r}{section.source('timezone')}: not a time zone name such as"
            f" {DEFAULT_TIMEZONE!r} (the DAS PC's clock, which stamps orders and trades)"
        ) from None
    stop_pct = None
    if section.has("catastrophic_stop_pct"):
        stop_pct = section.get_float("catastrophic_stop_pct", 0.0, strictly_positive=True)
        if stop_pct >= 100:
            raise ConfigError(
                f"[das] catastrophic_stop_pct = {stop_pct:g}{section.source('catastrophic_stop_pct')}:"
                " must be below 100 (percent below the entry fill)"
            )
    offsets = {}
    for key in ("entry_offset", "exit_offset"):
        offsets[key] = section.get_float(key, 5.0)
        if offsets[key] > 100:
            raise ConfigError(
                f"[das] {key} = {offsets[key]:g}{section.source(key)}: cents, at most 100 (a dollar)"
            )
    return DasConfig(
        user=user,
        account=account,
        route=route,
        password=password,
        host=host,
        port=port,
        entry_offset=offsets["entry_offset"],
        exit_offset=offsets["exit_offset"],
        exit_reprice_s=_seconds(section, "exit_reprice_s", 1.0, 0.1, 60),
        entry_ttl=_seconds(section, "entry_ttl", 2.0, 0.05, 60),
        lost_order_wait_s=_seconds(section, "lost_order_wait_s", 3.0, 0.1, 60),
        timezone=timezone,
        catastrophic_stop_pct=stop_pct,
        replay=section.get_bool("replay", False),
        connect_timeout=_seconds(section, "connect_timeout", 2.0, 0.1, 60),
        reconnect_max_delay=_seconds(section, "reconnect_max_delay", 5.0, 0.1, 300),
    )


def _seconds(section: Section, key: str, default: float, low: float, high: float) -> float:
    value = section.get_float(key, default, strictly_positive=True)
    if not low <= value <= high:
        raise ConfigError(f"[das] {key} = {value:g}{section.source(key)}: seconds, from {low:g} to {high:g}")
    return value
