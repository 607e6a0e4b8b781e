"""The market's clock: which session it is (pre-market, regular, after-hours, closed) on the
exchange's calendar, holidays and half days included.

US equities (New York time): pre-market 04:00-09:30, the regular session 09:30-16:00,
after-hours 16:00-20:00. On a half day the regular session ends at 13:00 and after-hours at
17:00. Weekends and exchange holidays are closed all day.

Holidays and early closes come from ``exchange_calendars`` (the ``calendar`` extra:
``pip install 'momobot-core[calendar]'``), the NYSE calendar (XNYS), read a year at a time
the first time a date of that year is asked for (about 0.3 s to import, 0.1 s a year,
measured in docs/PERFORMANCE.md) and kept as a plain table: a lookup is a dict access.
Without the library, or for a date past the calendar's range, every weekday is a full
trading day, and that is said once in the log.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from zoneinfo import ZoneInfo

import attrs

from momobot_core.config import ConfigError

if TYPE_CHECKING:
    from momobot_core.config import CoreSettings
    from momobot_core.risk import RiskSettings

log = logging.getLogger("momobot.market")

NEW_YORK = ZoneInfo("America/New_York")
#: The sessions a bot may trade in, in the order of the day.
SESSIONS = ("pre", "regular", "after")
#: What each session is called for a person.
NAMES = {"pre": "pre-market", "regular": "regular session", "after": "after-hours", "closed": "closed"}
PRE_OPEN = time(4, 0)
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
#: After-hours lasts this long past the regular close (20:00, or 17:00 after a 13:00 close).
AFTER_HOURS = timedelta(hours=4)
CALENDAR = "XNYS"
#: The longest the calendar's reader (a child process) may take for a year.
READ_TIMEOUT_S = 60.0
#: A year read is kept on disk this many days, then read again.
CACHE_DAYS = 7


@attrs.frozen
class DayHours:
    """One day's sessions, New York time. ``open`` is None on a day the market is closed."""

    day: date
    open: datetime | None
    close: datetime | None
    early_close: bool = False
    #: Why the market is closed all day (``weekend``, ``holiday``), or None.
    closed: str | None = None

    @property
    def pre_open(self) -> datetime | None:
        return None if self.open is None else datetime.combine(self.day, PRE_OPEN, NEW_YORK)

    @property
    def after_close(self) -> datetime | None:
        return None if self.close is None else self.close + AFTER_HOURS

    def span(self, session: str) -> tuple[datetime, datetime] | None:
        """When ``session`` (pre, regular, after) starts and ends this day; None when closed."""
        if self.open is None or self.close is None:
            return None
        if session == "pre":
            assert self.pre_open is not None
            return self.pre_open, self.open
        if session == "regular":
            return self.open, self.close
        assert self.after_close is not None
        return self.close, self.after_close

    def session_at(self, ts: datetime) -> str:
        """``pre``, ``regular``, ``after`` or ``closed`` at ``ts`` (an aware time on this day)."""
        if self.open is None or self.close is None:
            return "closed"
        assert self.pre_open is not None and self.after_close is not None
        if ts < self.pre_open or ts >= self.after_close:
            return "closed"
        if ts < self.open:
            return "pre"
        if ts < self.close:
            return "regular"
        return "after"

    def describe(self) -> str:
        if self.open is None or self.close is None:
            return f"closed ({self.closed})"
        hours = f"{self.open:%H:%M}-{self.close:%H:%M}"
        return f"half day: regular {hours}" if self.early_close else f"regular {hours}"


