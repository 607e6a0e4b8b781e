"""Account limits the engine checks before every entry (``[risk]``), and the day they count.

Every limit is optional. Entries are refused with the limit's name (the
``rule``); exits never are. The trading day runs in ``[momobot] timezone``: a
replay counts on event time, live trading on the wall clock.

:class:`RiskSettings` reads and checks the table; :class:`RiskBook` keeps the
day's count (realised P&L, entries, the losing streak, a halt) and answers
"may this entry go?". The engine owns one book and tells it about every leg
and every closed trade; the book never sends anything itself.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_FLOOR, Decimal

import attrs

from momobot_core.config import Config, ConfigError, Section

ENV_PREFIX = "MOMOBOT_RISK_"
DAY_S = 86_400

#: Why entries are halted for the day (``RiskBook.halt``): the rules that halt, and the button.
HALT_REASONS = ("kill_switch", "max_daily_loss", "loss_streak")


class RiskRefused(Exception):
    """An entry a limit refuses; ``rule`` names the ``[risk]`` key (or ``kill_switch``)."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


@attrs.frozen
class RiskSettings:
    """The ``[risk]`` table. ``None`` is no limit."""

    max_daily_loss: float | None = None
    max_trades_per_day: int | None = None
    max_open_trades: int | None = None
    max_shares: int | None = None
    max_position_value: float | None = None
    trading_start: time | None = None
    trading_end: time | None = None
    loss_streak: int | None = None
    #: A live source silent this long, or an open trade's symbol without a quote this long:
    #: an alert, and entries halt until quotes flow again. 0 turns it off.
    stale_quote_s: float = 10.0
    #: Unrealised loss counts only on quotes whose spread is at most this (percent of the bid).
    max_spread_pct: float = 2.0
    #: An unrealised breach of max_daily_loss must last this long before the book is flattened.
    loss_confirm_s: float = 2.0

    @classmethod
    def from_config(cls, config: Config) -> RiskSettings:
        section = config.section("risk", env_prefix=ENV_PREFIX)
        known = attrs.fields_dict(cls)
        section.check_known(known)
        for var in sorted(os.environ):
            if var.startswith(ENV_PREFIX) and var[len(ENV_PREFIX) :].lower() not in known:
                raise ConfigError(
                    f"{var}: not a [risk] key (known keys: {', '.join(sorted(known))}); a misspelt"
                    " limit must not leave you trading without it"
                )
        start = _clock_time(section, "trading_start")
        end = _clock_time(section, "trading_end")
        if start is not None and end is not None and not start < end:
            raise ConfigError(
                f"[risk] trading_end = {end:%H:%M} must be after trading_start = {start:%H:%M}"
                " (the window is one day's, in [momobot] timezone)"
            )
        return cls(
            max_daily_loss=_positive(section, "max_daily_loss"),
            max_trades_per_day=_count(section, "max_trades_per_day"),
            max_open_trades=_count(section, "max_open_trades"),
            max_shares=_count(section, "max_shares"),
            max_position_value=_positive(section, "max_position_value"),
            trading_start=start,
            trading_end=end,
            loss_streak=_count(section, "loss_streak"),
            stale_quote_s=_seconds(section, "stale_quote_s", 10.0),
            max_spread_pct=section.get_float("max_spread_pct", 2.0, strictly_positive=True),
            loss_confirm_s=_seconds(section, "loss_confirm_s", 2.0),
        )

    @property
    def limits_entries(self) -> bool:
        """True when some limit applies to entries (beyond staleness)."""
        return any(
            getattr(self, name) is not None
            for name in (
                "max_daily_loss",
                "max_trades_per_day",
                "max_open_trades",
                "max_shares",
                "max_position_value",
                "trading_start",
                "trading_end",
                "loss_streak",
            )
        )


def _seconds(section: Section, key: str, default: float) -> float:
    value = section.get_float(key, default)
    if value > DAY_S:
        raise ConfigError(
            f"[risk] {key} = {value:g}{section.source(key)}: must be at most {DAY_S} seconds (a day)"
        )
    return value


