"""momobot-hotkey-ws: mirror MomoBot's trade events as hotkey commands over a WebSocket.

Installed, it registers itself under the ``momobot`` entry-point group as
``hotkey_ws``; see ``hotkey_ws.plugin`` for the events and commands and
``hotkey_ws.api`` for sending hotkeys from scripts.
"""

from __future__ import annotations

from hotkey_ws.api import send_hotkey, send_hotkey_sequence, trigger_hotkey, trigger_hotkey_sequence

__version__ = "0.2.0"

__all__ = ["__version__", "send_hotkey", "send_hotkey_sequence", "trigger_hotkey", "trigger_hotkey_sequence"]
