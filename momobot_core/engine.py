"""The trade engine: the order of work per event, and the one way in (``apply``, ``submit``).

The rules of a trade's life (DESIGN.md, "Trade rules") are in :mod:`momobot_core.brackets`:
a pure step from a trade and a quote to the exits it causes. This module does the rest.

Per event the order of work is fixed: validate, compute the new state,
**commit it to the journal**, make it current, call the hooks, then mark the
event dispatched (a second small commit, after the hooks' own work on an event
loop). A journal that cannot be written refuses an entry (nothing is sent)
but never holds an exit back: the exit goes to the journal's side file first,
and entries halt until the side file is back in the journal.

The quote path does as little as it can: a quote for a symbol with no open
trade costs a validation and a dict store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from momobot_core import brackets
from momobot_core.config import Config, CoreSettings
from momobot_core.journal import JournalEvent, JournalWriteError, WireLog
from momobot_core.models import (
    Alert,
    Close,
    CloseReason,
    Fill,
    Intent,
    Kill,
    Leg,
    Open,
    Order,
    Quote,
    Resume,
    Side,
    Target,
    Trade,
    leg_pnl,
)
from momobot_core.record import Record
from momobot_core.restart import in_doubt, lost_exits, restart_notices
from momobot_core.risk import Halt, RiskBook, RiskRefused, RiskSettings
from momobot_core.watch import QuoteWatch, TradingHalts

if TYPE_CHECKING:
    from momobot_core.journal import Journal
    from momobot_core.plugins import Hooks
    from momobot_core.sources import QuoteSource, Watchlist

log = logging.getLogger("momobot.engine")
alert_log = logging.getLogger("momobot.alert")

MODES = ("live", "replay", "demo")
#: What ``Engine.apply`` takes.
Event = Quote | Open | Close | Kill | Resume | Fill
#: The largest quantity and price the engine takes: beyond any real order, and far inside what
#: SQLite and a float hold, so no bad input reaches the journal.
MAX_QTY = 1_000_000_000
MAX_PRICE = 10_000_000.0
# Past this many, rejected quotes are counted but no longer logged one by one.
_REJECTS_LOGGED = 10
#: The day's alerts kept in memory (GET /alerts, the dashboard); the journal keeps them all.
ALERTS_KEPT = 1000
#: Events other threads may have waiting for the engine (``Engine.submit``).
SUBMIT_QUEUE = 100_000


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


class Clock:
    """Event time. In a replay it is the time of the last event; live, the wall clock."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.current: datetime | None = None

    def now(self) -> datetime:
        if self.live or self.current is None:
            return datetime.now(UTC)
        return self.current


@attrs.define
class Counters:
    """What a run did, for the summary."""

    quotes: int = 0
    rejected_quotes: int = 0
    refused_actions: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    orders: int = 0
    #: Broker fills an order plugin reported (``Fill``), each recorded once.
    fills: int = 0
    #: Entries refused by a limit (``[risk]`` keys, ``kill_switch``, ``trading_halt``, ...), by rule.
    refused_by_rule: dict[str, int] = attrs.field(factory=dict)


def _new_id() -> str:
    return os.urandom(8).hex()  # a uuid4 costs 7 us on the trading path, this 1


