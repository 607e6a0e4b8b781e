"""MomoBot core: bracket trades, a journal, and pluggy hooks for plugins.

Plugins import the marker from here::

    from momobot_core import hookimpl
"""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("momobot")

from momobot_core.config import ConfigError, InputError  # noqa: E402
from momobot_core.models import (  # noqa: E402
    Alert,
    Arm,
    Close,
    CloseReason,
    Disarm,
    Fill,
    Intent,
    Kill,
    Open,
    Order,
    Panel,
    Quote,
    Resume,
    Side,
    Target,
    Trade,
)

__version__ = "0.3.0"

__all__ = [
    "Alert",
    "Arm",
    "Close",
    "CloseReason",
    "ConfigError",
    "Disarm",
    "Fill",
    "InputError",
    "Intent",
    "Kill",
    "Open",
    "Order",
    "Panel",
    "Quote",
    "Resume",
    "Side",
    "Target",
    "Trade",
    "__version__",
    "hookimpl",
]
