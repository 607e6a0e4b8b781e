"""Sending hotkeys from your own scripts.

::

    from hotkey_ws import send_hotkey, trigger_hotkey

    trigger_hotkey("buy_ask")                 # fire and forget, from any thread
    ok = await send_hotkey("sell_all_bid")    # True once it has left for the server

Both use one persistent connection per process: the running bot's when the
plugin is live in this process, else one made from the configuration
(``MOMOBOT_CONFIG`` and ``MOMOBOT_HOTKEY_*``) on first use and flushed at exit.
A command that cannot be sent within the TTL is dropped, and the async
functions return False.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Sequence

from hotkey_ws.client import HotkeyClient
from hotkey_ws.config import load_hotkey_config
from momobot_core.config import load_config

_lock = threading.Lock()
_own: dict[str, HotkeyClient] = {}  # this module's own client, made on first use


def default_client() -> HotkeyClient:
    """The client scripts send through (the live plugin's, or one of this module's own)."""
    from hotkey_ws.plugin import plugin

    if plugin.client is not None:
        return plugin.client
    with _lock:
        client = _own.get("client")
        if client is None:
            client = _own["client"] = HotkeyClient(load_hotkey_config(load_config(None)))
            client.start()
            atexit.register(close_default_client)
        return client


def close_default_client() -> None:
    """Flush and close this module's own client (registered to run at exit)."""
    with _lock:
        client = _own.pop("client", None)
    if client is not None:
        client.close()


def _check(actions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(actions, str):
        raise TypeError("pass a list of commands, not one string")
    result = tuple(actions)
    if not result or not all(isinstance(a, str) and a for a in result):
        raise ValueError(f"commands must be non-empty strings, not {actions!r}")
    return result


def trigger_hotkey(action: str) -> bool:
    """Queue one command and return at once. False if it was refused (queue full)."""
    return default_client().send(_check([action]))


def trigger_hotkey_sequence(actions: Sequence[str]) -> bool:
    """Queue commands to go out in order, ``sequence_delay`` apart, and return at once."""
    return default_client().send(_check(actions))


async def send_hotkey(action: str) -> bool:
    """Send one command; True once it has been written to every hotkey server."""
    return await send_hotkey_sequence([action])


async def send_hotkey_sequence(actions: Sequence[str]) -> bool:
    """Send commands in order; True once all have been written, False if any failed."""
    commands = _check(actions)
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bool] = loop.create_future()

    def settle(ok: bool) -> None:
        if not result.done():
            result.set_result(ok)

    def done(ok: bool) -> None:
        loop.call_soon_threadsafe(settle, ok)

    default_client().send(commands, done=done)
    return await result
