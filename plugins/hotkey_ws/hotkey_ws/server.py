"""The reference hotkey server: receives commands, prints them, and can press keys.

A dry run by default (prints each command with a timestamp). With a keymap it
presses a key chord per command through ``pynput`` (the ``keys`` extra).
Refuses browsers (any Origin header), clients without the token when one is
set, and commands it does not know.

In the JSON format each command carries ``sent_at`` (epoch ms, when the bot's
hook fired) and ``ttl_ms``: a command read later than that is dropped, never
pressed (a server that hung and woke up must not press stale keys), and every
JSON command is answered with ``{"status": "accepted" | "rejected" | "stale",
"command": ..., "reason": ...}`` (an accepted one after its keys are pressed).
With a ``load_symbol`` chord in the keymap, a command that carries its symbol
first types the symbol into the active montage and presses ``load_symbol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import attrs
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError
from websockets.http11 import Request, Response

from hotkey_ws.config import KNOWN_COMMANDS
from momobot_core.config import ConfigError
from momobot_core.net import is_loopback

#: What may be typed into a montage as a symbol (BRK.B, BF-B, and the like; nothing else).
SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9./-]{0,15}")


@attrs.frozen
class Received:
    command: str
    monotonic_ns: int
    wall: datetime
    peer: str


def load_keymap(path: str | Path) -> dict[str, str]:
    """``command = "chord"`` pairs from a TOML file (top level or a ``[keys]`` table)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"keymap {file}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"keymap {file}: cannot read it: {exc}") from None
    table = data.get("keys", data)
    if not isinstance(table, dict) or not table:
        raise ConfigError(f'keymap {file}: expected command = "chord" lines')
    for command, chord in table.items():
        if not isinstance(chord, str) or not chord.strip():
            raise ConfigError(
                f'keymap {file}: {command} = {chord!r}: a chord is a string such as "ctrl+shift+b"'
            )
    return dict(table)


class KeyPresser:
    """Presses key chords such as ``ctrl+shift+b`` with pynput (optional dependency)."""

    def __init__(self, keymap: dict[str, str]) -> None:
        try:
            from pynput import keyboard  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except Exception as exc:  # ImportError, or no display to attach to
            raise ConfigError(
                "pressing keys needs pynput and a desktop session: from a MomoBot"
                " checkout run  python -m pip install './plugins/hotkey_ws[keys]'  (see"
                f" docs/hotkey_ws.md) ({type(exc).__name__}: {exc})"
            ) from None
        self._keyboard = keyboard
        self._controller = keyboard.Controller()
        self._chords = {command: self._parse(command, chord) for command, chord in keymap.items()}

    def _parse(self, command: str, chord: str) -> list[Any]:
        keys = []
        for raw in chord.lower().split("+"):
            part = raw.strip()
            if len(part) == 1:
                keys.append(part)
            elif hasattr(self._keyboard.Key, part):
                keys.append(getattr(self._keyboard.Key, part))
            else:
                raise ConfigError(f"keymap: {command} = {chord!r}: unknown key {part!r}")
        return keys

    def load_symbol(self, symbol: str) -> None:
        """Type the symbol into the active montage and press the ``load_symbol`` chord, if mapped."""
        if "load_symbol" in self._chords:
            self._controller.type(symbol)
            self.press("load_symbol")

    def press(self, command: str) -> None:
        keys = self._chords.get(command)
        if not keys:
            return
        for key in keys:
            self._controller.press(key)
        for key in reversed(keys):
            self._controller.release(key)


