"""The momobot plugin: offers the ``massive`` source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from momobot_core import hookimpl


class MassivePlugin:
    @hookimpl
    def register_sources(self, register: Callable[[str, Any], None]) -> None:
        from momobot_massive.source import MassiveSource

        register("massive", MassiveSource)


#: The instance the ``massive`` entry point registers.
plugin = MassivePlugin()
