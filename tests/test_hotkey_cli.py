"""``momobot hotkey check|send|serve|demo`` and the scripting functions, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from hotkey_ws import api, send_hotkey, send_hotkey_sequence, trigger_hotkey, trigger_hotkey_sequence

from conftest import momobot
from hotkey_helpers import HotkeyTestServer, free_port, wait_until


@pytest.fixture
def server() -> Iterator[HotkeyTestServer]:
    with HotkeyTestServer() as s:
        yield s


def test_check_reports_a_reachable_server_and_sends_nothing(server: HotkeyTestServer) -> None:
    # A round trip slowed by a busy machine is still an answer: the check's own bound is not
    # what this test is about.
    result = momobot("hotkey", "check", "--url", server.url, env={"MOMOBOT_HOTKEY_PING_TIMEOUT": "5"})
    assert result.returncode == 0, result.stderr
    assert f"OK    {server.url}: connected in" in result.stdout
    assert "ping round trip" in result.stdout
    assert server.connections == 1 and server.messages == []


def test_check_reports_an_unreachable_server_and_exits_1() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    result = momobot("hotkey", "check", env={"MOMOBOT_HOTKEY_URL": url})
    assert result.returncode == 1
    assert f"FAIL  {url}: connection refused" in result.stdout


def test_send_with_yes_sends_in_order(server: HotkeyTestServer) -> None:
    result = momobot("hotkey", "send", "sell_ask", "cancel_all", "--yes", "--url", server.url)
    assert result.returncode == 0, result.stderr
    assert server.wait_for(2) == ["sell_ask", "cancel_all"]
    assert "[Hotkey] Sent: sell_ask" in result.stderr


def test_send_asks_first_and_sends_nothing_when_refused(server: HotkeyTestServer) -> None:
    result = momobot("hotkey", "send", "buy_ask", "--url", server.url, stdin="n\n")
    assert result.returncode == 1
    assert "press real buttons" in result.stdout
    # The link is made only after the answer: the process has exited without connecting.
    assert server.connections == 0 and server.messages == []


def test_send_to_a_server_that_is_down_fails_loudly() -> None:
    result = momobot(
        "hotkey",
        "send",
        "buy_ask",
        "--yes",
        "--url",
        f"ws://127.0.0.1:{free_port()}",
        env={"MOMOBOT_HOTKEY_TTL": "0.5"},
    )
    assert result.returncode == 1
    assert "Failed to send 'buy_ask'" in result.stderr


def test_bad_hotkey_config_exits_2_naming_key_and_value(tmp_path: Path) -> None:
    config = tmp_path / "momobot.toml"
    config.write_text('[hotkey_ws]\nsequence_delay = "slow"\n')
    result = momobot("hotkey", "check", "--config", str(config))
    assert result.returncode == 2
    assert "[hotkey_ws] sequence_delay = 'slow': must be a number" in result.stderr
    serve = momobot("serve-nothing")
    assert serve.returncode == 2  # unknown command: click's usage error


@pytest.fixture
def reference_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "momobot_core.cli", "hotkey", "serve", "--port", str(port), "--token", "tok"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert wait_until(lambda: _listening(port), timeout=20)
        yield f"ws://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            assert pipe is not None
            pipe.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_reference_server_refuses_browsers_wrong_tokens_and_unknown_commands(
    reference_server: tuple[str, subprocess.Popen[str]],
) -> None:
    url, proc = reference_server
    with pytest.raises(InvalidStatus) as browser:
        with connect(
            url,
            origin=Origin("http://evil.example"),
            additional_headers={"Authorization": "Bearer tok"},
            proxy=None,
        ):
            pass
    assert browser.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as no_token:
        with connect(url, proxy=None):
            pass
    assert no_token.value.response.status_code == 401
    with connect(url, additional_headers={"Authorization": "Bearer tok"}, proxy=None) as ws:
        ws.send("buy_ask")
        ws.send("format_c_drive")
        ws.send('{"command": "sell_all_bid", "symbol": "ABCD"}')
        ws.ping().wait(5)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    lines = out.splitlines()
    assert any(line.endswith("  buy_ask") for line in lines)
    assert any(line.endswith("  sell_all_bid  ABCD") for line in lines)
    assert any("REJECTED unknown command 'format_c_drive'" in line for line in lines)
    assert "refused a client without the right token" in out


def test_reference_server_will_not_listen_beyond_loopback_without_a_token() -> None:
    result = momobot("hotkey", "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "without a token" in result.stderr


def test_hotkey_demo_shows_every_command_received_in_order() -> None:
    result = momobot("hotkey", "demo")
    assert result.returncode == 0, result.stderr
    assert "The server received 14 of 14 commands, in order." in result.stdout
    assert "Realised P&L: +17.50" in result.stdout
    for row in ("ABCD entry", "IJKL tp1", "EFGH stop", "MNOP manual", "ABCD tp2"):
        assert row in result.stdout


def test_hotkey_demo_never_uses_the_configured_server(tmp_path: Path, server: HotkeyTestServer) -> None:
    config = tmp_path / "momobot.toml"
    config.write_text(f'[hotkey_ws]\nurl = "{server.url}"\nreplay = true\n')
    result = momobot("hotkey", "demo", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "14 of 14" in result.stdout
    assert server.connections == 0


# -- the scripting functions ---------------------------------------------------------------


@pytest.fixture
def script_client(server: HotkeyTestServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HotkeyTestServer]:
    monkeypatch.setenv("MOMOBOT_HOTKEY_URL", server.url)
    monkeypatch.setenv("MOMOBOT_HOTKEY_SEQUENCE_DELAY", "0.02")
    api.close_default_client()
    yield server
    api.close_default_client()


def test_send_hotkey_reports_success(script_client: HotkeyTestServer) -> None:
    assert asyncio.run(send_hotkey("buy_ask")) is True
    assert asyncio.run(send_hotkey_sequence(["sell_ask", "cancel_all", "break_even"])) is True
    assert script_client.wait_for(4) == ["buy_ask", "sell_ask", "cancel_all", "break_even"]


def test_send_hotkey_reports_failure_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOMOBOT_HOTKEY_URL", f"ws://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MOMOBOT_HOTKEY_TTL", "0.3")
    api.close_default_client()
    try:
        assert asyncio.run(send_hotkey("buy_ask")) is False
    finally:
        api.close_default_client()


def test_trigger_hotkey_from_other_threads_uses_one_connection(script_client: HotkeyTestServer) -> None:
    threads = [threading.Thread(target=trigger_hotkey, args=("buy_ask",)) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trigger_hotkey_sequence(["sell_ask", "cancel_all"]) is True
    assert script_client.wait_for(7)[-2:] == ["sell_ask", "cancel_all"]
    assert script_client.messages.count("buy_ask") == 5
    assert script_client.connections == 1


def test_scripting_functions_refuse_malformed_commands() -> None:
    with pytest.raises(TypeError):
        trigger_hotkey_sequence("buy_ask")
    with pytest.raises(ValueError, match="non-empty"):
        trigger_hotkey("")


def test_serve_with_a_keymap_needs_the_keys_extra_or_says_what_is_wrong(tmp_path: Path) -> None:
    keymap = tmp_path / "keys.toml"
    keymap.write_text('buy_ask = "shift+b"\n')
    result = momobot("hotkey", "serve", "--port", "0", "--keymap", str(keymap))
    assert result.returncode == 2
    # Either pynput is missing, or it has no desktop to press keys in: both are said plainly.
    assert "pressing keys needs pynput and a desktop session" in result.stderr
    keymap.write_text("buy_ask = 7\n")
    bad = momobot("hotkey", "serve", "--port", "0", "--keymap", str(keymap))
    assert bad.returncode == 2 and "buy_ask = 7: a chord is a string" in bad.stderr
    missing = momobot("hotkey", "serve", "--keymap", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_send_reports_what_the_reference_server_said_and_fails_on_a_rejection() -> None:
    from hotkey_ws.server import HotkeyServer, ServerThread

    thread = ServerThread(HotkeyServer("127.0.0.1", 0))
    thread.start()
    try:
        env = {"MOMOBOT_HOTKEY_FORMAT": "json"}
        rejected = momobot("hotkey", "send", "--yes", "press_random_key", "--url", thread.url, env=env)
        accepted = momobot("hotkey", "send", "--yes", "buy_ask", "--url", thread.url, env=env)
    finally:
        thread.stop()
    assert rejected.returncode == 1
    assert "rejected press_random_key" in rejected.stdout and "unknown command" in rejected.stdout
    assert accepted.returncode == 0 and "accepted buy_ask" in accepted.stdout


def test_send_help_lists_the_commands() -> None:
    result = momobot("hotkey", "send", "--help")
    assert "buy_ask" in result.stdout and "sell_all_bid" in result.stdout
    assert "Port to listen on" in momobot("hotkey", "serve", "--help").stdout


def test_reference_server_notes_a_client_reset_without_a_traceback(
    reference_server: tuple[str, subprocess.Popen[str]],
) -> None:
    import struct

    from websockets.exceptions import ConnectionClosed

    url, proc = reference_server
    try:
        with connect(url, additional_headers={"Authorization": "Bearer tok"}, proxy=None) as ws:
            ws.send("buy_ask")
            assert ws.ping().wait(5)
            # A reset, as the bot sends to a server it stopped trusting: no close frame, RST.
            ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.socket.close()
    except (OSError, ConnectionClosed):
        pass  # closing what was already reset
    with connect(url, additional_headers={"Authorization": "Bearer tok"}, proxy=None) as again:
        again.send("sell_ask")
        assert again.ping().wait(5)  # the server went on serving
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert "reset the connection" in out + err
    assert "Traceback" not in out + err and "connection handler failed" not in out + err


class SilentServer:
    """A hotkey server that completes the WebSocket handshake, then never reads again: no pong,
    no answer to a command, no close frame back (a hung process)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from websockets.asyncio.server import serve

        async def handler(ws: object) -> None:
            ws.transport.pause_reading()  # type: ignore[attr-defined]
            await self.stop.wait()

        async def main() -> None:
            self.stop = asyncio.Event()
            async with serve(handler, "127.0.0.1", 0, ping_interval=None, close_timeout=1) as server:
                self.port = server.sockets[0].getsockname()[1]
                self.ready.set()
                await self.stop.wait()

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(main())
        self.loop.close()

    def __enter__(self) -> SilentServer:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


@pytest.mark.parametrize("command", [["check"], ["send", "--yes", "buy_ask"]])
def test_a_server_that_hangs_after_the_handshake_gets_a_verdict_and_lets_the_cli_go(
    command: list[str],
) -> None:
    # The library's own close would wait 10 s for the hung server's answer; the CLI's waits
    # flush_timeout (0.5 s here). The bound below is the old 10 s, far from the new 0.5.
    with SilentServer() as silent:
        url = f"ws://127.0.0.1:{silent.port}"
        env = {
            "MOMOBOT_HOTKEY_PING_TIMEOUT": "0.25",
            "MOMOBOT_HOTKEY_TTL": "0.25",
            "MOMOBOT_HOTKEY_FORMAT": "json",
            "MOMOBOT_HOTKEY_FLUSH_TIMEOUT": "0.5",
        }
        result = momobot("hotkey", *command, "--url", url, env=env, timeout=9)
    assert result.returncode == 1
    if command == ["check"]:
        assert f"FAIL  {url}: no answer to a ping within 0.25 s" in result.stdout
    else:
        assert f"FAIL     {url}: no answer within 0.25 s" in result.stderr
