"""The hotkey wire rules, each against a real WebSocket server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import json
import logging
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect
from websockets.uri import parse_uri

from hotkey_ws.link import HotkeyLink
from hotkey_ws.plugin import HotkeyPlugin
from hotkey_ws.server import HotkeyServer, ServerThread
from hotkey_ws.wire import Wire
from momobot_core import hookimpl
from momobot_core.engine import Engine
from momobot_core.journal import Journal

from conftest import make_hooks, quote
from hotkey_helpers import HotkeyTestServer, fast_config, free_port, wait_until


def live(plugin: HotkeyPlugin, journal: Journal | None = None) -> Engine:
    engine = Engine(hooks=make_hooks(plugin), journal=journal or Journal(), mode="live")
    engine.start()
    return engine


def told(engine: Engine, kind: str) -> bool:
    engine.tick()  # alerts raised on the link's thread reach the engine's here (serve: at once)
    return any(a.kind == kind for a in engine.alerts)


def link_state(plugin: HotkeyPlugin) -> str:
    return str(plugin.status()[0]["state"])


class ParkLinkThread(logging.Handler):
    """A log handler that stops the link's own thread at its first line (it says what was sent
    there, outside the link's lock) until ``let_go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.parked, self.let_go = threading.Event(), threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread().name.startswith("hotkey-") and not self.let_go.is_set():
            self.parked.set()
            self.let_go.wait(30)


def test_a_sequence_never_starts_on_a_server_that_has_stopped_answering() -> None:
    # The server freezes after buy_ask, as a hung process does, then wakes up much later:
    # what the bot decided meanwhile must not be pressed then.
    with HotkeyTestServer(hang_after=1) as server:
        plugin = HotkeyPlugin(fast_config(server.url, ttl=1.0, ping_interval=0.2, ping_timeout=0.2))
        engine = live(plugin)
        engine.on_quote(quote("ABCD", 2.00))
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        assert server.wait_for(1) == ["buy_ask"]
        assert wait_until(lambda: link_state(plugin) != "up")  # no pong lately: not proven
        engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1 while the server is frozen
        assert wait_until(lambda: told(engine, "link_down"))  # aborted, and a person is told
        assert wait_until(lambda: told(engine, "hotkey_ws_dropped"), timeout=10)  # TTL ran out
        server.wake()
        assert wait_until(lambda: link_state(plugin) == "up", timeout=10)
        engine.close_trade("ABCD")
        assert server.wait_for(2)[-1] == "sell_all_bid"
        engine.shutdown()
    assert server.messages == ["buy_ask", "sell_all_bid"]  # TP1 was never written, so never pressed
    dropped = next(a for a in engine.alerts if a.kind == "hotkey_ws_dropped")
    assert dropped.symbol == "ABCD" and dropped.detail["unsent"] == ["sell_ask", "cancel_all", "break_even"]


def test_a_queued_command_hurries_the_reconnect_past_a_long_backoff() -> None:
    port = free_port()
    plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{port}", ttl=0.5, reconnect_max_delay=30.0))
    engine = live(plugin)
    # Six failed attempts: the backoff's next wait is now 3.2 s, far past the command's TTL.
    assert wait_until(lambda: plugin.status()[0]["failed_attempts"] >= 6, timeout=20)
    with HotkeyTestServer(port) as server:
        engine.on_quote(quote("ABCD", 2.00))
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        assert server.wait_for(1) == ["buy_ask"]
        engine.shutdown()


def test_exits_wait_longer_than_entries_and_a_person_is_told_while_they_wait() -> None:
    port = free_port()
    plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{port}", ttl=0.3, exit_ttl=10.0))
    engine = live(plugin)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    assert wait_until(lambda: told(engine, "hotkey_ws_dropped"))  # the entry's 0.3 s are up
    engine.close_trade("ABCD")  # the exit waits up to 10 s
    assert wait_until(lambda: told(engine, "exit_pending"))
    pending = next(a for a in engine.alerts if a.kind == "exit_pending")
    assert pending.symbol == "ABCD" and "'sell_all_bid'" in pending.message
    with HotkeyTestServer(port) as server:
        assert server.wait_for(1) == ["sell_all_bid"]
        engine.shutdown()
    assert not any(a.kind == "exit_dropped" for a in engine.alerts)