class HotkeyServer:
    """Serve hotkey commands on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        token: str | None = None,
        commands: Iterable[str] = KNOWN_COMMANDS,
        presser: KeyPresser | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ConfigError(
                f"refusing to serve hotkeys on {host} without a token: anyone on the"
                " network could press your keys (set --token or MOMOBOT_HOTKEY_TOKEN)"
            )
        self.host = host
        self.port = port
        self.token = token
        self.commands = frozenset(commands)
        self.presser = presser
        self.echo = echo
        self.received: list[Received] = []
        self.rejected: list[str] = []
        self.stale: list[str] = []
        self.connections = 0

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.token is None:
            return None
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return None
        self._say(f"refused a client without the right token from {_peer(connection)}")
        return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        peer = _peer(connection)
        self._say(f"client connected from {peer}")
        try:
            await self._serve_client(connection, peer)
        except ConnectionClosedError as exc:
            # A client that resets (the bot aborting a connection it no longer trusts, a crash)
            # is an event to note, not a server error.
            self._say(
                f"client {peer} reset the connection ({exc.rcvd.reason if exc.rcvd else 'no close frame'})"
            )

    async def _serve_client(self, connection: ServerConnection, peer: str) -> None:
        async for message in connection:
            at = time.monotonic_ns()
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            data = _json_command(text)
            command = str(data.get("command", text)) if data is not None else text
            status, reason = "accepted", ""
            if command not in self.commands:
                status, reason = "rejected", "unknown command"
                self.rejected.append(command)
                self._say(f"REJECTED unknown command {command!r} from {peer}")
            elif data is not None and (late := _lateness_ms(data)) is not None:
                status, reason = "stale", f"read {late} ms after its TTL ran out"
                self.stale.append(command)
                self._say(f"DROPPED stale command {command!r} ({reason}): not pressed")
            if status != "accepted":
                await self._answer(connection, data, status, command, reason)
                continue
            wall = datetime.now(UTC)
            self.received.append(Received(command, at, wall, peer))
            symbol = data.get("symbol") if data is not None else None
            self._say(
                f"{wall.isoformat(timespec='microseconds')}  {command}{f'  {symbol}' if symbol else ''}"
            )
            if self.presser is not None:
                if isinstance(symbol, str) and SYMBOL.fullmatch(symbol):
                    await asyncio.to_thread(self.presser.load_symbol, symbol)
                elif symbol is not None:
                    self._say(
                        f"NOT loading symbol {symbol!r}: not a ticker; {command} acts on the active montage"
                    )
                await asyncio.to_thread(self.presser.press, command)
            # Answered once pressed, never before: a server killed while pressing leaves the
            # command unanswered, and the bot names it (hotkey_ws_unconfirmed).
            await self._answer(connection, data, status, command, reason)
        self._say(f"client {peer} disconnected")

    @staticmethod
    async def _answer(
        connection: ServerConnection, data: dict[str, Any] | None, status: str, command: str, reason: str
    ) -> None:
        """The JSON format's answer to one command (the text format has none)."""
        if data is None:
            return
        with contextlib.suppress(Exception):  # the client may be gone already
            await connection.send(
                json.dumps(
                    {
                        "status": status,
                        "command": command,
                        "reason": reason,
                        **{k: data[k] for k in ("event", "symbol", "trade_id") if k in data},
                    }
                )
            )

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)

    async def run(
        self, started: Callable[[int], None] | None = None, stop: asyncio.Event | None = None
    ) -> None:
        async with serve(
            self._handle,
            self.host,
            self.port,
            origins=[None],
            compression=None,
            process_request=self._check_request,
            ping_interval=5,
            ping_timeout=5,
            logger=_WIRE_LOG,
        ) as server:
            self.port = server.sockets[0].getsockname()[1] if server.sockets else self.port
            if started is not None:
                started(self.port)
            if stop is None:
                await server.serve_forever()
            else:
                await stop.wait()


class _NoHandshakeTracebacks(logging.Filter):
    """A connection that closes before its handshake (a port probe, a client that gave up) is a
    line, not a traceback: the library logs it as an error with one (websockets before 17)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("opening handshake failed"):
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_WIRE_LOG = logging.getLogger("momobot.hotkey.server.wire")
_WIRE_LOG.addFilter(_NoHandshakeTracebacks())


def _json_command(text: str) -> dict[str, Any] | None:
    """The JSON format's object, or None for a bare text command."""
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _lateness_ms(data: dict[str, Any]) -> int | None:
    """How many ms past its TTL a JSON command was read, or None if it is in time (or untimed)."""
    sent_at, ttl_ms = data.get("sent_at"), data.get("ttl_ms")
    if not isinstance(sent_at, int | float) or not isinstance(ttl_ms, int | float):
        return None
    late = int(time.time() * 1000 - sent_at - ttl_ms)
    return late if late > 0 else None


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"


class ServerThread:
    """Run a HotkeyServer on its own event loop in a daemon thread (demo and tests)."""

    def __init__(self, server: HotkeyServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="hotkey-server", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await self.server.run(started=lambda port: self._ready.set(), stop=self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self, timeout: float = 5.0) -> int:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"hotkey server did not start: {self._error}")
        return self.server.port

    @property
    def url(self) -> str:
        return f"ws://{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)
