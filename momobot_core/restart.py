"""What a restart found, as the alerts a person must read: the journal's room, trades whose last
event the plugins may not have heard of, exits that went out unrecorded, and command sequences
a crash cut short. Reads the journal; raises nothing itself (the engine raises what it returns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from momobot_core.errors import TradeRefused
from momobot_core.journal import LOST_PREFIX
from momobot_core.watch import Notice

if TYPE_CHECKING:
    from momobot_core.journal import CutSequence, Journal, JournalEvent
    from momobot_core.models import Trade

__all__ = ["Doubts", "in_doubt", "lost_exits", "restart_notices"]

#: ``(trade_id, symbol, kind, ts)`` of events committed but never marked dispatched.
Undispatched = Sequence[tuple[str, str, str, str]]


def in_doubt(undispatched: Undispatched, trade_id: str) -> list[str]:
    """The kinds of a restored trade's events the plugins may not have heard of."""
    return [kind for tid, _, kind, _ in undispatched if tid == trade_id]


def lost_exits(undispatched: Undispatched, trade_id: str) -> list[str]:
    """The kinds of a trade's exits that went out unrecorded (``tp1``, ``stop``...)."""
    return [
        kind.removeprefix(LOST_PREFIX)
        for tid, _, kind, _ in undispatched
        if tid == trade_id and kind.startswith(LOST_PREFIX)
    ]


class Doubts:
    """The restored trades' events the plugins may not have heard of, until a person answers.

    What each action on such a trade must be told first: a close, a discard and a confirm each
    ask :meth:`refusal_to_close`, :meth:`refusal_to_discard` or :meth:`lost_for_confirm`.
    """

    def __init__(self, undispatched: Undispatched) -> None:
        self.rows = list(undispatched)

    def unconfirmed(self) -> set[str]:
        """The trades that restart unconfirmed."""
        return {trade_id for trade_id, _, _, _ in self.rows}

    def in_doubt(self, trade_id: str) -> list[str]:
        return in_doubt(self.rows, trade_id)

    def lost_exits(self, trade_id: str) -> list[str]:
        return lost_exits(self.rows, trade_id)

    def answered(self, trade_id: str) -> None:
        """A person confirmed the trade: nothing of it is in doubt any more."""
        self.rows = [row for row in self.rows if row[0] != trade_id]

    def refusal_to_close(self, trade: Trade) -> TradeRefused | None:
        """Sold on the journal's view, a trade whose exit went out unrecorded would sell shares
        that exit may have sold already, and drop its leg: the person says first what the broker
        shows."""
        lost = self.lost_exits(trade.id) if trade.unconfirmed else []
        if not lost:
            return None
        return TradeRefused(
            f"{trade.symbol}: the {' and '.join(lost)} exit of trade {trade.id} was sent but not"
            " recorded: confirm the trade first with what your broker shows (exits_sent), then"
            " close what it still holds",
            "lost_exit",
        )

    def refusal_to_discard(self, trade: Trade, kept: list[JournalEvent | None]) -> TradeRefused | None:
        """Only a trade whose entry may never have reached the broker is discarded (``kept``:
        the lost exits the side file kept whole, None where it could not)."""
        symbol = trade.symbol
        if not trade.unconfirmed:
            return TradeRefused(
                f"{symbol}: trade {trade.id} is not unconfirmed: only a trade the broker may never"
                " have had can be discarded; close it to sell what it holds",
                "already_open",
            )
        lost = self.lost_exits(trade.id)
        if lost and all(event is not None for event in kept):
            return TradeRefused(
                f"{symbol}: the {' and '.join(lost)} exit of trade {trade.id} went out unrecorded, so"
                " its entry reached the broker: confirm the trade with what your broker shows"
                " (exits_sent) instead; it is journaled as it was",
                "lost_exit",
            )
        doubt = self.in_doubt(trade.id)
        if not lost and "open" not in doubt:
            # Its entry's hooks all ran: the entry went out. Discarded, the shares the broker
            # holds would be watched by nothing and protected by no stop.
            return TradeRefused(
                f"{symbol}: the entry of trade {trade.id} went out (only its"
                f" {' and '.join(doubt) or 'last'} event is in doubt): confirm it,"
                " or close it to sell what it holds",
                "already_open",
            )
        return None

    def lost_for_confirm(self, trade: Trade, exits_sent: bool | None) -> str | None:
        """The names of the trade's lost exits when the person said they went out (``exits_sent``
        true: record them as sent); None to confirm it as it is. TradeRefused when the answer is
        missing (a lost exit) or makes no sense (none was lost)."""
        symbol = trade.symbol
        if not trade.unconfirmed:
            raise TradeRefused(f"{symbol}: trade {trade.id} is not unconfirmed", "already_open")
        lost = self.lost_exits(trade.id)
        if not lost:
            if exits_sent is not None:
                raise TradeRefused(f"{symbol}: trade {trade.id} has no exit that went out unrecorded")
            return None
        names = " and ".join(lost)
        if exits_sent is None:
            raise TradeRefused(
                f"{symbol}: the {names} exit of trade {trade.id} was sent but not recorded: say"
                " what your broker shows. exits_sent true: it was done, it is recorded as sent"
                " and nothing is sent; exits_sent false: it was not, the trade resumes as"
                " before it and the exit goes out again when its price comes",
                "lost_exit",
            )
        return names if exits_sent else None


