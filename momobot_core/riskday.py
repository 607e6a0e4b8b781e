"""The risk day: today's count against the ``[risk]`` limits, over the engine's open trades.

:class:`~momobot_core.risk.RiskBook` counts (realised P&L, entries, the losing
streak, a halt); this part keeps that book on the right trading day, reads a
day already under way back from the journal at a restart, counts every leg and
closed trade, journals halts, watches the unrealised loss, and says when
``max_daily_loss`` calls for a flatten. The flatten itself (the exits, their
record and their hooks) is the engine's order of work: this part only says
that one is due and why.

Nothing here sends anything or calls a hook; alerts go through the engine's
``tell``.
"""

from __future__ import annotations

import collections
import logging
import time as _time
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

import attrs

from momobot_core.errors import JournalWriteError, TradeRefused
from momobot_core.models import Leg, Quote, Trade
from momobot_core.risk import Halt, RiskBook, RiskRefused, RiskSettings

if TYPE_CHECKING:
    from momobot_core.journal import Journal, JournalEvent
    from momobot_core.record import Record, Tell

log = logging.getLogger("momobot.engine")
#: Halts that last the day: no kill replaces them, and POST /resume does not lift them.
LASTING = frozenset({"max_daily_loss", "loss_streak"})


class RiskDay:
    """Today's book, rolled to the trading day of each event, against the engine's open trades.

    ``open_trades`` is the engine's own dict (read, never changed here); ``new_day`` is called
    when a later trading day begins, before anything of the new day is told.
    """

    def __init__(
        self,
        settings: RiskSettings,
        tz: tzinfo,
        *,
        live: bool,
        journal: Journal | None,
        record: Record,
        open_trades: dict[str, Trade],
        tell: Tell,
        new_day: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.book = RiskBook(settings, tz)
        self.live = live
        self.journal = journal
        self.record = record
        self.open_trades = open_trades
        self.tell = tell
        self.new_day = new_day
        self.trade_pnl: dict[str, float] = {}  # realised P&L of open trades' legs so far
        self.sane_bid: dict[str, float] = {}  # last bid of a quote with a sane spread, open trades
        #: max_daily_loss reached inside an event ("realised" or "unrealised"): flatten after it.
        self.kill_due: str | None = None
        #: A flatten is under way: its own legs never call for another.
        self.killing = False
        #: The book's trading day as UTC times [start, end): an event inside it rolls nothing
        #: (two comparisons where a time zone conversion cost microseconds on every event).
        self._span: tuple[datetime, datetime] | None = None
        #: The same span as POSIX times: live, an event reads the clock as a float (a tenth of
        #: the cost of an aware ``datetime.now``) and makes a datetime only when the day may roll.
        self._span_s: tuple[float, float] = (0.0, 0.0)

    @property
    def halt(self) -> Halt | None:
        return self.book.halt

    # -- the day ---------------------------------------------------------------------

    def roll(self, ts: datetime) -> None:
        """Keep the book on the trading day of ``ts`` (live: the wall clock's); a new day starts
        from the journal. Called before an event is journaled, so the day read back is the day
        before the event. Never goes back a day (a late quote just after midnight)."""
        book = self.book
        if self.live:
            now = _time.time()
            if self._span_s[0] <= now < self._span_s[1]:
                return
            ts = datetime.fromtimestamp(now, UTC)
        span = self._span
        if span is not None and span[0] <= ts < span[1]:
            return
        day = book.trading_day(ts)
        if day == book.day or (book.day is not None and day < book.day):
            return
        lifted = book.halt
        if book.day is not None:  # a new day, not the first: yesterday's alerts are yesterday's
            self.new_day()
        book.roll(ts)
        tz = book.tz
        self._span = (
            datetime.combine(day, time(0), tz).astimezone(UTC),
            datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC),
        )
        self._span_s = (self._span[0].timestamp(), self._span[1].timestamp())
        self._load(day)
        if lifted is not None and book.halt is None:
            self.tell(
                "resumed",
                f"a new trading day ({day}): the halt of {lifted.day} ({lifted.reason}) is over;"
                " entries are allowed",
                what=lifted.reason,
            )

    def _load(self, day: date) -> None:
        """A day already under way in the journal (a restart): its P&L, entries, streak and halt."""
        journal = self.journal
        if journal is None:
            return
        book = self.book
        self.record.fold()
        legs = journal.legs()
        today = [leg for leg in legs if book.trading_day(leg.closed_at) == day]
        book.realised = round(sum(leg.pnl for leg in today), 6)
        trades = journal.trades()
        book.entries = sum(1 for t in trades if book.trading_day(t.opened_at) == day)
        by_trade: dict[str, float] = collections.defaultdict(float)
        for leg in legs:
            by_trade[leg.trade_id] += leg.pnl
        closed = sorted(
            (t for t in trades if t.closed_at is not None and book.trading_day(t.closed_at) == day),
            key=lambda t: t.closed_at or t.opened_at,
        )
        for trade in closed:
            book.streak = book.streak + 1 if by_trade[trade.id] < 0 else 0
        for trade in self.open_trades.values():
            self.trade_pnl.setdefault(trade.id, by_trade.get(trade.id, 0.0))
        for event in journal.risk_events(day, ("halt", "resume")):
            book.halt = Halt(event.rule, event.message, day) if event.kind == "halt" else None
        if book.halt is not None:
            log.warning("entries are halted for %s (journaled): %s", day, book.halt.message)
            if book.halt.reason in ("kill_switch", "max_daily_loss") and self.open_trades:
                # The flatten was journaled trade by trade after the halt: the process died in
                # between. These trades are still open here, and nothing was sent for them.
                left = ", ".join(sorted(self.open_trades))
                self.tell(
                    "halted",
                    f"a kill ({book.halt.reason}) was cut short by a stop of the process, or held by a"
                    f" trading halt: {left} still open and not flattened; check your broker, and once"
                    " the symbol trades again press the kill switch again",
                    reason=book.halt.reason,
                    symbols=sorted(self.open_trades),
                )

    # -- entries ---------------------------------------------------------------------

    def size(self, symbol: str, risk: float, ask: float, stop: float) -> int:
        try:
            return self.book.size(symbol, risk, ask, stop)
        except RiskRefused as exc:
            raise TradeRefused(str(exc), "risk", rule=exc.rule) from None

    def check_entry(self, symbol: str, qty: int, ask: float, stop: float, ts: datetime) -> None:
        """The ``[risk]`` limits on one entry; TradeRefused (kind ``risk``, the rule) if one says no."""
        # What the open trades lose at their stops matters only to max_daily_loss: summed then.
        at_risk = self.at_stops() if self.settings.max_daily_loss is not None else 0.0
        try:
            self.book.check_entry(symbol, qty, ask, stop, ts, len(self.open_trades), at_risk)
        except RiskRefused as exc:
            raise TradeRefused(str(exc), "risk", rule=exc.rule) from None

    def at_stops(self) -> float:
        """What the open trades would lose together if every stop were hit (0 or less)."""
        return sum(min(0.0, (t.stop - t.entry_price) * t.remaining) for t in self.open_trades.values())

    def opened(self) -> None:
        self.book.entries += 1

    def refused(self, symbol: str, rule: str, message: str, ts: datetime) -> None:
        """An entry a limit refused, journaled (a journal that cannot take it loses only that)."""
        if self.journal is not None:
            try:
                self.journal.record_risk("refused", rule, message, symbol, ts, self.book.trading_day(ts))
            except JournalWriteError as error:
                log.debug("refusal not journaled: %s", error)

    # -- exits -----------------------------------------------------------------------

    def count_leg(self, trade: Trade, leg: Leg, *, closed: bool) -> None:
        """A leg closed: today's P&L, the losing streak; a limit reached halts (or flattens, after).

        The caller rolled the book to the leg's day before journaling it."""
        book = self.book
        pnl = self.trade_pnl.pop(trade.id, 0.0) + leg.pnl
        if not closed:
            self.trade_pnl[trade.id] = pnl
        halt = book.halt
        if (
            book.leg_closed(leg.pnl)
            and not self.killing
            and (halt is None or halt.reason != "max_daily_loss")
        ):
            self.kill_due = "realised"
        if closed and book.trade_closed(pnl) and book.halt is None and self.kill_due is None:
            limit = self.settings.loss_streak
            message = f"{book.streak} losing trades in a row (loss_streak {limit})"
            self.set_halt("loss_streak", message, leg.closed_at)
            self.tell(
                "halted",
                f"{message}: entries are halted for the day (open trades keep their exits)",
                reason="loss_streak",
            )

    def closed(self, symbol: str) -> None:
        """A trade is no longer open: its bid no longer counts."""
        self.sane_bid.pop(symbol, None)

    # -- halts -----------------------------------------------------------------------

    def set_halt(self, reason: str, message: str, ts: datetime) -> None:
        """Halt today's entries and journal it."""
        day = self.book.trading_day(ts)
        self.book.halt = Halt(reason, message, day)
        self.book.breach_since = None
        self.record.record_halt(reason, message, ts, day)

    def commit_kill(self, reason: str, message: str, ts: datetime, events: list[JournalEvent]) -> set[str]:
        """Journal a kill's halt and flattens together; the ids of the events that went to the
        side file instead (the journal could not take them: exits are never held back)."""
        day = self.book.trading_day(ts)
        held = self.book.halt
        if held is not None and held.reason in LASTING and held.day == day:
            reason, message = held.reason, held.message  # a kill never shortens a halt of the day
        self.book.halt = Halt(reason, message, day)
        self.book.breach_since = None
        return self.record.commit_kill(reason, message, ts, day, events)

    def after_kill(self, reason: str, message: str, ts: datetime) -> tuple[str, str]:
        """The halt that holds after a flatten: the button's, or max_daily_loss's when the
        flatten itself took today's realised P&L past the limit (journaled then)."""
        self.kill_due = None
        held = self.book.halt
        if held is not None and held.reason in LASTING and held.reason != reason:
            return held.reason, message  # the day's halt stood through the kill
        limit = self.settings.max_daily_loss
        if reason == "kill_switch" and limit is not None and self.book.realised <= -limit + 0.005:
            reason = "max_daily_loss"
            message = (
                f"{message}; the flatten took today's realised P&L to ${self.book.realised:,.2f},"
                f" past max_daily_loss ${limit:,.2f}"
            )
            self.set_halt(reason, message, ts)
        return reason, message

    def resume(self, ts: datetime) -> str:
        """Lift the kill switch's halt (journaled); the reason lifted. TradeRefused otherwise:
        the daily loss limit's and a losing streak's halts last the day."""
        self.roll(ts)
        halt = self.book.halt
        if halt is None:
            raise TradeRefused("entries are not halted by the kill switch or a risk limit", "not_halted")
        if halt.reason != "kill_switch":
            raise TradeRefused(
                f"entries stay halted for the rest of the trading day: {halt.message} ({halt.reason}"
                " is not lifted by hand; it ends with the day)",
                "halted",
            )
        streak, limit = self.book.streak, self.settings.loss_streak
        if limit is not None and streak >= limit:
            # The losing streak was reached while the kill switch held: it halts the day.
            message = f"{streak} losing trades in a row (loss_streak {limit})"
            self.set_halt("loss_streak", message, ts)
            self.tell("halted", f"{message}: entries are halted for the day", reason="loss_streak")
            raise TradeRefused(f"entries stay halted for the rest of the trading day: {message}", "halted")
        if self.journal is not None:
            try:
                self.journal.record_risk("resume", halt.reason, "resumed by a person", None, ts, halt.day)
            except JournalWriteError as exc:
                raise TradeRefused(f"not resumed: the journal cannot be written ({exc})", "journal") from None
        self.book.halt = None
        return halt.reason

    # -- the daily-loss watch ----------------------------------------------------------

    def unrealised(self, bids: dict[str, float] | None = None) -> float:
        """Open trades valued at ``bids`` (default: the last sane bids; a trade without one: 0)."""
        bids = self.sane_bid if bids is None else bids
        return sum(
            (bids.get(t.symbol, t.entry_price) - t.entry_price) * t.remaining
            for t in self.open_trades.values()
        )

    def watch(self, quote: Quote) -> None:
        """Unrealised loss, on quotes with a sane spread only, confirmed over ``loss_confirm_s``."""
        halt = self.book.halt
        if self.killing or (halt is not None and halt.reason == "max_daily_loss"):
            return
        if not self.book.spread_ok(quote.bid, quote.ask):
            return  # a pulled bid neither starts nor ends a breach
        self.sane_bid[quote.symbol] = quote.bid
        self.roll(quote.ts)
        if self.book.unrealised_breach(self.unrealised(), quote.ts):
            self.kill_due = "unrealised"

    def check(self, now: datetime) -> None:
        """Periodic (live): a breach confirmed on the clock, with no quote since, is due too."""
        self.roll(now)
        if self.open_trades and self.book.breach_confirmed(now):
            halt = self.book.halt
            if halt is None or halt.reason != "max_daily_loss":
                self.kill_due = "unrealised"

    def kill_reason(self) -> str | None:
        """Why max_daily_loss calls for a flatten now (once), or None."""
        if self.kill_due is None or self.killing:
            return None
        cause, self.kill_due = self.kill_due, None
        limit = self.settings.max_daily_loss
        realised = self.book.realised
        if cause == "realised":
            return f"today's realised P&L ${realised:,.2f} reached max_daily_loss ${limit:,.2f}"
        open_pnl = self.unrealised()
        return (
            f"today's P&L ${realised + open_pnl:,.2f} (realised ${realised:,.2f}, open trades"
            f" at the bid ${open_pnl:,.2f}) stayed past max_daily_loss ${limit:,.2f} for"
            f" {self.settings.loss_confirm_s:g} s"
        )

    # -- what /ping and the dashboard show ---------------------------------------------

    def status(self, bids: dict[str, float], refused: dict[str, int]) -> dict[str, object]:
        """Today against the limits (``bids``: the open trades' last bids)."""
        book = self.book
        unrealised = self.unrealised(bids)
        limits = {
            name: (value.strftime("%H:%M") if hasattr(value, "strftime") else value)
            for name, value in attrs.asdict(self.settings, recurse=False).items()
            if value is not None
        }
        return {
            "day": book.day.isoformat() if book.day else None,
            "realised": round(book.realised, 2),
            "unrealised": round(unrealised, 2),
            "total": round(book.realised + unrealised, 2),
            "trades_today": book.entries,
            "losing_streak": book.streak,
            "halted": book.halt.reason if book.halt else None,
            "halt_message": book.halt.message if book.halt else None,
            "refused": dict(refused),
            "limits": limits,
        }


def kill_message(reason: str, message: str, flattened: list[Trade], held: list[Trade]) -> str:
    """What a kill's ``halted`` alert says: what was flattened, what a trading halt holds, and
    how long entries stay halted."""
    closed = ", ".join(f"{t.symbol} {t.remaining}" for t in flattened)
    done = (
        f"every open trade closed at the bid in the journal ({closed}) and its flatten handed"
        " to the sending plugins (their alerts say if it did not go out; check your broker)"
        if flattened
        else "no trade was open"
    )
    if held:
        waiting = ", ".join(f"{t.symbol} {t.remaining}" for t in held)
        done += f"; {waiting} held by its trading halt, flattened at the first quote after the resume"
    until = " until POST /resume or the next trading day" if reason == "kill_switch" else " for the day"
    return f"{message}: {done}; entries are halted{until}"
