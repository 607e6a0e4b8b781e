"""hotkey_ws against real WebSocket servers on 127.0.0.1: order, failures, TTL, shutdown, config."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotkey_ws.config import DEFAULT_COMMANDS, load_hotkey_config
from hotkey_ws.plugin import HotkeyPlugin
from momobot_core.config import Config, ConfigError
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.session import demo_session_path, run_recorded

from conftest import Recorder, make_hooks, quote
from hotkey_helpers import HotkeyTestServer, core_config, fast_config, free_port, hotkey_lines, wait_until


@pytest.fixture
def server() -> Iterator[HotkeyTestServer]:
    with HotkeyTestServer() as s:
        yield s


def live_engine(
    plugin: HotkeyPlugin, *others: object, mode: str = "live", config: Config | None = None
) -> Engine:
    engine = Engine(hooks=make_hooks(plugin, *others), journal=Journal(), mode=mode, config=config)
    engine.start()
    return engine


def open_trade(engine: Engine, symbol: str = "ABCD") -> None:
    engine.on_quote(quote(symbol, 2.00))
    engine.open_trade(symbol, 100, 2.20, 2.40, 1.90)


def test_each_event_sends_its_commands_in_order(server: HotkeyTestServer) -> None:
    plugin = HotkeyPlugin(fast_config(server.url))
    engine = live_engine(plugin)
    open_trade(engine, "AAA")
    engine.on_quote(quote("AAA", 2.21))  # tp1
    engine.on_quote(quote("AAA", 2.41))  # tp2
    open_trade(engine, "BBB")
    engine.on_quote(quote("BBB", 1.95, last=1.85))  # stop
    open_trade(engine, "CCC")
    engine.close_trade("CCC")  # manual
    expected = [
        "buy_ask",
        "sell_ask",
        "cancel_all",
        "break_even",
        "sell_ask",
        "buy_ask",
        "sell_all_bid",
        "buy_ask",
        "sell_all_bid",
    ]
    assert server.wait_for(len(expected)) == expected
    engine.shutdown()
    assert server.messages == expected  # nothing more, nothing twice


def test_demo_session_sends_exactly_what_its_events_call_for(server: HotkeyTestServer) -> None:
    recorder = Recorder()
    run_recorded(
        [demo_session_path()],
        hooks=make_hooks(HotkeyPlugin(fast_config(server.url)), recorder),
        config=Config(),
        mode="live",
    )
    expected: list[str] = []
    for name, kw in recorder.calls:
        if name == "on_order_submitted" and kw["order"].intent == "entry":
            expected += DEFAULT_COMMANDS["entry"]
        elif name == "on_target_hit":
            expected += DEFAULT_COMMANDS[str(kw["target"])]
        elif name == "on_position_closed" and kw["reason"] == "manual":
            expected += DEFAULT_COMMANDS["manual"]
    assert len(expected) == 14
    assert server.wait_for(len(expected)) == expected


def test_sequence_is_contiguous_with_the_configured_delay(server: HotkeyTestServer) -> None:
    plugin = HotkeyPlugin(fast_config(server.url, sequence_delay=0.1), record=True)
    engine = live_engine(plugin)
    open_trade(engine, "AAA")
    open_trade(engine, "BBB")
    engine.on_quote(quote("AAA", 2.21))  # tp1: three commands, 0.1 s apart
    open_trade(engine, "CCC")  # comes while the sequence is going out
    got = server.wait_for(6)
    assert got == ["buy_ask", "buy_ask", "sell_ask", "cancel_all", "break_even", "buy_ask"]
    engine.shutdown()
    # The gaps the client kept (when each command left for the kernel): the configured delay,
    # never less. What the server measures also holds its own scheduling, so it is not asserted.
    tp1 = next(batch for batch in plugin.history if batch.names[0] == "sell_ask")
    assert all(b - a >= 0.1 for a, b in zip(tp1.receipts, tp1.receipts[1:], strict=False))
    assert len(tp1.receipts) == 3


def test_commands_wait_for_a_server_that_is_down_at_start(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{port}", ttl=3.0))
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        engine = live_engine(plugin)
        open_trade(engine)
        assert wait_until(lambda: any("Cannot connect" in line for line in hotkey_lines(caplog)))
        with HotkeyTestServer(port) as server:
            assert server.wait_for(1) == ["buy_ask"]
            engine.shutdown()
    assert any(
        "Cannot connect to ws://127.0.0.1:" in line and "refused" in line for line in hotkey_lines(caplog)
    )


def test_server_restarted_mid_session_gets_the_next_commands_once(caplog: pytest.LogCaptureFixture) -> None:
    first = HotkeyTestServer().start()
    port = first.port
    plugin = HotkeyPlugin(fast_config(first.url))
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        engine = live_engine(plugin)
        open_trade(engine)
        assert first.wait_for(1) == ["buy_ask"]
        first.stop()
        assert wait_until(
            lambda: any("Connection to" in line and "lost" in line for line in hotkey_lines(caplog))
        )
        with HotkeyTestServer(port) as second:
            engine.on_quote(quote("ABCD", 2.21))
            assert second.wait_for(3) == ["sell_ask", "cancel_all", "break_even"]
            engine.shutdown()
    assert first.messages == ["buy_ask"]


def test_server_that_stops_reading_is_noticed_and_never_blocks_the_engine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        HotkeyTestServer(stop_reading_after=1) as server,
        caplog.at_level(logging.INFO, logger="momobot.hotkey"),
    ):
        plugin = HotkeyPlugin(fast_config(server.url, ttl=0.5))
        engine = live_engine(plugin)
        open_trade(engine, "AAA")
        assert server.wait_for(1) == ["buy_ask"]

        def trade_on() -> None:
            for n in range(200):
                symbol = f"S{n}"
                open_trade(engine, symbol)
                engine.close_trade(symbol)

        worker = threading.Thread(target=trade_on)
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the engine blocked on a server that does not read"
        assert engine.counters.trades_closed == 200
        assert wait_until(
            lambda: any("no answer to a keepalive ping" in line for line in hotkey_lines(caplog))
        )
        engine.shutdown()
    # A person is told the link went down.
    assert any(a.kind == "link_down" and "no answer to a keepalive ping" in a.message for a in engine.alerts)


def test_sequence_cut_by_a_closed_connection_never_continues_on_a_new_one(server: HotkeyTestServer) -> None:
    server.close_after = 2  # every connection is closed after two commands
    plugin = HotkeyPlugin(fast_config(server.url, ttl=3.0, sequence_delay=0.3))
    engine = live_engine(plugin)
    open_trade(engine)
    trade = engine.open_trades["ABCD"]
    engine.on_quote(quote("ABCD", 2.21))  # TP1: sell_ask, cancel_all, break_even

    def cut_told() -> bool:
        engine.tick()  # hands alerts raised on the link's thread to the engine's
        return any(a.kind == "sequence_cut" for a in engine.alerts)

    assert wait_until(cut_told)
    assert wait_until(lambda: plugin.status()[0]["state"] == "up")  # back on a new connection
    engine.close_trade("ABCD")
    assert server.wait_for(3) == ["buy_ask", "sell_ask", "sell_all_bid"]
    engine.shutdown()
    assert server.messages == ["buy_ask", "sell_ask", "sell_all_bid"]
    cut = next(a for a in engine.alerts if a.kind == "sequence_cut")
    assert cut.symbol == "ABCD" and cut.detail["trade_id"] == trade.id
    assert cut.detail["sent"] == ["sell_ask"] and cut.detail["unsent"] == ["cancel_all", "break_even"]
    assert trade.id in cut.message and "NOT sent 'cancel_all', 'break_even'" in cut.message


def test_command_cut_off_by_a_lost_connection_is_not_resent_and_the_rest_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A command too big for the socket buffers of a server that stopped reading is
    # half-written when the connection dies: it must never be written again.
    big = "x" * 8_000_000
    with (
        HotkeyTestServer(stop_reading_after=1) as server,
        caplog.at_level(logging.INFO, logger="momobot.hotkey"),
    ):
        plugin = HotkeyPlugin(fast_config(server.url, ttl=5.0, ping_timeout=0.5))
        engine = live_engine(plugin)
        open_trade(engine)
        assert server.wait_for(1) == ["buy_ask"]
        assert plugin.client is not None
        plugin.client.send([big, "cancel_all", "break_even"])
        assert wait_until(
            lambda: any("may have partly reached the server" in line for line in hotkey_lines(caplog)),
            timeout=10,
        )
        plugin.client.send(["sell_all_bid"])  # the next event goes out on a new connection
        server.wait_for(2)
        engine.shutdown()
    failure = next(line for line in hotkey_lines(caplog) if "partly reached" in line)
    assert "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" not in failure  # names cut short
    assert server.messages == ["buy_ask", "sell_all_bid"]
    cut = next(a for a in engine.alerts if a.kind == "sequence_cut")
    assert cut.detail["unsent"] == ["cancel_all", "break_even"]


def test_command_not_sent_within_its_ttl_is_dropped_never_sent_late(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{port}", ttl=0.3))
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        engine = live_engine(plugin)
        open_trade(engine)
        assert wait_until(lambda: any("not sent within 0.3 s" in line for line in hotkey_lines(caplog)))
        with HotkeyTestServer(port) as server:
            assert plugin.client is not None and plugin.client.wait_connected(5)
            engine.close_trade("ABCD")
            assert server.wait_for(1) == ["sell_all_bid"]
            engine.shutdown()
            assert server.messages == ["sell_all_bid"]
    assert any(
        "Failed to send 'buy_ask' (ABCD entry of trade" in line
        and "not sent within 0.3 s of its event" in line
        for line in hotkey_lines(caplog)
    )


def test_ttl_counts_from_the_hook_not_the_event_time(server: HotkeyTestServer) -> None:
    # The quotes are from 2026-11-24; a replay of old data is not "late".
    plugin = HotkeyPlugin(fast_config(server.url, ttl=0.5, replay=True))
    run_recorded([demo_session_path()], hooks=make_hooks(plugin), config=Config(), mode="replay")
    assert len(server.wait_for(14)) == 14


def test_shutdown_flushes_pending_commands_then_closes(server: HotkeyTestServer) -> None:
    plugin = HotkeyPlugin(fast_config(server.url, sequence_delay=0.2))
    engine = live_engine(plugin)
    open_trade(engine)
    engine.on_quote(quote("ABCD", 2.21))
    engine.shutdown()  # returns once break_even, 0.4 s later, has gone out
    assert plugin.client is None
    assert server.wait_for(4)[-3:] == ["sell_ask", "cancel_all", "break_even"]


def test_shutdown_is_bounded_when_the_server_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{free_port()}", ttl=30.0, flush_timeout=0.3))
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        engine = live_engine(plugin)
        open_trade(engine)
        closer = threading.Thread(target=engine.shutdown)
        closer.start()
        closer.join(timeout=10)
        assert not closer.is_alive()
    assert any(
        "Failed to send 'buy_ask' (ABCD entry of trade" in line and "not sent before shutdown" in line
        for line in hotkey_lines(caplog)
    )


def test_queue_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    plugin = HotkeyPlugin(
        fast_config(f"ws://127.0.0.1:{free_port()}", queue_size=3, ttl=30.0, flush_timeout=0.1)
    )
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        engine = live_engine(plugin)
        for n in range(5):
            open_trade(engine, f"S{n}")
        engine.shutdown()
    assert sum("queue full" in line for line in hotkey_lines(caplog)) == 2


def test_replay_mode_sends_nothing_and_says_so_once(
    server: HotkeyTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = HotkeyPlugin()
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        run_recorded(
            [demo_session_path()], hooks=make_hooks(plugin), config=core_config(url=server.url), mode="replay"
        )
    assert plugin.client is None  # no link was ever made, so nothing can arrive later
    assert server.messages == [] and server.connections == 0
    said = [line for line in hotkey_lines(caplog) if "no hotkey commands are sent" in line]
    assert len(said) == 1 and "replay mode" in said[0]


def test_replay_sends_when_turned_on_by_environment(
    server: HotkeyTestServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MOMOBOT_HOTKEY_REPLAY", "1")
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        run_recorded(
            [demo_session_path()],
            hooks=make_hooks(HotkeyPlugin()),
            config=core_config(url=server.url),
            mode="demo",
        )
    assert len(server.wait_for(14)) == 14
    assert any("commands ARE sent" in line for line in hotkey_lines(caplog))


def test_hooks_work_from_inside_an_asyncio_loop(server: HotkeyTestServer) -> None:
    plugin = HotkeyPlugin(fast_config(server.url))

    async def main() -> None:
        engine = live_engine(plugin)
        open_trade(engine)
        engine.close_trade("ABCD")
        await asyncio.sleep(0)
        engine.shutdown()

    asyncio.run(main())
    assert server.wait_for(2) == ["buy_ask", "sell_all_bid"]


def test_token_is_sent_as_bearer_authorization() -> None:
    with HotkeyTestServer(token="s3cret") as server:
        plugin = HotkeyPlugin(fast_config(server.url, token="s3cret"))
        engine = live_engine(plugin)
        open_trade(engine)
        assert server.wait_for(1) == ["buy_ask"]
        engine.shutdown()
    assert server.authorization == ["Bearer s3cret"]


def test_wrong_token_is_reported_and_nothing_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    with HotkeyTestServer(token="right") as server, caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        plugin = HotkeyPlugin(fast_config(server.url, token="wrong", ttl=0.3))
        engine = live_engine(plugin)
        open_trade(engine)
        assert wait_until(lambda: any("HTTP 401" in line for line in hotkey_lines(caplog)))
        engine.shutdown()
    assert server.messages == []
    assert not any("wrong" in line for line in hotkey_lines(caplog))  # no secret in logs


def test_json_format_carries_the_event_context(server: HotkeyTestServer) -> None:
    plugin = HotkeyPlugin(fast_config(server.url, format="json", ttl=1.5))
    engine = live_engine(plugin)
    open_trade(engine)
    [message] = server.wait_for(1)
    engine.shutdown()
    data = json.loads(message)
    trade_id = engine.journal.trades()[0].id if engine.journal else None
    assert data["command"] == "buy_ask" and data["event"] == "entry"
    assert (data["symbol"], data["qty"], data["trade_id"]) == ("ABCD", 100, trade_id)
    # When the hook fired (epoch ms) and how long the command stays good: the server drops it after.
    assert abs(data["sent_at"] - time.time() * 1000) < 60_000 and data["ttl_ms"] == 1500


def test_several_servers_each_get_every_command() -> None:
    with HotkeyTestServer() as one, HotkeyTestServer() as two:
        plugin = HotkeyPlugin(fast_config(one.url, two.url))
        engine = live_engine(plugin)
        open_trade(engine)
        engine.close_trade("ABCD")
        assert one.wait_for(2) == two.wait_for(2) == ["buy_ask", "sell_all_bid"]
        engine.shutdown()


def test_custom_command_lists_fit_other_hotkey_servers(server: HotkeyTestServer) -> None:
    config = load_hotkey_config(core_config(url=server.url, entry_commands=["F1"], manual_commands=[]))
    plugin = HotkeyPlugin(config, record=True)
    engine = live_engine(plugin)
    open_trade(engine)
    engine.close_trade("ABCD")
    engine.shutdown()
    assert [batch.names for batch in plugin.history] == [("F1",)]  # the manual close sent nothing
    assert server.wait_for(1) == ["F1"]


@pytest.mark.parametrize(
    ("table", "env", "message"),
    [
        ({"url": "http://127.0.0.1:8765"}, {}, "[hotkey_ws] url = 'http://127.0.0.1:8765': not a ws://"),
        ({}, {"MOMOBOT_HOTKEY_URL": "nonsense"}, "url = 'nonsense' (from MOMOBOT_HOTKEY_URL)"),
        ({"sequence_delay": -1}, {}, "[hotkey_ws] sequence_delay = -1: must be a finite number >= 0"),
        (
            {},
            {"MOMOBOT_HOTKEY_SEQUENCE_DELAY": "fast"},
            "sequence_delay = 'fast' (from MOMOBOT_HOTKEY_SEQUENCE_DELAY): must be a number",
        ),
        ({"ttl": 0}, {}, "[hotkey_ws] ttl = 0: must be a finite number > 0"),
        ({"format": "xml"}, {}, "[hotkey_ws] format = 'xml': must be one of text, json"),
        ({"urll": "ws://127.0.0.1:1"}, {}, "[hotkey_ws] urll: unknown key"),
        ({"replay": "maybe"}, {}, "[hotkey_ws] replay = 'maybe': must be true or false"),
        (
            {"ca_file": "/nonexistent/ca.pem", "url": "wss://127.0.0.1:1"},
            {},
            "ca_file = '/nonexistent/ca.pem': no such file",
        ),
        ({"tp1_commands": ["sell_ask", ""]}, {}, "tp1_commands"),
        ({"queue_size": 0}, {}, "[hotkey_ws] queue_size = 0: must be >= 1"),
        ({"url": "ws://127.0.0.1:1", "urls": ["ws://127.0.0.1:2"]}, {}, "url and urls are both set"),
        ({"sequence_delay": 1.0, "ttl": 1.5}, {}, "ttl = 1.5"),
    ],
)
def test_bad_config_is_refused_with_key_and_value(
    monkeypatch: pytest.MonkeyPatch, table: dict[str, object], env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        live_engine(HotkeyPlugin(), config=core_config(**table))
    assert message in str(info.value)


def test_hook_calls_return_while_the_server_accepts_but_never_answers() -> None:
    # A half-open peer: TCP accepts, the WebSocket handshake never completes.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        plugin = HotkeyPlugin(fast_config(f"ws://127.0.0.1:{port}", ttl=0.2, flush_timeout=0.2))
        engine = live_engine(plugin)

        def trade_on() -> None:
            for n in range(50):
                open_trade(engine, f"S{n}")

        worker = threading.Thread(target=trade_on)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive()
        engine.shutdown()
    finally:
        listener.close()


def test_wss_with_a_ca_file_verifies_the_server(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with HotkeyTestServer(ssl_context=server_context) as server:
        config = load_hotkey_config(core_config(url=server.url, ca_file=str(ca_file)))
        plugin = HotkeyPlugin(config)
        engine = live_engine(plugin)
        open_trade(engine)
        assert server.wait_for(1) == ["buy_ask"]
        engine.shutdown()

        # Without our CA the server's certificate is refused, loudly.
        with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
            plugin = HotkeyPlugin(fast_config(server.url, ttl=0.5))
            engine = live_engine(plugin)
            open_trade(engine)
            assert wait_until(
                lambda: any("certificate verify failed" in line for line in hotkey_lines(caplog))
            )
            engine.shutdown()
    assert server.messages == ["buy_ask"]


def test_the_hotkey_plugins_event_hooks_run_before_any_other_plugins() -> None:
    # pluggy calls the plugin registered last first: without tryfirst, a dashboard or a logger
    # registered after hotkey_ws would do its work while the hotkey waits.
    from momobot_core.plugins import Hooks

    hooks = Hooks()
    hooks.load_builtins()
    hooks.register(HotkeyPlugin(), name="hotkey_ws")
    hooks.register(Recorder(), name="registered-later")
    for hook in ("on_order_submitted", "on_target_hit", "on_position_closed"):
        assert next(name for name, _, _ in hooks.implementations(hook)) == "hotkey_ws", hook


def test_outside_the_regular_session_an_event_sends_its_extended_hours_commands(
    server: HotkeyTestServer,
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from momobot_core.models import Quote

    ny = ZoneInfo("America/New_York")
    parsed = load_hotkey_config(
        {
            "url": server.url,
            "extended_manual_commands": ["sell_all_bid_ext"],
            "extended_entry_commands": "buy_ext",
        }
    )
    assert parsed.extended_commands == {"manual": ("sell_all_bid_ext",), "entry": ("buy_ext",)}
    plugin = HotkeyPlugin(fast_config(server.url, extended_commands=parsed.extended_commands))
    engine = live_engine(plugin)
    for hour, symbol in ((8, "PRE"), (10, "REG"), (17, "AFT")):
        at = datetime(2026, 12, 7, hour, 0, tzinfo=ny)  # a Monday: pre-market, regular, after-hours
        engine.on_quote(Quote(symbol, at, 1.99, 2.00))
        engine.open_trade(symbol, 100, 2.20, 2.40, 1.90, ts=at)
        engine.close_trade(symbol, ts=at)
    at = datetime(2026, 11, 27, 14, 0, tzinfo=ny)  # a half day's afternoon: after the 13:00 close
    engine.on_quote(Quote("HALF", at, 1.99, 2.00))
    engine.open_trade("HALF", 100, 2.20, 2.40, 1.90, ts=at)
    engine.on_quote(Quote("HALF", at, 2.20, 2.21))  # TP1: no extended set for it, its own commands
    expected = [
        "buy_ext",
        "sell_all_bid_ext",
        "buy_ask",
        "sell_all_bid",
        "buy_ext",
        "sell_all_bid_ext",
        "buy_ext",
        "sell_ask",
        "cancel_all",
        "break_even",
    ]
    assert server.wait_for(len(expected)) == expected
    engine.shutdown()


def test_an_empty_extended_command_list_sends_nothing_for_a_one_share_trade_too(
    server: HotkeyTestServer,
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from momobot_core.models import Quote

    plugin = HotkeyPlugin(fast_config(server.url, extended_commands={"tp1": ()}))
    engine = live_engine(plugin)
    at = datetime(2026, 12, 7, 8, 0, tzinfo=ZoneInfo("America/New_York"))  # pre-market
    for qty in (1, 100):
        symbol = f"Q{qty}"
        engine.on_quote(Quote(symbol, at, 1.99, 2.00))
        engine.open_trade(symbol, qty, 2.20, 2.40, 1.90, ts=at)
        engine.on_quote(Quote(symbol, at, 2.20, 2.21))  # TP1: extended_tp1_commands = [] sends nothing
        engine.close_trade(symbol, ts=at)
    expected = ["buy_ask", "sell_all_bid", "buy_ask", "sell_all_bid"]
    assert server.wait_for(len(expected)) == expected
    engine.shutdown()
    assert server.messages == expected
