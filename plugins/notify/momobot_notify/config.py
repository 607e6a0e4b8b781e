"""The ``[notify]`` table (environment ``MOMOBOT_NOTIFY_<KEY>``): where notifications go and which."""

from __future__ import annotations

import os
from datetime import time

import attrs

from momobot_core import ConfigError
from momobot_core.config import Config, Section
from momobot_notify._apprise import load
from momobot_notify.secrets import guard, shown

#: Alert levels, lowest first: ``min_level`` sends its own and those above it.
LEVELS = ("info", "warning", "critical")
KNOWN = {
    "urls",
    "alerts",
    "fills",
    "closed",
    "kill",
    "summary",
    "min_level",
    "min_interval_s",
    "retry_s",
    "retry_max_s",
    "queue_size",
    "summary_at",
    "title",
    "replay",
}
#: The environment variable that holds the URLs, separated by spaces or new lines (never commas:
#: an apprise URL may hold them, ``mailto://...?to=a@x.com,b@y.com``).
URLS_VARIABLE = "MOMOBOT_NOTIFY_URLS"


@attrs.frozen
class NotifyConfig:
    urls: tuple[str, ...] = ()
    alerts: bool = True
    fills: bool = True
    closed: bool = True
    kill: bool = True
    summary: bool = True
    min_level: str = "warning"
    #: At most one message to a URL this often; what comes meanwhile goes as one message.
    min_interval_s: float = 10.0
    #: A failed send is retried after this, doubling each time up to ``retry_max_s``.
    retry_s: float = 2.0
    retry_max_s: float = 60.0
    #: Notices waiting for one URL, at most; past it the oldest are dropped and counted (the next
    #: message says how many).
    queue_size: int = 500
    #: When the day's summary goes (exchange time); None: at the end of the ``[momobot] session``.
    summary_at: time | None = None
    title: str = "MomoBot"
    #: Send from a replay or the demo too (off: a replay of last month must not ring your phone).
    replay: bool = False


def load_notify_config(config: Config) -> NotifyConfig:
    """Read and check ``[notify]``; ConfigError names the key and the value (never a URL's secrets)."""
    apprise = load()

    section = config.section("notify", env_prefix="MOMOBOT_NOTIFY_")
    section.check_known(KNOWN)
    for var in sorted(os.environ):  # a misspelt variable must not leave a default in place
        if var.startswith("MOMOBOT_NOTIFY_") and var[len("MOMOBOT_NOTIFY_") :].lower() not in KNOWN:
            raise ConfigError(f"{var}: no [notify] key of that name (known keys: {', '.join(sorted(KNOWN))})")
    urls = _urls(config.table("notify").get("urls"))
    guard(urls)  # before apprise reads a URL: its debug log names what it loaded
    for url in urls:
        if apprise.Apprise.instantiate(url) is None:
            raise ConfigError(
                f"[notify] urls: {shown(url)} is not a notification URL apprise knows (see"
                " https://github.com/caronc/apprise/wiki for each service's form)"
            )
    summary_at = section.get_str("summary_at", None)  # New York time, the exchange's
    at = None
    if summary_at:
        try:
            hours, minutes = summary_at.split(":")
            if len(hours) != 2 or len(minutes) != 2:
                raise ValueError
            at = time(int(hours), int(minutes))
        except ValueError:
            raise ConfigError(
                f"[notify] summary_at = {summary_at!r}{section.source('summary_at')}: must be a time"
                ' of day written "HH:MM" on the 24-hour clock, such as "16:05"'
            ) from None
    retry_s = section.get_float("retry_s", 2.0, strictly_positive=True)
    return NotifyConfig(
        urls=tuple(urls),
        alerts=section.get_bool("alerts", True),
        fills=section.get_bool("fills", True),
        closed=section.get_bool("closed", True),
        kill=section.get_bool("kill", True),
        summary=section.get_bool("summary", True),
        min_level=section.get_choice("min_level", "warning", LEVELS),
        min_interval_s=_at_most_an_hour(section, "min_interval_s", section.get_float("min_interval_s", 10.0)),
        retry_s=_at_most_an_hour(section, "retry_s", retry_s),
        retry_max_s=max(
            retry_s,
            _at_most_an_hour(
                section, "retry_max_s", section.get_float("retry_max_s", 60.0, strictly_positive=True)
            ),
        ),
        queue_size=section.get_int("queue_size", 500, minimum=1),
        summary_at=at,
        title=section.get_str("title", "MomoBot") or "MomoBot",
        replay=section.get_bool("replay", False),
    )


def _at_most_an_hour(section: Section, key: str, value: float) -> float:
    if value > 3600:
        raise ConfigError(f"[notify] {key} = {value:g}{section.source(key)}: must be at most 3600 (an hour)")
    return value


def _urls(from_file: object) -> list[str]:
    raw = os.environ.get(URLS_VARIABLE)
    if raw is not None:
        if not raw.split():
            raise ConfigError(
                f"{URLS_VARIABLE} is set but empty: unset it to use [notify] urls, or name at least"
                " one URL (to send nothing, uninstall momobot-notify or leave urls out)"
            )
        return raw.split()
    if from_file is None:
        return []
    if isinstance(from_file, str):
        return from_file.split()
    if isinstance(from_file, list) and all(isinstance(u, str) and u.strip() for u in from_file):
        return [u.strip() for u in from_file]
    raise ConfigError("[notify] urls: must be a list of apprise URLs (strings)")
