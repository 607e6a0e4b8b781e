"""The momobot plugin: offers the ``massive`` source and ``momobot massive fake-server``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from momobot_core import hookimpl


class MassivePlugin:
    @hookimpl
    def register_sources(self, register: Callable[[str, Any], None]) -> None:
        from momobot_massive.source import MassiveSource

        register("massive", MassiveSource)

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from momobot_massive.cli import massive

        cli.add_command(massive)


#: The instance the ``massive`` entry point registers.
plugin = MassivePlugin()
