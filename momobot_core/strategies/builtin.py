"""The built-in strategies: ``pullback``, ``level`` and ``signal`` (docs/strategies.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from momobot_core.brackets import MAX_PRICE
from momobot_core.candles import Candle
from momobot_core.strategies import ArmSpec, Signal, Strategy, StrategyFactory

__all__ = ["Level", "Pullback", "SignalOnly", "register_strategies"]


def _no_params(spec: ArmSpec, allowed: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(spec.params) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise ValueError(f"{spec.strategy}: unknown field {unknown[0]!r} (its own fields: {known})")


class Pullback:
    """The seed's pullback breakout.

    On each closed candle: a close below the previous candle's close starts a pullback and sets
    the breakout level to that candle's high; while the pullback lasts, a lower high lowers the
    level. The first price above the level enters and ends the pullback. The suggested stop is
    the pullback's lowest low.
    """

    def __init__(self, spec: ArmSpec) -> None:
        _no_params(spec)
        self.prev_close: float | None = None
        self.level: float | None = None  # None: no pullback under way
        self.low: float | None = None

    def on_candle(self, candle: Candle) -> Signal | None:
        if self.level is not None:
            self.level = min(self.level, candle.high)
            if self.low is None or candle.low < self.low:
                self.low = candle.low
        elif self.prev_close is not None and candle.close < self.prev_close:
            self.level, self.low = candle.high, candle.low
        self.prev_close = candle.close
        return None

    def on_price(self, ts: datetime, price: float) -> Signal | None:
        level = self.level
        if level is None or not price > level:
            return None
        signal = Signal(stop=self.low, level=level, reason=f"broke the pullback's level {level:g}")
        self.entered()  # the breakout ends the pullback, entered or not
        return signal

    def entered(self) -> None:
        self.level = self.low = None

    def state(self) -> dict[str, Any]:
        return {"prev_close": self.prev_close, "level": self.level, "low": self.low}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.prev_close = state.get("prev_close")
        self.level = state.get("level")
        self.low = state.get("low")


class Level:
    """The seed's custom level: enter when the price reaches ``level`` from below, once."""

    def __init__(self, spec: ArmSpec) -> None:
        _no_params(spec, ("level",))
        level = spec.params.get("level")
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level <= MAX_PRICE:
            raise ValueError(f"level: give the price to enter at, such as level=5.20 (not {level!r})")
        self.level = float(level)
        self.below = False  # a price below the level was seen: the next at or above it enters
        self.done = False

    def on_candle(self, candle: Candle) -> Signal | None:
        return None

    def on_price(self, ts: datetime, price: float) -> Signal | None:
        if self.done:
            return None
        if price < self.level:
            self.below = True
            return None
        if not self.below:
            return None
        self.below = False
        return Signal(level=self.level, reason=f"reached {self.level:g} from below")

    def entered(self) -> None:
        self.done = True

    def state(self) -> dict[str, Any]:
        return {"level": self.level, "below": self.below, "done": self.done}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.below = bool(state.get("below", False))
        self.done = bool(state.get("done", False))


class SignalOnly:
    """Entries from outside (``POST /signals``): the arm says which symbols may take them.

    It keeps the ids of the last :data:`SEEN_IDS` signals (journaled with the arm): an alert
    sent again is refused, across a restart too.
    """

    def __init__(self, spec: ArmSpec) -> None:
        _no_params(spec)
        self.received = 0
        self.seen: list[str] = []

    def on_candle(self, candle: Candle) -> Signal | None:
        return None

    def on_price(self, ts: datetime, price: float) -> Signal | None:
        return None

    def receive(self, alert_id: str | None) -> bool:
        """Count a signal; False if its id was seen before."""
        if alert_id is not None:
            if alert_id in self.seen:
                return False
            self.seen = [*self.seen[-(SEEN_IDS - 1) :], alert_id]
        self.received += 1
        return True

    def forget(self, alert_id: str | None) -> None:
        """A signal the engine refused: its id may come again."""
        if alert_id is not None and alert_id in self.seen:
            self.seen.remove(alert_id)

    def entered(self) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {"signals": self.received, "seen": list(self.seen)}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.received = int(state.get("signals", 0))
        self.seen = [str(i) for i in state.get("seen", [])][-SEEN_IDS:]


#: How many signal ids an arm remembers.
SEEN_IDS = 200


BUILTINS: dict[str, Callable[[ArmSpec], Strategy]] = {
    "pullback": Pullback,
    "level": Level,
    "signal": SignalOnly,
}


def register_strategies(register: Callable[[str, StrategyFactory], None]) -> None:
    for name, factory in BUILTINS.items():
        register(name, factory)
