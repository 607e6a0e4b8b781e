"""The trade engine: the order of work per event, and the one way in (``apply``, ``submit``).

Per event the order of work is fixed: validate, risk, **record** (durable before any plugin
hears of it), make it current, call the hooks, mark it dispatched. Each job is a part of its
own, and this module only calls them in that order:

* the bracket rules, a pure step from a trade and a quote to its exits: :mod:`.brackets`;
* the record (the side file first, the fold into SQLite after the hooks): :mod:`.record`;
* the risk day (limits, halts, the daily-loss watch): :mod:`.riskday`;
* the watchers (stale quotes, trading halts): :mod:`.watch`;
* the open trades and what is kept for each while it is open (holds, trails): :mod:`.positions`;
* an entry's checks, in the order they are asked: :mod:`.entry`;
* the market's sessions (pre-market, regular, after-hours): :mod:`.market`;
* the candles of traded and watched symbols: :mod:`.candles`;
* alerts, and the hand-off from other threads: :mod:`.alerts`, :mod:`.submit`;
* what a restart found, and what a person must answer first: :mod:`.restart`, :mod:`.answers`.

A journal that cannot be written refuses an entry (nothing is sent) but never holds an exit
back. The quote path does as little as it can: a quote for a symbol with no open trade costs a
validation and a dict store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from momobot_core import brackets
from momobot_core.alerts import ALERTS_KEPT, Alerts
from momobot_core.answers import Answers
from momobot_core.brackets import MAX_PRICE, MAX_QTY
from momobot_core.candles import Candle, CandleBook
from momobot_core.config import Config, CoreSettings
from momobot_core.entry import EntryChecks
from momobot_core.errors import JournalWriteError, TradeRefused
from momobot_core.journal import JournalEvent, WireLog, new_event
from momobot_core.market import (
    NEW_YORK,
    MarketHours,
    check_window,
    last_close,
    session_status,
)
from momobot_core.models import (
    Alert,
    Arm,
    Close,
    CloseReason,
    Disarm,
    Fill,
    Intent,
    Kill,
    Luld,
    Open,
    Order,
    Quote,
    Resume,
    Side,
    Target,
    Trade,
    TradingHalt,
    new_id,
    new_trade,
    price_text,
)
from momobot_core.positions import Positions, below_bid, candle_stop
from momobot_core.record import Record
from momobot_core.restart import Doubts, restart_notices
from momobot_core.risk import RiskBook, RiskSettings
from momobot_core.riskday import RiskDay, kill_message
from momobot_core.strategies import collect_strategies
from momobot_core.strategies.arms import Arms
from momobot_core.strategies.bracket import BracketSettings, bracket_settings
from momobot_core.submit import SUBMIT_QUEUE, SubmitQueue
from momobot_core.watch import Bands, QuoteWaiters, QuoteWatch, TradingHalts

if TYPE_CHECKING:
    from momobot_core.journal import Journal
    from momobot_core.plugins import Hooks
    from momobot_core.sources import QuoteSource, Watchlist

log = logging.getLogger("momobot.engine")

MODES = ("live", "replay", "demo")
#: What ``Engine.apply`` takes.
Event = Quote | Open | Close | Kill | Resume | Fill | Arm | Disarm | TradingHalt | Luld
# Past this many, rejected quotes are counted but no longer logged one by one.
_REJECTS_LOGGED = 10
__all__ = ["ALERTS_KEPT", "MAX_PRICE", "MAX_QTY", "SUBMIT_QUEUE", "Engine", "Event", "TradeRefused"]


class Recorder(Protocol):
    """Takes every quote and action the engine is given (the day files, docs/backtest.md)."""

    def add(self, event: Any) -> None: ...


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
        strategy_hooks: Hooks | None = None,
        charts: bool = True,
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
        #: The open trades and what is kept for each (its hold, its stop's move, its trail's high).
        self._positions = Positions(timedelta(seconds=self.settings.min_hold_s))
        self.open_trades = self._positions.trades
        #: The day's alerts (raised from any thread), and those raised before a restart.
        self._alerts = Alerts(journal, self._notify)
        self.alerts = self._alerts.kept
        self._started = False
        self._stopped = False
        self._entering = False
        #: The journal's writes, the side file and the dispatched marks.
        self._record = Record(journal, self.alert)
        self._inbox = self._alerts.inbox  # alerts from other threads
        self.risk = RiskSettings.from_config(self.config)
        #: The exchange's sessions, holidays and half days (read on first use).
        self.market = MarketHours()
        check_window(self.settings, self.risk)
        #: The day's count against the [risk] limits, a halt of the day's entries, the loss watch.
        self._day = RiskDay(
            self.risk,
            self.settings.tz,
            live=self.clock.live,
            journal=journal,
            record=self._record,
            open_trades=self.open_trades,
            tell=self.alert,
            new_day=self._new_day,
        )
        #: The live source and its watchlist, when ``serve --source`` runs one.
        self.source: QuoteSource | None = None
        self.watchlist: Watchlist | None = None
        #: Symbols under a trading halt or a limit-up/limit-down pause: entries refused.
        self._halts = TradingHalts()
        self._quote_waiters = QuoteWaiters()
        self._started_at = time.monotonic()
        #: Quotes that stopped (a silent source, an open trade's symbol): entries halt meanwhile.
        self._quote_watch = QuoteWatch(self.risk.stale_quote_s, self._started_at)
        #: False while the quotes are delayed (a source allowed to run on a delayed feed): plugins
        #: that send orders or hotkeys must stay quiet.
        self.sending_allowed = True
        #: Restored trades' events the plugins may not have heard of, until a person answers.
        # A trailing stop's move calls no hook: one cut short by a stop of the process sent
        # nothing, and its new stop is in the journal (its side file) all the same.
        rows = journal.undispatched() if journal is not None else []
        self._doubts = Doubts([row for row in rows if row[2] != "trail"])
        #: A person's answers about the trades the restart left in doubt: confirm, discard.
        self._answers = Answers(
            journal=journal,
            record=self._record,
            doubts=self._doubts,
            day=self._day,
            positions=self._positions,
            last_quotes=self.last_quotes,
            forget=self._forget,
            closed=self._count_closed,
        )
        #: Events other threads hand over (``submit``), applied on the engine's thread.
        self._submitted = SubmitQueue(self.apply, self.alert)
        #: Candle history for the page's chart: charted, armed and traded symbols.
        self.charts = CandleBook(self.settings.tz)
        #: False (a replay with no page to draw): only symbols whose stop trails by candles are
        #: charted, from their arm or their entry.
        self._chart_all = charts
        #: Each symbol's limit-up/limit-down band, as its feed published it (that day's only).
        self._bands = Bands()
        #: What refuses an entry, asked in order before anything of it is recorded.
        self._entry = EntryChecks(
            settings=self.settings,
            day=self._day,
            quote_watch=self._quote_watch,
            halts=self._halts,
            bands=self._bands,
            record=self._record,
            market=self.market,
            open_trades=self.open_trades,
            last_quotes=self.last_quotes,
        )
        #: Where every quote and action taken is recorded (``[momobot] record``), if anywhere.
        self.recorder: Recorder | None = None
        self._status_error = ""  # the kind of the source's status() failure, logged once
        #: The armed symbols: strategies' entries, through :meth:`apply` like a person's.
        self._arms = Arms(
            strategies=collect_strategies(strategy_hooks if strategy_hooks is not None else hooks),
            bracket=bracket_settings(self.config),
            tz=self.settings.tz,
            journal=journal,
            enter=self._enter,
            tell=self.alert,
            open_trades=self.open_trades,
            last_quotes=self.last_quotes,
        )
        if journal is not None:
            unconfirmed = self._doubts.unconfirmed()
            for restored in journal.open_trades():
                trade = attrs.evolve(restored, unconfirmed=restored.id in unconfirmed)
                self._positions.opened(trade, trade.opened_at)
            if self.open_trades:
                log.info(
                    "restored %d open trade(s) from the journal: %s",
                    len(self.open_trades),
                    ", ".join(sorted(self.open_trades)),
                )

    @property
    def luld_bands(self) -> dict[str, tuple[float, float]]:
        """Each symbol's limit-up/limit-down band ``(lower, upper)`` today, as its feed published it."""
        return self._bands.bands

    def _new_day(self) -> None:
        """A new trading day: yesterday's alerts and limit-up/limit-down bands are gone."""
        self._alerts.new_day()
        self._bands.clear()

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Call ``on_startup`` plugin by plugin, then raise the alerts a restart found.

        A plugin's ConfigError (or any error, named) propagates: start-up must stop.
        """
        if self._started:
            return
        self._started = True
        self._alerts.owner = threading.get_ident()
        if self.clock.live or self.settings.session is not None:
            # The calendar is read now, not on the first entry or page draw (about 0.3 s once).
            self.market.hours(self.clock.now().astimezone(NEW_YORK).date())
        if self.hooks is not None:
            self.hooks.start(self)
        self._restart_alerts()
        self._arm_at_start()
        for trade in self.open_trades.values():
            self._chart(trade.symbol, trade.trail)
        for symbol, state in self._arms.armed.items():
            self._chart(symbol, state.bracket.trail)
        if self.clock.live:
            now = self.clock.now()
            self._day.roll(now)  # a halted day stays halted across a restart
            self._alerts.restore(now, self.settings.tz)

    def _restart_alerts(self) -> None:
        """What a restart found, told once: see :mod:`momobot_core.restart`."""
        journal = self.journal
        if journal is not None:
            notices, told = restart_notices(journal, list(self.open_trades.values()), self._doubts.rows)
            for notice in notices:
                self.alert(notice.kind, notice.message, symbol=notice.symbol, **notice.detail)
            if told:
                # The trade is closed: there is nothing left to confirm; told once is enough.
                journal.confirm_closed(told)
        if self.journal_pending:
            self.retry_journal()

    def shutdown(self) -> None:
        """Call ``on_shutdown`` once for every plugin that started (each bounded in time)."""
        if self._stopped:
            return
        self._stopped = True
        if self.hooks is not None and self._started:
            # Plugins flush what they still had to send; what one tells then reaches the rest.
            self.hooks.shutdown(self, between=self._drain_inbox)
        self._keep_fills()
        self._arms.flush()
        self._record.mark()
        self._drain_inbox()

    def _keep_fills(self) -> None:
        """At exit: broker fills still waiting for the engine's thread go to the journal (nothing
        else that waits is applied once the plugins have stopped)."""
        dropped = 0
        for event in self._submitted.take():
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
        return self._alerts.tell(kind, message, symbol, **detail)

    @property
    def earlier_alerts(self) -> list[Alert]:
        """Alerts of today raised before a restart (from the journal): shown, never raised again."""
        return self._alerts.earlier

    def _drain_inbox(self) -> None:
        self._alerts.drain()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The engine's event loop (serve sets it): what other threads hand over reaches it at once."""
        return self._alerts.loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._alerts.loop = self._submitted.loop = loop

    @property
    def book(self) -> RiskBook:
        """Today's count against the ``[risk]`` limits, and a halt of the day's entries."""
        return self._day.book

    # -- the one way in -----------------------------------------------------------

    def apply(self, event: Event) -> Trade | bool | list[Trade]:
        """Apply one event on the engine's thread: the one way trading state changes.

        A Quote returns False when it was rejected as malformed; an Open or a
        Close returns the trade and raises TradeRefused when refused; a Kill
        returns the trades it flattened; a Resume returns True; a Fill returns
        True when it was recorded (False: that execution was already kept); an
        Arm or a Disarm returns True and raises TradeRefused for a strategy,
        timeframe or field that is wrong (a Disarm: a symbol not armed); a
        TradingHalt or a Luld (a market's halt, a price band) returns True.
        Replays move the engine's clock to the event's time (not a Fill's: a
        broker's time is not the replay's); live, it is the wall clock.
        """
        if type(event) is Quote:
            return self.on_quote(event)
        if self._submitted:
            self._drain_submitted()
        if self.recorder is not None and not self._entering:
            self.recorder.add(event)
        if type(event) is Fill:
            return self.record_fill(event)
        if not self.clock.live:
            self.clock.current = event.ts
        if type(event) is Open:
            return self.open_trade(
                event.symbol,
                event.qty,
                event.tp1,
                event.tp2,
                event.stop,
                ts=event.ts,
                risk=event.risk,
                strategy=(event.strategy, event.timeframe, event.level),
                trail=event.trail,
            )
        if type(event) is Close:
            return self.close_trade(event.symbol, ts=event.ts)
        if type(event) is Kill:
            return self.kill(event.reason, ts=event.ts)
        if type(event) is Resume:
            return self.resume(ts=event.ts)
        if type(event) is TradingHalt:
            self._halt(event)
            return True
        if type(event) is Luld:
            day = event.ts.astimezone(self.settings.tz).date()
            self._bands.publish(event.symbol, event.lower, event.upper, day)
            return True
        if type(event) is Arm or type(event) is Disarm:
            try:
                if type(event) is Arm:
                    state = self._arms.arm(event)
                    self._chart(event.symbol, state.bracket.trail)
                else:
                    self._arms.disarm(event.symbol)
            except TradeRefused:
                self.counters.refused_actions += 1
                raise
            return True
        raise TypeError(f"not an engine event: {event!r}")

    def submit(self, event: Event) -> bool:
        """Hand an event to the engine's thread from any other thread; never blocks.

        The queue is bounded: past :data:`SUBMIT_QUEUE` waiting events a new one
        is refused (False) and a person is told (``queue_overflow``), never
        dropped in silence.
        """
        return self._submitted.submit(event)

    def _drain_submitted(self) -> None:
        self._submitted.drain()

    # -- strategies ---------------------------------------------------------------------

    def _enter(self, order: Open) -> Trade:
        self._entering = True  # a strategy's entry: the recording has its arm, not its entries
        try:
            trade = self.apply(order)
        finally:
            self._entering = False
        assert isinstance(trade, Trade)
        return trade

    def _arm_at_start(self) -> None:
        """Today's arms and disarms from the journal, then ``[momobot] arm`` (see
        :meth:`~momobot_core.strategies.arms.Arms.arm_at_start`)."""
        now = self.clock.now()
        self._arms.restore(self.book.trading_day(now) if self.clock.live else None, self.book.trading_day)
        self._arms.arm_at_start(self.settings.arm, now)

    @property
    def strategy_names(self) -> list[str]:
        """The strategies installed, by name."""
        return sorted(self._arms.strategies)

    def bracket_for(self, strategy: str | None = None) -> BracketSettings:
        """``[bracket]``, with ``[bracket.<strategy>]`` over it for a strategy's entries."""
        if strategy is None:
            return self._arms.base
        return self._arms.per_strategy.get(strategy, self._arms.base)

    def loss_budget(self) -> dict[str, float] | None:
        """What today's ``max_daily_loss`` leaves for one more entry's stop: the limit, today's
        realised P&L, what the open trades lose at their stops, and what is left (None: no limit)."""
        limit = self.risk.max_daily_loss
        if limit is None:
            return None
        realised, at_stops = self.book.realised, self._day.at_stops()
        return {
            "max_daily_loss": limit,
            "realised": round(realised, 2),
            "open_at_stops": round(at_stops, 2),
            "left": round(limit + realised + at_stops, 2),
        }

    def arm_level(self, symbol: str) -> float | None:
        """The breakout level the symbol's arm watches now (a chart's line), or None."""
        state = self._arms.armed.get(symbol)
        level = state.strategy.state().get("level") if state is not None else None
        return float(level) if isinstance(level, int | float) and not isinstance(level, bool) else None

    @property
    def arms_fingerprint(self) -> tuple[object, ...]:
        """Changes whenever :attr:`arms` would show something else (cheap: no status built)."""
        return self._arms.fingerprint()

    @property
    def arms(self) -> list[dict[str, Any]]:
        """Every armed symbol and its live state (``GET /arms``, ``momobot arms``)."""
        return self._arms.status()

    def signal(
        self,
        symbol: str,
        ts: datetime | None = None,
        stop: float | None = None,
        alert_id: str | None = None,
        reason: str = "",
    ) -> Trade | str:
        """An outside signal for a symbol armed with ``signal`` (``POST /signals``): the entry,
        or why the arm's rules hold it back; TradeRefused otherwise."""
        if self._inbox:
            self._drain_inbox()
        return self._arms.signal(symbol, ts if ts is not None else self.clock.now(), stop, alert_id, reason)

    # -- quotes ------------------------------------------------------------------

    def on_quote(self, quote: Quote) -> bool:
        """Take one quote; act on the symbol's open trade. False if the quote was rejected."""
        if self._inbox:
            self._drain_inbox()
        if self.recorder is not None:
            self.recorder.add(quote)
        # Chained comparisons are False for NaN, so these also reject non-finite prices.
        if 0 < quote.bid <= quote.ask <= MAX_PRICE:
            last = quote.last
            if last is None or 0 < last <= MAX_PRICE:
                symbol = quote.symbol
                self.last_quotes[symbol] = quote
                self.clock.current = quote.ts
                self.counters.quotes += 1
                if self._quote_waiters.waiting:
                    self._first_quote(symbol)
                trade = self.open_trades.get(symbol)
                if trade is not None:
                    self._quote_watch.quoted(symbol, time.monotonic())
                    halts = self._halts
                    if halts.symbols and symbol in halts.symbols:
                        pass  # halted: no exit goes out on a price from the halt
                    elif halts.held and symbol in halts.held:
                        self._release_held(trade, quote)
                    elif not trade.unconfirmed:
                        self._check_targets(trade, quote)
                        after = self.open_trades.get(symbol)
                        if after is not None and after.tp1_hit and after.trail and after.trail != "candle":
                            self._trail_by(after, quote)
                    if self.risk.max_daily_loss is not None:
                        self._day.watch(quote)
                    if self._day.kill_due is not None:
                        self._after_exits(quote.ts)
                if symbol in self._arms.armed:
                    self._arms.on_quote(quote)
                if symbol in self.charts.symbols:
                    for candle in self.charts.on_quote(quote):
                        if (
                            trade is not None
                            and trade.trail == "candle"
                            and candle.timeframe == trade.timeframe
                        ):
                            self._trail_candle(symbol, candle, quote)
                return True
        self._reject(quote)
        return False

    def unwatch(self, symbol: str) -> bool:
        """Take ``symbol`` off the live source's watchlist (the source unsubscribes): not while it
        has an open trade or an arm, nor when ``[momobot] watchlist`` names it. True if it went."""
        symbol = symbol.upper()
        if self.watchlist is None or symbol in self.open_trades or symbol in self._arms.armed:
            return False
        if symbol in self.settings.watchlist:
            return False
        return self.watchlist.remove(symbol)

    def acts_on(self, symbol: str) -> bool:
        """Whether a quote for ``symbol`` does more than become its last quote: an open trade,
        an arm or a chart of it, or a wait for its first quote."""
        return (
            symbol in self.open_trades
            or symbol in self._arms.armed
            or symbol in self.charts.symbols
            or bool(self._quote_waiters.waiting)
        )

    def keep_quotes(self, quotes: Sequence[Quote], count: int, until: datetime) -> None:
        """Well-formed quotes of symbols the engine does not act on (:meth:`acts_on`), the last
        of each symbol of a stretch of ``count`` quotes that ended at ``until``: kept as those
        symbols' last quotes and counted, as :meth:`on_quote` one by one would have left them
        (the columnar replay, :mod:`momobot_core.backtest.columns`)."""
        for quote in quotes:
            self.last_quotes[quote.symbol] = quote
        self.counters.quotes += count
        if not self.clock.live and (self.clock.current is None or until > self.clock.current):
            self.clock.current = until

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
        positions = self._positions
        if positions.min_hold and positions.holding(trade, quote.ts):
            return
        for target in brackets.exits(trade, quote, positions.stop_move(trade)):
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
        strategy: tuple[str | None, str | None, float | None] = (None, None, None),
        trail: str | None = None,
    ) -> Trade:
        """Open a long bracket trade with an entry buy at the symbol's current ask.

        Give ``qty``, or ``risk`` (dollars, qty None) to have it sized. Raises
        TradeRefused; then nothing was journaled and no plugin heard of it.
        """
        if self._inbox:
            self._drain_inbox()
        ts = ts if ts is not None else self.clock.now()
        try:
            qty = self._entry.check(symbol, qty, tp1, tp2, stop, risk, ts)
        except TradeRefused as exc:
            self.counters.refused_actions += 1
            if exc.rule is not None:
                self._refused(symbol, exc, ts)
            raise
        quote = self.last_quotes[symbol]
        # Every field given, in Trade's order (id, symbol, qty, remaining, entry_price, tp1, tp2,
        # stop, opened_at, tp1/tp2/stop hit, closed_at, close_reason, unconfirmed, initial_stop,
        # strategy, timeframe, level, trail): the slot constructor, not attrs' init by name.
        trade = new_trade(
            new_id(), symbol, qty, qty, quote.ask, tp1, tp2, stop, ts, False, False, False, None, None,
            False, stop, strategy[0], strategy[1], strategy[2], trail,
        )  # fmt: skip
        order = brackets.order(trade, Side.BUY, qty, quote.ask, Intent.ENTRY, ts)
        event = new_event("open", trade, order, None, None, new_id())
        try:
            self._record.commit_entry(event)
        except JournalWriteError as exc:
            self.counters.refused_actions += 1
            raise TradeRefused(
                f"{symbol}: entry refused: the journal cannot be written ({exc})", "journal"
            ) from None
        self._positions.opened(trade, ts)
        # Opened on a quote: its silence counts from now, not from the start of the process.
        self._quote_watch.quoted(symbol, time.monotonic())
        self._day.opened()
        self.counters.trades_opened += 1
        self.counters.orders += 1
        self._notify("on_order_submitted", order=order, trade=trade)
        self._record.dispatched(event.id, pending=False)
        if symbol not in self.charts.symbols:
            self._chart(symbol, trail)  # after the hooks: the order leaves first, then the chart
        return trade

    def _refused(self, symbol: str, exc: TradeRefused, ts: datetime) -> None:
        """An entry a limit refused: counted by rule, logged, journaled, and an alert."""
        rule = exc.rule or "risk"
        self.counters.refused_by_rule[rule] = self.counters.refused_by_rule.get(rule, 0) + 1
        self.alert("risk_refused", f"entry refused ({rule}): {exc}", symbol=symbol, rule=rule)
        self._day.refused(symbol, rule, str(exc), ts)

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
        refused = self._doubts.refusal_to_close(trade)
        if refused is not None:
            self.counters.refused_actions += 1
            raise refused
        if symbol in self._halts.symbols:
            self._hold_exit(symbol, "manual")
            return trade
        ts = ts if ts is not None else self.clock.now()
        after = self._close(trade, None, quote.bid, ts, Intent.MANUAL, CloseReason.MANUAL)
        self._after_exits(ts)
        return after

    @property
    def held_exits(self) -> dict[str, str]:
        """Exits asked for while their symbol is halted (symbol -> ``manual``, ``kill_switch`` or
        ``max_daily_loss``): sent at the first quote after the resume, at its bid."""
        return self._halts.held

    def _hold_exit(self, symbol: str, reason: str) -> None:
        notice = self._halts.hold(symbol, reason)
        if notice is not None:
            self.alert(notice.kind, notice.message, symbol=notice.symbol, **notice.detail)

    def _release_held(self, trade: Trade, quote: Quote) -> None:
        """The first quote after a halt's resume: the exit held meanwhile goes out at its bid."""
        reason = self._halts.quoted(trade.symbol)
        assert reason is not None  # called only for a symbol with an exit held
        if reason == "manual":
            self._close(trade, None, quote.bid, quote.ts, Intent.MANUAL, CloseReason.MANUAL, quote=quote)
        else:
            # A kill's flatten of a trade that was halted then: a kill of its own, the hooks in
            # the order a kill gives them.
            after, order, event, pending = self._close_state(
                trade, None, quote.bid, quote.ts, Intent.MANUAL, CloseReason.KILL
            )
            self._kill_hooks([trade], reason, [(after, order, event, pending)])
            before = self._day.halt
            lasting, message = self._day.after_kill(reason, f"the {reason} exit held by a halt", quote.ts)
            if before is not None and lasting != before.reason:
                self.alert("halted", f"{message}; entries are halted for the day", reason=lasting)
        self.alert(
            "exit_released",
            f"{trade.symbol}: the {reason} exit held through the halt went out at"
            f" {price_text(quote.bid)} (the bid of the first quote after the resume)",
            symbol=trade.symbol,
            reason=reason,
            price=quote.bid,
        )
        if reason == "manual":
            self._after_exits(quote.ts)  # a close's loss may reach max_daily_loss: the rest goes

    def discard_trade(self, symbol: str, ts: datetime | None = None) -> Trade:
        """A person checked the broker: an unconfirmed trade's entry never reached it. The trade is
        closed in the journal (reason ``discarded``, no leg, no P&L) and nothing is sent: no
        plugin hears of it. Only an unconfirmed trade: one the broker holds is closed instead."""
        return self._answers.discard(symbol, ts if ts is not None else self.clock.now())

    def lost_exits(self, trade_id: str) -> list[str]:
        """The kinds of the exits of an open trade that went out unrecorded (``tp1``, ``stop``...):
        its confirm needs a person's word on them (see :meth:`confirm_trade`)."""
        return self._doubts.lost_exits(trade_id)

    def confirm_trade(self, symbol: str, exits_sent: bool | None = None) -> Trade:
        """A person checked the broker: an unconfirmed trade is watched (and mirrored) again.

        A trade whose exit went out but could not be recorded (``lost_*``) needs the person's
        word on that exit: ``exits_sent=True`` records it as it was sent (the broker shows it
        done; nothing is sent), ``False`` resumes the trade as before it (the exit goes out
        again when its price comes). Without it the confirm is refused (``lost_exit``).
        """
        return self._answers.confirm(symbol, exits_sent)

    def record_fill(self, fill: Fill) -> bool:
        """A broker's fill of one of the engine's orders (an order plugin's report): journaled
        beside the engine's model price. The trade's state does not change: the engine trades
        its model; the fills show what the broker did. Raises TradeRefused for a fill that
        names no journaled order or makes no sense."""
        new, recorded = self._record.record_fill(fill)
        self.counters.fills += recorded
        if new and self.hooks is not None:
            self._notify("on_fill", fill=fill, order=self._record.order_of(fill.order_id))
        return new

    # -- the journal ---------------------------------------------------------------

    def settle_journal(self) -> None:
        """Fold into the journal now what waits for its moment after the hooks: call it on the
        engine's thread before another connection reads the journal file (``GET /trades``)."""
        self._record.settle()

    @property
    def journal_pending(self) -> bool:
        """True while exits wait in the journal's side file: entries are refused until then."""
        return self._record.pending

    @property
    def journal_unfolded(self) -> int:
        """Events recorded in the side file that the journal's tables do not show yet."""
        return self._record.unfolded

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
        return self._record.halts_entries or bool(self.stale_quotes) or self._day.halt is not None

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
            self._day.check(now)
            self._after_exits(now)
            if self._arms.armed:
                self._arms.tick(now)
            if self.charts.symbols:
                for candle in self.charts.tick(now):
                    held = self.open_trades.get(candle.symbol)
                    if held is not None and held.trail == "candle" and candle.timeframe == held.timeframe:
                        self._trail_candle(candle.symbol, candle, None)
        else:
            self._arms.flush()

    # -- live quotes -----------------------------------------------------------------

    def _check_stale(self) -> None:
        """A silent live source, or an open trade's symbol without quotes: alert, and halt entries."""
        if not self.risk.stale_quote_s or not self.clock.live:
            return
        source = self.source
        try:
            age = source.status().last_message_age_s if source is not None else None
        except Exception as exc:
            # A source's own report must never stop the upkeep after it. It fails closed: with no
            # word of when the source last spoke, the source counts as silent (entries halt,
            # with the stale-quote alert); each open trade's symbol is checked as ever.
            kind = type(exc).__name__
            if kind != self._status_error:
                log.error(
                    "the quote source's status could not be read (%s: %s): the source counts as"
                    " silent until it can; upkeep goes on",
                    kind,
                    exc,
                )
            self._status_error = kind
            age = math.inf
        else:
            if self._status_error:
                log.info("the quote source's status can be read again")
            self._status_error = ""
        trades = self.open_trades
        if self._halts.symbols:  # a halted symbol's silence is the halt's, not a stale feed's
            trades = {s: t for s, t in trades.items() if s not in self._halts.symbols}
        for notice in self._quote_watch.check(time.monotonic(), age, source is not None, trades):
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
        self.apply(TradingHalt(symbol, halted, reason, self.clock.now()))

    def _halt(self, event: TradingHalt) -> None:
        notice = self._halts.change(event.symbol, event.halted, event.reason)
        if notice is not None:
            self.alert(notice.kind, notice.message, symbol=notice.symbol, **notice.detail)

    def luld(self, symbol: str, lower: float, upper: float) -> None:
        """A source saw ``symbol``'s limit-up/limit-down band (kept in :attr:`luld_bands`)."""
        self.apply(Luld(symbol, lower, upper, self.clock.now()))

    async def wait_for_quote(self, symbol: str, timeout: float) -> bool:
        """Wait (on the engine's loop) until ``symbol`` has a quote; False after ``timeout`` seconds."""
        if symbol in self.last_quotes:
            return True
        return await self._quote_waiters.wait(symbol, timeout)

    def _first_quote(self, symbol: str) -> None:
        self._quote_waiters.quoted(symbol)
        if self.journal_pending:
            self.retry_journal()

    # -- the trailing stop after TP1 ---------------------------------------------------

    def _chart(self, symbol: str, trail: object) -> None:
        if self._chart_all or trail == "candle":
            self.charts.chart(symbol, self._charted_for_good)

    def chart(self, symbol: str) -> None:
        """Build candles for ``symbol`` from now on (a page asked for its chart): room is made by
        dropping the oldest symbol charted that is neither traded nor armed, never one that is."""
        self.charts.chart(symbol, self._charted_for_good)

    def _charted_for_good(self, symbol: str) -> bool:
        """A symbol the candle book must never drop for another: traded or armed."""
        return symbol in self.open_trades or symbol in self._arms.armed

    def _trail_by(self, trade: Trade, quote: Quote) -> None:
        """A stop trailing by dollars (:meth:`.Positions.dollar_trail`), never lower than it stood."""
        self._move_stop(trade, self._positions.dollar_trail(trade, quote), quote.ts, quote)

    def _trail_candle(self, symbol: str, candle: Candle, quote: Quote | None) -> None:
        """A stop trailing by candles: a tick under each closed candle's low, never lower."""
        trade = self.open_trades.get(symbol)
        if trade is None or trade.trail != "candle" or not trade.tp1_hit or trade.unconfirmed:
            return
        if symbol in self._halts.symbols:
            return  # a candle of the halt is no price to trail by
        at = quote.ts if quote is not None else datetime.now(UTC)
        self._move_stop(trade, candle_stop(candle), at, quote)

    def _move_stop(self, trade: Trade, stop: float, ts: datetime, quote: Quote | None) -> None:
        """Raise an open trade's stop: recorded (as an exit is, never held back) before it counts;
        no plugin is told (the engine's stop sends the exit when it is hit). Never to the bid or
        above it: a spread or a print from before the move must not sell what no price did."""
        last = quote if quote is not None else self.last_quotes.get(trade.symbol)
        if last is not None:
            stop = below_bid(stop, last.bid)
        if not stop > trade.stop + 1e-9:
            return
        after = brackets.moved_stop(trade, stop)
        event = JournalEvent("trail", after, at=ts)
        pending = self._record.commit_exit(event)
        # Never triggered by the quote that moved it, nor by a print older than the move.
        self._positions.replace(
            after, brackets.StopMove.on(quote) if quote is not None else brackets.StopMove(ts, None, None)
        )
        self._record.dispatched(event.id, pending)

    # -- exits -------------------------------------------------------------------

    def _take_profit_1(self, trade: Trade, quote: Quote) -> Trade:
        sell_qty = brackets.tp1_qty(trade)
        price = quote.ask
        after = brackets.after_tp1(trade)
        order = leg = None
        if sell_qty:
            order = brackets.order(after, Side.SELL, sell_qty, price, Intent.TAKE_PROFIT, quote.ts)
            leg = brackets.leg(after, sell_qty, price, Target.TP1.value, quote.ts)
        event = new_event("tp1", after, order, leg, quote.ts, new_id())
        self._day.roll(quote.ts)  # before the commit: a new day read back must not hold this leg yet
        pending = self._record.commit_exit(event)
        self._positions.took_profit_1(after, quote)
        if leg is not None:
            self._day.count_leg(after, leg, closed=False)
        self._notify("on_target_hit", trade=trade, target=Target.TP1, quote=quote)
        if order is not None:
            self.counters.orders += 1
            self._notify("on_order_submitted", order=order, trade=after)
        self._record.dispatched(event.id, pending)
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
        self._record.dispatched(event.id, pending)
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
        order = brackets.order(after, Side.SELL, qty, price, intent, ts)
        leg = brackets.leg(after, qty, price, reason.value, ts)
        event = new_event(reason.value, after, order, leg, None, new_id())
        self._day.roll(ts)  # before the commit: a new day read back must not hold this leg yet
        pending = self._record.commit_exit(event) if commit else False
        self._forget(trade)
        self.counters.trades_closed += 1
        self._day.count_leg(after, leg, closed=True)
        if trade.symbol in self._arms.armed:
            self._arms.closed(trade.symbol, ts)
        return after, order, event, pending

    def _count_closed(self) -> None:
        self.counters.trades_closed += 1

    def _forget(self, trade: Trade) -> None:
        """A trade left the book (closed, discarded, or found done at the broker): every piece of
        state kept for it goes with it, in one place (its hold, its stop's move, its trail's high,
        an exit a halt held, the risk day's count of open trades)."""
        symbol = trade.symbol
        self._positions.forget(trade)
        if self._halts.held:
            self._halts.held.pop(symbol, None)
        self._day.closed(symbol)

    # -- the kill switch and the daily loss limit's flatten ------------------------------

    def _after_exits(self, ts: datetime) -> None:
        """After an event's own hooks: flatten the book if it reached max_daily_loss."""
        why = self._day.kill_reason()
        if why is not None:
            self._kill("max_daily_loss", why, ts)

    def kill(self, reason: str = "kill_switch", ts: datetime | None = None) -> list[Trade]:
        """The kill switch: flatten every open trade at the bid and halt entries for the day."""
        if self._inbox:
            self._drain_inbox()
        if reason not in ("kill_switch", "max_daily_loss"):
            raise TradeRefused(f"a kill's reason is kill_switch or max_daily_loss, not {reason!r}")
        ts = ts if ts is not None else self.clock.now()
        self._day.roll(ts)
        message = "the kill switch was pressed" if reason == "kill_switch" else "max_daily_loss"
        return self._kill(reason, message, ts)

    def _kill(self, reason: str, message: str, ts: datetime) -> list[Trade]:
        """Journal the halt and every flatten, then ``on_kill`` once, then each trade's hooks."""
        day = self._day
        day.kill_due = None
        day.killing = True
        try:
            halted = self._halts.symbols
            held = [trade for trade in self.open_trades.values() if trade.symbol in halted]
            trades = [trade for trade in self.open_trades.values() if trade.symbol not in halted]
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
            in_side_file = day.commit_kill(reason, message, ts, [event for _, _, event, _ in closes])
            closes = [(after, order, event, event.id in in_side_file) for after, order, event, _ in closes]
            self._kill_hooks(trades, reason, closes)
        finally:
            day.killing = False
        for trade in held:
            self._hold_exit(trade.symbol, reason)
        reason, message = day.after_kill(reason, message, ts)
        self.alert(
            "halted",
            kill_message(reason, message, trades, held),
            reason=reason,
            symbols=[t.symbol for t in trades],
        )
        return [after for after, _, _, _ in closes]

    def _kill_hooks(
        self, trades: list[Trade], reason: str, closes: list[tuple[Trade, Order, JournalEvent, bool]]
    ) -> None:
        """A kill's hooks, each flatten journaled already: ``on_kill`` once, then per trade its
        order and its close, each marked dispatched after its own hooks."""
        self._notify("on_kill", trades=trades, reason=reason)
        for after, order, event, pending in closes:
            self.counters.orders += 1
            self._notify("on_order_submitted", order=order, trade=after)
            self._notify("on_position_closed", trade=after, reason=CloseReason.KILL.value, price=order.price)
            self._record.dispatched(event.id, pending)

    def resume(self, ts: datetime | None = None) -> bool:
        """Lift the kill switch's halt. The daily loss limit's and a losing streak's last the day."""
        lifted = self._day.resume(ts if ts is not None else self.clock.now())
        self.alert("resumed", f"entries are allowed again (the {lifted} halt was lifted)", what=lifted)
        return True

    def session_now(self, ts: datetime | None = None) -> dict[str, object]:
        """Which session it is (``pre``, ``regular``, ``after``, ``closed``), whether entries
        are taken in it (``[momobot] session``), and the day's hours: /ping and the dashboard."""
        return session_status(self.market, self.settings.session, ts or self.clock.now())

    def session_end(self, day: date) -> clock_time | None:
        """When ``day``'s last configured session ends (New York time); None on a closed day."""
        return last_close(self.market, self.settings.session, day)

    def risk_status(self) -> dict[str, object]:
        """Today against the limits, for ``GET /ping`` and the dashboard."""
        bids = {s: q.bid for s, q in self.last_quotes.items() if s in self.open_trades}
        return self._day.status(bids, self.counters.refused_by_rule)
