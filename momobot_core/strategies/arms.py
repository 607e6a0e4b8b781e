"""The arms: which symbols a strategy watches, and the entries their signals become.

An arm is a symbol, a strategy, a timeframe and the arm's bracket (``[bracket]`` with the
strategy's and the arm's overrides). For an armed symbol each quote gives a price (the print
when it changed, else the mid: :func:`momobot_core.candles.quote_price`), the price goes into
the arm's candles, and the strategy sees each closed candle, then the price. A signal becomes
an ``Open`` through the engine's own way in (``enter``), so every risk limit, the journal and
every plugin treat it as a person's entry. Its rules:

* one open trade per symbol; an arm enters at most ``entries`` times, and waits
  ``cooldown_s`` after its last trade closed;
* a refused entry (a limit, a halt, a stale quote) is logged, alerted and counted, and does
  not spend the arm;
* arms and their strategies' state are journaled (``arms``), and each entry names its
  strategy, timeframe and level in its trade's row: a restart keeps its arms, counts the
  entries they made, and never enters twice on the same breakout.

Nothing here sends anything: the engine does, for the entries it takes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from momobot_core.candles import CHART_TIMEFRAMES, CandleBuilder, Timeframe, quote_price
from momobot_core.config import ConfigError
from momobot_core.errors import JournalWriteError, TradeRefused
from momobot_core.journal import ArmRow
from momobot_core.models import Arm, Open, Quote, Trade
from momobot_core.strategies import ArmSpec, Signal, Strategy, StrategyFactory
from momobot_core.strategies.bracket import BRACKET_KEYS, BracketSettings

if TYPE_CHECKING:
    from momobot_core.journal import Journal

log = logging.getLogger("momobot.strategies")

__all__ = ["ArmState", "Arms", "parse_arm"]


class ArmState:
    """One armed symbol: its strategy, its candles, and what it did."""

    def __init__(
        self, spec: ArmSpec, bracket: BracketSettings, strategy: Strategy, tz: tzinfo, armed_at: datetime
    ) -> None:
        self.spec = spec
        self.bracket = bracket
        self.strategy = strategy
        self.candles = CandleBuilder(spec.symbol, spec.timeframe, tz)
        self.armed_at = armed_at
        #: The arm's own fields as given (the strategy's and the bracket's overrides).
        self.params: dict[str, Any] = dict(spec.params)
        self.entries = 0
        self.refused = 0
        self.signals = 0
        self.last_closed_at: datetime | None = None
        self.trade_id: str | None = None
        self.last_price: float | None = None
        self.updated_at = armed_at
        #: Where the arm came from: ``api``, ``recording`` or ``config: <the entry>``.
        self.origin = "api"

    def status(self) -> dict[str, Any]:
        """What ``GET /arms`` shows."""
        candle = self.candles.current
        return {
            "symbol": self.spec.symbol,
            "strategy": self.spec.strategy,
            "timeframe": self.spec.timeframe.name,
            "params": self.params,
            "armed_at": self.armed_at.isoformat(),
            "origin": self.origin,
            "entries": self.entries,
            "entries_allowed": self.bracket.entries,
            "refused": self.refused,
            "signals": self.signals,
            "trade_id": self.trade_id,
            "last_price": self.last_price,
            "candle": None
            if candle is None
            else {
                "start": candle.start.isoformat(),
                "open": candle.open,
                "high": candle.high,
                "low": candle.low,
                "close": candle.close,
                "volume": candle.volume,
            },
            "state": self.strategy.state(),
            "bracket": self.bracket.as_dict(),
        }


def parse_arm(text: str, ts: datetime) -> Arm:
    """``"ABCD pullback 1m"`` or ``"ABCD level 1m level=5.20 qty=200"`` (``[momobot] arm``,
    ``momobot arm``): an Arm; ValueError says what is wrong."""
    words = text.split()
    if len(words) < 3:
        raise ValueError(
            f"{text!r}: give SYMBOL STRATEGY TIMEFRAME [key=value ...], such as 'ABCD pullback 1m'"
        )
    params: dict[str, object] = {}
    for word in words[3:]:
        key, sep, value = word.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{text!r}: {word!r} is not key=value")
        if key in params:
            raise ValueError(f"{text!r}: {key} is given twice")
        params[key] = field_value(value)
    origin = "config: " + " ".join(words)
    return Arm(symbol=words[0], strategy=words[1], timeframe=words[2], ts=ts, params=params, origin=origin)


def field_value(text: str) -> object:
    """A field of an arm as text reads it: ``pattern``, a whole number, a number, or the word."""
    if text == "pattern":
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class Arms:
    """The armed symbols of one engine. Runs on the engine's thread."""

    def __init__(
        self,
        *,
        strategies: Mapping[str, tuple[str, StrategyFactory]],
        bracket: tuple[BracketSettings, Mapping[str, BracketSettings]],
        tz: tzinfo,
        journal: Journal | None,
        enter: Callable[[Open], Trade],
        tell: Callable[..., object],
        open_trades: Mapping[str, Trade],
        last_quotes: Mapping[str, Quote],
    ) -> None:
        self.strategies = strategies
        self.base, self.per_strategy = bracket
        self.tz = tz
        self.journal = journal
        self.enter = enter
        self.tell = tell
        self.open_trades = open_trades
        self.last_quotes = last_quotes
        #: The armed symbols (the engine looks here first: a quote for any other costs nothing).
        self.armed: dict[str, ArmState] = {}
        self._prints: dict[str, tuple[float, datetime | None]] = {}
        self._dirty: set[str] = set()  # arms whose strategy state changed since it was journaled
        #: Symbols disarmed today, with the origin of the arm they had.
        self.disarmed: dict[str, str] = {}

    # -- arming ----------------------------------------------------------------------------

    def arm(self, event: Arm, *, restored: ArmRow | None = None) -> ArmState:
        """Arm a symbol (again: the new arm replaces the old, counting afresh). TradeRefused
        (``invalid``) names a strategy, timeframe or field that is wrong; nothing changes then."""
        symbol = event.symbol
        if not isinstance(symbol, str) or not symbol or len(symbol) > 12 or not symbol.isprintable():
            raise TradeRefused(f"arm: {event.symbol!r} is not a symbol")
        if event.strategy not in self.strategies:
            known = ", ".join(sorted(self.strategies)) or "none"
            raise TradeRefused(f"{symbol}: no strategy {event.strategy!r} (installed: {known})")
        try:
            timeframe = Timeframe.parse(event.timeframe)
        except ValueError as exc:
            raise TradeRefused(f"{symbol}: {exc}") from None
        params = dict(event.params)
        own = {k: v for k, v in params.items() if k not in BRACKET_KEYS}
        overrides = {k: v for k, v in params.items() if k in BRACKET_KEYS}
        try:
            bracket = self.per_strategy.get(event.strategy, self.base).merged(overrides)
        except ValueError as exc:
            raise TradeRefused(f"{symbol}: {exc}") from None
        if bracket.trail == "candle" and timeframe.name not in CHART_TIMEFRAMES:
            raise TradeRefused(
                f'{symbol}: trail = "candle" follows {", ".join(CHART_TIMEFRAMES)} candles, not {timeframe}'
            )
        spec = ArmSpec(symbol, event.strategy, timeframe, own)
        try:
            strategy = self.strategies[event.strategy][1](spec)
        except (ValueError, TypeError) as exc:
            raise TradeRefused(f"{symbol}: {exc}") from None
        state = ArmState(spec, bracket, strategy, self.tz, event.ts)
        state.params = params
        state.origin = event.origin
        if restored is not None:
            self._restore(state, restored)
        else:
            self._keep(state)
        self.armed[symbol] = state
        self.disarmed.pop(symbol, None)
        log.info("%s: armed with %s %s", symbol, event.strategy, timeframe)
        return state

    def disarm(self, symbol: str) -> ArmState:
        """Stop a symbol's arm; the journal keeps that it was disarmed today (a restart does not
        arm it again from ``[momobot] arm``)."""
        state = self.armed.get(symbol)
        if state is None:
            raise TradeRefused(f"{symbol}: not armed", "no_position")
        if self.journal is not None:
            try:
                self.journal.record_arm(self._row(state, disarmed=True))
            except JournalWriteError as exc:
                raise TradeRefused(
                    f"{symbol}: not disarmed: the journal cannot be written ({exc})", "journal"
                ) from None
        del self.armed[symbol]
        self._dirty.discard(symbol)
        self.disarmed[symbol] = state.origin
        log.info("%s: disarmed", symbol)
        return state

    def restore(self, today: date | None, trading_day: Callable[[datetime], date]) -> None:
        """At start: today's arms from the journal, each with its strategy's state and the
        entries it made; today's disarms are remembered. Live (``today`` given), arms of an
        earlier trading day are dropped (arms last the day); a replay keeps them all."""
        if self.journal is None:
            return
        for row in self.journal.arms():
            kept = row.state if isinstance(row.state.get("strategy"), dict) else {"strategy": row.state}
            if today is not None and trading_day(row.armed_at) != today:
                self._forget(row.symbol)
                continue
            if kept.get("disarmed"):
                self.disarmed[row.symbol] = str(kept.get("origin", "api"))
                continue
            event = Arm(
                row.symbol,
                row.strategy,
                row.timeframe,
                row.armed_at,
                dict(row.params),
                str(kept.get("origin", "api")),
            )
            try:
                self.arm(event, restored=row)
            except TradeRefused as exc:
                self._forget(row.symbol)
                self.tell(
                    "arm_dropped",
                    f"{row.symbol}: the journal's arm ({row.strategy} {row.timeframe}) cannot be"
                    f" restored: {exc}; it is dropped: arm it again",
                    symbol=row.symbol,
                )

    def arm_at_start(self, entries: Sequence[str], now: datetime) -> None:
        """``[momobot] arm``, after :meth:`restore`: a configured entry arms its symbol unless
        today's journal already holds that very entry's arm (it goes on, with its state and
        entries), or an arm or a disarm a person made today through the API or a recording
        (kept: said in the log). A configured entry that changed since it armed the symbol
        replaces that arm. ConfigError names a bad entry, or a symbol armed twice."""
        events = []
        for text in entries:
            try:
                events.append(parse_arm(text, now))
            except ValueError as exc:
                raise ConfigError(f"[momobot] arm = {text!r}: {exc}") from None
        symbols = [event.symbol for event in events]
        twice = sorted({s for s in symbols if symbols.count(s) > 1})
        if twice:
            raise ConfigError(f"[momobot] arm: {', '.join(twice)} armed twice (one entry per symbol)")
        for event in events:
            entry = event.origin.removeprefix("config: ")
            held = self.armed.get(event.symbol)
            if held is not None and held.origin == event.origin:
                continue  # the journal's arm of this very entry goes on
            if held is not None and not held.origin.startswith("config: "):
                log.info(
                    "%s: today's arm made through the %s is kept; [momobot] arm %r waits",
                    event.symbol,
                    held.origin,
                    entry,
                )
                continue
            if held is None and event.symbol in self.disarmed:
                log.info("%s: disarmed today: [momobot] arm %r is not armed again", event.symbol, entry)
                continue
            if held is not None:
                log.warning(
                    "%s: [momobot] arm changed (%s): the arm is replaced, its entries count afresh",
                    event.symbol,
                    entry,
                )
            try:
                self.arm(event)
            except TradeRefused as exc:
                raise ConfigError(f"[momobot] arm = {entry!r}: {exc}") from None

    def _forget(self, symbol: str) -> None:
        assert self.journal is not None
        try:
            self.journal.remove_arm(symbol)
        except JournalWriteError as exc:
            log.warning("%s: an old arm stays in the journal: %s", symbol, exc)

    def _restore(self, state: ArmState, row: ArmRow) -> None:
        kept = row.state if isinstance(row.state.get("strategy"), dict) else {"strategy": row.state}
        state.strategy.restore(kept["strategy"])
        state.updated_at = row.updated_at
        assert self.journal is not None
        spec = state.spec
        mine = [
            t
            for t in self.journal.trades()
            if t.symbol == spec.symbol and t.strategy == spec.strategy and t.opened_at >= state.armed_at
        ]
        state.entries = len(mine)
        closed = [t.closed_at for t in mine if t.closed_at is not None]
        state.last_closed_at = max(closed) if closed else None
        open_now = self.open_trades.get(spec.symbol)
        state.trade_id = (
            open_now.id if open_now is not None and any(t.id == open_now.id for t in mine) else None
        )
        journaled = kept.get("entries", 0)
        if state.entries > (journaled if isinstance(journaled, int) else 0):
            # An entry is journaled with its trade; the state after it was not (a kill in
            # between): move past that setup, as the entry did.
            state.strategy.entered()
            self._dirty.add(spec.symbol)

    def _keep(self, state: ArmState) -> None:
        if self.journal is None:
            return
        try:
            self.journal.record_arm(self._row(state))
        except JournalWriteError as exc:
            raise TradeRefused(
                f"{state.spec.symbol}: not armed: the journal cannot be written ({exc})", "journal"
            ) from None

    @staticmethod
    def _row(state: ArmState, *, disarmed: bool = False) -> ArmRow:
        spec = state.spec
        kept = {
            "strategy": state.strategy.state(),
            "entries": state.entries,
            "origin": state.origin,
            "disarmed": disarmed,
        }
        return ArmRow(
            spec.symbol,
            spec.strategy,
            spec.timeframe.name,
            state.params,
            kept,
            state.armed_at,
            state.updated_at,
        )

    def flush(self) -> None:
        """Journal the strategies' states that changed (tick and shutdown: off the quote path)."""
        if not self._dirty or self.journal is None:
            return
        dirty, self._dirty = self._dirty, set()
        for symbol in sorted(dirty):
            state = self.armed.get(symbol)
            if state is None:
                continue
            try:
                self.journal.record_arm(self._row(state))
            except JournalWriteError as exc:
                self._dirty.add(symbol)
                log.warning("%s: the arm's state is not journaled yet: %s", symbol, exc)

    # -- prices ------------------------------------------------------------------------------

    def on_quote(self, quote: Quote) -> None:
        """A quote for an armed symbol (the engine took it): candles, the strategy, an entry."""
        state = self.armed[quote.symbol]
        price = quote_price(quote, self._prints)
        if price is None:
            return
        state.last_price = price
        strategy = state.strategy
        closed = state.candles.price(quote.ts, price)
        try:
            signal = strategy.on_candle(closed) if closed is not None else None
            later = strategy.on_price(quote.ts, price)
        except Exception as exc:  # a strategy's bug must not stop the feed or the other arms
            self._broken(state, exc)
            return
        if closed is not None or later is not None:
            state.updated_at = quote.ts
            self._dirty.add(quote.symbol)
        signal = later if later is not None else signal
        if signal is not None:
            self._act(state, signal, quote.ts)

    def tick(self, now: datetime) -> None:
        """Live: candles whose end the clock passed close now; changed states are journaled."""
        for symbol, state in list(self.armed.items()):
            closed = state.candles.tick(now)
            if closed is None:
                continue
            try:
                signal = state.strategy.on_candle(closed)
            except Exception as exc:
                self._broken(state, exc)
                continue
            state.updated_at = now
            self._dirty.add(symbol)
            if signal is not None:
                self._act(state, signal, now)
        self.flush()

    def _broken(self, state: ArmState, exc: Exception) -> None:
        """A strategy raised: its arm is disarmed (an open trade keeps its exits) and a person told."""
        symbol, name = state.spec.symbol, state.spec.strategy
        plugin = self.strategies.get(name, ("?", None))[0]
        log.error(
            "%s: strategy %r (plugin %r) raised; its arm is disarmed", symbol, name, plugin, exc_info=exc
        )
        with contextlib.suppress(TradeRefused):
            self.disarm(symbol)
        self.tell(
            "strategy_error",
            f"{symbol}: strategy {name} (plugin {plugin}) raised {type(exc).__name__}: {exc}; the arm is"
            " disarmed (an open trade keeps its exits); arm it again once the plugin is fixed",
            symbol=symbol,
            strategy=name,
        )

    def signal(
        self,
        symbol: str,
        ts: datetime,
        stop: float | None = None,
        alert_id: str | None = None,
        reason: str = "",
    ) -> Trade | str:
        """An outside signal (``POST /signals``) for a symbol armed with ``signal``: the entry,
        or why the arm's rules hold it back. TradeRefused when the symbol is not armed for
        signals or has no quote yet, the id was seen before, or the engine refused the entry
        (then the id is not kept: the same alert may come again)."""
        state = self.armed.get(symbol)
        strategy = state.strategy if state is not None else None
        receive = getattr(strategy, "receive", None)
        if state is None or receive is None:
            raise TradeRefused(
                f"{symbol}: not armed for signals (POST /arm with strategy signal)", "not_armed"
            )
        if symbol not in self.last_quotes:
            raise TradeRefused(f"{symbol}: no quote yet, so there is no ask to buy at", "unknown_symbol")
        if not receive(alert_id):
            raise TradeRefused(
                f"{symbol}: signal {alert_id!r} was received before: not traded twice", "duplicate"
            )
        state.signals += 1
        state.updated_at = ts
        self._dirty.add(symbol)
        try:
            return self._act(
                state, Signal(stop=stop, reason=reason or "an outside signal"), ts, raise_refusal=True
            )
        except TradeRefused:
            getattr(strategy, "forget", lambda _: None)(alert_id)
            raise
        finally:
            self.flush()  # the id is kept (or let go) before the answer goes back

    def closed(self, symbol: str, ts: datetime) -> None:
        """The engine closed the symbol's trade: the arm's cooldown starts."""
        state = self.armed.get(symbol)
        if state is not None and state.trade_id is not None:
            state.trade_id = None
            state.last_closed_at = ts

    # -- entries ----------------------------------------------------------------------------

    def _act(
        self, state: ArmState, signal: Signal, ts: datetime, *, raise_refusal: bool = False
    ) -> Trade | str:
        """A signal becomes an entry: the trade, or why it was not taken (TradeRefused instead
        when ``raise_refusal`` and the engine, or the bracket, refused it)."""
        symbol = state.spec.symbol
        why = self._held_back(state, ts)
        if why is not None:
            log.info("%s: %s signal not taken: %s", symbol, state.spec.strategy, why)
            return why
        quote = self.last_quotes.get(symbol)
        if quote is None:
            log.info("%s: %s signal not taken: no quote yet", symbol, state.spec.strategy)
            return "no quote yet"
        bracket = state.bracket
        try:
            tp1, tp2, stop = bracket.levels(quote.ask, signal.stop)
            trade = self.enter(
                Open(
                    symbol=symbol,
                    qty=bracket.qty,
                    tp1=tp1,
                    tp2=tp2,
                    stop=stop,
                    ts=ts,
                    risk=bracket.risk,
                    strategy=state.spec.strategy,
                    timeframe=state.spec.timeframe.name,
                    level=signal.level,
                    trail=bracket.trail_text,
                )
            )
        except (TradeRefused, ValueError) as exc:
            refused = exc if isinstance(exc, TradeRefused) else TradeRefused(f"{symbol}: {exc}")
            state.refused += 1
            log.warning("%s: %s entry refused: %s", symbol, state.spec.strategy, refused)
            if refused.rule is None:  # a limit's refusal is alerted by the engine already
                self.tell(
                    "strategy_refused",
                    f"{symbol}: the {state.spec.strategy} entry ({signal.reason}) was refused: {refused};"
                    " the arm is not spent",
                    symbol=symbol,
                    strategy=state.spec.strategy,
                )
            if raise_refusal:
                raise refused from None
            return str(refused)
        state.entries += 1
        state.trade_id = trade.id
        state.strategy.entered()
        log.info(
            "%s: %s entry %s: %d @ %s (tp1 %s, tp2 %s, stop %s; %s)",
            symbol,
            state.spec.strategy,
            trade.id,
            trade.qty,
            trade.entry_price,
            trade.tp1,
            trade.tp2,
            trade.stop,
            signal.reason,
        )
        return trade

    def _held_back(self, state: ArmState, ts: datetime) -> str | None:
        if state.spec.symbol in self.open_trades:
            return "a trade is open on the symbol"
        if state.entries >= state.bracket.entries:
            return (
                f"the arm made its {state.bracket.entries} entr{'y' if state.bracket.entries == 1 else 'ies'}"
            )
        cooldown = state.bracket.cooldown_s
        if (
            cooldown
            and state.last_closed_at is not None
            and ts < state.last_closed_at + timedelta(seconds=cooldown)
        ):
            return f"cooling down {cooldown:g} s after the last trade closed"
        return None

    def fingerprint(self) -> tuple[object, ...]:
        """What moves when anything an arm shows moves (its entries, refusals, last price, its
        strategy's state): cheap, for a page deciding whether to draw again."""
        return tuple(
            (symbol, s.entries, s.refused, s.last_price, s.updated_at) for symbol, s in self.armed.items()
        )

    def status(self) -> list[dict[str, Any]]:
        return [state.status() for _, state in sorted(self.armed.items())]
