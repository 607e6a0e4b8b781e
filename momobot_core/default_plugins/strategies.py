"""The built-in strategies as a default plugin: ``pullback``, ``level``, ``signal``."""

from __future__ import annotations

from collections.abc import Callable

from momobot_core import hookimpl
from momobot_core.strategies import StrategyFactory, builtin


@hookimpl
def register_strategies(register: Callable[[str, StrategyFactory], None]) -> None:
    builtin.register_strategies(register)