def _positive(section: Section, key: str) -> float | None:
    if not section.has(key):
        return None
    return section.get_float(key, 0.0, strictly_positive=True)


def _count(section: Section, key: str) -> int | None:
    if not section.has(key):
        return None
    return section.get_int(key, 0, minimum=1)


_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _clock_time(section: Section, key: str) -> time | None:
    value = section.get_str(key, None)
    if value is None:
        return None
    match = _HHMM.match(value)
    if match is None:
        raise ConfigError(
            f"[risk] {key} = {value!r}{section.source(key)}: must be a time of day written"
            ' "HH:MM" on the 24-hour clock, such as "09:30"'
        )
    return time(int(match.group(1)), int(match.group(2)))


def size_from_risk(risk: float, ask: float, stop: float) -> int:
    """Shares that lose about ``risk`` dollars from ``ask`` down to ``stop``: floor(risk / (ask - stop)).

    In Decimal, on prices rounded to 4 places, so 50 / (2.00 - 1.90) is 500, not the 499 that
    binary floats give.
    """
    places = Decimal("0.0001")
    exact = Decimal(repr(ask)) - Decimal(repr(stop))
    rounded = Decimal(repr(ask)).quantize(places) - Decimal(repr(stop)).quantize(places)
    per_share = max(exact, rounded)  # a sub-tick stop distance never sizes past the risk
    if per_share <= 0:
        return 0
    return int((Decimal(repr(risk)) / per_share).to_integral_value(rounding=ROUND_FLOOR))


@attrs.define
class Halt:
    """Entries halted for the rest of a trading day, and why."""

    reason: str  # one of HALT_REASONS
    message: str
    day: date


