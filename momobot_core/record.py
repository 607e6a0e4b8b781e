"""The record: what the engine writes to the journal, where it goes when the journal cannot take
it, and the dispatched marks after the hooks.

The rules it keeps (DESIGN.md, "Journal first"; RELIABILITY.md, trust II and III):

* an event is durable against a killed process before any plugin hears of it: on a journal on
  disk it is written to the side file ``<db>.pending`` with one ``pwrite`` into room held from
  the start (as durable as a commit with ``synchronous=NORMAL``, for a microsecond), and folded
  into SQLite after its hooks, with its dispatched mark, in one transaction (group commits:
  every event since the last fold); a replay's one transaction and an in-memory journal are
  written directly;
* an entry goes only when the journal can be written now (its write lock is free: a probe of a
  few microseconds), or is refused (nothing is sent);
* an exit is never held back: when the journal cannot take what the side file holds, it stays
  there (synced), else it is kept in memory and marked lost in the side file's mark area;
  entries halt until the journal has taken all of it.

It raises no alert itself: what a person must know goes through ``tell`` (the engine's alert).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from momobot_core.brackets import MAX_PRICE, MAX_QTY, price_ok
from momobot_core.errors import TradeRefused
from momobot_core.journal import JournalEvent, JournalWriteError

if TYPE_CHECKING:
    from momobot_core.journal import Journal
    from momobot_core.models import Fill, Order

log = logging.getLogger("momobot.engine")

#: On an event loop, how long after an event's hooks the fold waits (events meanwhile join it).
#: Durability does not wait: the side file holds each event from before its hooks.
FOLD_DELAY_S = 0.02
#: How the record tells a person: ``tell(kind, message, symbol=None, **detail)``.
Tell = Callable[..., Any]


class Record:
    """The engine's writes to one journal (or none: every write is then a no-op)."""

    def __init__(self, journal: Journal | None, tell: Tell) -> None:
        self.journal = journal
        self._tell = tell
        #: True while exits wait in the journal's side file: entries are refused until then.
        self.pending = bool(journal is not None and journal.has_pending)
        #: The last journal write's failure (None once a write succeeds): /ping tells it.
        self.error: str | None = None
        #: Exits sent that neither the journal nor the side file could take (a full disk past the
        #: side file's reserve): written into the journal first when it can take them again.
        self.unrecorded: list[JournalEvent] = []
        #: Broker fills the journal could not take yet.
        self.fills: list[Fill] = []
        #: Events written to the side file since the last fold, in order (not in fault mode).
        self._logged: list[JournalEvent] = []
        self._to_mark: list[str] = []  # events whose hooks have run, their marks not folded yet
        self._to_mark_pending: list[str] = []  # the same, for events kept while the journal fails
        self._mark_scheduled = False

    # -- what /ping says -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``ok`` or what is wrong with the journal."""
        journal = self.journal
        if self.unrecorded:
            return f"exits not recorded ({len(self.unrecorded)}): {self.error or 'disk full'}"
        if self.pending:
            return "side file in use"
        if self.error:
            return f"failing: {self.error}"
        if journal is not None and journal.reserve_error:
            return f"no room held for exits: {journal.reserve_error}"
        if journal is not None and journal.wire_reserve_error:
            return f"no room held for the wire log: {journal.wire_reserve_error}"
        return "ok"

    @property
    def halts_entries(self) -> bool:
        journal = self.journal
        return (
            self.pending
            or self.error is not None
            or (journal is not None and journal.reserve_error is not None)
        )

    def entry_refusal(self, symbol: str) -> str | None:
        """Why the record cannot take an entry now (None: it can)."""
        journal = self.journal
        if journal is None:
            return None
        if journal.reserve_error is not None:
            return (
                f"{symbol}: entries are halted: no room is held for the exits a trade needs"
                f" ({journal.reserve_error}): free some disk space"
            )
        if self.pending and not self.retry():
            return (
                f"{symbol}: entries are halted: exits wait in the journal's side file"
                " until the journal can be written again"
            )
        return None

    # -- writes --------------------------------------------------------------------------------

    def commit_entry(self, event: JournalEvent) -> None:
        """Record an entry before anyone hears of it. Raises JournalWriteError (told)."""
        journal = self.journal
        if journal is None:
            return
        try:
            if journal.logs_events:
                error = journal.writable()
                if error is not None:
                    raise JournalWriteError(error)
                try:
                    journal.append_pending(event, sync=False)
                except OSError as exc:
                    raise JournalWriteError(f"{journal.pending_path}: {exc.strerror or exc}") from None
                self._logged.append(event)
            else:
                journal.write(event)
        except JournalWriteError as exc:
            self.error = str(exc)
            symbol = event.trade.symbol
            self._tell(
                "journal_error",
                f"{symbol}: entry refused, nothing sent: the journal cannot be written ({exc})",
                symbol=symbol,
            )
            raise
        self.error = None

    def commit_exit(self, event: JournalEvent) -> bool:
        """Record an exit: never hold it back. True if it waits in the side file for a journal
        that cannot take it (its mark goes there too)."""
        journal = self.journal
        if journal is None:
            return False
        if journal.logs_events and not self.pending and not self.unrecorded:
            try:
                journal.append_pending(event, sync=False)
            except OSError:
                pass  # no room in the side file: the journal itself, else memory (below)
            else:
                self._logged.append(event)
                return False
        if self.fold():  # what the side file holds first, then this exit, straight in
            try:
                journal.write(event)
                self.error = None
                return False
            except JournalWriteError as exc:
                reason = str(exc)
                self.error = reason
        else:
            reason = "earlier exits still wait in the side file"
        try:
            if self.unrecorded:
                raise OSError(errno.ENOSPC, "earlier exits could not be recorded either")
            journal.append_pending(event)
        except OSError as exc:
            self.unrecorded.append(event)  # written as soon as the journal takes it
            self.pending = True
            trade = event.trade
            try:
                journal.mark_lost(event)
                after = (
                    "if the bot stops before the journal takes it, the trade comes back"
                    " unconfirmed (nothing sent for it until you check your broker)"
                )
            except OSError as lost:
                after = (
                    f"not even its mark could be kept ({lost.strerror or lost}): if the bot stops"
                    " now, the journal shows the trade as before this exit: check your broker"
                )
            self._tell(
                "journal_error",
                f"{trade.symbol}: the {event.kind} exit of trade {trade.id} is sent but could not"
                f" be recorded ({reason}; side file: {exc.strerror or exc}); it is kept in memory"
                f" and written when the journal can take it; {after}. New entries are halted",
                symbol=trade.symbol,
                trade_id=trade.id,
                event=event.kind,
            )
            return True
        if not self.pending:
            self.pending = True
            self._tell(
                "journal_error",
                f"the journal cannot be written ({reason}): exits are kept in"
                f" {journal.pending_path} and still sent; new entries are halted until the"
                " journal can be written again",
                symbol=event.trade.symbol,
            )
        return True

    def commit_kill(
        self, reason: str, message: str, ts: datetime, day: date, events: Sequence[JournalEvent]
    ) -> set[str]:
        """A kill's halt and flattens in one transaction; the ids of the events that went to the
        side file instead (the journal could not take them: exits are never held back)."""
        journal = self.journal
        if journal is None:
            return set()
        if not self.pending and self.fold():
            try:
                journal.write_kill(reason, message, ts, day, list(events))
                self.error = None
                return set()
            except JournalWriteError as exc:
                self.error = str(exc)
        self.record_halt(reason, message, ts, day)
        return {event.id for event in events if self.commit_exit(event)}

    def record_halt(self, reason: str, message: str, ts: datetime, day: date) -> None:
        """Journal a halt; the side file keeps one the journal cannot take (a restart the same
        day must still be halted)."""
        journal = self.journal
        if journal is None:
            return
        try:
            journal.record_risk("halt", reason, message, None, ts, day)
            return
        except JournalWriteError as exc:
            failed = str(exc)
        try:
            journal.append_pending_risk("halt", reason, message, None, ts, day)
        except OSError as exc:
            self._tell(
                "journal_error",
                f"the halt ({reason}) could not be recorded ({failed}; side file:"
                f" {exc.strerror or exc}): a restart today would not remember it",
            )
            return
        self.pending = True
        self._tell(
            "journal_error",
            f"the halt ({reason}) is kept in the side file until the journal can take it ({failed});"
            " new entries are halted",
        )

    # -- catching up ---------------------------------------------------------------------------

    @property
    def unfolded(self) -> int:
        """Events in the side file not folded into the journal yet (readers of the journal's
        tables do not see them until then)."""
        return len(self._logged)

    def fold(self) -> bool:
        """Fold what this run wrote to the side file into the journal, with the marks of the
        events whose hooks ran. True when the journal holds everything; False (told once) when
        it cannot take it: it stays in the side file, and entries halt until it can."""
        journal = self.journal
        if journal is None:
            return True
        if self.pending:
            return self.retry()
        if not self._logged and not self._to_mark:
            return True
        events, marks = self._logged, self._to_mark
        try:
            journal.fold(events, marks)
        except JournalWriteError as exc:
            self._logged, self._to_mark = [], []
            journal.mark_pending_dispatched(marks)  # beside their events, in the side file
            self.error = str(exc)
            self.pending = True
            self._tell(
                "journal_error",
                f"the journal cannot be written ({exc}): exits are kept in"
                f" {journal.pending_path} and still sent; new entries are halted until the"
                " journal can be written again",
                symbol=events[-1].trade.symbol if events else None,
            )
            return False
        self._logged, self._to_mark = [], []
        self.error = None
        return True

    def retry(self) -> bool:
        """Try to move the side file into the journal. True when nothing is pending any more."""
        journal = self.journal
        if journal is None or not self.pending:
            return True
        # Only the side file's marks: the journal's own wait for the plugins' work on the loop.
        if self._to_mark_pending:
            ids, self._to_mark_pending = self._to_mark_pending, []
            journal.mark_pending_dispatched(ids)
        try:
            count = journal.flush_pending(self.unrecorded, self._to_mark)
        except (JournalWriteError, OSError) as exc:
            log.debug("the side file is still waiting: %s", exc)
            return False
        self.unrecorded = []
        self._to_mark = []
        self.pending = False
        self.error = None
        self._tell(
            "resumed",
            f"the journal can be written again: {count} event(s) moved in from the"
            " side file; entries are allowed again",
            what="journal",
        )
        return True

    def retry_reserve(self) -> None:
        """A side file that could not hold its room for exits tries again (the disk may have room)."""
        journal = self.journal
        if journal is not None and journal.reserve_error is not None and journal.retry_reserve():
            self._tell(
                "resumed",
                "the side file holds its room for exits again: entries are allowed again",
                what="journal",
            )

    # -- dispatched marks ----------------------------------------------------------------------

    def dispatched(self, event_id: str, pending: bool) -> None:
        """The hooks of an event have run: mark it, after whatever the hooks left to the loop."""
        if self.journal is None:
            return
        (self._to_mark_pending if pending else self._to_mark).append(event_id)
        if self._mark_scheduled:
            return
        loop = asyncio._get_running_loop()
        if loop is None:
            self.mark()
        else:
            # The fold goes a moment after the hooks (and what they left to the loop), so the
            # events of that moment fold in one commit and the trading path does not find its
            # caches cold after every event (docs/PERFORMANCE.md).
            self._mark_scheduled = True
            loop.call_later(FOLD_DELAY_S, self.mark)

    def mark(self) -> None:
        """After the hooks (and what they left to the loop): the fold, marks and all. While the
        journal fails, marks go to the side file beside their events (no sync: lost, a restart
        shows the trade unconfirmed, the safe side)."""
        self._mark_scheduled = False
        journal = self.journal
        if journal is None:
            return
        if self._to_mark_pending:
            ids, self._to_mark_pending = self._to_mark_pending, []
            journal.mark_pending_dispatched(ids)
        if self.pending:
            if self._to_mark:
                ids, self._to_mark = self._to_mark, []
                journal.mark_pending_dispatched(ids)
            return
        self.fold()

    def settle(self) -> None:
        """The fold put off for a moment (FOLD_DELAY_S), now: a reader of the journal file is
        about to look, and must find every event the engine has taken."""
        if self._mark_scheduled:
            self.mark()

    def tick(self) -> None:
        """Upkeep: a fold nobody scheduled (hooks that never finished), the side file's room."""
        if self._logged and not self._mark_scheduled:
            self.fold()
        self.retry_reserve()

    # -- broker fills --------------------------------------------------------------------------

    def record_fill(self, fill: Fill) -> tuple[bool, int]:
        """A broker's fill of one of the engine's orders, journaled beside the order's model price
        (or kept until the journal can take it): whether it is new, and how many fills were
        recorded now (this one, and those kept earlier that the journal took). TradeRefused for
        a fill that makes no sense or names no order the engine sent."""
        check_fill(fill)
        journal = self.journal
        if journal is None:
            return True, 1
        order = journal.order(fill.order_id)
        if order is None and self.fold():  # its order may still wait for its fold
            order = journal.order(fill.order_id)
        if order is None and self.pending and fill.order_id in journal.pending_order_ids():
            # Its order waits in the side file (the journal was locked when it went out).
            self.keep_fill(fill, fill.order_id, None)
            return True, 0
        if order is None:
            what = f"fill {fill.broker_ref!r} of order {fill.order_id!r}"
            raise TradeRefused(f"{what}: the journal has no such order", "unknown_order")
        earlier = 0
        try:
            if self.fills:
                earlier = self.retry_fills()
            new = journal.record_fill(fill)
        except JournalWriteError as exc:
            self.keep_fill(fill, order.symbol, exc)
            return True, earlier
        if new:
            log.info(
                "%s: broker filled %d of %s order %s at %s (model %s)",
                order.symbol,
                fill.qty,
                order.intent.value,
                order.id,
                fill.price,
                order.price,
            )
        return new, earlier + new

    def order_of(self, order_id: str) -> Order | None:
        """The engine's order ``order_id`` as journaled, or None (no journal, or not there yet)."""
        journal = self.journal
        if journal is None:
            return None
        try:
            return journal.order(order_id)
        except sqlite3.Error:
            return None

    def keep_fill(self, fill: Fill, symbol: str, exc: JournalWriteError | None) -> None:
        """A fill the journal could not take (``exc``) or whose order waits in the side file."""
        self.fills.append(fill)
        if exc is not None and len(self.fills) == 1:
            self._tell(
                "journal_error",
                f"{symbol}: a broker fill could not be journaled ({exc}); it is kept in"
                " memory and written when the journal can take it",
                symbol=symbol,
            )

    def retry_fills(self) -> int:
        """Fills kept in memory, into the journal (their orders out of the side file first): how
        many were new. Raises JournalWriteError."""
        journal = self.journal
        if journal is None or self.pending:
            return 0  # their orders may still be in the side file
        new = 0
        while self.fills:
            fill = self.fills[0]
            if journal.order(fill.order_id) is None:
                log.warning("broker fill %r names an order the journal does not hold: not kept", fill)
            elif journal.record_fill(fill):
                new += 1
            self.fills.pop(0)
        return new


def check_fill(fill: Fill) -> None:
    """TradeRefused for a broker fill that makes no sense (an order plugin's bad report)."""
    what = f"fill {fill.broker_ref!r} of order {fill.order_id!r}"
    if not isinstance(fill.qty, int) or isinstance(fill.qty, bool) or not 1 <= fill.qty <= MAX_QTY:
        raise TradeRefused(f"{what}: qty must be a whole number from 1 to {MAX_QTY:,}, not {fill.qty!r}")
    if not price_ok(fill.price):
        raise TradeRefused(f"{what}: price must be above 0 and at most {MAX_PRICE:,.0f}, not {fill.price!r}")
    if not isinstance(fill.broker_ref, str) or not fill.broker_ref:
        raise TradeRefused(f"{what}: broker_ref must name the broker's execution")
    if fill.ts.tzinfo is None:
        raise TradeRefused(f"{what}: ts must be an aware datetime")
