"""Configuration: one TOML file, one table per component, environment overrides.

The file comes from ``--config PATH`` or ``MOMOBOT_CONFIG``; without either,
every component runs on its defaults. A component reads its table through
:class:`Section`, which applies the environment overrides and turns a bad value
into a :class:`ConfigError` that names the key, the value and where it came from.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

log = logging.getLogger("momobot.config")

#: The core's own tables.
CORE_TABLES = ("momobot", "api", "risk", "bracket")
#: Tables of this project's plugins: configuring one that is not installed is a warning, not an error.
PLUGIN_TABLES = ("hotkey_ws", "voice", "alpaca", "massive", "das", "notify")
DEFAULT_TIMEZONE = "America/New_York"
#: The entry-point group plugins are installed under.
ENTRY_POINT_GROUP = "momobot"


def installed_plugin_names() -> set[str]:
    """The entry-point names of every installed plugin, blocked or not."""
    import importlib.metadata

    return {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


class ConfigError(Exception):
    """Invalid configuration. The message names the key and the value; exit code 2."""


class InputError(Exception):
    """Input that cannot be read (a file, a line, a field). The message says where."""


@attrs.frozen
class Config:
    """The parsed configuration file: ``{table name: {key: value}}``."""

    tables: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    path: Path | None = None

    def table(self, name: str) -> dict[str, Any]:
        """A copy of one table; empty when the file has none of that name."""
        return dict(self.tables.get(name, {}))

    def section(self, name: str, env_prefix: str | None = None) -> Section:
        return Section(name, self.table(name), env_prefix)

    def check_tables(self, installed: Iterable[str]) -> None:
        """Every table belongs to the core or a plugin: a misspelt ``[hotkey_ws]`` must not fall
        back to defaults (the trading PC's address among them) without a word.

        Raises ConfigError naming the table and the tables that exist; a table
        of one of this project's plugins that is not installed is a warning.
        """
        installed = set(installed)
        known = [*CORE_TABLES, *sorted(installed)]
        where = f"config file {self.path}: " if self.path else ""
        for name in self.tables:
            if name in CORE_TABLES or name in installed:
                continue
            if name in PLUGIN_TABLES:
                log.warning(
                    "%s[%s] configures the %s plugin, which is not installed: ignored", where, name, name
                )
                continue
            if name == "risk":
                raise ConfigError(
                    f"{where}[risk]: risk limits are not implemented in this release;"
                    " remove the table rather than trade believing it protects you"
                )
            close = difflib.get_close_matches(name, [*known, *PLUGIN_TABLES], n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise ConfigError(
                f"{where}[{name}]: no component has this table{hint}; the tables are"
                f" {', '.join(f'[{t}]' for t in known)}"
            )


def load_config(path: str | os.PathLike[str] | None = None, *, check_tables: bool = True) -> Config:
    """Read the TOML file at ``path`` (else ``$MOMOBOT_CONFIG``; else defaults).

    Every table must belong to the core or an installed plugin (see
    :meth:`Config.check_tables`) unless ``check_tables`` is False.
    """
    source = ""
    if path is None:
        path = os.environ.get("MOMOBOT_CONFIG") or None
        source = " (from MOMOBOT_CONFIG)"
    if path is None:
        return Config()
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {file}{source}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"config file {file}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file}: not valid TOML: {exc}") from None
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(
                f"config file {file}: {name} = {value!r}: settings belong in a table such as"
                " [momobot], [api] or [hotkey_ws]"
            )
    config = Config(tables=data, path=file)
    if check_tables:
        config.check_tables(installed_plugin_names())
    return config


class Section:
    """Typed, validated access to one table, with ``<PREFIX><KEY>`` environment overrides.

    Values from the environment are strings; they are converted like the file's
    values, and an error says which variable held the bad value.
    """

    def __init__(self, name: str, table: Mapping[str, Any], env_prefix: str | None = None) -> None:
        self.name = name
        self._table = dict(table)
        self._env_prefix = env_prefix

    def check_known(self, known: Iterable[str]) -> None:
        known = set(known)
        unknown = sorted(set(self._table) - known)
        if unknown:
            raise ConfigError(
                f"[{self.name}] {unknown[0]}: unknown key (known keys: {', '.join(sorted(known))})"
            )

    def _raw(self, key: str) -> tuple[Any, str] | None:
        if self._env_prefix:
            var = self._env_prefix + key.upper()
            if var in os.environ:
                return os.environ[var], f" (from {var})"
        if key in self._table:
            return self._table[key], ""
        return None

    def _error(self, key: str, value: Any, where: str, why: str) -> ConfigError:
        return ConfigError(f"[{self.name}] {key} = {value!r}{where}: {why}")

    def get_raw(self, key: str) -> tuple[Any, str] | None:
        """The value as given (any type) and where from (`` (from VAR)`` or empty); None if unset."""
        return self._raw(key)

    def has(self, key: str) -> bool:
        return self._raw(key) is not None

    def source(self, key: str) -> str:
        """`` (from VAR)`` when the environment set ``key``, else empty: for error messages."""
        raw = self._raw(key)
        return raw[1] if raw else ""

    def get_float(
        self, key: str, default: float, *, minimum: float = 0.0, strictly_positive: bool = False
    ) -> float:
        raw = self._raw(key)
        if raw is None:
            return default
        value, where = raw
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise self._error(key, value, where, "must be a number") from None
        if not math.isfinite(number) or number < minimum or (strictly_positive and number <= 0):
            bound = f"> {minimum:g}" if strictly_positive else f">= {minimum:g}"
            raise self._error(key, value, where, f"must be a finite number {bound}")
        return number

    def get_int(self, key: str, default: int, *, minimum: int = 0) -> int:
        raw = self._raw(key)
        if raw is None:
            return default
        value, where = raw
        try:
            if isinstance(value, bool | float):
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            raise self._error(key, value, where, "must be a whole number") from None
        if number < minimum:
            raise self._error(key, value, where, f"must be >= {minimum}")
        return number

    def get_bool(self, key: str, default: bool) -> bool:
        raw = self._raw(key)
        if raw is None:
            return default
        value, where = raw
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
            return False
        raise self._error(key, value, where, "must be true or false")

    def get_str(self, key: str, default: str | None) -> str | None:
        raw = self._raw(key)
        if raw is None:
            return default
        value, where = raw
        if not isinstance(value, str):
            raise self._error(key, value, where, "must be a string")
        return value

    def get_str_list(self, key: str, default: list[str]) -> list[str]:
        """A list of strings; from the environment, comma-separated."""
        raw = self._raw(key)
        if raw is None:
            return list(default)
        value, where = raw
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()] if where else [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._error(key, value, where, "must be a list of non-empty strings")
        return list(value)

    def get_choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        options = list(choices)
        value = self.get_str(key, default)
        assert value is not None
        if value not in options:
            raw = self._raw(key)
            where = raw[1] if raw else ""
            raise self._error(key, value, where, f"must be one of {', '.join(options)}")
        return value


def zone(name: str) -> tzinfo:
    """The time zone named ``name`` (IANA, such as America/New_York); raises ConfigError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"[momobot] timezone = {name!r}: not a time zone name such as {DEFAULT_TIMEZONE!r}"
        ) from None