def _price_ok(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value <= MAX_PRICE


class Engine:
    """Runs bracket trades against a quote stream and tells plugins about every event.

    Not thread-safe: feed it from one thread (the replay loop, or serve's event
    loop) with :meth:`apply`. From any other thread, :meth:`submit` an event
    and raise an :meth:`alert`.
    """

    def __init__(
        self,
        *,
        config: Config | None = None,
        hooks: Hooks | None = None,
        journal: Journal | None = None,
        mode: str = "replay",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.config = config if config is not None else Config()
        self.settings = CoreSettings.from_config(self.config)
        self.mode = mode
        self.hooks = hooks
        self.journal = journal
        self.clock = Clock(live=(mode == "live"))
        self.counters = Counters()
        self.last_quotes: dict[str, Quote] = {}
        self.open_trades: dict[str, Trade] = {}
        self.alerts: collections.deque[Alert] = collections.deque(maxlen=ALERTS_KEPT)
        #: Alerts of today raised before a restart (from the journal): shown, never raised again.
        self.earlier_alerts: list[Alert] = []
        self._hold_until: dict[str, datetime] = {}
        #: When each open trade's stop last moved (TP1's quote), and the print known then: older
        #: prints, and that same print, never trigger it.
        self._stop_moved_at: dict[str, brackets.StopMove] = {}
        self._min_hold = timedelta(seconds=self.settings.min_hold_s)
        self._started = False
        self._stopped = False
        #: The journal's writes, the side file and the dispatched marks.
        self._record = Record(journal, self.alert)
        self._owner = threading.get_ident()
        self._inbox: collections.deque[Alert] = collections.deque()  # alerts from other threads
        self.loop: asyncio.AbstractEventLoop | None = None  # set by serve: alerts reach it at once
        self.risk = RiskSettings.from_config(self.config)
        #: The day's count against the [risk] limits, and a halt of the day's entries.
        self.book = RiskBook(self.risk, self.settings.tz)
        self._trade_pnl: dict[str, float] = {}  # realised P&L of open trades' legs so far
        self._sane_bid: dict[str, float] = {}  # last bid of a quote with a sane spread, open trades
        #: max_daily_loss reached inside an event ("realised" or "unrealised"): flatten after it.
        self._kill_due: str | None = None
        self._killing = False
        #: The live source and its watchlist, when ``serve --source`` runs one.
        self.source: QuoteSource | None = None
        self.watchlist: Watchlist | None = None
        #: Symbols under a trading halt or a limit-up/limit-down pause: entries refused.
        self._halts = TradingHalts()
        self._quote_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._started_at = time.monotonic()
        #: Quotes that stopped (a silent source, an open trade's symbol): entries halt meanwhile.
        self._quote_watch = QuoteWatch(self.risk.stale_quote_s, self._started_at)
        #: False while the quotes are delayed (a source allowed to run on a delayed feed): plugins
        #: that send orders or hotkeys must stay quiet.
        self.sending_allowed = True
        self._undispatched: list[tuple[str, str, str, str]] = []
        self._submitted: collections.deque[Event] = collections.deque()
        self._submit_lock = threading.Lock()
        self._drain_scheduled = False
        self._overflows = 0
        if journal is not None:
            self._undispatched = journal.undispatched()
            unconfirmed = {trade_id for trade_id, _, _, _ in self._undispatched}
            for restored in journal.open_trades():
                trade = attrs.evolve(restored, unconfirmed=restored.id in unconfirmed)
                self.open_trades[trade.symbol] = trade
                self._hold_until[trade.symbol] = trade.opened_at + self._min_hold
            if self.open_trades:
                log.info(
                    "restored %d open trade(s) from the journal: %s",
                    len(self.open_trades),
                    ", ".join(sorted(self.open_trades)),
                )

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Call ``on_startup`` plugin by plugin, then raise the alerts a restart found.

        A plugin's ConfigError (or any error, named) propagates: start-up must stop.
        """
        if self._started:
            return
        self._started = True
        self._owner = threading.get_ident()
        if self.hooks is not None:
            self.hooks.start(self)
        self._restart_alerts()
        if self.clock.live:
            now = self.clock.now()
            self._roll(now)  # a halted day stays halted across a restart
            self._restore_alerts(now)

    def _restart_alerts(self) -> None:
        """What a restart found, told once: see :mod:`momobot_core.restart`."""
        journal = self.journal
        if journal is not None:
            notices, told = restart_notices(journal, list(self.open_trades.values()), self._undispatched)
            for notice in notices:
                self.alert(notice.kind, notice.message, symbol=notice.symbol, **notice.detail)
            if told:
                # The trade is closed: there is nothing left to confirm; told once is enough.
                journal.confirm_closed(told)
        if self.journal_pending:
            self.retry_journal()

    def _restore_alerts(self, now: datetime) -> None:
        """Earlier alerts of today (a restart), for the day's list; not raised again."""
        if self.journal is None or self.journal.in_memory:
            return
        local = now.astimezone(self.settings.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        mine = {(a.kind, a.message, a.ts) for a in self.alerts}
        self.earlier_alerts = [
            Alert(kind=kind, message=message, symbol=symbol, ts=ts)
            for kind, message, symbol, ts in self.journal.alerts_since(midnight)
            if (kind, message, ts) not in mine
        ]

    def shutdown(self) -> None:
        """Call ``on_shutdown`` once for every plugin that started (each bounded in time)."""
        if self._stopped:
            return
        self._stopped = True
        if self.hooks is not None and self._started:
            self.hooks.shutdown(self)  # plugins flush what they still had to send
        self._keep_fills()
        self._record.mark()
        self._drain_inbox()

    def _keep_fills(self) -> None:
        """At exit: broker fills still waiting for the engine's thread go to the journal (nothing
        else that waits is applied once the plugins have stopped)."""
        with self._submit_lock:
            waiting, self._submitted = self._submitted, collections.deque()
        dropped = 0
        for event in waiting:
            if type(event) is Fill:
                try:
                    self.record_fill(event)
                except TradeRefused as exc:
                    log.warning("refused fill: %s", exc)
            else:
                dropped += 1
        if dropped:
            log.info("%d event(s) from other threads not applied: the bot is stopping", dropped)

    def _notify(self, hook_name: str, **kwargs: object) -> None:
        if self.hooks is not None:
            self.hooks.notify(hook_name, **kwargs)

    def wire_log(self, plugin: str) -> WireLog:
        """Where a plugin that writes to the outside world records what it actually wrote."""
        if self.journal is None:
            return WireLog(None, plugin)
        return self.journal.wire_log(plugin)

    # -- alerts ------------------------------------------------------------------

    def alert(self, kind: str, message: str, symbol: str | None = None, **detail: object) -> Alert:
        """Tell a person something now: logged, kept for the day, and sent through ``on_alert``.

        Safe from any thread: off the engine's thread the ``on_alert`` hooks
        run on the engine's thread (at once on an event loop, else with the
        next event).
        """
        alert = Alert(kind=kind, message=message, symbol=symbol, ts=datetime.now(UTC), detail=dict(detail))
        alert_log.warning("[%s] %s", kind, message)
        if threading.get_ident() == self._owner:
            self._publish(alert)
        else:
            self._inbox.append(alert)
            loop = self.loop
            if loop is not None and not loop.is_closed():
                # RuntimeError: the loop closed meanwhile; the next event drains the inbox.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._drain_inbox)
        return alert

    def _publish(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if self.journal is not None:
            self.journal.record_alert(alert.kind, alert.message, alert.symbol, alert.ts)
        self._notify("on_alert", alert=alert)

    def _drain_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            self._publish(inbox.popleft())

    # -- the one way in -----------------------------------------------------------

    def apply(self, event: Event) -> Trade | bool | list[Trade]:
        """Apply one event on the engine's thread: the one way trading state changes.

        A Quote returns False when it was rejected as malformed; an Open or a
        Close returns the trade and raises TradeRefused when refused; a Kill
        returns the trades it flattened; a Resume returns True; a Fill returns
        True when it was recorded (False: that execution was already kept).
        Replays move the engine's clock to the event's time (not a Fill's: a
        broker's time is not the replay's); live, it is the wall clock.
        """
        if type(event) is Quote:
            return self.on_quote(event)
        if self._submitted:
            self._drain_submitted()
        if type(event) is Fill:
            return self.record_fill(event)
        if not self.clock.live:
            self.clock.current = event.ts
        if type(event) is Open:
            return self.open_trade(
                event.symbol, event.qty, event.tp1, event.tp2, event.stop, ts=event.ts, risk=event.risk
            )
        if type(event) is Close:
            return self.close_trade(event.symbol, ts=event.ts)
        if type(event) is Kill:
            return self.kill(event.reason, ts=event.ts)
        if type(event) is Resume:
            return self.resume(ts=event.ts)
        raise TypeError(f"not an engine event: {event!r}")

    def submit(self, event: Event) -> bool:
        """Hand an event to the engine's thread from any other thread; never blocks.

        The queue is bounded: past :data:`SUBMIT_QUEUE` waiting events a new one
        is refused (False) and a person is told (``queue_overflow``), never
        dropped in silence.
        """
        with self._submit_lock:
            if len(self._submitted) >= SUBMIT_QUEUE:
                self._overflows += 1
                overflows = self._overflows
            else:
                self._submitted.append(event)
                overflows = 0
                wake = not self._drain_scheduled
                self._drain_scheduled = True
        if overflows:
            if overflows == 1 or not overflows % 1000:
                self.alert(
                    "queue_overflow",
                    f"{overflows} event(s) refused: {SUBMIT_QUEUE} were already"
                    " waiting for the engine (it is falling behind its sources)",
                )
            return False
        loop = self.loop
        if wake and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing: the next event drains it
                loop.call_soon_threadsafe(self._drain_submitted)
        return True

    def _drain_submitted(self) -> None:
        with self._submit_lock:
            events, self._submitted = self._submitted, collections.deque()
            self._drain_scheduled = False
        for event in events:
            try:
                self.apply(event)
            except TradeRefused as exc:
                log.warning("refused %s: %s", type(event).__name__.lower(), exc)

    # -- quotes ------------------------------------------------------------------

    def on_quote(self, quote: Quote) -> bool:
        """Take one quote; act on the symbol's open trade. False if the quote was rejected."""
        if self._inbox:
            self._drain_inbox()
        # Chained comparisons are False for NaN, so these also reject non-finite prices.
        if 0 < quote.bid <= quote.ask <= MAX_PRICE:
            last = quote.last
            if last is None or 0 < last <= MAX_PRICE:
                symbol = quote.symbol
                self.last_quotes[symbol] = quote
                self.clock.current = quote.ts
                self.counters.quotes += 1
                if self._quote_waiters:
                    self._first_quote(symbol)
                trade = self.open_trades.get(symbol)
                if trade is not None:
                    self._quote_watch.quoted(symbol, time.monotonic())
                    if not trade.unconfirmed:
                        self._check_targets(trade, quote)
                    if self.risk.max_daily_loss is not None:
                        self._watch_loss(quote)
                    if self._kill_due is not None:
                        self._after_exits(quote.ts)
                return True
        self._reject(quote)
        return False

    def _reject(self, quote: Quote) -> None:
        self.counters.rejected_quotes += 1
        n = self.counters.rejected_quotes
        if n <= _REJECTS_LOGGED:
            log.warning(
                "rejected malformed quote for %s at %s (bid=%r ask=%r last=%r): prices must"
                " be positive, at most %g, with bid <= ask",
                quote.symbol,
                quote.ts.isoformat(),
                quote.bid,
                quote.ask,
                quote.last,
                MAX_PRICE,
            )
            if n == _REJECTS_LOGGED:
                log.warning("further malformed quotes are counted but not logged")

    def _check_targets(self, trade: Trade, quote: Quote) -> None:
        if self._min_hold and quote.ts < self._hold_until[trade.symbol]:
            return
        for target in brackets.exits(trade, quote, self._stop_moved_at.get(trade.id)):
            if target is Target.TP1:
                trade = self._take_profit_1(trade, quote)
            elif target is Target.TP2:
                self._close(
                    trade, target, quote.ask, quote.ts, Intent.TAKE_PROFIT, CloseReason.TP2, quote=quote
                )
            else:
                self._close(trade, target, quote.bid, quote.ts, Intent.STOP, CloseReason.STOP, quote=quote)

    # -- actions -----------------------------------------------------------------

    def open_trade(
        self,
        symbol: str,
        qty: int | None,
        tp1: float,
        tp2: float,
        stop: float,
        ts: datetime | None = None,
        risk: float | None = None,
    ) -> Trade:
        """Open a long bracket trade with an entry buy at the symbol's current ask.

        Give ``qty``, or ``risk`` (dollars, qty None) to have it sized. Raises
        TradeRefused; then nothing was journaled and no plugin heard of it.
        """
        if self._inbox:
            self._drain_inbox()
        ts = ts if ts is not None else self.clock.now()
        try:
            qty = self._check_open(symbol, qty, tp1, tp2, stop, risk, ts)
        except TradeRefused as exc:
            self.counters.refused_actions += 1
            if exc.rule is not None:
                self._refused(symbol, exc, ts)
            raise
        quote = self.last_quotes[symbol]
        trade = Trade(
            id=_new_id(),
            symbol=symbol,
            qty=qty,
            remaining=qty,
            entry_price=quote.ask,
            tp1=tp1,
            tp2=tp2,
            stop=stop,
            opened_at=ts,
            initial_stop=stop,
        )
        order = self._order(trade, Side.BUY, qty, quote.ask, Intent.ENTRY, ts)
        event = JournalEvent("open", trade, order)
        try:
            self._record.commit_entry(event)
        except JournalWriteError as exc:
            self.counters.refused_actions += 1
            raise TradeRefused(
                f"{symbol}: entry refused: the journal cannot be written ({exc})", "journal"
            ) from None
        self.open_trades[symbol] = trade
        self._hold_until[symbol] = ts + self._min_hold
        # Opened on a quote: its silence counts from now, not from the start of the process.
        self._quote_watch.quoted(symbol, time.monotonic())
        self.book.entries += 1
        self.counters.trades_opened += 1
        self.counters.orders += 1
        self._notify("on_order_submitted", order=order, trade=trade)
        self._dispatched(event.id, pending=False)
        return trade

    def _check_open(
        self,
        symbol: str,
        qty: int | None,
        tp1: float,
        tp2: float,
        stop: float,
        risk: float | None,
        ts: datetime,
    ) -> int:
        """Validate an entry against the rules and the limits; the quantity to buy, or TradeRefused."""
        self._roll(ts)
        halt = self.book.halt
        if halt is not None:
            raise TradeRefused(
                f"{symbol}: entries are halted for the day: {halt.message}", "halted", rule=halt.reason
            )
        stale = self._quote_watch.refusal(symbol)
        if stale is not None:
            raise TradeRefused(stale, "halted", rule="stale_quote_s")
        halted = self._halts.refusal(symbol)
        if halted is not None:
            raise TradeRefused(halted, "halted", rule="trading_halt")
        refusal = self._record.entry_refusal(symbol)
        if refusal is not None:
            raise TradeRefused(refusal, "journal")
        if symbol in self.open_trades:
            raise TradeRefused(f"{symbol}: a trade is already open", "already_open")
        quote = self.last_quotes.get(symbol)
        if quote is None:
            raise TradeRefused(
                f"{symbol}: unknown symbol: no quote yet, so there is no ask to buy at", "unknown_symbol"
            )
        if (qty is None) == (risk is None):
            raise TradeRefused(
                f"{symbol}: give qty (shares) or risk (dollars to lose at the stop), not "
                + ("both" if qty is not None else "neither")
            )
        if risk is not None and (
            isinstance(risk, bool) or not isinstance(risk, int | float) or not 0 < risk <= MAX_PRICE
        ):
            raise TradeRefused(
                f"{symbol}: risk must be dollars above 0 and at most {MAX_PRICE:,.0f}, not {risk!r}"
            )
        if isinstance(qty, str):  # JSON and scripts can send one
            raise TradeRefused(f"{symbol}: qty {qty!r} is a string: give a whole number such as 100")
        if qty is not None and (isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QTY):
            raise TradeRefused(f"{symbol}: qty must be a whole number from 1 to {MAX_QTY:,}, not {qty!r}")
        for name, value in (("tp1", tp1), ("tp2", tp2), ("stop", stop)):
            if not _price_ok(value):
                raise TradeRefused(
                    f"{symbol}: {name} must be a price above 0 and at most {MAX_PRICE:,.0f}, not {value!r}"
                )
        if not stop < quote.ask:
            raise TradeRefused(
                f"{symbol}: stop {stop} must be below the entry price (ask {quote.ask})", "market"
            )
        if not quote.ask < tp1:
            raise TradeRefused(
                f"{symbol}: tp1 {tp1} must be above the entry price (ask {quote.ask})", "market"
            )
        if not tp1 <= tp2:
            raise TradeRefused(f"{symbol}: tp2 {tp2} must be at or above tp1 {tp1}")
        try:
            if qty is None:
                assert risk is not None
                qty = self.book.size(symbol, risk, quote.ask, stop)
                if qty > MAX_QTY:
                    raise TradeRefused(
                        f"{symbol}: risk ${risk:,.2f} over a stop {quote.ask - stop:.4f} below the ask"
                        f" sizes {qty:,} shares, more than the {MAX_QTY:,} the engine takes",
                        "market",
                    )
            # What the open trades lose at their stops matters only to max_daily_loss: summed then.
            at_risk = self._at_stops() if self.risk.max_daily_loss is not None else 0.0
            self.book.check_entry(symbol, qty, quote.ask, stop, ts, len(self.open_trades), at_risk)
        except RiskRefused as exc:
            raise TradeRefused(str(exc), "risk", rule=exc.rule) from None
        return qty

    def _at_stops(self) -> float:
        """What the open trades would lose together if every stop were hit (0 or less)."""
        return sum(min(0.0, (t.stop - t.entry_price) * t.remaining) for t in self.open_trades.values())

    def _refused(self, symbol: str, exc: TradeRefused, ts: datetime) -> None:
        """An entry a limit refused: counted by rule, logged, journaled, and an alert."""
        rule = exc.rule or "risk"
        self.counters.refused_by_rule[rule] = self.counters.refused_by_rule.get(rule, 0) + 1
        self.alert("risk_refused", f"entry refused ({rule}): {exc}", symbol=symbol, rule=rule)
        if self.journal is not None:
            try:
                self.journal.record_risk("refused", rule, str(exc), symbol, ts, self.book.trading_day(ts))
            except JournalWriteError as error:
                log.debug("refusal not journaled: %s", error)

    def close_trade(self, symbol: str, ts: datetime | None = None) -> Trade:
        """Manual close: sell what remains at the bid (an unconfirmed trade too: a person asked)."""
        if self._inbox:
            self._drain_inbox()
        trade = self.open_trades.get(symbol)
        if trade is None:
            self.counters.refused_actions += 1
            raise TradeRefused(f"{symbol}: no open trade to close", "no_position")
        quote = self.last_quotes.get(symbol)
        if quote is None:
            self.counters.refused_actions += 1
            raise TradeRefused(
                f"{symbol}: no quote since start-up, so there is no bid to sell at", "unknown_symbol"
            )
        lost = self.lost_exits(trade.id) if trade.unconfirmed else []
        if lost:
            # Sold on the journal's view it would sell shares the lost exit may have sold already,
            # and drop that exit's leg: the person says first what the broker shows.
            self.counters.refused_actions += 1
            raise TradeRefused(
                f"{symbol}: the {' and '.join(lost)} exit of trade {trade.id} was sent but not"
                " recorded: confirm the trade first with what your broker shows (exits_sent), then"
                " close what it still holds",
                "lost_exit",
            )
        ts = ts if ts is not None else self.clock.now()
        after = self._close(trade, None, quote.bid, ts, Intent.MANUAL, CloseReason.MANUAL)
        self._after_exits(ts)
        return after

    def discard_trade(self, symbol: str, ts: datetime | None = None) -> Trade:
        """A person checked the broker: an unconfirmed trade's entry never reached it. The trade is
        closed in the journal (reason ``discarded``, no leg, no P&L) and nothing is sent: no
        plugin hears of it. Only an unconfirmed trade: one the broker holds is closed instead."""
        trade = self.open_trades.get(symbol)
        if trade is None:
            raise TradeRefused(f"{symbol}: no open trade to discard", "no_position")
        if not trade.unconfirmed:
            raise TradeRefused(
                f"{symbol}: trade {trade.id} is not unconfirmed: only a trade the broker may never"
                " have had can be discarded; close it to sell what it holds",
                "already_open",
            )
        lost = self.lost_exits(trade.id)
        if (
            lost
            and self.journal is not None
            and all(e is not None for e in self.journal.lost_exits(trade.id))
        ):
            raise TradeRefused(
                f"{symbol}: the {' and '.join(lost)} exit of trade {trade.id} went out unrecorded, so"
                " its entry reached the broker: confirm the trade with what your broker shows"
                " (exits_sent) instead; it is journaled as it was",
                "lost_exit",
            )
        if not lost and "open" not in self._in_doubt(trade.id):
            # Its entry's hooks all ran: the entry went out. Discarded, the shares the broker
            # holds would be watched by nothing and protected by no stop.
            raise TradeRefused(
                f"{symbol}: the entry of trade {trade.id} went out (only its"
                f" {' and '.join(self._in_doubt(trade.id)) or 'last'} event is in doubt): confirm it,"
                " or close it to sell what it holds",
                "already_open",
            )
        ts = ts if ts is not None else self.clock.now()
        after = attrs.evolve(trade, closed_at=ts, close_reason=CloseReason.DISCARDED, unconfirmed=False)
        if self.journal is not None:
            try:
                self._record.fold()  # the trade's own events first
                self.journal.write(JournalEvent("discard", after, at=ts))
            except JournalWriteError as exc:
                raise TradeRefused(
                    f"{symbol}: not discarded: the journal cannot be written ({exc})", "journal"
                ) from None
        del self.open_trades[symbol]
        self._hold_until.pop(symbol, None)
        self._stop_moved_at.pop(trade.id, None)
        self._sane_bid.pop(symbol, None)
        log.warning(
            "%s: trade %s discarded by a person (its entry never reached the broker): closed in the"
            " journal, nothing sent",
            symbol,
            trade.id,
        )
        return after

    def _in_doubt(self, trade_id: str) -> list[str]:
        """The kinds of a restored trade's events the plugins may not have heard of."""
        return in_doubt(self._undispatched, trade_id)

    def lost_exits(self, trade_id: str) -> list[str]:
        """The kinds of the exits of an open trade that went out unrecorded (``tp1``, ``stop``...):
        its confirm needs a person's word on them (see :meth:`confirm_trade`)."""
        return lost_exits(self._undispatched, trade_id)

    def confirm_trade(self, symbol: str, exits_sent: bool | None = None) -> Trade:
        """A person checked the broker: an unconfirmed trade is watched (and mirrored) again.

        A trade whose exit went out but could not be recorded (``lost_*``) needs the person's
        word on that exit: ``exits_sent=True`` records it as it was sent (the broker shows it
        done; nothing is sent), ``False`` resumes the trade as before it (the exit goes out
        again when its price comes). Without it the confirm is refused (``lost_exit``).
        """
        trade = self.open_trades.get(symbol)
        if trade is None:
            raise TradeRefused(f"{symbol}: no open trade to confirm", "no_position")
        if not trade.unconfirmed:
            raise TradeRefused(f"{symbol}: trade {trade.id} is not unconfirmed", "already_open")
        lost = self.lost_exits(trade.id)
        if lost:
            names = " and ".join(lost)
            if exits_sent is None:
                raise TradeRefused(
                    f"{symbol}: the {names} exit of trade {trade.id} was sent but not recorded: say"
                    " what your broker shows. exits_sent true: it was done, it is recorded as sent"
                    " and nothing is sent; exits_sent false: it was not, the trade resumes as"
                    " before it and the exit goes out again when its price comes",
                    "lost_exit",
                )
            if exits_sent:
                return self._record_lost_exits(trade, names)
        elif exits_sent is not None:
            raise TradeRefused(f"{symbol}: trade {trade.id} has no exit that went out unrecorded")
        confirmed = attrs.evolve(trade, unconfirmed=False)
        if self.journal is not None:
            try:
                self._record.fold()
                self.journal.write(JournalEvent("confirm", confirmed, at=datetime.now(UTC)))
            except JournalWriteError as exc:
                raise TradeRefused(
                    f"{symbol}: not confirmed: the journal cannot be written ({exc})", "journal"
                ) from None
        self.open_trades[symbol] = confirmed
        self._undispatched = [row for row in self._undispatched if row[0] != trade.id]
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
        self._roll(now)
        try:
            self._record.fold()
            journal.record_lost_exits(exits, JournalEvent("confirm", after, at=now))
        except JournalWriteError as exc:
            raise TradeRefused(
                f"{symbol}: not confirmed: the journal cannot be written ({exc})", "journal"
            ) from None
        self._undispatched = [row for row in self._undispatched if row[0] != trade.id]
        closed = after.closed_at is not None
        for event in exits:
            if event.leg is not None:
                self._count_leg(event.trade, event.leg, closed=closed and event is exits[-1])
        if closed:
            del self.open_trades[symbol]
            self._hold_until.pop(symbol, None)
            self._sane_bid.pop(symbol, None)
            self.counters.trades_closed += 1
        else:
            self.open_trades[symbol] = after
            if after.tp1_hit:
                # The stop moved at break-even long ago; only prints after now may trigger it.
                last = self.last_quotes.get(symbol)
                self._stop_moved_at[after.id] = brackets.StopMove(
                    now, last.last if last else None, last.last_at if last else None
                )
        log.info(
            "%s: trade %s confirmed by a person: its %s exit, done at the broker, is recorded as sent",
            symbol,
            trade.id,
            names,
        )
        return after

    def record_fill(self, fill: Fill) -> bool:
        """A broker's fill of one of the engine's orders (an order plugin's report): journaled
        beside the engine's model price. The trade's state does not change: the engine trades
        its model; the fills show what the broker did. Raises TradeRefused for a fill that
        names no journaled order or makes no sense."""
        what = f"fill {fill.broker_ref!r} of order {fill.order_id!r}"
        if not isinstance(fill.qty, int) or isinstance(fill.qty, bool) or not 1 <= fill.qty <= MAX_QTY:
            raise TradeRefused(f"{what}: qty must be a whole number from 1 to {MAX_QTY:,}, not {fill.qty!r}")
        if not _price_ok(fill.price):
            raise TradeRefused(
                f"{what}: price must be above 0 and at most {MAX_PRICE:,.0f}, not {fill.price!r}"
            )
        if not isinstance(fill.broker_ref, str) or not fill.broker_ref:
            raise TradeRefused(f"{what}: broker_ref must name the broker's execution")
        if fill.ts.tzinfo is None:
            raise TradeRefused(f"{what}: ts must be an aware datetime")
        journal = self.journal
        if journal is None:
            self.counters.fills += 1
            return True
        order = journal.order(fill.order_id)
        if order is None and self._record.fold():  # its order may still wait for its fold
            order = journal.order(fill.order_id)
        if order is None and self.journal_pending and fill.order_id in journal.pending_order_ids():
            # Its order waits in the side file (the journal was locked when it went out).
            self._record.keep_fill(fill, fill.order_id, None)
            return True
        if order is None:
            raise TradeRefused(f"{what}: the journal has no such order", "unknown_order")
        try:
            if self._record.fills:
                self.counters.fills += self._record.retry_fills()
            new = journal.record_fill(fill)
        except JournalWriteError as exc:
            self._record.keep_fill(fill, order.symbol, exc)
            return True
        if new:
            self.counters.fills += 1
            log.info(
                "%s: broker filled %d of %s order %s at %s (model %s)",
                order.symbol,
                fill.qty,
                order.intent.value,
                order.id,
                fill.price,
                order.price,
            )
        return new

    # -- the journal ---------------------------------------------------------------

    def _commit_exit(self, event: JournalEvent) -> bool:
        """Journal an exit, or put it in the side file: never hold it back. True if in the side file."""
        return self._record.commit_exit(event)

    @property
    def journal_pending(self) -> bool:
        """True while exits wait in the journal's side file: entries are refused until then."""
        return self._record.pending

    @property
    def journal_error(self) -> str | None:
        """The last journal write's failure (None once a write succeeds): /ping tells it."""
        return self._record.error

    @property
    def _fills_pending(self) -> list[Fill]:
        return self._record.fills

    @property
    def journal_state(self) -> str:
        """What /ping and the dashboard say of the journal: ``ok`` or what is wrong."""
        return self._record.state

    @property
    def entries_halted(self) -> bool:
        """Entries cannot go now (the journal, a stale feed or a halt): /ping's ``halted``."""
        return self._record.halts_entries or bool(self.stale_quotes) or self.book.halt is not None

    def retry_journal(self) -> bool:
        """Try to move the side file into the journal. True when nothing is pending any more."""
        return self._record.retry()

    def tick(self) -> None:
        """Periodic upkeep on the engine's thread (serve calls it): alerts, the side file, stale quotes."""
        self._drain_inbox()
        if self._submitted:
            self._drain_submitted()
        if self.journal_pending:
            self.retry_journal()
        self._record.tick()
        if self._record.fills:
            with contextlib.suppress(JournalWriteError):
                self.counters.fills += self._record.retry_fills()
        self._check_stale()
        if self.clock.live:
            now = datetime.now(UTC)
            self._roll(now)
            if self.open_trades and self.book.breach_confirmed(now):
                halt = self.book.halt
                if halt is None or halt.reason != "max_daily_loss":
                    self._kill_due = "unrealised"
                    self._after_exits(now)

    # -- live quotes -----------------------------------------------------------------

    def _check_stale(self) -> None:
        """A silent live source, or an open trade's symbol without quotes: alert, and halt entries."""
        if not self.risk.stale_quote_s or not self.clock.live:
            return
        source = self.source
        age = source.status().last_message_age_s if source is not None else None
        for notice in self._quote_watch.check(time.monotonic(), age, source is not None, self.open_trades):
            self.alert(notice.kind, notice.message, symbol=notice.symbol, **notice.detail)

    @property
    def stale_quotes(self) -> frozenset[str]:
        """What is stale now (``"source"`` and symbols): entries are halted while it is not empty."""
        return self._quote_watch.stale

    @property
    def halted_symbols(self) -> dict[str, str]:
        """Symbols under a trading halt or a limit-up/limit-down pause: entries refused."""
        return self._halts.symbols

    def trading_halt(self, symbol: str, halted: bool, reason: str) -> None:
        """A source saw a trading halt or a limit-up/limit-down pause begin (or end) on ``symbol``."""
        notice = self._halts.change(symbol, halted, reason)
        if notice is not None:
            self.alert(notice.kind, notice.message, symbol=notice.symbol, **notice.detail)

    async def wait_for_quote(self, symbol: str, timeout: float) -> bool:
        """Wait (on the engine's loop) until ``symbol`` has a quote; False after ``timeout`` seconds."""
        if symbol in self.last_quotes:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._quote_waiters.setdefault(symbol, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._quote_waiters.get(symbol, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._quote_waiters.pop(symbol, None)

    def _first_quote(self, symbol: str) -> None:
        for future in self._quote_waiters.pop(symbol, ()):
            if not future.done():
                future.set_result(None)
        if self.journal_pending:
            self.retry_journal()

    def _dispatched(self, event_id: str, pending: bool) -> None:
        """The hooks of an event have run: mark it, after whatever the hooks left to the loop."""
        self._record.dispatched(event_id, pending)

    # -- exits -------------------------------------------------------------------

    def _take_profit_1(self, trade: Trade, quote: Quote) -> Trade:
        sell_qty = brackets.tp1_qty(trade)
        price = quote.ask
        after = brackets.after_tp1(trade)
        order = leg = None
        if sell_qty:
            order = self._order(after, Side.SELL, sell_qty, price, Intent.TAKE_PROFIT, quote.ts)
            leg = self._leg(after, sell_qty, price, Target.TP1.value, quote.ts)
        event = JournalEvent("tp1", after, order, leg, at=quote.ts)
        self._roll(quote.ts)  # before the commit: a new day read back must not hold this leg yet
        pending = self._commit_exit(event)
        self.open_trades[trade.symbol] = after
        self._stop_moved_at[after.id] = brackets.StopMove.on(quote)
        if leg is not None:
            self._count_leg(after, leg, closed=False)
        self._notify("on_target_hit", trade=trade, target=Target.TP1, quote=quote)
        if order is not None:
            self.counters.orders += 1
            self._notify("on_order_submitted", order=order, trade=after)
        self._dispatched(event.id, pending)
        return after

    def _close(
        self,
        trade: Trade,
        target: Target | None,
        price: float,
        ts: datetime,
        intent: Intent,
        reason: CloseReason,
        quote: Quote | None = None,
    ) -> Trade:
        after, order, event, pending = self._close_state(trade, target, price, ts, intent, reason)
        if target is not None:
            self._notify("on_target_hit", trade=trade, target=target, quote=quote)
        self.counters.orders += 1
        self._notify("on_order_submitted", order=order, trade=after)
        self._notify("on_position_closed", trade=after, reason=reason.value, price=price)
        self._dispatched(event.id, pending)
        return after

    def _close_state(
        self,
        trade: Trade,
        target: Target | None,
        price: float,
        ts: datetime,
        intent: Intent,
        reason: CloseReason,
        *,
        commit: bool = True,
    ) -> tuple[Trade, Order, JournalEvent, bool]:
        """Journal a trade's last exit and make it current; the hooks are the caller's.
        ``commit=False``: the caller journals the event (a kill, all its exits in one go)."""
        qty = trade.remaining
        after = brackets.after_close(trade, target, reason, ts)
        order = self._order(after, Side.SELL, qty, price, intent, ts)
        leg = self._leg(after, qty, price, reason.value, ts)
        event = JournalEvent(reason.value, after, order, leg)
        self._roll(ts)  # before the commit: a new day read back must not hold this leg yet
        pending = self._commit_exit(event) if commit else False
        del self.open_trades[trade.symbol]
        self._hold_until.pop(trade.symbol, None)
        self._stop_moved_at.pop(trade.id, None)
        self._sane_bid.pop(trade.symbol, None)
        self.counters.trades_closed += 1
        self._count_leg(after, leg, closed=True)
        return after, order, event, pending

    # -- risk: the day's count, halts and the kill switch ------------------------------

    def _roll(self, ts: datetime) -> None:
        """Keep the risk book on the trading day of ``ts`` (live: the wall clock's); a new day starts
        from the journal. Called before an event is journaled, so the day read back is the day
        before the event. Never goes back a day (a late quote just after midnight)."""
        book = self.book
        if self.clock.live:
            ts = datetime.now(UTC)
        day = book.trading_day(ts)
        if day == book.day or (book.day is not None and day < book.day):
            return
        lifted = book.halt
        if book.day is not None:  # a new day, not the first: yesterday's alerts are yesterday's
            self.alerts.clear()
            self.earlier_alerts = []
        book.roll(ts)
        self._load_day(day)
        if lifted is not None and book.halt is None:
            self.alert(
                "resumed",
                f"a new trading day ({day}): the halt of {lifted.day} ({lifted.reason}) is over;"
                " entries are allowed",
                what=lifted.reason,
            )

    def _load_day(self, day: date) -> None:
        """A day already under way in the journal (a restart): its P&L, entries, streak and halt."""
        journal = self.journal
        if journal is None:
            return
        book = self.book
        self._record.fold()
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
            self._trade_pnl.setdefault(trade.id, by_trade.get(trade.id, 0.0))
        for event in journal.risk_events(day, ("halt", "resume")):
            book.halt = Halt(event.rule, event.message, day) if event.kind == "halt" else None
        if book.halt is not None:
            log.warning("entries are halted for %s (journaled): %s", day, book.halt.message)
            if book.halt.reason in ("kill_switch", "max_daily_loss") and self.open_trades:
                # The flatten was journaled trade by trade after the halt: the process died in
                # between. These trades are still open here, and nothing was sent for them.
                left = ", ".join(sorted(self.open_trades))
                self.alert(
                    "halted",
                    f"a kill ({book.halt.reason}) was cut short by a stop of the process: {left} still"
                    " open and not flattened; check your broker and press the kill switch again",
                    reason=book.halt.reason,
                    symbols=sorted(self.open_trades),
                )

    def _count_leg(self, trade: Trade, leg: Leg, *, closed: bool) -> None:
        """A leg closed: today's P&L, the losing streak; a limit reached halts (or flattens, after).

        The caller rolled the book to the leg's day before journaling it."""
        book = self.book
        pnl = self._trade_pnl.pop(trade.id, 0.0) + leg.pnl
        if not closed:
            self._trade_pnl[trade.id] = pnl
        halt = book.halt
        if (
            book.leg_closed(leg.pnl)
            and not self._killing
            and (halt is None or halt.reason != "max_daily_loss")
        ):
            self._kill_due = "realised"
        if closed and book.trade_closed(pnl) and book.halt is None and self._kill_due is None:
            limit = self.risk.loss_streak
            message = f"{book.streak} losing trades in a row (loss_streak {limit})"
            self._set_halt("loss_streak", message, leg.closed_at)
            self.alert(
                "halted",
                f"{message}: entries are halted for the day (open trades keep their exits)",
                reason="loss_streak",
            )

    def _commit_kill(self, reason: str, message: str, ts: datetime, events: list[JournalEvent]) -> set[str]:
        """Journal a kill's halt and flattens together; the ids of the events that went to the
        side file instead (the journal could not take them: exits are never held back)."""
        day = self.book.trading_day(ts)
        self.book.halt = Halt(reason, message, day)
        self.book.breach_since = None
        return self._record.commit_kill(reason, message, ts, day, events)

    def _set_halt(self, reason: str, message: str, ts: datetime) -> None:
        day = self.book.trading_day(ts)
        self.book.halt = Halt(reason, message, day)
        self.book.breach_since = None
        self._record.record_halt(reason, message, ts, day)

    def _unrealised(self, bids: dict[str, float] | None = None) -> float:
        """Open trades valued at ``bids`` (default: the last sane bids; a trade without one: 0)."""
        bids = self._sane_bid if bids is None else bids
        return sum(
            (bids.get(t.symbol, t.entry_price) - t.entry_price) * t.remaining
            for t in self.open_trades.values()
        )

    def _watch_loss(self, quote: Quote) -> None:
        """Unrealised loss, on quotes with a sane spread only, confirmed over ``loss_confirm_s``."""
        halt = self.book.halt
        if self._killing or (halt is not None and halt.reason == "max_daily_loss"):
            return
        if not self.book.spread_ok(quote.bid, quote.ask):
            return  # a pulled bid neither starts nor ends a breach
        self._sane_bid[quote.symbol] = quote.bid
        self._roll(quote.ts)
        if self.book.unrealised_breach(self._unrealised(), quote.ts):
            self._kill_due = "unrealised"

    def _after_exits(self, ts: datetime) -> None:
        """After an event's own hooks: flatten the book if it reached max_daily_loss."""
        if self._kill_due is None or self._killing:
            return
        cause, self._kill_due = self._kill_due, None
        limit = self.risk.max_daily_loss
        realised = self.book.realised
        if cause == "realised":
            why = f"today's realised P&L ${realised:,.2f} reached max_daily_loss ${limit:,.2f}"
        else:
            open_pnl = self._unrealised()
            why = (
                f"today's P&L ${realised + open_pnl:,.2f} (realised ${realised:,.2f}, open trades"
                f" at the bid ${open_pnl:,.2f}) stayed past max_daily_loss ${limit:,.2f} for"
                f" {self.risk.loss_confirm_s:g} s"
            )
        self._kill("max_daily_loss", why, ts)

    def kill(self, reason: str = "kill_switch", ts: datetime | None = None) -> list[Trade]:
        """The kill switch: flatten every open trade at the bid and halt entries for the day."""
        if self._inbox:
            self._drain_inbox()
        if reason not in ("kill_switch", "max_daily_loss"):
            raise TradeRefused(f"a kill's reason is kill_switch or max_daily_loss, not {reason!r}")
        ts = ts if ts is not None else self.clock.now()
        self._roll(ts)
        message = "the kill switch was pressed" if reason == "kill_switch" else "max_daily_loss"
        return self._kill(reason, message, ts)

    def _kill(self, reason: str, message: str, ts: datetime) -> list[Trade]:
        """Journal the halt and every flatten, then ``on_kill`` once, then each trade's hooks."""
        self._kill_due = None
        self._killing = True
        try:
            trades = list(self.open_trades.values())
            closes = []
            for trade in trades:
                quote = self.last_quotes.get(trade.symbol)
                if quote is None:
                    log.warning(
                        "%s: no quote since start-up: the kill's exit is journaled at the entry price",
                        trade.symbol,
                    )
                price = quote.bid if quote is not None else trade.entry_price
                closes.append(
                    self._close_state(trade, None, price, ts, Intent.MANUAL, CloseReason.KILL, commit=False)
                )
            # The halt and every flatten in one transaction: a crash leaves the day halted with
            # every trade flattened, or as it was; never halted with trades left open.
            in_side_file = self._commit_kill(reason, message, ts, [event for _, _, event, _ in closes])
            closes = [(after, order, event, event.id in in_side_file) for after, order, event, _ in closes]
            self._notify("on_kill", trades=trades, reason=reason)
            for after, order, event, pending in closes:
                self.counters.orders += 1
                self._notify("on_order_submitted", order=order, trade=after)
                self._notify(
                    "on_position_closed", trade=after, reason=CloseReason.KILL.value, price=order.price
                )
                self._dispatched(event.id, pending)
        finally:
            self._killing = False
        self._kill_due = None
        limit = self.risk.max_daily_loss
        if reason == "kill_switch" and limit is not None and self.book.realised <= -limit + 0.005:
            # The flatten itself reached the daily loss limit: that halt, not the button's, holds.
            reason, message = (
                "max_daily_loss",
                (
                    f"{message}; the flatten took today's realised P&L to ${self.book.realised:,.2f},"
                    f" past max_daily_loss ${limit:,.2f}"
                ),
            )
            self._set_halt(reason, message, ts)
        flattened = ", ".join(f"{t.symbol} {t.remaining}" for t in trades)
        done = (
            f"every open trade closed at the bid in the journal ({flattened}) and its flatten handed"
            " to the sending plugins (their alerts say if it did not go out; check your broker)"
            if trades
            else "no trade was open"
        )
        self.alert(
            "halted",
            f"{message}: {done}; entries are halted"
            + (" until POST /resume or the next trading day" if reason == "kill_switch" else " for the day"),
            reason=reason,
            symbols=[t.symbol for t in trades],
        )
        return [after for after, _, _, _ in closes]

    def resume(self, ts: datetime | None = None) -> bool:
        """Lift the kill switch's halt. The daily loss limit's and a losing streak's last the day."""
        ts = ts if ts is not None else self.clock.now()
        self._roll(ts)
        halt = self.book.halt
        if halt is None:
            raise TradeRefused("entries are not halted by the kill switch or a risk limit", "not_halted")
        if halt.reason != "kill_switch":
            raise TradeRefused(
                f"entries stay halted for the rest of the trading day: {halt.message} ({halt.reason}"
                " is not lifted by hand; it ends with the day)",
                "halted",
            )
        streak, limit = self.book.streak, self.risk.loss_streak
        if limit is not None and streak >= limit:
            # The losing streak was reached while the kill switch held: it halts the day.
            message = f"{streak} losing trades in a row (loss_streak {limit})"
            self._set_halt("loss_streak", message, ts)
            self.alert("halted", f"{message}: entries are halted for the day", reason="loss_streak")
            raise TradeRefused(f"entries stay halted for the rest of the trading day: {message}", "halted")
        if self.journal is not None:
            try:
                self.journal.record_risk("resume", halt.reason, "resumed by a person", None, ts, halt.day)
            except JournalWriteError as exc:
                raise TradeRefused(f"not resumed: the journal cannot be written ({exc})", "journal") from None
        self.book.halt = None
        self.alert(
            "resumed", f"entries are allowed again (the {halt.reason} halt was lifted)", what=halt.reason
        )
        return True

    def risk_status(self) -> dict[str, object]:
        """Today against the limits, for ``GET /ping`` and the dashboard."""
        book = self.book
        bids = {s: q.bid for s, q in self.last_quotes.items() if s in self.open_trades}
        unrealised = self._unrealised(bids)
        limits = {
            name: (value.strftime("%H:%M") if hasattr(value, "strftime") else value)
            for name, value in attrs.asdict(self.risk, recurse=False).items()
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
            "refused": dict(self.counters.refused_by_rule),
            "limits": limits,
        }

    def _order(self, trade: Trade, side: Side, qty: int, price: float, intent: Intent, ts: datetime) -> Order:
        return Order(
            id=_new_id(),
            symbol=trade.symbol,
            side=side,
            qty=qty,
            price=price,
            intent=intent,
            trade_id=trade.id,
            ts=ts,
        )

    @staticmethod
    def _leg(trade: Trade, qty: int, price: float, reason: str, ts: datetime) -> Leg:
        return Leg(
            trade_id=trade.id,
            symbol=trade.symbol,
            qty=qty,
            entry_price=trade.entry_price,
            exit_price=price,
            pnl=leg_pnl(trade.entry_price, price, qty),
            reason=reason,
            opened_at=trade.opened_at,
            closed_at=ts,
        )
