"""The order desk: trade events in, DAS orders out, the platform's answers back to the engine.

Rules (DESIGN.md, "Order plugins and fills"; docs/das.md):

* entry: a marketable limit buy at the ask plus ``entry_offset`` cents. Written at once when
  the link is up; otherwise kept up to ``entry_ttl`` and then dropped, with an alert.
* take profit 1: a limit sell of its quantity at the ask. It rests until it fills or the
  trade's last exit cancels it.
* the last exit (take profit 2, stop, manual close, kill) is a job that ends only when the
  trade holds nothing at the broker: it cancels the trade's other open orders one by one
  (``CANCEL <id>``), and sells min(what the trade holds, the broker's position) less what is
  already being sold. Take profit 2 starts as a limit at the ask; every sell not filled within
  ``exit_reprice_s`` is cancelled and re-sent at the current bid minus ``exit_offset``. Exits
  are never dropped: while one waits an alert says so.
* orders of different symbols never wait for each other: each is written when its event fires.

Every order of this run carries an integer token; the platform's ``%ORDER`` lines map tokens
to its order ids, and ``%TRADE`` lines (executions of an order id) become ``Fill`` events for
the engine's order. The engine keeps its model; the broker's prices go to the journal.

Thread-safety: hooks call in on the engine's thread, the link calls in on its own; one lock
guards the book, and nothing under it blocks (writes are non-blocking).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from momobot_core.market import NAMES, NEW_YORK, MarketHours
from momobot_core.models import Fill, Intent, Order, Side, Trade
from momobot_das.config import DasConfig
from momobot_das.orders import ExitJob, PendingEntry, PendingTakeProfit, Working, das_symbol
from momobot_das.protocol import (
    EOL,
    MAX_TOKEN,
    POSREFRESH,
    BuyingPower,
    Marker,
    Message,
    OrderAct,
    OrderLine,
    PosLine,
    ProtocolError,
    TradeLine,
    cancel_line,
    das_time,
    limit_price,
    on_tick,
    order_line,
    stop_line,
)

if TYPE_CHECKING:
    from momobot_core.engine import Engine
    from momobot_core.journal import WireLog
    from momobot_das.link import DasLink

log = logging.getLogger("momobot.das")

#: Intents of the orders the desk writes (the engine's, and its own catastrophic stop).
CATASTROPHIC = "catastrophic"
#: Executions of orders not (yet) known kept at most: another client's are never claimed.
MAX_ORPHANS = 1000
#: An order the platform has not acknowledged this long means it is not reading: reconnect.
ACK_TIMEOUT = 2.0
#: While a sell lost with a connection is in doubt: how often the positions are asked for, and
#: how soon an answer must come to count as the platform running.
PROBE_EVERY = 0.25
PROMPT = 1.0
#: The longest wait between tries of an exit whose sells the platform keeps rejecting.
MAX_RETRY = 30.0
#: After a login, how long the plugin waits for the order and trade lists before it goes on.
SNAPSHOT_WAIT = 2.0
#: How long a rejection waits for its reason (%OrderAct) before it is told without one.
REASON_WAIT = 0.25
#: Orders kept for the dashboard and ``status()`` after they are done.
RECENT = 50


class Desk:
    """The book of this run's orders, positions at the broker, and exits in progress."""

    def __init__(
        self,
        config: DasConfig,
        *,
        submit: Callable[[Fill], object],
        alert: Callable[..., object],
        wire_log: WireLog | None = None,
        bot: Engine | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._submit = submit
        self._alert = alert
        self._wire = wire_log
        self._bot = bot
        self._clock = clock
        self._wall = wall  # the catastrophic stop's regular-hours check
        #: The exchange's sessions (holidays, half days): the engine's, else one of the desk's own.
        self._market = bot.market if bot is not None else MarketHours()
        self.link: DasLink | None = None
        self._lock = threading.RLock()
        # Tokens unique across runs (the platform lists earlier runs' orders too): from the clock
        # in milliseconds, and past any token a listed order carries.
        self._next_token = time.time_ns() // 1_000_000 % 2_000_000_000 + 1
        self.orders: dict[int, Working] = {}
        # The same orders by trade and by symbol: an exit looks at its own, never the whole day's.
        self._by_trade: dict[str, list[Working]] = collections.defaultdict(list)
        self._by_symbol: dict[str, list[Working]] = collections.defaultdict(list)
        self._open: dict[int, Working] = {}  # not over yet (acknowledged or not)
        self._by_das_id: dict[str, int] = {}
        self.positions: dict[str, int] = {}
        self.positions_known = False
        self._positions_at = float("-inf")  # when the last position list ended
        self._listing: str | None = None  # inside "#POS" ... "#POSEND" (and the others)
        self._staged_positions: dict[str, int] = {}
        self._seen_trades: set[str] = set()
        self._orphans: dict[str, list[TradeLine]] = collections.defaultdict(list)
        self._entries: collections.deque[PendingEntry] = collections.deque()
        self._pending_tp: list[PendingTakeProfit] = []
        #: The engine's take profit orders of each trade and their quantities (fills are counted
        #: to them, wherever the shares were sold), and what a last exit sold for each.
        self._tp_orders: dict[str, dict[str, int]] = {}
        self._made_up: dict[str, int] = {}
        self._no_entry: set[str] = set()  # trades whose entry this run never sent (dropped)
        self._cat_refused: set[str] = set()  # trades whose catastrophic stop the platform refused
        self.exits: dict[str, ExitJob] = {}
        self._reconcile_due = False
        self.last_reconcile: dict[str, Any] | None = None
        self.buying_power: BuyingPower | None = None
        self.rejections = 0
        self.fills = 0
        self.recent: collections.deque[Working] = collections.deque(maxlen=RECENT)
        self._cat_skipped: set[str] = set()
        self.latency_us: collections.deque[float] = collections.deque(maxlen=RECENT)
        self._avg: dict[int, Decimal] = {}  # each order's average fill price (%TRADE)
        self._records: list[dict[str, object]] = []  # wire log records not yet written
        #: Open orders of the account that are not this run's (a person's, an earlier run's), by id.
        self.others: dict[str, OrderLine] = {}
        self._others_cancelled: set[str] = set()
        self._lists_seen: set[str] = set()  # the end lines seen since the login
        self._listed_tokens: set[int] = set()  # this run's tokens in the login's order list
        self._login_at = float("-inf")
        self.snapshot_done = False  # the login's position, order and trade lists are all in
        #: Set once the first login's lists are all in (start-up waits for it, briefly).
        self.ready = threading.Event()
        self._finished: dict[str, ExitJob] = {}  # exits done, for fills that come after
        #: Symbols with a sell counted lost at a reconnect (written, never answered): it may still
        #: reach a platform that was frozen, so no sell of the symbol goes out until this time and
        #: a position list asked for after it (symbol -> (until, when the list was asked)).
        self._doubt: dict[str, tuple[float, float | None]] = {}
        # Whether the platform is running: position lists asked for (_probe_at) and how promptly
        # answered; _awake_since.._awake_until is the current run of prompt answers.
        self._probe_at: float | None = None
        self._probed = float("-inf")
        self._awake_since: float | None = None
        self._awake_until = float("-inf")

    # -- helpers -------------------------------------------------------------------------------

    def _token(self) -> int:
        token = self._next_token
        self._next_token = token + 1 if token < MAX_TOKEN else 1
        return token

    def _write(self, line: str) -> bool:
        link = self.link
        return link is not None and link.send(line)

    def _record(self, **record: object) -> None:
        if self._wire is not None:
            self._records.append(record)  # written after the orders, in one go (see _locked)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The book's lock; on the way out, the wire log's records of what was written under it.

        The order lines go to the wire first; their records follow in one ``write`` (a crash in
        between leaves the event undispatched in the journal, which a restart reports)."""
        with self._lock:
            try:
                yield
            finally:
                if self._records and self._wire is not None:
                    records, self._records = self._records, []
                    self._wire.write_all(records)

    def _bid(self, symbol: str, fallback: float) -> float:
        bot = self._bot
        quote = bot.last_quotes.get(symbol) if bot is not None else None
        return quote.bid if quote is not None else fallback

    def _place(
        self,
        *,
        order_id: str,
        trade_id: str,
        symbol: str,
        side: str,
        qty: int,
        price: Decimal,
        intent: str,
        stop: bool = False,
    ) -> Working | None:
        """Write one NEWORDER now (link up) and book it; None if the link is not up.

        An order no line can carry (a symbol DAS does not take) is booked as rejected, and said."""
        token = self._token()
        route = self.config.route
        try:
            line = (
                stop_line(token, symbol, route, qty, price)
                if stop
                else order_line(token, side, symbol, route, qty, price)
            )
        except ValueError as exc:
            dead = Working(token, order_id, trade_id, symbol, side, qty, price, intent, self._clock(), "")
            dead.final, dead.status = True, "Not sent"
            self._book(dead)
            self._rejected(dead, f"not sent: {exc}")
            return dead
        started = time.perf_counter()
        if not self._write(line):
            return None
        self.latency_us.append((time.perf_counter() - started) * 1e6)
        working = Working(
            token, order_id, trade_id, symbol, side, qty, price, intent, self._clock(), line.strip()
        )
        self._book(working)
        self.recent.append(working)
        self._record(batch=order_id or f"cat-{trade_id}", status="sent", command=line.strip(), token=token)
        return working

    def _book(self, working: Working) -> None:
        self.orders[working.token] = working
        self._by_trade[working.trade_id].append(working)
        self._by_symbol[working.symbol].append(working)
        if not working.final:
            self._open[working.token] = working

    def _cancel(self, working: Working) -> None:
        if working.final:
            return
        if working.cancel_sent:
            retry = working.cancel_retry_at
            if retry is None or self._clock() < retry:
                return
            working.cancel_sent, working.cancel_retry_at = False, None
        if working.das_id is None:
            working.cancel_wanted = True  # sent as soon as %ORDER names it
            return
        if self._write(cancel_line(working.das_id)):
            working.cancel_sent = True
            self._record(
                batch=working.order_id or f"cat-{working.trade_id}", status="cancel", das_id=working.das_id
            )

    def _of_trade(self, trade_id: str) -> list[Working]:
        return [w for w in self._by_trade.get(trade_id, ()) if not w.final]

    def _holds(self, trade_id: str) -> int | None:
        """What the trade holds at the broker by this run's fills (None: its entry is not ours)."""
        orders = self._by_trade.get(trade_id, [])
        if not any(w.side == "B" for w in orders):
            return 0 if trade_id in self._no_entry else None
        return sum(w.filled if w.side == "B" else -w.filled for w in orders)

    # -- trade events (the engine's thread) -------------------------------------------------------

    def entry(self, order: Order, trade: Trade) -> None:
        """An entry: written now, or kept until the link is up (at most ``entry_ttl``)."""
        with self._locked():
            self._queued(order, trade, "entry", f"NEWORDER B {trade.symbol} {order.qty}")
            if not self._send_entry(order, trade):
                self._entries.append(PendingEntry(order, trade, self._clock()))
                log.warning(
                    "DAS: %s entry of trade %s waits for the link (at most %g s): %s",
                    trade.symbol,
                    trade.id,
                    self.config.entry_ttl,
                    self.link.last_error if self.link is not None else "not started",
                )

    def _queued(self, order: Order, trade: Trade, event: str, command: str, *, exit: bool = False) -> None:
        """The wire log's first record of an event: what it is to send (a crash before its
        ``done`` is reported at the next start; an exit's, as one to close by hand)."""
        record: dict[str, object] = {"trade_id": trade.id, "symbol": trade.symbol, "event": event}
        if exit:
            record["exit"] = True
        self._record(batch=order.id, status="queued", plugin="das", commands=[command], **record)

    def _send_entry(self, order: Order, trade: Trade) -> bool:
        price = limit_price(order.price, self.config.entry_offset, buy=True)
        working = self._place(
            order_id=order.id,
            trade_id=trade.id,
            symbol=das_symbol(trade.symbol),
            side="B",
            qty=order.qty,
            price=price,
            intent="entry",
        )
        if working is None:
            return False
        self._record(batch=order.id, status="done")
        log.info("DAS: %s", working.line)
        others = [o for o in self.others.values() if o.symbol == working.symbol]
        if others:
            self._alert(
                "das_other_orders",
                f"{working.symbol}: {len(others)} open order(s) on the symbol are not this run's"
                f" ({', '.join(f'{o.side} {o.leaves} at {o.price}' for o in others)}): their sells count"
                " against the bot's take profit and stop; the trade's last exit cancels them",
                symbol=working.symbol,
                plugin="das",
            )
        return True

    def take_profit(self, order: Order, trade: Trade) -> None:
        """Take profit 1: a limit sell of its quantity at the ask (the engine's price)."""
        with self._locked():
            self._queued(order, trade, "tp1", f"NEWORDER S {trade.symbol} {order.qty}")
            self._tp_orders.setdefault(trade.id, {})[order.id] = order.qty
            self._take_profit_now(order, trade, self._clock())

    def resume_take_profit(self, order: Order, trade: Trade) -> None:
        """Start-up: a take profit 1 an earlier run queued and never wrote (killed while it
        waited for the entry's fill): it waits again, and goes when the broker's position says it
        can (the engine counted it as sold; without it the runner's exit would sell only half)."""
        with self._locked():
            self._tp_orders.setdefault(trade.id, {})[order.id] = order.qty
            self._pending_tp.append(PendingTakeProfit(order, trade, self._clock()))
        log.warning(
            "DAS: %s take profit 1 of trade %s (%d shares) was never written before the last stop:"
            " it goes when the broker's position allows",
            trade.symbol,
            trade.id,
            order.qty,
        )

    def _take_profit_now(self, order: Order, trade: Trade, queued_at: float) -> None:
        """Send what can go of a take profit; what cannot yet waits (checked again at each tick)."""
        left = self._send_take_profit(order, trade)
        if left:
            rest = order if left == order.qty else attrs.evolve(order, qty=left)
            self._pending_tp.append(PendingTakeProfit(rest, trade, queued_at))
        else:
            self._record(batch=order.id, status="done")

    def _send_take_profit(self, order: Order, trade: Trade) -> int:
        """Take profit 1 now, as much as can go: the shares still to send (0: all went).

        Never more than the entry has filled and the broker's position allows (less what other
        sells of the symbol offer): the rest waits for them; a catastrophic stop is cancelled
        first and confirmed out, so the two can never both fill."""
        if self.link is None or not self.link.up or not self.snapshot_done:
            return order.qty
        symbol = das_symbol(trade.symbol)
        working = self._of_trade(trade.id)
        stops = [w for w in working if w.intent == CATASTROPHIC]
        if stops:
            for stop in stops:
                self._cancel(stop)
            return order.qty
        qty = order.qty
        if self._in_doubt(symbol) is not None:
            return order.qty  # a sell lost with the connection may still arrive: it waits
        selling = sum(w.leaves for w in working if w.side == "S")
        holds = self._holds(trade.id)
        if holds is not None:
            qty = min(qty, holds - selling)
        qty = min(qty, self.positions.get(symbol, 0) - self._symbol_selling(symbol))
        if qty <= 0:
            return order.qty  # the entry's fill (or the position saying so) has not come in yet
        working_tp = self._place(
            order_id=order.id,
            trade_id=trade.id,
            symbol=symbol,
            side="S",
            qty=qty,
            price=on_tick(order.price, up=False),
            intent="take_profit",
        )
        if working_tp is None:
            return order.qty
        log.info("DAS: %s", working_tp.line)
        self._pending_tp = [p for p in self._pending_tp if p.order.id != order.id]
        self._update_catastrophic(trade.id)  # again, for what the take profit does not sell
        return order.qty - qty

    def _symbol_selling(self, symbol: str) -> int:
        """What open sells of the symbol still offer: this run's and the account's other orders."""
        mine = sum(w.leaves for w in self._by_symbol.get(symbol, ()) if w.side == "S" and not w.final)
        others = sum(o.leaves for o in self.others.values() if o.symbol == symbol and o.side in ("S", "SS"))
        return mine + others

    def last_exit(self, order: Order, trade: Trade, event: str) -> None:
        """A trade's last exit (tp2, stop, manual, kill): a job until the broker holds none of it."""
        with self._locked():
            job = ExitJob(
                trade_id=trade.id,
                symbol=das_symbol(trade.symbol),
                quote_symbol=trade.symbol,
                order_id=order.id,
                event=event,
                engine_qty=order.qty,
                model_price=order.price,
                first_price=on_tick(order.price, up=False) if event == "tp2" else None,
                started=self._clock(),
            )
            self.exits[trade.id] = job
            self._queued(order, trade, event, f"sell {trade.symbol} {order.qty}", exit=True)
            # A take profit 1 still waiting is not sent: this exit sells it all. An entry still
            # waiting for the link is never sent: its trade is over.
            for pending_tp in self._pending_tp:
                if pending_tp.trade.id == trade.id:
                    self._record(batch=pending_tp.order.id, status="done")  # its exit sells it
                    if self._holds(trade.id) is None:
                        # A trade of an earlier run: its exit sells what the engine holds, and
                        # the engine counted this take profit as sold.
                        job.engine_qty += pending_tp.order.qty
            self._pending_tp = [p for p in self._pending_tp if p.trade.id != trade.id]
            for pending in [p for p in self._entries if p.trade.id == trade.id]:
                self._entries.remove(pending)
                self._no_entry.add(trade.id)
                self._record(batch=pending.order.id, status="dropped")
                log.warning(
                    "DAS: %s entry of trade %s was never sent (no link) and its trade is closed: it is"
                    " dropped, nothing to sell",
                    trade.symbol,
                    trade.id,
                )
            self._work_exit(job)

    # -- exits ---------------------------------------------------------------------------------

    def _in_doubt(self, symbol: str) -> str | None:
        """Why no sell of ``symbol`` may go now (None: it may): a sell counted lost at a reconnect
        could still reach the platform, and a second sell beside it would go short.

        A frozen platform reads what its old connection holds when it runs again, whatever its
        next login's lists said. So the doubt ends only once the platform has been seen running
        for ``lost_order_wait_s``: position lists asked for one after another, each answered
        promptly, over that long (our clock alone proves nothing: the platform may freeze right
        after the login). The replacement is then sized on the last of those lists."""
        doubt = self._doubt.get(symbol)
        if doubt is None:
            return None
        since, _ = doubt
        awake = self._awake_since
        if (
            awake is not None
            and awake >= since
            and self._awake_until - awake >= self.config.lost_order_wait_s
        ):
            del self._doubt[symbol]  # the platform ran that long: the old sell, if it had it, is in
            return None
        self._probe()
        return "an order written before the reconnect may still reach the platform"

    def _probe(self) -> None:
        """Ask for the positions (the answer's delay says whether the platform is running)."""
        now = self._clock()
        if self._probe_at is None and now - self._probed >= PROBE_EVERY and self._write(POSREFRESH + EOL):
            self._probe_at = self._probed = now

    def _probe_answered(self, now: float) -> None:
        sent = self._probe_at
        if sent is None:
            return
        self._probe_at = None
        if now - sent <= PROMPT:
            if self._awake_since is None:
                self._awake_since = sent
            self._awake_until = now
        else:
            self._awake_since = None  # it was not running for a while: start again

    def _work_exit(self, job: ExitJob) -> None:
        """One step of an exit: cancel what else the trade has working, sell what it still holds."""
        link = self.link
        if link is None or not link.up or not self.snapshot_done:
            self._exit_waiting(job, "the link to DAS is down" if link is None or not link.up else "")
            return
        now = self._clock()
        mine = self._by_trade.get(job.trade_id, [])
        working = [w for w in mine if not w.final]
        for w in working:
            if w.token not in job.sells:
                self._cancel(w)  # the entry's rest, take profit 1, the catastrophic stop
            elif now - max(w.sent_at, w.priced_at) >= self.config.exit_reprice_s:
                # Not filled in time: re-priced from the bid once it is out, unless the bid has not
                # moved (a halted symbol): cancelling then would only lose its place in the queue.
                if w.cancel_sent or self._exit_price(job) != w.price:
                    self._cancel(w)
                else:
                    w.priced_at = now
                self._exit_waiting(job, f"{w.symbol} sell of {w.leaves} at {w.price} not filled")
        others = [o for o in self.others.values() if o.symbol == job.symbol]
        for other in others:  # the symbol's other open orders: a person's, an earlier run's
            if other.das_id in self._others_cancelled:
                continue
            try:
                line = cancel_line(other.das_id)
            except ValueError:
                continue  # an id no line can carry: it stays counted as selling
            if self._write(line):
                self._others_cancelled.add(other.das_id)
                log.warning(
                    "DAS: %s exit cancels open order %s (not this run's: %s %d at %s)",
                    job.symbol,
                    other.das_id,
                    other.side,
                    other.leaves,
                    other.price,
                )
        holds = self._holds(job.trade_id)
        sold_by_job = sum(w.filled for w in mine if w.token in job.sells)
        selling = sum(w.leaves for w in working if w.side == "S")
        left = (holds if holds is not None else job.engine_qty - sold_by_job) - selling
        position = self.positions.get(job.symbol, 0)
        symbol_selling = self._symbol_selling(job.symbol)
        want = min(left, position - symbol_selling)
        doubt = self._in_doubt(job.symbol) if want > 0 or job.symbol in self._doubt else None
        if doubt is not None:
            self._exit_waiting(job, doubt)
            return
        if want > 0 and now >= job.retry_at:
            if job.first_price is not None and not job.sells:
                price = job.first_price
            else:
                price = self._exit_price(job)
            placed = self._place(
                order_id=job.order_id,
                trade_id=job.trade_id,
                symbol=job.symbol,
                side="S",
                qty=want,
                price=price,
                intent=job.event,
            )
            if placed is not None:
                job.sells.append(placed.token)
                log.info("DAS: %s (%s of trade %s)", placed.line, job.event, job.trade_id)
            return
        if working or others or want > 0:
            if working or others:
                self._exit_waiting(job, "waiting for the platform to confirm cancels")
            return  # answers to wait for, or a rejected sell's time to try again
        if left <= 0:
            self._exit_done(job, "")
            return
        # Nothing working, yet the trade should hold shares the position as known does not
        # cover: ask the platform for its positions; if it still shows none, say so and stop.
        asked = job.refresh_asked
        refreshed = asked is not None and self._positions_at > asked
        if refreshed and position - symbol_selling <= 0:
            self._exit_done(
                job,
                f"DAS shows no {job.symbol} shares to sell although trade {job.trade_id} should hold"
                f" {left} more: nothing more was sold; check the account",
            )
        elif asked is None or refreshed or now - asked >= self.config.exit_reprice_s:
            job.refresh_asked = now
            self._write(POSREFRESH + EOL)

    def _sell_what_it_offered(self, line: OrderLine) -> None:
        """An exit cancelled an earlier run's sell of its symbol (a take profit 1 left resting
        when the bot restarted): what that sell did not sell is still held, and the exit of a
        trade whose entry was not this run's sells it too (this run's own count knows it)."""
        unsold = line.qty - line.filled
        job = next((j for j in self.exits.values() if j.symbol == line.symbol), None)
        if job is None or unsold <= 0 or self._holds(job.trade_id) is not None:
            return
        job.engine_qty += unsold
        log.warning(
            "DAS: %s exit of trade %s also sells the %d share(s) an earlier run's sell %s offered",
            line.symbol,
            job.trade_id,
            unsold,
            line.das_id,
        )

    def _trade_over(self, trade_id: str) -> bool:
        """The trade is no longer open in the engine (or its last exit has finished)."""
        if trade_id in self._finished:
            return True
        bot = self._bot
        return bot is not None and not any(t.id == trade_id for t in dict(bot.open_trades).values())

    def _exit_price(self, job: ExitJob) -> Decimal:
        """An exit sell's limit now: the current bid less ``exit_offset``, on the tick."""
        return limit_price(self._bid(job.quote_symbol, job.model_price), self.config.exit_offset, buy=False)

    def _exit_waiting(self, job: ExitJob, why: str) -> None:
        if job.alerted or self._clock() - job.started < self.config.exit_reprice_s:
            return
        job.alerted = True
        self._alert(
            "exit_pending",
            f"{job.symbol}: the {job.event} exit of trade {job.trade_id} is not filled yet"
            f" ({why or 'waiting for the position list'}); it is re-priced from the bid and"
            f" re-sent every {self.config.exit_reprice_s:g} s until the position is flat",
            symbol=job.symbol,
            trade_id=job.trade_id,
            plugin="das",
        )

    def _exit_done(self, job: ExitJob, problem: str) -> None:
        self.exits.pop(job.trade_id, None)
        self._finished[job.trade_id] = job  # a fill reported after the order's end still finds it
        if len(self._finished) > RECENT:
            self._finished.pop(next(iter(self._finished)))
        self._record(batch=job.order_id, status="done")
        if problem:
            self._alert("reconcile_mismatch", problem, symbol=job.symbol, trade_id=job.trade_id, plugin="das")
        else:
            log.info("DAS: %s %s exit of trade %s is filled", job.symbol, job.event, job.trade_id)

    # -- the catastrophic stop -------------------------------------------------------------------

    def _update_catastrophic(self, trade_id: str) -> None:
        """Keep one wide stop at the broker for what the trade holds (not already being sold)."""
        pct = self.config.catastrophic_stop_pct
        if pct is None or trade_id in self.exits or trade_id in self._cat_refused:
            return
        if any(p.trade.id == trade_id for p in self._pending_tp):
            return  # its take profit goes first: the stop is placed again for what is left after
        working = self._of_trade(trade_id)
        stops = [w for w in working if w.intent == CATASTROPHIC]
        holds = self._holds(trade_id) or 0
        cover = holds - sum(w.leaves for w in working if w.side == "S" and w.intent != CATASTROPHIC)
        symbol = stops[0].symbol if stops else next((w.symbol for w in self._by_trade.get(trade_id, ())), "")
        cover -= sum(o.leaves for o in self.others.values() if o.symbol == symbol and o.side in ("S", "SS"))
        if any(w.cancel_sent or w.cancel_wanted for w in stops):
            return  # the old one is on its way out
        if stops and stops[0].qty == cover:
            return
        for w in stops:
            self._cancel(w)
        if stops or cover <= 0:
            return  # placed again once the cancel is confirmed
        if self._in_doubt(symbol) is not None:
            return  # placed again once no lost sell can still arrive
        now = self._wall()
        if not self._market.is_regular(now):
            if trade_id not in self._cat_skipped:
                self._cat_skipped.add(trade_id)
                log.warning(
                    "DAS: no catastrophic stop for trade %s: it is %s (%s); stop orders are placed"
                    " in the regular session only. The engine's own stop still watches the trade",
                    trade_id,
                    NAMES[self._market.session_at(now)],
                    self._market.hours(now.astimezone(NEW_YORK).date()).describe(),
                )
            return
        entry = next((w for w in self._by_trade.get(trade_id, ()) if w.side == "B"), None)
        if entry is None:
            return
        bought = entry.price if entry.traded == 0 else self._avg_price(entry)
        stop = on_tick(bought * (1 - Decimal(repr(pct)) / 100), up=False)
        placed = self._place(
            order_id="",
            trade_id=trade_id,
            symbol=entry.symbol,
            side="S",
            qty=cover,
            price=stop,
            intent=CATASTROPHIC,
            stop=True,
        )
        if placed is not None:
            log.info("DAS: catastrophic stop for trade %s: %s", trade_id, placed.line)

    def _avg_price(self, working: Working) -> Decimal:
        return self._avg.get(working.token, working.price)

    # -- the platform's lines (the link's thread) ------------------------------------------------

    def connected(self) -> None:
        """A new login: the lists that follow are a snapshot; reconcile at its end."""
        with self._locked():
            self.positions_known = False
            self.snapshot_done = False
            self._staged_positions = {}
            self._lists_seen = set()
            self._listed_tokens = set()
            self._login_at = self._clock()
            self._probe_at, self._awake_since = None, None
            self._reconcile_due = True
            # A cancel written on the old connection may have died with it: sent again as needed.
            for w in self._open.values():
                w.cancel_sent, w.cancel_retry_at = False, None
            self._others_cancelled.clear()

    def disconnected(self, reason: str) -> None:
        self._alert(
            "link_down",
            f"DAS at {self.config.where}: connection lost ({reason}); reconnecting. Orders cannot be"
            " sent until it is back: entries wait at most"
            f" {self.config.entry_ttl:g} s, exits wait as long as it takes",
            plugin="das",
        )

    def refused(self, answer: str) -> None:
        """A login refused after start-up (the password changed, the account was locked)."""
        self._alert(
            "das_login_refused",
            f"DAS at {self.config.where} refused the login: {answer}. No order can be sent; the"
            " plugin keeps trying. Check [das] user, account and MOMOBOT_DAS_PASSWORD",
            plugin="das",
        )

    def unreadable(self, head: str, why: str, count: int) -> None:
        """A line of the platform's the plugin could not read: orders and fills it carried are
        not tracked. Said loudly (the first, then every hundredth): the platform may speak a
        version of the protocol this plugin does not know."""
        if head not in ("%ORDER", "%OrderAct", "%TRADE", "%POS") or (count > 1 and count % 100):
            return
        self._alert(
            "das_protocol",
            f"DAS sent a {head} line this plugin cannot read ({why}; {count} line(s) so far): the"
            " orders, fills or positions it carried are not tracked. Check the platform's version"
            " against docs/das.md; watch the account in DAS itself",
            plugin="das",
        )

    def handle(self, message: Message) -> None:
        with self._locked():
            if isinstance(message, OrderLine):
                self._order_line(message)
            elif isinstance(message, OrderAct):
                self._order_act(message)
            elif isinstance(message, TradeLine):
                self._trade_line(message)
            elif isinstance(message, PosLine):
                if self._listing == "#POS":
                    self._staged_positions[message.symbol] = message.qty
                else:
                    self.positions[message.symbol] = message.qty
                    self._symbol_changed(message.symbol)
            elif isinstance(message, Marker):
                self._marker(message.name)
            elif isinstance(message, BuyingPower):
                self.buying_power = message

    def _marker(self, name: str) -> None:
        if name in ("#POS", "#Order", "#Trade"):
            self._listing = name
            if name == "#POS":
                self._staged_positions = {}
            return
        self._listing = None
        self._lists_seen.add(name)
        if name == "#POSEND":
            self.positions = dict(self._staged_positions)
            self.positions_known = True
            self._positions_at = self._clock()
            self._probe_answered(self._positions_at)
        elif name == "#OrderEnd" and not self.snapshot_done:
            self._lost_orders()
        if not self.snapshot_done:
            if {"#POSEND", "#OrderEnd", "#TradeEnd"} <= self._lists_seen:
                self._snapshot_complete()
            return
        for job in list(self.exits.values()):
            self._work_exit(job)

    def _lost_orders(self) -> None:
        """After a login: this run's open orders the platform does not list never reached it (the
        connection died with them unsent) or are gone. They are counted as over, so an exit
        sends again what they were to sell; an entry is not sent again (its moment is past)."""
        for w in list(self._open.values()):
            # Orders written after this login's lists began cannot be in them: never "lost".
            if not w.final and w.token not in self._listed_tokens and w.sent_at < self._login_at:
                w.final = True
                w.status = "Lost"
                if w.das_id is None:
                    # A sell could still be sold, a buy still bought: the symbol's exits wait
                    # until the platform has been seen running (see _in_doubt).
                    self._doubt[w.symbol] = (self._clock(), None)
                if w.intent == "take_profit" and w.filled < w.qty:
                    self._requeue_take_profit(w)
                if w.intent == "entry" and w.filled == 0:
                    self._alert(
                        "das_entry_dropped",
                        f"{w.symbol}: the entry of trade {w.trade_id} was written but the platform never"
                        " took it so far (it is not in its order list after the reconnect): nothing is"
                        " bought yet, but a platform"
                        " that froze may still buy it, so the trade's exit waits until the platform has"
                        f" been seen running for {self.config.lost_order_wait_s:g} s, then sells what it"
                        " holds. The engine still shows the trade open: close it in MomoBot",
                        symbol=w.symbol,
                        trade_id=w.trade_id,
                        plugin="das",
                    )
                log.warning(
                    "DAS: %s order %s (%s) is not in the platform's list after the reconnect: counted"
                    " as not sent (filled %d of %d)",
                    w.symbol,
                    w.token,
                    w.line,
                    w.filled,
                    w.qty,
                )

    def _requeue_take_profit(self, lost: Working) -> None:
        """A take profit 1 that never reached the platform: what it did not sell waits to go again."""
        bot = self._bot
        trade = (
            next((t for t in dict(bot.open_trades).values() if t.id == lost.trade_id), None) if bot else None
        )
        if trade is None or lost.trade_id in self.exits:
            return  # the trade's last exit sells those shares
        order = Order(
            id=lost.order_id,
            symbol=trade.symbol,
            side=Side.SELL,
            qty=lost.qty - lost.filled,
            price=float(lost.price),
            intent=Intent.TAKE_PROFIT,
            trade_id=trade.id,
            ts=datetime.now(UTC),
        )
        self._pending_tp.append(PendingTakeProfit(order, trade, self._clock()))

    def _snapshot_complete(self) -> None:
        self.snapshot_done = True
        self.ready.set()
        if self._reconcile_due:
            self._reconcile_due = False
            self.reconcile()
        for job in list(self.exits.values()):
            self._work_exit(job)
        for trade_id in list(self._by_trade):
            self._update_catastrophic(trade_id)  # one lost with the old connection is placed again

    def _token_of(self, das_id: str, token: int | None, symbol: str, side: str) -> int | None:
        """This run's token for a platform order: the line's own token first (ours are unique
        across runs, and must name the same symbol and side), else the order id a line with the
        token named before."""
        mine = self.orders.get(token) if token is not None else None
        if mine is not None and (mine.symbol != symbol.upper() or mine.side[0] != side[:1].upper()):
            log.warning(
                "DAS: order %s carries token %s of another order (%s): not ours", das_id, token, mine.line
            )
            mine = None
            if das_id in self._by_das_id:
                return None
        if mine is not None and token is not None:
            self._by_das_id[das_id] = token
            self.others.pop(das_id, None)  # an older %ORDER without a token made it look foreign
            return token
        if token is not None:
            if token >= self._next_token:
                self._next_token = token + 1  # never reuse a token the platform has seen today
            return None  # another client's or another run's token
        return self._by_das_id.get(das_id)

    def _order_line(self, line: OrderLine) -> None:
        token = self._token_of(line.das_id, line.token, line.symbol, line.side)
        if token is None:
            # Not this run's order (a person's, or an earlier run's): kept while open, because the
            # last exit of a trade cancels every open order of its symbol.
            if line.final:
                gone = self.others.pop(line.das_id, None)
                if gone is not None and line.das_id in self._others_cancelled and line.side == "S":
                    self._sell_what_it_offered(line)
            else:
                self.others[line.das_id] = line
            return
        if self._listing == "#Order":
            self._listed_tokens.add(token)
        working = self.orders[token]
        if working.status == "Lost":  # the platform had it after all: it counts again
            log.warning(
                "DAS: %s order %s, counted as lost, is reported by the platform", working.symbol, token
            )
            working.final = False
            self._open[token] = working
            if working.intent == "take_profit":
                # Its copy queued to go again would sell the same shares a second time.
                self._pending_tp = [p for p in self._pending_tp if p.order.id != working.order_id]
            if (
                working.side == "B"
                and working.trade_id not in self.exits
                and self._trade_over(working.trade_id)
            ):
                self._alert(
                    "reconcile_mismatch",
                    f"{working.symbol}: the entry of trade {working.trade_id}, counted as never taken,"
                    " is reported by the platform after the trade closed: what it buys is not watched"
                    " by MomoBot and has no stop: close it by hand in DAS",
                    symbol=working.symbol,
                    trade_id=working.trade_id,
                    plugin="das",
                )
            if working.side == "S":
                # Anything sent to replace it sells the same shares again: out, at once; the
                # exit sells what is left once the platform has said what the old one did.
                for other in list(self._open.values()):
                    if (
                        other.symbol == working.symbol
                        and other.side == "S"
                        and other.sent_at > working.sent_at
                    ):
                        log.warning(
                            "DAS: %s order %s replaced lost order %s, which the platform now reports:"
                            " cancelled",
                            other.symbol,
                            other.token,
                            token,
                        )
                        self._cancel(other)
        working.das_id = line.das_id
        working.status = line.status
        working.filled = max(working.traded, line.filled)
        working.cancelled = line.cancelled
        if line.status.lower() == "rejected" and working.rejected is None and working.rejected_at is None:
            working.rejected_at = self._clock()  # the reason comes on %OrderAct (else told at a tick)
            if working.intent == CATASTROPHIC:
                self._cat_refused.add(working.trade_id)  # not placed again for this trade
            job = self.exits.get(working.trade_id)
            if job is not None and working.token in job.sells:
                self._hold_off(job)  # no new sell before the wait, whether or not a reason comes
        if line.final and not working.final:
            working.final = True
        if working.cancel_wanted and not working.final:
            working.cancel_wanted = False
            self._cancel(working)
        for trade in self._orphans.pop(line.das_id, []):
            self._trade_line(trade)
        self._order_changed(working)

    def _order_act(self, act: OrderAct) -> None:
        token = self._token_of(act.das_id, act.token, act.symbol, act.side)
        if token is None:
            return
        working = self.orders[token]
        working.das_id = act.das_id
        if act.rejected and working.rejected is None:
            working.final = True
            self._rejected(working, act.notes or act.action)
            self._order_changed(working)
        elif act.action.lower() == "cancelrej":
            if working.cancel_retry_at is None:
                log.warning(
                    "DAS: cancel of %s order %s refused (%s): tried again every %g s while it is open",
                    working.symbol,
                    act.das_id,
                    act.notes or "no reason given",
                    self.config.exit_reprice_s,
                )
            working.cancel_retry_at = self._clock() + self.config.exit_reprice_s

    def _rejected(self, working: Working, reason: str) -> None:
        working.rejected = reason
        self.rejections += 1
        what = "entry" if working.side == "B" else f"{working.intent} sell"
        job = self.exits.get(working.trade_id)
        if working.intent == CATASTROPHIC:
            self._cat_refused.add(working.trade_id)  # not placed again for this trade
        delay = self._hold_off(job) if job is not None and working.token in job.sells else 0.0
        consequence = {
            "entry": "nothing was bought; the engine still shows the trade open: close it in MomoBot once"
            " you have checked the account",
            CATASTROPHIC: "the position has no broker-side stop; none is placed again for this trade",
            "take_profit": "the trade's last exit sells these shares",
        }.get(working.intent, f"it is tried again in {delay:g} s, and again until the position is flat")
        if job is not None and job.rejections > 1 and job.rejections % 10:
            log.warning("DAS: %s sell rejected again (%d): %s", working.symbol, job.rejections, reason)
            return  # told at the first and every tenth: the exit keeps trying
        self._alert(
            "order_rejected",
            f"{working.symbol}: DAS rejected the {what} of trade {working.trade_id} ({working.line}):"
            f" {reason}; {consequence}",
            symbol=working.symbol,
            trade_id=working.trade_id,
            reason=reason,
            plugin="das",
        )

    def _hold_off(self, job: ExitJob) -> float:
        """A rejected sell of an exit: wait before the next, longer each time (at most 30 s)."""
        if job.retry_at <= self._clock():  # once per rejection, whichever line told it first
            job.rejections += 1
            delay = min(self.config.exit_reprice_s * 2 ** (job.rejections - 1), MAX_RETRY)
            job.retry_at = self._clock() + delay
        return max(0.0, job.retry_at - self._clock())

    def _trade_line(self, line: TradeLine) -> None:
        token = self._by_das_id.get(line.das_order_id)
        if token is None:
            if self._listing != "#Trade":
                self._orphans[line.das_order_id].append(line)  # its %ORDER may come next
                while len(self._orphans) > MAX_ORPHANS:  # another client's executions: forgotten
                    self._orphans.pop(next(iter(self._orphans)))
            return
        if line.trade_id in self._seen_trades:
            return
        self._seen_trades.add(line.trade_id)
        working = self.orders[token]
        if working.side == "S" and self._listing != "#Trade":
            # A sale lowers the position now: the %POS that says so may come later, and an exit
            # sized on the old position would sell shares that are gone (a short).
            self.positions[working.symbol] = self.positions.get(working.symbol, 0) - line.qty
        total = working.traded * self._avg.get(token, Decimal(0)) + line.qty * line.price
        working.traded += line.qty
        self._avg[token] = total / working.traded
        working.filled = max(working.filled, working.traded)
        self.fills += 1
        if working.order_id:
            try:
                ts = das_time(line.time, self.config.tz, datetime.now(UTC)).astimezone(UTC)
            except ProtocolError:
                ts = datetime.now(UTC)
            for order_id, qty in self._owners(working, line.qty):
                self._submit(Fill(order_id, qty, float(line.price), ts, line.trade_id))
        elif working.intent == CATASTROPHIC:
            self._alert(
                "das_catastrophic_stop",
                f"{working.symbol}: the broker-side catastrophic stop of trade {working.trade_id} sold"
                f" {line.qty} at {line.price}: the engine did not; check the account and close the"
                " trade in MomoBot",
                symbol=working.symbol,
                trade_id=working.trade_id,
                plugin="das",
            )
        self._order_changed(working)

    def _owners(self, working: Working, qty: int) -> list[tuple[str, int]]:
        """The engine orders a fill of ``working`` belongs to. A last exit's sells fill its own order
        up to what the engine sold with it; beyond that they sell what the trade's take profits
        did not (the engine counted those shares sold at the take profit, at its quantity): those
        go to the take profit's order, once none of its own orders can fill any more."""
        job = self.exits.get(working.trade_id) or self._finished.get(working.trade_id)
        if job is None or working.token not in job.sells:
            return [(working.order_id, qty)]
        own = max(0, min(qty, job.engine_qty - job.attributed))
        job.attributed += own
        owners = [(job.order_id, own)] if own else []
        rest = qty - own
        mine = self._by_trade.get(job.trade_id, [])
        for order_id, tp_qty in self._tp_orders.get(job.trade_id, {}).items():
            if rest <= 0:
                break
            sent = [w for w in mine if w.order_id == order_id]
            if any(not w.final for w in sent):
                continue  # it may still fill by itself
            owed = tp_qty - sum(w.filled for w in sent) - self._made_up.get(order_id, 0)
            if owed > 0:
                part = min(owed, rest)
                self._made_up[order_id] = self._made_up.get(order_id, 0) + part
                owners.append((order_id, part))
                rest -= part
        if rest > 0:
            owners.append((job.order_id, rest))
        merged: dict[str, int] = {}
        for order_id, part in owners:  # one fill per order: an execution is kept once per order
            merged[order_id] = merged.get(order_id, 0) + part
        return list(merged.items())

    def _order_changed(self, working: Working) -> None:
        job = self.exits.get(working.trade_id)
        if job is not None:
            self._work_exit(job)
        elif working.intent in ("entry", "take_profit", CATASTROPHIC):
            self._update_catastrophic(working.trade_id)

    def _symbol_changed(self, symbol: str) -> None:
        for job in list(self.exits.values()):
            if job.symbol == symbol:
                self._work_exit(job)

    # -- upkeep (the link's thread) ----------------------------------------------------------------

    def tick(self) -> None:
        with self._locked():
            now = self._clock()
            link = self.link
            up = link is not None and link.up
            if (
                up
                and not self.snapshot_done
                and self.positions_known
                and now - self._login_at > SNAPSHOT_WAIT
            ):
                log.warning(
                    "DAS: the order and trade lists did not all come within %g s of the login:"
                    " going on with the positions",
                    SNAPSHOT_WAIT,
                )
                self._snapshot_complete()
            unanswered = None
            for w in list(self._open.values()):
                if w.final and (w.rejected_at is None or w.rejected is not None):
                    del self._open[w.token]  # over, and told if rejected: nothing left to watch
                    continue
                if w.rejected is None and w.rejected_at is not None and now - w.rejected_at > REASON_WAIT:
                    self._rejected(w, "no reason given")
                if up and not w.final and w.das_id is None and now - w.sent_at > ACK_TIMEOUT:
                    unanswered = w
            if unanswered is not None and link is not None:
                # The platform takes no order and answers none: it is not reading. A new connection
                # and its order list say which orders it has (the others are counted as not sent).
                link.drop(f"no answer to {unanswered.line} within {ACK_TIMEOUT:g} s")
                up = False
            while self._entries:
                pending = self._entries[0]
                bot = self._bot
                still_open = bot is None or any(
                    t.id == pending.trade.id for t in dict(bot.open_trades).values()
                )
                if not still_open:
                    self._entries.popleft()
                    self._no_entry.add(pending.trade.id)
                    self._record(batch=pending.order.id, status="dropped")
                    continue  # its trade closed while it waited: never sent
                if now - pending.queued_at > self.config.entry_ttl:
                    self._entries.popleft()
                    self._no_entry.add(pending.trade.id)
                    self._record(batch=pending.order.id, status="dropped")
                    self._alert(
                        "das_entry_dropped",
                        f"{pending.trade.symbol}: the entry of trade {pending.trade.id} was not sent to DAS"
                        f" within {self.config.entry_ttl:g} s ({link.last_error if link else 'no link'}):"
                        " dropped, nothing was bought; the engine still shows the trade open: close it"
                        " in MomoBot",
                        symbol=pending.trade.symbol,
                        trade_id=pending.trade.id,
                        plugin="das",
                    )
                    continue
                if not up or not self._send_entry(pending.order, pending.trade):
                    break
                self._entries.popleft()
            if up and self._pending_tp:
                waiting, self._pending_tp = self._pending_tp, []
                for pending_tp in waiting:
                    self._take_profit_now(pending_tp.order, pending_tp.trade, pending_tp.queued_at)
                    for again in self._pending_tp:  # still waiting: told once, not again
                        if again.order.id == pending_tp.order.id:
                            again.alerted = pending_tp.alerted
            for pending_tp in self._pending_tp:
                if not pending_tp.alerted and now - pending_tp.queued_at > self.config.entry_ttl:
                    pending_tp.alerted = True
                    trade = pending_tp.trade
                    others = [o for o in self.others.values() if o.symbol == das_symbol(trade.symbol)]
                    why = (
                        "no link"
                        if not up
                        else f"{len(others)} open order(s) of the account on the symbol that are not this"
                        " run's already offer the shares"
                        if others
                        else "DAS shows no filled shares of its entry to sell"
                    )
                    self._alert(
                        "das_take_profit_waiting",
                        f"{trade.symbol}: take profit 1 of trade {trade.id} is not sent yet ({why});"
                        " it goes as soon as it can, or the trade's last exit sells these shares",
                        symbol=trade.symbol,
                        trade_id=trade.id,
                        plugin="das",
                    )
            for job in list(self.exits.values()):
                self._work_exit(job)

    def reconcile(self) -> None:
        """The broker's positions against the engine's open trades: a difference is an alert.

        A trade this run entered should hold what its fills say (bought less sold: a take profit
        resting unfilled is not a difference); a trade of an earlier run, the engine's
        remaining. A symbol with an exit in progress or an order the platform has not
        acknowledged yet is in flight: not compared now (its exit reconciles it)."""
        bot = self._bot
        trades = dict(bot.open_trades) if bot is not None else {}
        in_flight = {job.symbol for job in self.exits.values()} | {
            w.symbol for w in self._open.values() if not w.final and w.das_id is None
        }
        mismatches = []
        for symbol in sorted(set(trades) | {s for s, q in self.positions.items() if q}):
            if symbol in in_flight:
                continue
            trade = trades.get(symbol)
            holds = self._holds(trade.id) if trade is not None else None
            mine = (holds if holds is not None else trade.remaining) if trade is not None else 0
            theirs = self.positions.get(symbol, 0)
            if mine != theirs:
                mismatches.append({"symbol": symbol, "engine": mine, "broker": theirs})
        self.last_reconcile = {
            "at": datetime.now(UTC).isoformat(),
            "mismatches": mismatches,
            "in_flight": sorted(in_flight),
        }
        if not mismatches:
            log.info("DAS: positions reconciled: %d open trade(s), all match", len(trades))
            return
        for m in mismatches:
            symbol = str(m["symbol"])
            others = [o for o in self.others.values() if o.symbol == symbol]
            note = f" ({len(others)} open order(s) of the symbol are not this run's)" if others else ""
            self._alert(
                "reconcile_mismatch",
                f"{symbol}: DAS holds {m['broker']} shares, the engine's open trades {m['engine']}{note};"
                " nothing is changed: check the account and close or confirm by hand",
                symbol=symbol,
                engine=m["engine"],
                broker=m["broker"],
                plugin="das",
            )

    def shutdown(self) -> None:
        """Exits still in progress are cut: the next start reports them (close them by hand)."""
        with self._locked():
            for job in self.exits.values():
                self._record(batch=job.order_id, status="cut")
                log.error(
                    "DAS: the %s exit of trade %s (%s) was not filled when the bot stopped: check the"
                    " position in DAS and close it by hand",
                    job.event,
                    job.trade_id,
                    job.symbol,
                )
            for pending in self._entries:
                self._record(batch=pending.order.id, status="dropped")

    def set_wall_clock(self, wall: Callable[[], datetime]) -> None:
        """Replace the wall clock of the catastrophic stop's regular-hours check (tests)."""
        self._wall = wall

    def working_count(self) -> int:
        """This run's orders not over yet, and exits in progress."""
        with self._lock:
            return sum(1 for w in self._open.values() if not w.final) + len(self.exits)

    def recent_orders(self) -> list[Working]:
        """This run's latest orders, oldest first (a copy: the link's thread changes them)."""
        with self._locked():
            return [attrs.evolve(w) for w in self.recent]

    def status(self) -> dict[str, Any]:
        with self._locked():
            link = self.link
            working = [w for w in self._open.values() if not w.final]
            return {
                "host": self.config.where,
                "account": self.config.account,
                "state": link.state if link is not None else "not started",
                "last_error": link.last_error if link is not None else None,
                "connected_at": (
                    datetime.fromtimestamp(link.connected_at, UTC).isoformat()
                    if link is not None and link.connected_at
                    else None
                ),
                "working_orders": len(working),
                "exits_pending": sorted(job.symbol for job in self.exits.values()),
                "entries_waiting": len(self._entries),
                "positions": dict(self.positions) if self.positions_known else None,
                "last_reconcile": self.last_reconcile,
                "rejections": self.rejections,
                "fills": self.fills,
            }
