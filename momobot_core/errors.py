"""The errors the core's parts share: the journal's, and an action the engine refuses."""

from __future__ import annotations


class JournalError(Exception):
    """The journal file cannot be opened, is in use by another writer, or is not a MomoBot journal."""


class JournalWriteError(JournalError):
    """One write failed (the file is locked by another program, the disk is full, ...)."""


class TradeRefused(Exception):
    """An action the engine will not take. ``kind`` says why, for callers that map it:

    ``unknown_symbol`` (no quote for it yet), ``already_open``, ``no_position``,
    ``invalid`` (levels or quantity that make no sense), ``market`` (levels
    that are sound but not at the current ask: a stop at or above it, a TP1 at
    or below it, a risk that sizes too many shares; HTTP 409), ``journal`` (the
    journal cannot take an entry now: HTTP 503), ``halted`` (a limit refuses
    entries now: ``rule`` names it; HTTP 403).
    """

    def __init__(self, message: str, kind: str = "invalid", rule: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        #: The limit that refused it (``stale_quote_s``, ``trading_halt``, ...), for HTTP 403 bodies.
        self.rule = rule