def test_an_exit_dropped_after_exit_ttl_says_to_close_the_position_by_hand() -> None:
    plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{free_port()}", ttl=0.2, exit_ttl=0.4))
    engine = live(plugin)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    engine.on_quote(quote("ABCD", 1.85, t=1, last=1.85))  # the stop
    assert wait_until(lambda: told(engine, "exit_dropped"))
    dropped = next(a for a in engine.alerts if a.kind == "exit_dropped")
    assert "close the position by hand" in dropped.message and dropped.symbol == "ABCD"
    engine.shutdown()


def test_a_one_share_trades_tp1_sends_no_sell_ask() -> None:
    with HotkeyTestServer() as server:
        plugin = HotkeyPlugin(fast_config(server.url))
        engine = live(plugin)
        engine.on_quote(quote("ABCD", 2.00))
        engine.open_trade("ABCD", 1, 2.20, 2.40, 1.90)
        engine.on_quote(quote("ABCD", 2.21, t=1))
        assert server.wait_for(3) == ["buy_ask", "cancel_all", "break_even"]
        engine.shutdown()


def test_reference_server_drops_a_json_command_read_after_its_ttl_and_says_so() -> None:
    lines: list[str] = []
    server = HotkeyServer("127.0.0.1", 0, echo=lines.append)
    thread = ServerThread(server)
    thread.start()
    try:
        now_ms = int(time.time() * 1000)
        with connect(thread.url, proxy=None) as ws:
            ws.send(json.dumps({"command": "sell_ask", "sent_at": now_ms - 5000, "ttl_ms": 2000}))
            stale = json.loads(ws.recv(timeout=5))
            ws.send(json.dumps({"command": "buy_ask", "sent_at": now_ms, "ttl_ms": 60_000, "symbol": "ABCD"}))
            fresh = json.loads(ws.recv(timeout=5))
            ws.send(json.dumps({"command": "press_random_key"}))
            rejected = json.loads(ws.recv(timeout=5))
    finally:
        thread.stop()
    assert stale["status"] == "stale" and "TTL" in stale["reason"]
    assert fresh == {"status": "accepted", "command": "buy_ask", "reason": "", "symbol": "ABCD"}
    assert rejected["status"] == "rejected"
    assert [r.command for r in server.received] == ["buy_ask"] and server.stale == ["sell_ask"]
    assert any("DROPPED stale command 'sell_ask'" in line for line in lines)


KILLED_MID_SEQUENCE = textwrap.dedent("""
    import sys, threading
    from datetime import UTC, datetime, timedelta
    from hotkey_ws.config import HotkeyConfig
    from hotkey_ws.plugin import HotkeyPlugin
    from momobot_core.engine import Engine
    from momobot_core.journal import Journal
    from momobot_core.models import Quote
    from momobot_core.plugins import Hooks

    T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    hooks = Hooks()
    hooks.register(HotkeyPlugin(HotkeyConfig(urls=(sys.argv[2],), sequence_delay=30.0, ttl=120.0,
                                             exit_ttl=120.0)), name="hotkey_ws")
    engine = Engine(hooks=hooks, journal=Journal(sys.argv[1]), mode="live")
    engine.start()
    engine.on_quote(Quote("ABCD", T0, 1.99, 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    if sys.argv[3:] == ["kill"]:
        engine.kill()  # cancel_all, flatten_all, 30 s apart
        print("kill", flush=True)
    else:
        engine.on_quote(Quote("ABCD", T0 + timedelta(seconds=1), 2.20, 2.21))   # TP1, 30 s apart
        print("tp1", flush=True)
    threading.Event().wait(120)
""")


def cut_by_a_crash(db: Path) -> None:
    """TP1's sequence cut by a SIGKILL after ``sell_ask`` (its event journaled and dispatched)."""
    with HotkeyTestServer() as server:
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_MID_SEQUENCE, str(db), server.url],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.wait_for(2, timeout=30) == ["buy_ask", "sell_ask"]
            # "tp1" comes once the TP1 event's hooks ran and it was marked dispatched: killed
            # before that, the trade would rightly come back unconfirmed instead.
            assert child.stdout is not None and child.stdout.readline() == "tp1\n"
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=30)


@pytest.mark.parametrize("journal", ["taken before the clean exit", "locked through it"])
def test_a_cut_sequence_is_reported_even_when_the_journal_cannot_take_the_wire_log(
    tmp_path: Path, journal: str
) -> None:
    from conftest import SqliteLocker

    db = tmp_path / "journal.db"
    cut_by_a_crash(db)
    locker = SqliteLocker(db)  # the wire log cannot be folded in at this start
    try:
        engine = Engine(journal=Journal(db), mode="live")
        engine.start()
        [cut] = [a for a in engine.alerts if a.kind == "sequence_cut"]
        assert cut.detail["sent"] == ["sell_ask"] and cut.detail["unsent"] == ["cancel_all", "break_even"]
        assert engine.journal is not None
        if journal == "taken before the clean exit":
            locker.release()
        engine.journal.close()  # folded in now, as reported
    finally:
        locker.release()
    with Journal(db) as again:  # told once
        assert again.cut_sequences == []