@attrs.frozen
class CoreSettings:
    """The ``[momobot]`` table."""

    min_hold_s: float = 0.0
    #: The exchange's time zone: the trading day, naive timestamps in recordings, human output.
    timezone: str = DEFAULT_TIMEZONE
    #: The live source ``serve`` runs (``momobot sources`` lists them); None: quotes come by HTTP.
    source: str | None = None
    #: Symbols a live source streams from the start (open trades' are added, and POST /watch).
    watchlist: tuple[str, ...] = ()
    #: How long POST /trades on a symbol without a quote waits for its first one.
    quote_wait_s: float = 3.0
    #: How long start-up waits for a journal another program holds when the side file has exits
    #: for it; then it refuses to start (nothing is restored from half the truth).
    journal_wait_s: float = 10.0
    #: Symbols armed with a strategy at start: ``"ABCD pullback 1m"`` (docs/strategies.md).
    arm: tuple[str, ...] = ()
    #: A folder ``serve`` records every quote and action into, a day file per trading day
    #: (docs/backtest.md); None: nothing is recorded.
    record: str | None = None
    #: The sessions entries are taken in (``pre``, ``regular``, ``after``); None: at any time.
    session: tuple[str, ...] | None = None

    @property
    def tz(self) -> tzinfo:
        return zone(self.timezone)

    @classmethod
    def from_config(cls, config: Config) -> CoreSettings:
        section = config.section("momobot", env_prefix="MOMOBOT_")
        section.check_known(
            {
                "min_hold_s",
                "timezone",
                "source",
                "watchlist",
                "quote_wait_s",
                "journal_wait_s",
                "arm",
                "record",
                "session",
            }
        )
        min_hold_s = section.get_float("min_hold_s", 0.0)
        if min_hold_s > 86400:
            raise ConfigError(
                f"[momobot] min_hold_s = {min_hold_s:g}{section.source('min_hold_s')}:"
                " must be at most 86400 (one day)"
            )
        timezone = section.get_str("timezone", DEFAULT_TIMEZONE) or DEFAULT_TIMEZONE
        zone(timezone)
        watchlist = tuple(s.upper() for s in section.get_str_list("watchlist", []))
        quote_wait_s = section.get_float("quote_wait_s", 3.0)
        if quote_wait_s > 60:
            raise ConfigError(f"[momobot] quote_wait_s = {quote_wait_s:g}: must be at most 60")
        journal_wait_s = section.get_float("journal_wait_s", 10.0)
        if journal_wait_s > 600:
            raise ConfigError(f"[momobot] journal_wait_s = {journal_wait_s:g}: must be at most 600")
        return cls(
            journal_wait_s=journal_wait_s,
            min_hold_s=min_hold_s,
            timezone=timezone,
            source=section.get_str("source", None) or None,
            watchlist=watchlist,
            quote_wait_s=quote_wait_s,
            arm=tuple(section.get_str_list("arm", [])),
            record=section.get_str("record", None) or None,
            session=_sessions(section),
        )


def _sessions(section: Section) -> tuple[str, ...] | None:
    from momobot_core.market import parse_sessions

    raw = section.get_raw("session")
    return None if raw is None else parse_sessions(raw[0], raw[1])
