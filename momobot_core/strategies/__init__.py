"""Strategies: the bot finds its own entries from candles and prices.

A strategy is offered by a plugin's ``register_strategies(register)`` hook as
``register(name, factory)``; ``factory(spec)`` gets the arm's :class:`ArmSpec`
(its symbol, timeframe and the strategy's own fields) and returns an object with
the :class:`Strategy` methods. It sees the closed candles and the prices of the
symbol it is armed on, and answers with a :class:`Signal` (enter now) or None.
It never touches the engine, the journal or a plugin: the arms layer
(:mod:`momobot_core.strategies.arms`) turns a signal into an ``Open`` through
``Engine.apply``, so every risk limit, the journal and every plugin treat it as
a person's entry.

docs/strategies.md has the rules of the built-ins and a worked example.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from momobot_core.candles import Candle, Timeframe
from momobot_core.config import ConfigError

if TYPE_CHECKING:
    from momobot_core.plugins import Hooks

__all__ = ["ArmSpec", "Signal", "Strategy", "StrategyFactory", "collect_strategies"]


@attrs.frozen
class Signal:
    """Enter now. ``stop``: where the pattern says the trade is wrong (used when the bracket's
    stop is ``pattern``); ``level``: the level it broke (journaled with the entry)."""

    stop: float | None = None
    level: float | None = None
    reason: str = ""


@attrs.frozen
class ArmSpec:
    """What a strategy is armed with: the symbol, the timeframe and its own fields."""

    symbol: str
    strategy: str
    timeframe: Timeframe
    params: Mapping[str, Any] = attrs.field(factory=dict)


class Strategy(Protocol):
    """What a strategy answers. Each method runs on the engine's thread: never block."""

    def on_candle(self, candle: Candle) -> Signal | None:
        """A candle of the armed timeframe closed."""

    def on_price(self, ts: datetime, price: float) -> Signal | None:
        """A new price (a print, or the quote's mid), after any candle it closed."""

    def entered(self) -> None:
        """The bot entered on this strategy's last signal: move past that setup."""

    def state(self) -> dict[str, Any]:
        """What the strategy holds now, as JSON values: shown by ``GET /arms``, journaled."""

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a state :meth:`state` gave (a restart)."""


#: ``factory(spec)`` builds a strategy for one arm; a ValueError names what is wrong with it.
StrategyFactory = Callable[[ArmSpec], Strategy]


def collect_strategies(hooks: Hooks | None) -> dict[str, tuple[str, StrategyFactory]]:
    """``{strategy name: (plugin name, factory)}`` from every plugin's ``register_strategies``
    (the built-ins alone when there are no hooks)."""
    strategies: dict[str, tuple[str, StrategyFactory]] = {}

    def adder(plugin_name: str) -> Callable[[str, StrategyFactory], None]:
        def register(name: str, factory: StrategyFactory) -> None:
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"plugin {plugin_name!r} offers a strategy named {name!r}: not a name")
            if name in strategies:
                raise ConfigError(
                    f"strategy {name!r} is offered by both {strategies[name][0]!r} and {plugin_name!r}"
                )
            strategies[name] = (plugin_name, factory)

        return register

    if hooks is None:
        from momobot_core.strategies import builtin

        builtin.register_strategies(adder("momobot_core.default_plugins.strategies"))
        return strategies
    for plugin_name, function, _ in hooks.implementations("register_strategies"):
        function(adder(plugin_name))
    return strategies
