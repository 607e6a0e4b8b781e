"""The record: what the engine writes to the journal, where it goes when the journal cannot take
it, and the dispatched marks after the hooks.

The rules it keeps (DESIGN.md, "Journal first"; RELIABILITY.md, trust II and III):

* an entry is journaled before any plugin hears of it, or refused (nothing is sent);
* an exit is never held back: when the journal cannot take it, it goes to the side file (room
  held from the start), else it is kept in memory and marked lost in the side file's mark area;
  entries halt until the journal has taken all of it;
* after the hooks of an event have run, it is marked dispatched (a second small commit, after
  what the hooks left to the event loop); a mark the journal cannot take goes to the side file.

It raises no alert itself: what a person must know goes through ``tell`` (the engine's alert).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from momobot_core.journal import JournalEvent, JournalWriteError

if TYPE_CHECKING:
    from momobot_core.journal import Journal
    from momobot_core.models import Fill

log = logging.getLogger("momobot.engine")

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
        self._to_mark: list[str] = []  # journaled events whose hooks have run
        self._to_mark_pending: list[str] = []  # the same, for events in the side file
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
        """Journal an entry before anyone hears of it. Raises JournalWriteError (told)."""
        journal = self.journal
        if journal is None:
            return
        try:
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
        """Journal an exit, or put it in the side file: never hold it back. True if in the side file."""
        journal = self.journal
        if journal is None:
            return False
        if not self.pending or self.retry():
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
        if not self.pending:
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
            count = journal.flush_pending(self.unrecorded)
        except (JournalWriteError, OSError) as exc:
            log.debug("the side file is still waiting: %s", exc)
            return False
        self.unrecorded = []
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
            # A plugin on the loop writes with call_soon: this second commit goes after it.
            self._mark_scheduled = True
            loop.call_soon(self.mark)

    def mark(self) -> None:
        self._mark_scheduled = False
        journal = self.journal
        if journal is None:
            return
        if self._to_mark:
            ids, self._to_mark = self._to_mark, []
            try:
                journal.mark_dispatched(ids)
            except JournalWriteError as exc:
                # The events are journaled; their marks go to the side file (its room is held),
                # and into the journal with it. Lost too, a restart shows them unconfirmed: the
                # safe side.
                journal.mark_pending_dispatched(ids)
                self.pending = True
                log.warning(
                    "could not mark %d event(s) dispatched in the journal (%s): the marks wait in"
                    " the side file",
                    len(ids),
                    exc,
                )
        if self._to_mark_pending:
            ids, self._to_mark_pending = self._to_mark_pending, []
            journal.mark_pending_dispatched(ids)

    # -- broker fills --------------------------------------------------------------------------

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
