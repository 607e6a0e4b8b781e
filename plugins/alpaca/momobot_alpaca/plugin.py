"""The momobot plugin: offers the ``alpaca`` source, ``momobot alpaca`` and ``momobot live-demo``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from momobot_core import hookimpl

if TYPE_CHECKING:
    import click


class AlpacaPlugin:
    @hookimpl
    def register_sources(self, register: Callable[[str, Any], None]) -> None:
        from momobot_alpaca.source import AlpacaSource

        register("alpaca", AlpacaSource)

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from momobot_alpaca.cli import alpaca
        from momobot_alpaca.demo import live_demo

        cli.add_command(alpaca)
        cli.add_command(live_demo)


#: The instance the ``alpaca`` entry point registers.
plugin = AlpacaPlugin()
