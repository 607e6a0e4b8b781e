"""A person's answers about a trade a restart left in doubt: confirm it, or discard it.

A restart can find a trade whose last event the plugins may not have heard of (an entry that
may never have reached the broker), or whose exit went out but could not be recorded. The
engine then watches it no more (:mod:`.restart` tells why) until a person has checked the
broker and answered, through ``POST /confirm`` or ``POST /discard`` (docs/api.md;
:meth:`~momobot_core.engine.Engine.confirm_trade`,
:meth:`~momobot_core.engine.Engine.discard_trade`). Nothing an answer does is sent: no plugin
hears of it. Each answer is journaled before it counts; a journal that cannot take it refuses
the answer and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from momobot_core.brackets import StopMove
from momobot_core.errors import JournalWriteError, TradeRefused
from momobot_core.journal import JournalEvent
from momobot_core.models import CloseReason, Quote, Trade

if TYPE_CHECKING:
    from momobot_core.journal import Journal
    from momobot_core.positions import Positions
    from momobot_core.record import Record
    from momobot_core.restart import Doubts
    from momobot_core.riskday import RiskDay

log = logging.getLogger("momobot.engine")

__all__ = ["Answers"]


class Answers:
    """Confirms and discards, each against what the restart found (:class:`.restart.Doubts`)."""

    def __init__(
        self,
        *,
        journal: Journal | None,
        record: Record,
        doubts: Doubts,
        day: RiskDay,
        positions: Positions,
        last_quotes: dict[str, Quote],
        forget: Callable[[Trade], None],
        closed: Callable[[], None],
    ) -> None:
        self.journal = journal
        self._record = record
        self._doubts = doubts
        self._day = day
        self._positions = positions
        self._last_quotes = last_quotes
        #: The engine's: everything kept for a trade leaving the book goes (its hold, a halt's
        #: held exit, the risk day's count).
        self._forget = forget
        #: Counts a trade closed (the run's summary).
        self._closed = closed

    def _trade(self, symbol: str, action: str) -> Trade:
        trade = self._positions.trades.get(symbol)
        if trade is None:
            raise TradeRefused(f"{symbol}: no open trade to {action}", "no_position")
        return trade

    def discard(self, symbol: str, ts: datetime) -> Trade:
        """Close an unconfirmed trade in the journal (``discarded``: no leg, no P&L), nothing sent."""
        trade = self._trade(symbol, "discard")
        journal = self.journal
        kept: list[JournalEvent | None] = [None]  # no journal kept an exit whole
        if journal is not None:
            kept = journal.lost_exits(trade.id)
        refused = self._doubts.refusal_to_discard(trade, kept)
        if refused is not None:
            raise refused
        after = attrs.evolve(trade, closed_at=ts, close_reason=CloseReason.DISCARDED, unconfirmed=False)
        if journal is not None:
            try:
                self._record.fold()  # the trade's own events first
                journal.write(JournalEvent("discard", after, at=ts))
            except JournalWriteError as exc:
                raise TradeRefused(
                    f"{symbol}: not discarded: the journal cannot be written ({exc})", "journal"
                ) from None
        self._forget(trade)
        log.warning(
            "%s: trade %s discarded by a person (its entry never reached the broker): closed in the"
            " journal, nothing sent",
            symbol,
            trade.id,
        )
        return after

    def confirm(self, symbol: str, exits_sent: bool | None) -> Trade:
        """Watch an unconfirmed trade again; a lost exit needs ``exits_sent`` (see the engine's
        :meth:`~momobot_core.engine.Engine.confirm_trade`)."""
        trade = self._trade(symbol, "confirm")
        names = self._doubts.lost_for_confirm(trade, exits_sent)
        if names is not None:
            return self._record_lost_exits(trade, names)
        confirmed = attrs.evolve(trade, unconfirmed=False)
        if self.journal is not None:
            try:
                self._record.fold()
                self.journal.write(JournalEvent("confirm", confirmed, at=datetime.now(UTC)))
            except JournalWriteError as exc:
                raise TradeRefused(
                    f"{symbol}: not confirmed: the journal cannot be written ({exc})", "journal"
                ) from None
        self._positions.replace(confirmed)
        self._doubts.answered(trade.id)
        log.info("%s: trade %s confirmed by a person; its targets are watched again", symbol, trade.id)
        return confirmed

    def _record_lost_exits(self, trade: Trade, names: str) -> Trade:
        """The person found the lost exits done at the broker: journal them as they were sent."""
        symbol = trade.symbol
        journal = self.journal
        kept = journal.lost_exits(trade.id) if journal is not None else []
        if journal is None or not kept or any(event is None for event in kept):
            raise TradeRefused(
                f"{symbol}: what the {names} exit of trade {trade.id} sold was not kept (no room"
                " was left even for that): discard the trade (nothing is sent) and close what your"
                " broker still holds by hand",
                "lost_exit",
            )
        exits = [event for event in kept if event is not None]
        now = datetime.now(UTC)
        after = attrs.evolve(exits[-1].trade, unconfirmed=False)
        self._day.roll(now)
        try:
            self._record.fold()
            journal.record_lost_exits(exits, JournalEvent("confirm", after, at=now))
        except JournalWriteError as exc:
            raise TradeRefused(
                f"{symbol}: not confirmed: the journal cannot be written ({exc})", "journal"
            ) from None
        self._doubts.answered(trade.id)
        closed = after.closed_at is not None
        for event in exits:
            if event.leg is not None:
                self._day.count_leg(event.trade, event.leg, closed=closed and event is exits[-1])
        if closed:
            self._forget(trade)
            self._closed()
        else:
            # A stop moved at break-even long ago: only prints after now may trigger it.
            last = self._last_quotes.get(symbol)
            moved = StopMove(now, last.last if last else None, last.last_at if last else None)
            self._positions.replace(after, moved if after.tp1_hit else None)
        log.info(
            "%s: trade %s confirmed by a person: its %s exit, done at the broker, is recorded as sent",
            symbol,
            trade.id,
            names,
        )
        return after