def test_a_sequence_cut_by_a_crash_is_reported_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    cut_by_a_crash(db)
    engine = Engine(journal=Journal(db), mode="live")
    engine.start()
    [cut] = [a for a in engine.alerts if a.kind == "sequence_cut"]
    assert cut.symbol == "ABCD" and cut.detail["plugin"] == "hotkey_ws"
    assert cut.detail["sent"] == ["sell_ask"] and cut.detail["unsent"] == ["cancel_all", "break_even"]
    trade = engine.open_trades["ABCD"]
    assert trade.tp1_hit and not trade.unconfirmed  # the hooks had run: the event was dispatched
    assert engine.journal is not None
    engine.journal.close()
    with Journal(db) as again:  # reported once: the wire log is folded into the journal
        assert again.cut_sequences == []


def test_a_kill_cut_by_a_crash_is_reported_as_the_kill_and_the_day_stays_halted(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    with HotkeyTestServer() as server:
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_MID_SEQUENCE, str(db), server.url, "kill"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.wait_for(2, timeout=30) == ["buy_ask", "cancel_all"]
            assert child.stdout is not None and child.stdout.readline() == "kill\n"
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=30)
    engine = Engine(journal=Journal(db), mode="live")
    engine.start()
    [cut] = [a for a in engine.alerts if a.kind == "sequence_cut"]
    assert cut.detail["sent"] == ["cancel_all"] and cut.detail["unsent"] == ["flatten_all"]
    assert cut.message.startswith("hotkey_ws was sending the kill when the process stopped"), cut.message
    assert "trade " not in cut.message and "  " not in cut.message
    # The halt and the flatten were one transaction: halted, nothing left open, no "cut short".
    assert engine.book.halt is not None and engine.open_trades == {}
    assert not [a for a in engine.alerts if a.kind == "halted" and "cut short" in a.message]
    assert engine.journal is not None
    assert [leg.reason for leg in engine.journal.legs()] == ["kill"]
    engine.journal.close()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_hotkey_log_line_names_the_symbol_and_the_trade(
    fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with HotkeyTestServer() as server, caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        plugin = HotkeyPlugin(fast_config(server.url, format=fmt))
        engine = live(plugin)
        engine.on_quote(quote("ABCD", 2.00))
        trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        server.wait_for(1)
        engine.shutdown()
    [sent] = [r.getMessage() for r in caplog.records if "Sent:" in r.getMessage()]
    assert sent == f"[Hotkey] Sent: buy_ask (ABCD entry of trade {trade.id})"


class SlowPresser:
    """Stands in for pynput (no desktop here): the first press takes a while, like a busy PC."""

    def __init__(self, first_press_s: float) -> None:
        self.pressed: list[str] = []
        self.loaded: list[str] = []
        self._slow = first_press_s

    def press(self, command: str) -> None:
        import threading

        if self._slow:
            threading.Event().wait(self._slow)
            self._slow = 0.0
        self.pressed.append(command)

    def load_symbol(self, symbol: str) -> None:
        self.loaded.append(symbol)


def test_a_command_the_server_reads_too_late_is_not_pressed_and_a_person_is_told() -> None:
    presser = SlowPresser(first_press_s=1.0)
    server = HotkeyServer("127.0.0.1", 0, presser=presser)  # type: ignore[arg-type]
    thread = ServerThread(server)
    thread.start()
    try:
        plugin = HotkeyPlugin(fast_config(thread.url, format="json", ttl=0.3))
        engine = live(plugin)
        for symbol in ("AAA", "BBB"):  # BBB's buy_ask waits behind AAA's slow press
            engine.on_quote(quote(symbol, 2.00))
            engine.open_trade(symbol, 100, 2.20, 2.40, 1.90)
        assert wait_until(lambda: told(engine, "hotkey_ws_not_pressed"), timeout=10)
        engine.shutdown()
    finally:
        thread.stop()
    [alert] = [a for a in engine.alerts if a.kind == "hotkey_ws_not_pressed"]
    assert alert.symbol == "BBB" and "stale" in alert.message and alert.detail["command"] == "buy_ask"
    assert presser.pressed == ["buy_ask"] and server.stale == ["buy_ask"]


def test_a_half_written_command_at_shutdown_is_reported_and_the_connection_reset() -> None:
    big = "x" * 8_000_000  # more than the socket buffers of a server that stopped reading hold
    with HotkeyTestServer(stop_reading_after=1) as server:
        plugin = HotkeyPlugin(
            fast_config(server.url, ttl=5.0, ping_timeout=5.0, ping_interval=5.0, flush_timeout=0.3)
        )
        engine = live(plugin)
        engine.on_quote(quote("ABCD", 2.00))
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        assert server.wait_for(1) == ["buy_ask"]
        assert plugin.client is not None
        plugin.client.send([big, "cancel_all"], event="stop", symbol="ABCD", trade_id="t1")
        engine.shutdown()
    [cut] = [a for a in engine.alerts if a.kind == "exit_dropped"]
    assert cut.detail["unsent"] == ["cancel_all"] and "close the position by hand" in cut.message


def test_an_exit_dropped_before_a_stop_is_told_again_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{free_port()}", ttl=0.2, exit_ttl=0.3))
    engine = live(plugin, Journal(db))
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    engine.on_quote(quote("ABCD", 1.85, t=1, last=1.85))  # the stop, into a server that is down
    assert wait_until(lambda: told(engine, "exit_dropped"))
    engine.shutdown()
    assert engine.journal is not None
    engine.journal.close()
    again = Engine(journal=Journal(db), mode="live")
    again.start()
    [alert] = [a for a in again.alerts if a.kind == "exit_dropped"]
    assert alert.symbol == "ABCD" and "close it by hand" in alert.message
    assert again.journal is not None
    again.journal.close()


def test_the_reference_server_loads_tickers_with_dots_and_dashes_but_nothing_else() -> None:
    presser = SlowPresser(first_press_s=0.0)
    lines: list[str] = []
    server = HotkeyServer("127.0.0.1", 0, presser=presser, echo=lines.append)  # type: ignore[arg-type]
    thread = ServerThread(server)
    thread.start()
    try:
        with connect(thread.url, proxy=None) as ws:
            for symbol in ("BRK.B", "BF-B", "A B\n"):
                ws.send(json.dumps({"command": "buy_ask", "symbol": symbol}))
                assert json.loads(ws.recv(timeout=5))["status"] == "accepted"
    finally:
        thread.stop()
    assert presser.loaded == ["BRK.B", "BF-B"] and presser.pressed == ["buy_ask"] * 3
    assert any("NOT loading symbol 'A B\\n'" in line for line in lines)


def test_json_remaining_is_what_is_held_after_each_event() -> None:
    with HotkeyTestServer() as server:
        plugin = HotkeyPlugin(fast_config(server.url, format="json"))
        engine = live(plugin)
        engine.on_quote(quote("ABCD", 2.00))
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1
        engine.on_quote(quote("ABCD", 1.99, t=2, last=1.99))  # the break-even stop
        messages = [json.loads(m) for m in server.wait_for(5)]
        engine.shutdown()
    assert [(m["event"], m["remaining"]) for m in messages] == [
        ("entry", 100),
        ("tp1", 50),
        ("tp1", 50),
        ("tp1", 50),
        ("stop", 0),
    ]
    assert all(datetime.fromisoformat(m["time"]).tzinfo is not None for m in messages)


@pytest.mark.parametrize(("wire_format", "then"), [("json", "dies"), ("text", "dies"), ("json", "shutdown")])
def test_commands_written_into_a_frozen_server_are_named_when_the_link_dies(
    wire_format: str, then: str
) -> None:
    # The reference server, in its own process, is frozen (SIGSTOP) just before TP1 while its
    # last pong is still fresh: the bot writes TP1's three commands and logs them sent, then
    # the link dies. The server may never press them: a person is told which, for which trade.
    import os
    import socket

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "momobot_core.cli", "hotkey", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        assert wait_until(listening, timeout=30)
        plugin = HotkeyPlugin(
            fast_config(
                f"ws://127.0.0.1:{port}", format=wire_format, ping_interval=0.5, ping_timeout=3.0, ttl=10.0
            )
        )
        engine = live(plugin)
        engine.on_quote(quote("ABCD", 2.00))
        trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        assert plugin.client is not None and plugin.client.flush(10)  # buy_ask is out
        # The entry proven read (JSON: answered; text: a pong since): it is not in question.
        assert wait_until(lambda: not plugin.client.links[0]._unanswered)  # type: ignore[union-attr]
        os.kill(server.pid, signal.SIGSTOP)
        try:
            engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1, into the frozen server
            if then == "shutdown":  # the bot stopped at once, before any keepalive could notice
                engine.shutdown()
            assert wait_until(lambda: told(engine, "hotkey_ws_unconfirmed"), timeout=30)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        engine.shutdown()
    finally:
        server.terminate()
        server.wait(timeout=10)
    [alert] = [a for a in engine.alerts if a.kind == "hotkey_ws_unconfirmed"]
    assert alert.symbol == "ABCD" and alert.detail["trade_id"] == trade.id and alert.detail["event"] == "tp1"
    assert alert.detail["commands"] == ["sell_ask", "cancel_all", "break_even"]
    assert trade.id in alert.message and "may not have been pressed: check your broker" in alert.message


def test_a_sequence_that_cannot_finish_within_its_ttl_is_never_started() -> None:
    # TP1's three commands 0.6 s apart need 1.2 s; its TTL is 1 s: started, it would be cut
    # after sell_ask or cancel_all, leaving a partial TP1 at the broker. It is dropped whole.
    with HotkeyTestServer() as server:
        plugin = HotkeyPlugin(fast_config(server.url, ttl=1.0, sequence_delay=0.6))
        engine = live(plugin)
        engine.on_quote(quote("ABCD", 2.00))
        trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        assert server.wait_for(1) == ["buy_ask"]
        engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1
        assert wait_until(lambda: told(engine, "hotkey_ws_dropped"))
        engine.close_trade("ABCD")
        assert server.wait_for(2)[-1] == "sell_all_bid"
        engine.shutdown()
    assert server.messages == ["buy_ask", "sell_all_bid"]  # nothing of TP1, not a part of it
    [dropped] = [a for a in engine.alerts if a.kind == "hotkey_ws_dropped"]
    assert dropped.detail["trade_id"] == trade.id and "not started" in dropped.message


def test_a_started_sequence_ends_even_when_its_last_command_leaves_past_the_ttl() -> None:
    # Found by attack: the link held each command to the TTL, so a TP1 started just in time
    # lost break_even to a few milliseconds of delay on a busy machine (cancel_all already
    # gone: no stop at the broker). The TTL decides the start; a started sequence ends.
    from hotkey_ws.batch import Batch
    from hotkey_ws.link import START_MARGIN, HotkeyLink

    class Socket:  # what the kernel takes: everything, at once
        outbox = b""

        def __init__(self) -> None:
            self.sent: list[str] = []

        def send_text(self, payload: str) -> bool:
            self.sent.append(payload)
            return True

    url = "ws://127.0.0.1:9"
    link = HotkeyLink(url, fast_config(url, ttl=1.0, sequence_delay=0.4))
    wire = Socket()
    link._wire = wire  # type: ignore[assignment]
    names = ("sell_ask", "cancel_all", "break_even")
    link._queue.append(Batch(names=names, payloads=names, fired_at=100.0, ttl=1.0, gap=0.4, event="tp1"))
    late = 1.0 - 2 * 0.4 - START_MARGIN  # the last moment it may start
    for now in (100.0 + late, 100.4 + late, 100.8 + late + 0.02):  # the last leaves 20 ms late
        link._last_pong = now  # the server answers pings
        link._pump(now)
    assert wire.sent == list(names)
    not_started = Batch(names=names, payloads=names, fired_at=200.0, ttl=1.0, gap=0.4, event="tp1")
    link._queue.append(not_started)
    link._last_pong = 200.0 + late + 0.001
    link._pump(200.0 + late + 0.001)  # too late to end within the TTL: never started
    assert wire.sent == list(names) and not link._queue
    link._wire = None
    link.close()


@pytest.mark.parametrize("length", [1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_a_text_frame_of_any_length_arrives_whole_at_a_real_server(length: int) -> None:
    # The wire frames a command itself (no frame objects on the trading path): each length
    # band of RFC 6455 (7-bit, 16-bit, 64-bit lengths) on both sides of its edge, counted in
    # encoded bytes with multi-byte text among them, must reach a real server's own parser
    # exactly, one frame each, masked afresh.
    wide = length // 4  # two-byte characters
    text = "é" * wide + "x" * (length - 2 * wide)
    assert len(text.encode()) == length
    with HotkeyTestServer() as server:
        wire = Wire.connect(parse_uri(server.url), token=None, ssl_context=None, open_timeout=5)
        try:
            framed = [wire._frame_text(part.encode()) for part in ("a", "a")]
            assert framed[0][2:6] != framed[1][2:6]  # a new mask for every frame
            assert wire.send_text(text) or wire.outbox
            assert wait_until(lambda: wire.flush() and bool(server.messages), timeout=10)
            assert wire.send_text("buy_ask")
            assert server.wait_for(2) == [text, "buy_ask"]
        finally:
            wire.abort()


def test_commands_go_out_while_the_links_own_thread_cannot_run(caplog: pytest.LogCaptureFixture) -> None:
    # A busy engine thread can keep the link's I/O thread from the GIL for hundreds of
    # milliseconds: its pong waits unread and its next ping is never sent, so the link looks
    # unproven. Here that thread is parked for good (in a log handler: it says what was sent
    # there, outside the link's lock). The caller's own commands must prove the link (read
    # the pong waiting, or send the ping that is due and read its pong) and go out in order.
    caplog.set_level(logging.INFO, logger="momobot.hotkey")
    handler = ParkLinkThread()
    parked, release = handler.parked, handler.let_go
    logger = logging.getLogger("momobot.hotkey")
    with HotkeyTestServer() as server:
        plugin = HotkeyPlugin(fast_config(server.url, ping_interval=0.1, ping_timeout=0.3))
        engine = live(plugin)
        symbols = [f"S{n:03d}" for n in range(40)]
        for symbol in symbols:
            engine.on_quote(quote(symbol, 2.00))
        assert wait_until(lambda: link_state(plugin) == "up")
        logger.addHandler(handler)
        try:
            engine.open_trade(symbols[0], 100, 2.20, 2.40, 1.90)
            assert server.wait_for(1) == ["buy_ask"]
            assert wait_until(parked.is_set)  # the I/O thread stops at its "Sent" line
            assert wait_until(lambda: link_state(plugin) == "not answering")
            sock = plugin.client.links[0]._wire.sock  # type: ignore[union-attr]

            def pong_waits() -> bool:
                return bool(select.select([sock], [], [], 0)[0])

            # Each entry finds the link unproven: it reads the pong waiting, or pings. Once a
            # pong has come back (the socket turns readable), the next entry sends them all.
            opened = 1
            while True:
                engine.open_trade(symbols[opened], 100, 2.20, 2.40, 1.90)
                opened += 1

                def all_out(count: int = opened) -> bool:
                    return len(server.messages) == count

                assert wait_until(lambda: all_out() or pong_waits(), timeout=5)
                if all_out():
                    break
                assert opened < len(symbols)
            assert server.wait_for(opened) == ["buy_ask"] * opened
            assert parked.is_set() and not release.is_set()  # all of it without the I/O thread
        finally:
            release.set()
            logger.removeHandler(handler)
        engine.shutdown()


def test_a_sequence_that_went_out_whole_is_logged_a_moment_later_and_never_read_as_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On an event loop the wire log's records of a sequence that went out whole wait (WireLog.hold)
    for the fold, or the link's own thread: a crash before either leaves the trade unconfirmed and
    no cut reported, never a cut for commands that all went out; the fold writes them before the
    event's mark."""
    import asyncio
    import shutil

    from momobot_core.wirelog import read_records

    caplog.set_level(logging.INFO, logger="momobot.hotkey")
    handler = ParkLinkThread()
    parked, release = handler.parked, handler.let_go
    logger = logging.getLogger("momobot.hotkey")
    db = tmp_path / "journal.db"
    wire = Path(f"{db}.wire")
    killed = tmp_path / "killed"
    killed.mkdir()
    with HotkeyTestServer() as server:
        plugin = HotkeyPlugin(fast_config(server.url))

        async def trade() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
            engine = live(plugin, Journal(db))
            try:
                assert plugin.client is not None and plugin.client.wait_connected(10)
                engine.on_quote(quote("WXYZ", 2.00))
                engine.on_quote(quote("ABCD", 2.00))
                logger.addHandler(handler)
                engine.open_trade("WXYZ", 100, 2.20, 2.40, 1.90)
                assert wait_until(parked.is_set)  # now only the fold can write what is held
                engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
                # The loop is not let run: the fold put off after the hooks has not happened.
                assert server.wait_for(2) == ["buy_ask", "buy_ask"]
                before = read_records(wire)
                for suffix in ("", "-wal", ".pending", ".wire"):  # what a SIGKILL now leaves
                    if Path(f"{db}{suffix}").exists():
                        shutil.copy(f"{db}{suffix}", killed / f"journal.db{suffix}")
                engine.settle_journal()  # the fold: the held records, then the events' marks
                after = read_records(wire)
                assert engine.journal is not None and engine.journal.undispatched() == []
                return before, after
            finally:
                release.set()
                logger.removeHandler(handler)
                engine.shutdown()
                assert engine.journal is not None
                engine.journal.close()

        before, after = asyncio.run(trade())
    [abcd] = [r["batch"] for r in after if r["status"] == "queued" and r["symbol"] == "ABCD"]
    assert [r["status"] for r in after if r["batch"] == abcd] == ["queued", "sent", "done"]
    assert not [r for r in before if r["batch"] == abcd]  # not written in the hook
    restarted = Engine(journal=Journal(killed / "journal.db"), mode="live")
    restarted.start()
    try:
        assert restarted.open_trades["ABCD"].unconfirmed  # its hooks may not have run: a person checks
        assert not [a for a in restarted.alerts if a.kind == "sequence_cut"]
        assert restarted.journal is not None and restarted.journal.cut_sequences == []
    finally:
        assert restarted.journal is not None
        restarted.journal.close()


class _HoldsABadRecord:
    """Another plugin handing the wire log a record with a value JSON has no form for."""

    log = None

    @hookimpl
    def on_startup(self, bot: Engine) -> None:
        self.log = bot.wire_log("other")

    def sent_whole(self, why: object) -> None:
        assert self.log is not None
        self.log.hold(
            [
                {"batch": "other-1", "status": "queued", "commands": ["x"]},
                {"batch": "other-1", "status": "sent", "command": "x"},
                {"batch": "other-1", "status": "done", "why": why},  # the exception, not its text
            ]
        )


def test_another_plugins_bad_held_record_is_written_as_text_and_never_stops_the_link(tmp_path: Path) -> None:
    # Found in review: held records are encoded on the thread that writes them (the link's own),
    # and one value msgspec cannot encode killed that thread: TP1's later commands never left.
    from momobot_core.wirelog import read_records

    other = _HoldsABadRecord()
    wire_path = Path(f"{tmp_path / 'journal.db'}.wire")
    with HotkeyTestServer() as server:
        plugin = HotkeyPlugin(fast_config(server.url, sequence_delay=0.05))
        journal = Journal(tmp_path / "journal.db")
        engine = Engine(hooks=make_hooks(plugin, other), journal=journal, mode="live")
        engine.start()
        try:
            assert plugin.client is not None and plugin.client.wait_connected(10)
            engine.on_quote(quote("ABCD", 2.00))
            engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
            assert server.wait_for(1) == ["buy_ask"]
            other.sent_whole(ValueError("server said no"))
            assert wait_until(lambda: any(r["batch"] == "other-1" for r in read_records(wire_path)))
            [done] = [r for r in read_records(wire_path) if r["batch"] == "other-1" and r["status"] == "done"]
            engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1: the link's thread sends its last two
            engine.on_quote(quote("ABCD", 1.95, t=2))  # the break-even stop
            assert server.wait_for(5) == ["buy_ask", "sell_ask", "cancel_all", "break_even", "sell_all_bid"]
        finally:
            engine.shutdown()
            journal.close()
    assert done["why"] == "server said no" and done["plugin"] == "other"


def test_wire_records_a_value_json_has_no_form_for_are_written_as_text(tmp_path: Path) -> None:
    from momobot_core.wirelog import WireFile, WireLog, read_records

    wire = WireFile(tmp_path / "journal.db.wire")
    log = WireLog(wire, "other")
    log.hold([{"batch": "a", "status": "done", "why": ValueError("no")}, {"batch": "b", "status": "done"}])
    bad_key: dict[Any, Any] = {"batch": "c", "status": "done", (1, 2): "a key JSON has no form for"}
    log.hold([bad_key])
    wire.flush()
    records = read_records(tmp_path / "journal.db.wire")
    assert [(r["batch"], r.get("why")) for r in records] == [("a", "no"), ("b", None), ("c", None)]
    assert records[2]["(1, 2)"] == "a key JSON has no form for"
    wire.close()


def test_a_stop_held_in_memory_when_the_fold_finds_the_journal_locked_then_a_sigkill_restarts_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Faults combined: the stop's wire-log records wait in memory, the fold finds the journal
    locked (the marks go to the side file instead), then the process is killed. The held records
    reach the file before the marks do, so the restart shows the trade closed by its stop, its
    hooks run, and nothing cut."""
    import asyncio
    import shutil

    from momobot_core.wirelog import read_records

    from conftest import SqliteLocker

    caplog.set_level(logging.INFO, logger="momobot.hotkey")
    handler = ParkLinkThread()
    logger = logging.getLogger("momobot.hotkey")
    db = tmp_path / "journal.db"
    killed = tmp_path / "killed"
    killed.mkdir()
    with HotkeyTestServer() as server:
        plugin = HotkeyPlugin(fast_config(server.url))

        async def trade() -> list[dict[str, object]]:
            engine = live(plugin, Journal(db))
            locker: SqliteLocker | None = None
            try:
                assert plugin.client is not None and plugin.client.wait_connected(10)
                engine.on_quote(quote("ABCD", 2.00))
                logger.addHandler(handler)
                engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
                assert wait_until(handler.parked.is_set)  # only the fold can write what is held
                locker = SqliteLocker(db)
                engine.on_quote(quote("ABCD", 1.85, t=1))  # the stop: to the side file, sent
                assert server.wait_for(2) == ["buy_ask", "sell_all_bid"]
                engine.settle_journal()  # the fold: the journal is locked
                assert engine.journal_pending
                for suffix in ("", "-wal", ".pending", ".wire"):  # what a SIGKILL now leaves
                    if Path(f"{db}{suffix}").exists():
                        shutil.copy(f"{db}{suffix}", killed / f"journal.db{suffix}")
                return read_records(Path(f"{db}.wire"))
            finally:
                handler.let_go.set()
                logger.removeHandler(handler)
                if locker is not None:
                    locker.release()
                engine.shutdown()
                assert engine.journal is not None
                engine.journal.close()

        records = asyncio.run(trade())
    [stop] = [r["batch"] for r in records if r["status"] == "queued" and r["commands"] == ["sell_all_bid"]]
    assert [r["status"] for r in records if r["batch"] == stop] == ["queued", "sent", "done"]
    restarted = Engine(journal=Journal(killed / "journal.db"), mode="live")
    restarted.start()
    try:
        assert restarted.open_trades == {}
        assert restarted.journal is not None
        assert [leg.reason for leg in restarted.journal.legs()] == ["stop"]
        kinds = [a.kind for a in restarted.alerts]
        assert "unconfirmed_trade" not in kinds and "sequence_cut" not in kinds, kinds
        assert restarted.journal.undispatched() == []
    finally:
        assert restarted.journal is not None
        restarted.journal.close()


def test_a_server_on_this_machine_gets_the_cpu_right_after_a_command_written_in_the_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In the hook (the engine's thread) the link gives up the CPU once, right after the write and
    # before it books the command as sent; its own thread (TP1's later commands) never does.
    from momobot_core import net

    events: list[tuple[str, str]] = []  # (thread, what happened)
    real_yield, real_send = net._yield, Wire.send_text

    def send_text(wire: Wire, payload: str) -> bool:
        done = real_send(wire, payload)
        events.append((threading.current_thread().name, "write"))
        return done

    def yielded() -> None:
        # The lock is held: the queue is still. The command is written, not yet counted as sent.
        events.append((threading.current_thread().name, f"yield {[b.sent for b in link._queue]}"))
        real_yield()

    monkeypatch.setattr(Wire, "send_text", send_text)
    monkeypatch.setattr(net, "_yield", yielded)
    with HotkeyTestServer() as server:
        # Proven for 6 s after each pong, so a busy machine cannot leave the hook an unproven
        # link (it would leave the command to the link's thread).
        plugin = HotkeyPlugin(fast_config(server.url, ping_interval=1.0, ping_timeout=5.0))
        engine = live(plugin)
        assert plugin.client is not None
        (link,) = plugin.client.links
        assert wait_until(lambda: link_state(plugin) == "up")  # so the hook writes it itself
        engine.on_quote(quote("ABCD", 2.00))
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        assert server.wait_for(1) == ["buy_ask"]  # gone before TP1 queues: one batch at a time
        engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1: sell_ask here, the rest on the link's thread
        assert server.wait_for(4) == ["buy_ask", "sell_ask", "cancel_all", "break_even"]
        engine.shutdown()
    here = threading.current_thread().name
    assert [what for who, what in events if who == here] == ["write", "yield [0]", "write", "yield [0]"]
    assert [what for who, what in events if who != here] == ["write", "write"]


def test_only_a_server_on_this_machine_gets_the_cpu() -> None:
    for url, local in (
        ("ws://127.0.0.1:8765", True),
        ("ws://localhost:1", True),
        ("ws://trader-pc:8765", False),
    ):
        link = HotkeyLink(url, fast_config(url))  # never started: nothing connects
        assert link._local is local, url
        link.close()
