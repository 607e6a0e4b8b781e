"""One event's command sequence, and when it may still go out."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable

import attrs

log = logging.getLogger("momobot.hotkey")

# Batch ids only need to be unique within one journal's wire log: a counter behind a
# per-process prefix costs a tenth of a uuid4 on the trading path.
_PREFIX = f"{os.getpid():x}{int(time.time()):x}"
_COUNTER = itertools.count()


def _batch_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER)}"


@attrs.define(eq=False)
class Batch:
    """One event's commands, sent in order ``gap`` seconds apart, on one connection.

    ``ttl`` counts from ``fired_at`` (``time.monotonic()`` when the hook
    fired): a command not on the wire by then is dropped, never sent late.
    ``exit`` marks the sequences that protect the account (stop, manual,
    kill): a person is told while they wait and, if one is dropped, told to
    close the position by hand.
    """

    names: tuple[str, ...]  # the commands, for logs
    payloads: tuple[str, ...]  # what goes on the wire (the name, or JSON)
    fired_at: float  # time.monotonic() when the hook fired
    ttl: float = 2.0
    gap: float = 0.0
    exit: bool = False
    event: str = "manual_command"
    symbol: str = ""
    trade_id: str = ""
    done: Callable[[bool], None] | None = None
    label: str = ""  # the event, for people (demo table)
    id: str = attrs.field(factory=_batch_id)
    sent: int = 0  # how many commands have left
    next_due: float = 0.0  # when the next command may go (monotonic)
    connection: int = 0  # the connection that carries it, once its first command left
    receipts: list[float] = attrs.field(factory=list)  # monotonic time each command left
    pending_told: bool = False  # an exit_pending alert went out for it
    logged: bool = False  # its "queued" record is in the wire log

    def expired(self, now: float) -> bool:
        return now - self.fired_at > self.ttl

    @property
    def unsent(self) -> tuple[str, ...]:
        return self.names[self.sent :]

    def about(self) -> str:
        """``ABCD tp1 of trade 1a2b`` (empty parts left out), for log lines and alerts."""
        what = " ".join(p for p in (self.symbol, self.event) if p)
        return f"{what} of trade {self.trade_id}" if self.trade_id else what

    def __str__(self) -> str:
        # A log line's argument is made text when the line is written (on the link's thread).
        return self.about()

    def finish(self, ok: bool) -> None:
        if self.done is not None:
            done, self.done = self.done, None
            try:
                done(ok)
            except Exception:  # a caller's callback must not break the link
                log.exception("[Hotkey] completion callback failed")