class MarketHours:
    """The exchange's calendar, read lazily a year at a time and shared by every instance of
    the process; thread-safe."""

    _days: ClassVar[dict[date, tuple[datetime, datetime, bool]]] = {}
    _years: ClassVar[set[int]] = set()
    #: Years the library's calendar covers: a weekday missing from them is a holiday.
    _library_years: ClassVar[set[int]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _warned: ClassVar[bool] = False
    #: Where the calendar comes from: ``exchange_calendars XNYS`` or the weekday rule.
    source: ClassVar[str] = "not read yet"

    def hours(self, day: date) -> DayHours:
        if day.year not in self._years:
            self._load(day.year)
        found = self._days.get(day)
        if found is not None:
            return DayHours(day, found[0], found[1], found[2])
        if day.year in self._library_years:
            return DayHours(day, None, None, closed="weekend" if day.weekday() >= 5 else "holiday")
        return _weekday(day)

    def session_at(self, ts: datetime) -> str:
        local = ts.astimezone(NEW_YORK)
        return self.hours(local.date()).session_at(local)

    def is_regular(self, ts: datetime) -> bool:
        return self.session_at(ts) == "regular"

    def _load(self, year: int) -> None:
        cls = type(self)
        with cls._lock:
            if year in cls._years:
                return
            days = _read_year(year)
            if days is None:
                if not cls._warned:
                    cls._warned = True
                    log.warning(
                        "no exchange calendar for %d (%s): every weekday counts as a full trading"
                        " day, holidays and half days are not known",
                        year,
                        _why_missing(),
                    )
                cls.source = "weekdays (no exchange calendar)"
            else:
                cls._days.update(days)
                cls._library_years.add(year)
                cls.source = f"exchange_calendars {CALENDAR}"
            cls._years.add(year)

    @classmethod
    def forget(cls) -> None:
        """Drop what was read (tests: read again, in another environment)."""
        with cls._lock:
            cls._days, cls._years, cls._library_years = {}, set(), set()
            cls._warned, cls.source = False, "not read yet"


def _weekday(day: date) -> DayHours:
    if day.weekday() >= 5:
        return DayHours(day, None, None, closed="weekend")
    return DayHours(
        day, datetime.combine(day, REGULAR_OPEN, NEW_YORK), datetime.combine(day, REGULAR_CLOSE, NEW_YORK)
    )


_missing: list[str] = []


def _why_missing() -> str:
    return (
        _missing[-1] if _missing else "exchange_calendars not installed: pip install 'momobot-core[calendar]'"
    )


def _read_year(year: int) -> dict[date, tuple[datetime, datetime, bool]] | None:
    """Every trading day of ``year`` on the exchange's calendar: open, close, early close.

    Read in a child process: pandas and the calendar cost about 100 MiB that would stay in this
    process for its life (measured in docs/PERFORMANCE.md); the child prints the year as JSON
    and exits."""
    cached = _cached(year)
    if cached is not None:
        return _table(cached)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "momobot_core.market", str(year)],
            capture_output=True,
            text=True,
            timeout=READ_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _missing.append(f"the calendar could not be read: {exc}")
        return None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        _missing.append(lines[-1] if lines else f"the calendar's reader exited {done.returncode}")
        return None
    rows = json.loads(done.stdout)
    _keep(year, rows)
    return _table(rows)


def _table(rows: list[list[str]]) -> dict[date, tuple[datetime, datetime, bool]]:
    out = {}
    for opened, closed in rows:
        start = datetime.fromisoformat(opened).astimezone(NEW_YORK)
        end = datetime.fromisoformat(closed).astimezone(NEW_YORK)
        out[start.date()] = (start, end, end.time() < REGULAR_CLOSE)
    return out


def cache_dir() -> Path:
    """Where read years are kept: ``$MOMOBOT_CACHE_DIR``, else ``$XDG_CACHE_HOME/momobot``, else
    ``~/.cache/momobot``."""
    own = os.environ.get("MOMOBOT_CACHE_DIR")
    if own:
        return Path(own)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "momobot"


def _cache_path(year: int) -> Path:
    return cache_dir() / f"{CALENDAR.lower()}-{year}.json"


def _cached(year: int) -> list[list[str]] | None:
    """A year read less than :data:`CACHE_DAYS` ago (a calendar learns of new holidays)."""
    try:
        kept = json.loads(_cache_path(year).read_text())
        made = date.fromisoformat(kept["made"])
        rows = kept["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not 0 <= (date.today() - made).days < CACHE_DAYS or not isinstance(rows, list) or not rows:
        return None
    try:
        _table(rows)
    except (ValueError, TypeError):
        return None  # damaged: read the year again
    return rows


def _keep(year: int, rows: list[list[str]]) -> None:
    path = _cache_path(year)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps({"made": date.today().isoformat(), "rows": rows}))
        os.replace(partial, path)
    except OSError as exc:  # a read-only home: read again next time
        log.debug("could not keep the calendar of %d in %s: %s", year, path, exc)


def _print_year(year: int) -> int:
    """The child's side of :func:`_read_year`: the year's sessions as JSON on stdout."""
    # The library's and pandas's deprecation notices are theirs, not something a trader can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import exchange_calendars
        except ImportError:
            print(
                "exchange_calendars is not installed: pip install 'momobot-core[calendar]'", file=sys.stderr
            )
            return 3
        calendar = exchange_calendars.get_calendar(CALENDAR, start=f"{year}-01-01", end=f"{year}-12-31")
        rows = [
            (opened.isoformat(), closed.isoformat())
            for opened, closed in zip(calendar.schedule["open"], calendar.schedule["close"], strict=True)
        ]
    json.dump(rows, sys.stdout)
    return 0