def restart_notices(
    journal: Journal, open_trades: Sequence[Trade], undispatched: Undispatched
) -> tuple[list[Notice], list[str]]:
    """The alerts of a start, in the order a person should read them, and the ids of closed
    trades told about (marked in the journal by the caller, so they are told once)."""
    notices: list[Notice] = []
    if journal.reserve_error:
        notices.append(
            Notice(
                "journal_error",
                f"{journal.path}.pending: no room is held for exits the journal may not take"
                f" ({journal.reserve_error}): entries are refused until there is; free some disk space",
            )
        )
    if journal.wire_reserve_error:
        notices.append(
            Notice(
                "journal_error",
                f"{journal.path}.wire: no room is held for what plugins send ({journal.wire_reserve_error}):"
                " it is written while the disk takes it; free some disk space",
            )
        )
    for trade in open_trades:
        if trade.unconfirmed:
            notices.append(_unconfirmed(trade, undispatched))
    open_ids = {trade.id for trade in open_trades}
    told: list[str] = []
    for trade_id, symbol, kind, ts in undispatched:
        if trade_id not in open_ids:
            notices.append(
                Notice(
                    "unconfirmed_trade",
                    f"{symbol}: the {kind} of trade {trade_id} at {ts} was journaled but the"
                    " process stopped before every plugin heard of it: check your broker",
                    symbol=symbol,
                    detail={"trade_id": trade_id, "event": kind},
                )
            )
            told.append(trade_id)
    if journal.wire_incomplete:
        notices.append(
            Notice(
                "wire_log_incomplete",
                f"{journal.path}.wire ran out of disk space before the last stop: what"
                " plugins sent after that was not recorded, so a sequence cut short then cannot"
                " be named, and one named below may have sent more than it shows. Check your broker",
            )
        )
    notices.extend(_cut(cut) for cut in journal.cut_sequences)
    return notices, told


def _unconfirmed(trade: Trade, undispatched: Undispatched) -> Notice:
    lost = lost_exits(undispatched, trade.id)
    if lost:
        names = " and ".join(lost)
        many = len(lost) > 1
        return Notice(
            "unconfirmed_trade",
            f"{trade.symbol}: the {names} exit{'s' if many else ''} of trade"
            f" {trade.id} {'were' if many else 'was'} sent but could not be"
            " recorded (the journal and its side file had no room): the journal shows the"
            f" trade as before {'them' if many else 'it'}. Nothing is sent for it"
            " until you check your broker and confirm it with what the broker shows"
            " (exits_sent)",
            symbol=trade.symbol,
            detail={"trade_id": trade.id, "event": lost[-1], "events": lost},
        )
    doubt = in_doubt(undispatched, trade.id)
    entry = (
        "its entry may never have reached the broker (discard it if the broker holds none of it)"
        if "open" in doubt
        else "its entry did go out"
    )
    return Notice(
        "unconfirmed_trade",
        f"{trade.symbol}: trade {trade.id} was journaled but the process stopped"
        f" before every plugin heard of its {' and '.join(doubt)} event; {entry}."
        " Nothing is sent for it until you check your broker and confirm or close it",
        symbol=trade.symbol,
        detail={"trade_id": trade.id, "events": doubt},
    )


def _cut(cut: CutSequence) -> Notice:
    # A kill's sequence belongs to no trade and no symbol: it is named as the kill.
    where = f"{cut.symbol}: " if cut.symbol else ""
    what = f"the {cut.event} of trade {cut.trade_id}" if cut.trade_id else f"the {cut.event}"
    if cut.dropped_exit:
        return Notice(
            "exit_dropped",
            f"{where}{cut.plugin} gave up on {what} (an exit) before the last stop"
            f" ({', '.join(cut.unsent)} not sent): the journal shows the trade closed; if your"
            " broker still holds the position, close it by hand",
            symbol=cut.symbol,
            detail={"trade_id": cut.trade_id, "plugin": cut.plugin, "unsent": list(cut.unsent)},
        )
    sent = ", ".join(cut.sent) or "nothing"
    unsent = ", ".join(cut.unsent) or "nothing"
    how_far = (
        f"the wire log shows {sent} sent and ran out of room: {unsent} may or may not have gone out"
        if cut.log_incomplete
        else f"sent {sent}; not sent {unsent}"
    )
    return Notice(
        "sequence_cut",
        f"{where}{cut.plugin} was sending {what} when the process stopped: {how_far}. Check your broker",
        symbol=cut.symbol,
        detail={
            "trade_id": cut.trade_id,
            "plugin": cut.plugin,
            "sent": list(cut.sent),
            "unsent": list(cut.unsent),
        },
    )