@attrs.define
class RiskBook:
    """The day's count against the limits. One per engine, used on the engine's thread."""

    settings: RiskSettings
    tz: tzinfo
    day: date | None = None
    realised: float = 0.0  # today's closed legs
    entries: int = 0  # trades opened today
    streak: int = 0  # losing trades in a row today
    halt: Halt | None = None
    #: When the unrealised loss first passed the limit on a sane quote (None: it does not now).
    breach_since: datetime | None = None

    def trading_day(self, ts: datetime) -> date:
        return ts.astimezone(self.tz).date()

    def roll(self, ts: datetime) -> bool:
        """Start a new trading day if ``ts`` is in one. True if it did (and lifted a halt)."""
        today = self.trading_day(ts)
        if today == self.day:
            return False
        lifted = self.halt is not None
        self.day = today
        self.realised = 0.0
        self.entries = 0
        self.streak = 0
        self.halt = None
        self.breach_since = None
        return lifted

    # -- entries ----------------------------------------------------------------------

    def size(self, symbol: str, risk: float, ask: float, stop: float) -> int:
        """Shares for ``risk`` dollars, capped by max_shares and max_position_value."""
        qty = size_from_risk(risk, ask, stop)
        caps = self.settings
        if caps.max_shares is not None:
            qty = min(qty, caps.max_shares)
        if caps.max_position_value is not None:
            qty = min(qty, int(Decimal(repr(caps.max_position_value)) / Decimal(repr(ask))))
        if qty < 1:
            raise RiskRefused(
                f"{symbol}: risk ${risk:,.2f} with the stop {ask - stop:.4f} below the ask {ask}"
                " buys less than one share (after max_shares and max_position_value)",
                "risk",
            )
        return qty

    def check_entry(
        self, symbol: str, qty: int, ask: float, stop: float, ts: datetime, open_trades: int, at_risk: float
    ) -> None:
        """Raise RiskRefused if an entry of ``qty`` at ``ask`` breaks a limit.

        ``open_trades`` is how many trades are open now; ``at_risk`` what they would lose
        together if every stop were hit (negative or 0). The caller has rolled the book to ``ts``.
        """
        limits = self.settings
        if self.halt is not None:
            raise RiskRefused(
                f"{symbol}: entries are halted for the day: {self.halt.message}", self.halt.reason
            )
        window = limits.trading_start is not None or limits.trading_end is not None
        local = ts.astimezone(self.tz).time() if window else time(0)
        if limits.trading_start is not None and local < limits.trading_start:
            raise RiskRefused(
                f"{symbol}: entries start at {limits.trading_start:%H:%M} ({local:%H:%M:%S} now, {self.tz})",
                "trading_start",
            )
        if limits.trading_end is not None and local >= limits.trading_end:
            raise RiskRefused(
                f"{symbol}: entries stop at {limits.trading_end:%H:%M} ({local:%H:%M:%S} now, {self.tz})",
                "trading_end",
            )
        if limits.max_trades_per_day is not None and self.entries >= limits.max_trades_per_day:
            raise RiskRefused(
                f"{symbol}: {self.entries} trades opened today: max_trades_per_day is"
                f" {limits.max_trades_per_day}",
                "max_trades_per_day",
            )
        if limits.max_open_trades is not None and open_trades >= limits.max_open_trades:
            raise RiskRefused(
                f"{symbol}: {open_trades} trades are open: max_open_trades is {limits.max_open_trades}",
                "max_open_trades",
            )
        if limits.max_shares is not None and qty > limits.max_shares:
            raise RiskRefused(f"{symbol}: qty {qty:,} is over max_shares {limits.max_shares:,}", "max_shares")
        if limits.max_position_value is not None and Decimal(repr(ask)) * qty > Decimal(
            repr(limits.max_position_value)
        ):
            raise RiskRefused(
                f"{symbol}: {qty:,} x {ask} = ${qty * ask:,.2f} is over max_position_value"
                f" ${limits.max_position_value:,.2f}",
                "max_position_value",
            )
        if limits.max_daily_loss is not None:
            own = qty * (ask - stop)
            worst = self.realised + at_risk - own
            if worst < -limits.max_daily_loss - 0.005:
                raise RiskRefused(
                    f"{symbol}: its own risk ${own:,.2f} (qty x (ask - stop)) would take today's"
                    f" P&L to ${worst:,.2f} if every open stop were hit (realised"
                    f" ${self.realised:,.2f}, open trades' stops ${at_risk:,.2f}): past"
                    f" max_daily_loss ${limits.max_daily_loss:,.2f}",
                    "max_daily_loss",
                )

    # -- exits ------------------------------------------------------------------------

    def leg_closed(self, pnl: float) -> bool:
        """Count a closed leg. True when today's realised loss has reached max_daily_loss."""
        self.realised = round(self.realised + pnl, 6)
        limit = self.settings.max_daily_loss
        return limit is not None and self.realised <= -limit + 0.005

    def trade_closed(self, pnl: float) -> bool:
        """Count a fully closed trade's P&L. True when loss_streak losing trades in a row are reached."""
        self.streak = self.streak + 1 if pnl < 0 else 0
        limit = self.settings.loss_streak
        return limit is not None and self.streak >= limit

    def unrealised_breach(self, unrealised: float, ts: datetime) -> bool:
        """A sane quote's view of the book: True once realised + unrealised has stayed at or past
        the limit for ``loss_confirm_s``."""
        limit = self.settings.max_daily_loss
        if limit is None:
            return False
        if self.realised + unrealised > -limit:
            self.breach_since = None
            return False
        if self.breach_since is None:
            self.breach_since = ts
        return ts - self.breach_since >= timedelta(seconds=self.settings.loss_confirm_s)

    def breach_confirmed(self, now: datetime) -> bool:
        """The live clock's view (no quote needed): a breach that began long enough ago."""
        since = self.breach_since
        return since is not None and now - since >= timedelta(seconds=self.settings.loss_confirm_s)

    def spread_ok(self, bid: float, ask: float) -> bool:
        """A quote whose spread is sane enough to value the book on."""
        return (ask - bid) <= bid * self.settings.max_spread_pct / 100