def parse_sessions(value: object, where: str) -> tuple[str, ...] | None:
    """``[momobot] session``: ``"regular"``, ``"extended"`` (all three), one name, or a list of
    ``pre``, ``regular``, ``after``; None (not set) trades at any time."""
    if value is None:
        return None
    names: Iterable[object]
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "extended":
            return SESSIONS
        names = [part.strip() for part in text.replace(",", " ").split()]
    elif isinstance(value, list):
        names = [name.strip().lower() if isinstance(name, str) else name for name in value]
    else:
        names = [value]
    chosen = []
    for name in names:
        if name not in SESSIONS:
            raise ConfigError(
                f"[momobot] session = {value!r}{where}: sessions are pre, regular and after (or"
                ' "extended" for all three), such as ["pre", "regular"]'
            )
        chosen.append(name)
    if not chosen:
        raise ConfigError(f"[momobot] session = {value!r}{where}: name at least one session")
    ordered = tuple(s for s in SESSIONS if s in chosen)
    if ordered == ("pre", "after"):
        raise ConfigError(
            f"[momobot] session = {value!r}{where}: the sessions must follow each other; pre and"
            " after without regular would leave a gap ([risk] trading_start/trading_end narrow"
            " them instead)"
        )
    return ordered


def _edges(sessions: tuple[str, ...]) -> tuple[time, time]:
    """Where the configured sessions start and end on a full day (New York time)."""
    start = {"pre": PRE_OPEN, "regular": REGULAR_OPEN, "after": REGULAR_CLOSE}[sessions[0]]
    end = {"pre": REGULAR_OPEN, "regular": REGULAR_CLOSE, "after": time(20, 0)}[sessions[-1]]
    return start, end


def check_window(settings: CoreSettings, risk: RiskSettings) -> None:
    """``[risk] trading_start``/``trading_end`` must lie inside ``[momobot] session``."""
    sessions = settings.session
    if sessions is None or str(settings.tz) != str(NEW_YORK):
        return
    start, end = _edges(sessions)
    named = ", ".join(sessions)
    if risk.trading_start is not None and not start <= risk.trading_start < end:
        raise ConfigError(
            f"[risk] trading_start = {risk.trading_start:%H:%M} lies outside [momobot] session ="
            f" {named} ({start:%H:%M}-{end:%H:%M} New York time)"
        )
    if risk.trading_end is not None and not start < risk.trading_end <= end:
        raise ConfigError(
            f"[risk] trading_end = {risk.trading_end:%H:%M} lies outside [momobot] session ="
            f" {named} ({start:%H:%M}-{end:%H:%M} New York time)"
        )


def session_refusal(market: MarketHours, sessions: tuple[str, ...], symbol: str, ts: datetime) -> str | None:
    """Why an entry at ``ts`` is outside the configured sessions, or None."""
    local = ts.astimezone(NEW_YORK)
    hours = market.hours(local.date())
    now = hours.session_at(local)
    if now in sessions:
        return None
    allowed = " and ".join(f"the {NAMES[s]}" for s in sessions)
    if hours.closed is not None:
        return f"{symbol}: the market is closed today ({hours.closed}); entries are taken in {allowed} only"
    return (
        f"{symbol}: it is {NAMES[now] if now != 'closed' else 'outside the trading day'} now"
        f" ({local:%H:%M} New York, {hours.describe()}); entries are taken in {allowed} only"
        " ([momobot] session)"
    )


def session_status(market: MarketHours, sessions: tuple[str, ...] | None, ts: datetime) -> dict[str, object]:
    local = ts.astimezone(NEW_YORK)
    hours = market.hours(local.date())
    now = hours.session_at(local)
    return {
        "session": now,
        "name": NAMES[now],
        "in_session": sessions is None or now in sessions,
        "sessions": list(sessions) if sessions is not None else None,
        "day": hours.describe(),
        "early_close": hours.early_close,
        "calendar": market.source,
    }


def last_close(market: MarketHours, sessions: tuple[str, ...] | None, day: date) -> time | None:
    """When ``day``'s last configured session ends (the regular close when none is configured)."""
    hours = market.hours(day)
    last = sessions[-1] if sessions else "regular"
    span = hours.span(last)
    return None if span is None else span[1].timetz().replace(tzinfo=None)


if __name__ == "__main__":
    sys.exit(_print_year(int(sys.argv[1])))
