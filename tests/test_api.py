"""``momobot serve``: a real server process on a loopback port, a real HTTP client, a real journal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_helpers import ApiProcess, start_api

from momobot_core.journal import Journal
from momobot_core.session import demo_session_path

from conftest import SqliteLocker, install_fake_dist
from hotkey_helpers import HotkeyTestServer, wait_until


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiProcess]:
    server = start_api(tmp_path)
    yield server
    server.stop()


TRADE = {"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
WITHOUT_QTY = {k: v for k, v in TRADE.items() if k != "qty"}


def quote(
    api: ApiProcess, ask: float, bid: float | None = None, symbol: str = "ABCD", **extra: object
) -> httpx.Response:
    return api.client.post(
        "/quotes", json={"symbol": symbol, "bid": ask - 0.01 if bid is None else bid, "ask": ask, **extra}
    )


def test_ping_and_openapi_schema(api: ApiProcess) -> None:
    ping = api.client.get("/ping").json()
    assert ping["status"] == "ok" and ping["mode"] == "live"
    assert ping["market"]["session"] in {"pre", "regular", "after", "closed"}  # whenever CI runs
    assert ping["market"]["in_session"] is True and ping["market"]["calendar"] == "exchange_calendars XNYS"
    schema = api.client.get("/openapi.json").json()
    assert {"/ping", "/positions", "/trades", "/close-position", "/quotes"} <= set(schema["paths"])
    body = schema["components"]["schemas"]["OpenTradeBody"]
    assert set(body["required"]) == {"symbol", "tp1", "tp2", "stop"}  # and qty or risk


def test_open_trade_for_an_unknown_symbol_is_404(api: ApiProcess) -> None:
    response = api.client.post("/trades", json=TRADE)
    assert response.status_code == 404
    assert response.json() == {"error": "ABCD: unknown symbol: no quote yet, so there is no ask to buy at"}


def test_open_trade_and_see_the_position_with_unrealised_pnl(api: ApiProcess) -> None:
    assert quote(api, 2.00).json()["accepted"] is True
    opened = api.client.post("/trades", json=TRADE)
    assert opened.status_code == 201
    assert opened.json()["entry_price"] == 2.00
    quote(api, 2.10, bid=2.08, last=2.09)
    [position] = api.client.get("/positions").json()
    assert position["symbol"] == "ABCD" and position["remaining"] == 100
    assert (position["bid"], position["last"]) == (2.08, 2.09)
    assert position["unrealised_pnl"] == pytest.approx(8.0)


def test_second_open_on_the_same_symbol_is_409(api: ApiProcess) -> None:
    quote(api, 2.00)
    api.client.post("/trades", json=TRADE)
    response = api.client.post("/trades", json=TRADE)
    assert response.status_code == 409
    assert response.json()["error"] == "ABCD: a trade is already open"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**TRADE, "qty": 0}, "qty: Input should be greater than or equal to 1"),
        ({**TRADE, "tp1": "x"}, "tp1: Input should be a valid number"),
        ({**TRADE, "stop": -1}, "stop: Input should be greater than 0"),
        ({**TRADE, "tp2": 2.1}, "tp2 2.1 must be at or above tp1 2.2"),
        ({**TRADE, "side": "short"}, "side: Extra inputs are not permitted"),
        ({"symbol": "ABCD"}, "tp1: Field required"),
        ({"symbol": "ABCD", "tp1": 2.2, "tp2": 2.4, "stop": 1.9}, "not neither"),
        ({**TRADE, "risk": 50}, "not both"),
        ({**WITHOUT_QTY, "risk": 0}, "risk: Input should be greater than 0"),
        ({**WITHOUT_QTY, "risk": True}, "risk: Input should be a valid number"),
        ({**WITHOUT_QTY, "risk": "50"}, "risk: Input should be a valid number"),
        ({**TRADE, "qty": None}, "qty: Input should be a valid integer"),  # left out, never null
    ],
)
def test_bad_trade_bodies_are_422_with_a_readable_message(
    api: ApiProcess, body: dict[str, object], message: str
) -> None:
    quote(api, 2.00)
    response = api.client.post("/trades", json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert api.client.get("/positions").json() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**TRADE, "stop": 2.5}, "stop 2.5 must be below the entry price (ask 2.0)"),
        ({**TRADE, "tp1": 1.95, "stop": 1.5}, "tp1 1.95 must be above the entry price (ask 2.0)"),
    ],
)
def test_levels_at_odds_with_the_current_ask_are_409(
    api: ApiProcess, body: dict[str, object], message: str
) -> None:
    # Sound on their own, refused by the market as it is now: a conflict with the server's state
    # (the same body passes at another ask), so a schema-valid body is not a 422.
    quote(api, 2.00)
    response = api.client.post("/trades", json=body)
    assert response.status_code == 409 and message in response.json()["error"]
    assert api.client.get("/positions").json() == []
    quote(api, 2.60 if body["stop"] == 2.5 else 1.90)
    assert api.client.post("/trades", json={**body, "tp1": 2.7, "tp2": 2.8}).status_code == 201


def test_malformed_json_and_bad_quotes_are_422(api: ApiProcess) -> None:
    broken = api.client.post("/trades", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "error" in broken.json()
    nan = api.client.post(
        "/quotes",
        content=b'{"symbol": "ABCD", "bid": NaN, "ask": 2.0}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    crossed = quote(api, 2.00, bid=2.50)
    assert crossed.status_code == 422
    assert crossed.json()["error"] == "bid 2.5 is above ask 2.0"


def test_close_position_sells_at_the_bid_and_journals_a_manual_leg(api: ApiProcess) -> None:
    quote(api, 2.00)
    api.client.post("/trades", json=TRADE)
    quote(api, 2.21)  # TP1: 50 sold
    quote(api, 2.15, bid=2.12)
    closed = api.client.post("/close-position", json={"symbol": "ABCD"})
    assert closed.status_code == 200
    assert closed.json()["close_reason"] == "manual" and closed.json()["remaining"] == 0
    legs = api.client.get("/trades").json()
    assert [(leg["reason"], leg["qty"], leg["exit_price"]) for leg in legs] == [
        ("tp1", 50, 2.21),
        ("manual", 50, 2.12),
    ]
    csv_text = api.client.get("/trades", params={"format": "csv"}).text
    assert csv_text.splitlines()[0] == "Date,Time,Symbol,Quantity,Price,Side"
    assert len(csv_text.splitlines()) == 4


def test_close_without_a_position_is_404(api: ApiProcess) -> None:
    response = api.client.post("/close-position", json={"symbol": "ABCD"})
    assert response.status_code == 404
    assert response.json() == {"error": "ABCD: no open trade to close"}


def test_two_closes_at_once_close_the_position_once(api: ApiProcess) -> None:
    quote(api, 2.00)
    api.client.post("/trades", json=TRADE)
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def close() -> None:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            barrier.wait()
            codes.append(client.post("/close-position", json={"symbol": "ABCD"}).status_code)

    threads = [threading.Thread(target=close) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] + [404] * 7
    assert [leg["reason"] for leg in api.client.get("/trades").json()] == ["manual"]


def test_interleaved_quotes_and_actions_never_corrupt_a_trade(api: ApiProcess, tmp_path: Path) -> None:
    symbols = [f"S{n}" for n in range(4)]
    for symbol in symbols:
        quote(api, 2.00, symbol=symbol)

    def feed(symbol: str) -> None:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            for n in range(60):
                ask = 1.95 + (n % 12) * 0.04
                client.post("/quotes", json={"symbol": symbol, "bid": ask - 0.01, "ask": ask})

    def trade(symbol: str) -> None:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            for _ in range(10):
                client.post("/trades", json={**TRADE, "symbol": symbol, "tp1": 2.3, "tp2": 2.35, "stop": 1.5})
                client.post("/close-position", json={"symbol": symbol})

    threads = [threading.Thread(target=f, args=(s,)) for s in symbols for f in (feed, trade)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    code, _ = api.stop()
    assert code == 0
    with Journal(tmp_path / "journal.db") as journal:
        trades = journal.trades()
        legs = journal.legs()
    assert trades
    for t in trades:
        sold = sum(leg.qty for leg in legs if leg.trade_id == t.id)
        assert sold == t.qty - t.remaining
        assert (t.closed_at is None) == (t.remaining > 0)


def test_token_guards_every_mutating_endpoint(tmp_path: Path) -> None:
    server = start_api(tmp_path, env={"MOMOBOT_API_TOKEN": "t0ken-s3cret"})
    try:
        for path, body in (
            ("/quotes", {"symbol": "A", "bid": 1, "ask": 1.1}),
            ("/trades", TRADE),
            ("/close-position", {"symbol": "A"}),
        ):
            assert server.client.post(path, json=body).status_code == 401
            wrong = server.client.post(path, json=body, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json() == {"error": "missing or wrong API token"}
        ok = server.client.post(
            "/quotes",
            json={"symbol": "A", "bid": 1, "ask": 1.1},
            headers={"Authorization": "Bearer t0ken-s3cret"},
        )
        assert ok.status_code == 200
        assert server.client.get("/positions").status_code == 200  # reading needs no token
        assert server.client.get("/trades").status_code == 200
    finally:
        _, err = server.stop()
    assert "t0ken-s3cret" not in err


def test_non_loopback_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "momobot_core.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--db",
            str(tmp_path / "j.db"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to serve the API on 0.0.0.0 without a token" in result.stderr


SHUTDOWN_MARK = """
    import os
    from momobot_core import hookimpl

    @hookimpl
    def on_shutdown(bot):
        open(os.environ["SHUTDOWN_MARK"], "w").write(str(len(bot.open_trades)))
"""


def test_sigterm_finishes_shuts_plugins_down_and_keeps_the_journal(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "momobot-mark", "momobot_mark", SHUTDOWN_MARK, "mark")
    mark = tmp_path / "mark.txt"
    env = {"PYTHONPATH": str(site), "SHUTDOWN_MARK": str(mark)}
    server = start_api(tmp_path, env=env)
    quote(server, 2.00)
    assert server.client.post("/trades", json=TRADE).status_code == 201
    code, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert mark.read_text() == "1"
    again = start_api(tmp_path, env=env)  # the same journal: the position comes back
    try:
        [position] = again.client.get("/positions").json()
        assert position["symbol"] == "ABCD" and position["remaining"] == 100
    finally:
        again.stop(signal.SIGINT)


def test_end_to_end_with_the_hotkey_plugin(tmp_path: Path) -> None:
    with HotkeyTestServer() as hotkeys:
        env = {"MOMOBOT_DISABLE_PLUGINS": "", "MOMOBOT_HOTKEY_URL": hotkeys.url}
        server = start_api(tmp_path, env=env)
        try:
            quote(server, 2.00)
            assert server.client.post("/trades", json=TRADE).status_code == 201
            assert hotkeys.wait_for(1) == ["buy_ask"]
            assert server.client.post("/close-position", json={"symbol": "ABCD"}).status_code == 200
            assert hotkeys.wait_for(2) == ["buy_ask", "sell_all_bid"]
        finally:
            code, err = server.stop()
        assert code == 0, err
        assert "[Hotkey] Sent: sell_all_bid" in err


def test_restart_after_sigkill_restores_positions_without_resending(tmp_path: Path) -> None:
    with HotkeyTestServer() as hotkeys:
        env = {"MOMOBOT_DISABLE_PLUGINS": "", "MOMOBOT_HOTKEY_URL": hotkeys.url}
        first = start_api(tmp_path, env=env)
        quote(first, 2.00)
        first.client.post("/trades", json=TRADE)
        quote(first, 2.21)
        assert hotkeys.wait_for(4) == ["buy_ask", "sell_ask", "cancel_all", "break_even"]
        first.stop(signal.SIGKILL)
        second = start_api(tmp_path, env=env)
        try:
            [position] = second.client.get("/positions").json()
            assert (position["remaining"], position["stop"], position["tp1_hit"]) == (50, 2.0, True)
            # Nothing is pressed again: the next command to arrive is the one triggered now.
            quote(second, 5.00, symbol="MARK")
            second.client.post("/trades", json={**TRADE, "symbol": "MARK", "tp1": 5.5, "tp2": 6, "stop": 4.5})
            assert hotkeys.wait_for(5)[4:] == ["buy_ask"]
            assert hotkeys.messages == ["buy_ask", "sell_ask", "cancel_all", "break_even", "buy_ask"]
        finally:
            second.stop()


def test_responses_never_wait_on_a_stuck_hotkey_server(tmp_path: Path) -> None:
    # A server that accepts TCP and then never answers: the hotkey link hangs in its handshake.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        env = {
            "MOMOBOT_DISABLE_PLUGINS": "",
            "MOMOBOT_HOTKEY_URL": f"ws://127.0.0.1:{listener.getsockname()[1]}",
            "MOMOBOT_HOTKEY_TTL": "30",
            "MOMOBOT_HOTKEY_OPEN_TIMEOUT": "30",
            "MOMOBOT_HOTKEY_FLUSH_TIMEOUT": "0.5",
        }
        server = start_api(tmp_path, env=env)
        fast = httpx.Client(base_url=server.url, timeout=10)  # far below the hotkey timeouts
        try:
            quote(server, 2.00)
            assert fast.post("/trades", json=TRADE).status_code == 201
            assert fast.post("/close-position", json={"symbol": "ABCD"}).status_code == 200
        finally:
            fast.close()
            server.stop()
    finally:
        listener.close()


def test_paced_replay_is_watchable_in_the_api_and_sends_no_hotkeys(tmp_path: Path) -> None:
    with HotkeyTestServer() as hotkeys:
        env = {"MOMOBOT_DISABLE_PLUGINS": "", "MOMOBOT_HOTKEY_URL": hotkeys.url}
        server = start_api(
            tmp_path, "--replay", str(demo_session_path()), "--speed", "10", env=env, with_db=False
        )
        try:
            assert server.client.get("/ping").json()["mode"] == "replay"
            # At 10x, two or more trades are open together for about 7 s of the session.
            assert wait_until(lambda: len(server.client.get("/positions").json()) >= 2, timeout=30)
            assert wait_until(lambda: len(server.client.get("/trades").json()) == 6, timeout=30)
            assert server.client.get("/positions").json() == []
        finally:
            server.stop()
        assert hotkeys.connections == 0
    assert not (tmp_path / "momobot.db").exists()  # a paced recording stays out of the live journal


# -- what is decided before a body is read ---------------------------------------------


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request by hand (a body far larger than what is sent, if the head says so)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_a_huge_body_without_the_token_is_refused_unread(tmp_path: Path) -> None:
    server = start_api(tmp_path, env={"MOMOBOT_API_TOKEN": "t0ken"})
    try:
        # 80 MB announced, 1 MB sent: the answer comes without the rest being read.
        status, body = raw_request(
            server.url,
            "POST /trades HTTP/1.1\nHost: 127.0.0.1\n"
            "Content-Type: application/json\nContent-Length: 80000000\n",
            b"x" * 1_000_000,
        )
        assert status == 401 and json.loads(body) == {"error": "missing or wrong API token"}
        assert server.client.get("/ping").json()["status"] == "ok"
    finally:
        server.stop()


def test_a_body_over_64_kib_is_413_with_or_without_a_length(tmp_path: Path) -> None:
    server = start_api(tmp_path, env={"MOMOBOT_API_TOKEN": "t0ken"})
    auth = {"Authorization": "Bearer t0ken"}
    try:
        big = {"symbol": "ABCD", "bid": 1, "ask": 1.1, "pad": "x" * 70_000}
        assert server.client.post("/quotes", json=big, headers=auth).status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b" " * 10_000

        streamed = server.client.post("/quotes", content=chunks(), headers=auth)
        assert streamed.status_code == 413
        assert "64 KiB" in streamed.json()["error"]
    finally:
        server.stop()


def test_host_header_must_be_one_the_api_answers_to(api: ApiProcess) -> None:
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 still says whose page it is.
    refused = api.client.get("/positions", headers={"Host": "evil.example"})
    assert refused.status_code == 400 and "allowed_hosts" in refused.json()["error"]
    assert api.client.get("/positions", headers={"Host": "localhost:1234"}).status_code == 200
    port = api.url.rsplit(":", 1)[1]
    # A Host that smuggles a second name past a loose parse is refused whole.
    for smuggled in (f"127.0.0.1:{port}, evil.example", "[::1]evil.example", "127.0.0.1 evil.example"):
        bad = api.client.get("/positions", headers={"Host": smuggled})
        assert bad.status_code == 400, smuggled
        assert "not a single host" in bad.json()["error"]
    assert api.client.get("/positions", headers={"Host": f"[::1]:{port}"}).status_code == 200


def test_a_state_change_from_another_origin_is_refused_token_or_not(api: ApiProcess) -> None:
    quote(api, 2.00)
    api.client.post("/trades", json=TRADE)
    # Any web page could post a form here: no token is set, so the Origin is what refuses it.
    evil = api.client.post(
        "/close-position", json={"symbol": "ABCD"}, headers={"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403 and "evil.example" in evil.json()["error"]
    assert len(api.client.get("/positions").json()) == 1
    port = api.url.rsplit(":", 1)[1]
    other_scheme = api.client.post(  # the same host and port over https is another origin
        "/close-position", json={"symbol": "ABCD"}, headers={"Origin": f"https://127.0.0.1:{port}"}
    )
    assert other_scheme.status_code == 403
    assert len(api.client.get("/positions").json()) == 1
    same = api.client.post(
        "/close-position", json={"symbol": "ABCD"}, headers={"Origin": f"http://127.0.0.1:{port}"}
    )
    assert same.status_code == 200


def test_a_token_in_the_query_string_is_refused_and_never_logged(tmp_path: Path) -> None:
    server = start_api(tmp_path, env={"MOMOBOT_API_TOKEN": "t0ken"})
    try:
        refused = server.client.get("/positions", params={"token": "t0ken"})
        assert refused.status_code == 400 and "query string" in refused.json()["error"]
        server.client.get("/no-such-page", params={"q": "s3cret-query"})
    finally:
        _, err = server.stop()
    assert "t0ken" not in err and "s3cret-query" not in err
    assert "GET /no-such-page 404" in err  # the access log names the path, not the query


def test_every_error_is_json_unknown_routes_and_methods_included(api: ApiProcess) -> None:
    missing = api.client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "no such endpoint: /nothing-here"}
    wrong = api.client.delete("/positions")
    assert wrong.status_code == 405 and wrong.json() == {"error": "DELETE is not allowed on /positions"}
    assert wrong.headers["allow"] == "GET"
    # A path with two routes: Allow names both (Starlette alone named the first one's only).
    options = api.client.options("/trades")
    assert options.status_code == 405 and options.headers["allow"] == "GET, POST"
    bad_format = api.client.get("/trades", params={"format": "xml"})
    assert bad_format.status_code == 422 and "format" in bad_format.json()["error"]


def test_the_openapi_schema_says_what_the_api_does(api: ApiProcess) -> None:
    schema = api.client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    # Exactly one of qty and risk, neither nullable, as POST /trades answers.
    trade = components["OpenTradeBody"]
    assert trade["oneOf"] == [{"required": ["qty"]}, {"required": ["risk"]}]
    assert trade["properties"]["qty"]["type"] == "integer" and "anyOf" not in trade["properties"]["qty"]
    # ?format= lists the two formats; a quote's time at odds with the clock is a listed 409.
    (format_param,) = schema["paths"]["/trades"]["get"]["parameters"]
    assert format_param["schema"]["enum"] == ["json", "csv"]
    assert "409" in schema["paths"]["/quotes"]["post"]["responses"]


def test_a_live_quote_far_from_the_server_clock_is_refused(api: ApiProcess) -> None:
    from datetime import UTC, datetime, timedelta

    ahead = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    response = quote(api, 2.00, ts=ahead)
    # A well-formed quote at odds with the server's clock: a conflict with its state, as the
    # OpenAPI schema lists (a schema-valid body is never a 422).
    assert response.status_code == 409 and "max_quote_skew_s" in response.json()["error"]
    assert api.client.post("/trades", json=TRADE).status_code == 404  # the quote was not applied


def test_quantities_and_prices_the_journal_cannot_hold_are_422(api: ApiProcess) -> None:
    quote(api, 2.00)
    for body in ({**TRADE, "qty": 9223372036854775808}, {**TRADE, "tp2": 1e300}):
        response = api.client.post("/trades", json=body)
        assert response.status_code == 422, response.text
    assert api.client.get("/positions").json() == []


def test_locked_journal_503s_entries_at_once_and_still_sends_and_keeps_exits(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    with HotkeyTestServer() as hotkeys:
        env = {"MOMOBOT_DISABLE_PLUGINS": "", "MOMOBOT_HOTKEY_URL": hotkeys.url}
        server = start_api(tmp_path, env=env, db=db)
        try:
            quote(server, 2.00)
            assert server.client.post("/trades", json=TRADE).status_code == 201
            assert hotkeys.wait_for(1) == ["buy_ask"]
            quote(server, 5.00, symbol="WXYZ")
            locker = SqliteLocker(db)
            try:
                refused = server.client.post(
                    "/trades", json={**TRADE, "symbol": "WXYZ", "tp1": 5.5, "tp2": 6, "stop": 4.5}
                )
                assert refused.status_code == 503 and "journal" in refused.json()["error"]
                assert quote(server, 2.21).status_code == 200  # TP1 goes out all the same
                assert hotkeys.wait_for(4) == ["buy_ask", "sell_ask", "cancel_all", "break_even"]
                ping = server.client.get("/ping").json()
                assert ping["halted"] is True and ping["journal"] == "side file in use"
            finally:
                locker.release()
            assert wait_until(lambda: server.client.get("/ping").json()["halted"] is False, timeout=10)
            kinds = [a["kind"] for a in server.client.get("/alerts").json()]
            assert "journal_error" in kinds and kinds[-1] == "resumed"
            assert [leg["reason"] for leg in server.client.get("/trades").json()] == ["tp1"]
        finally:
            server.stop()
    assert hotkeys.messages == ["buy_ask", "sell_ask", "cancel_all", "break_even"]


@pytest.mark.parametrize(
    "body",
    [
        {**TRADE, "qty": True},
        {**TRADE, "qty": "100"},
        {**TRADE, "symbol": "AB\nCD"},
        {**TRADE, "symbol": "ABCD\x00"},
        {**TRADE, "symbol": "A" * 40},
    ],
)
def test_loose_trade_bodies_are_422(api: ApiProcess, body: dict[str, object]) -> None:
    quote(api, 2.00)
    response = api.client.post("/trades", json=body)
    assert response.status_code == 422, response.text
    assert api.client.get("/positions").json() == []


def test_a_quote_that_repeats_its_last_is_the_same_print(api: ApiProcess) -> None:
    # Found by attack: a bridge posting snapshots repeats the last trade in every quote; taken as
    # a new print each time, the entry's own print sold the rest at break-even right after TP1.
    from datetime import UTC, datetime

    quote(api, 2.00, last=2.00)
    assert api.client.post("/trades", json=TRADE).status_code == 201
    quote(api, 2.21, bid=2.20, last=2.00)  # TP1, the entry's print repeated
    quote(api, 2.06, bid=2.05, last=2.00)  # repeated again: still the old print; the bid is above
    (position,) = api.client.get("/positions").json()
    assert (position["remaining"], position["tp1_hit"]) == (50, True)
    # The sender says this 2.00 is a new print: the stop takes it.
    quote(api, 2.06, bid=2.05, last=2.00, last_at=datetime.now(UTC).isoformat())
    assert api.client.get("/positions").json() == []
    assert [leg["reason"] for leg in api.client.get("/trades").json()] == ["tp1", "stop"]


def test_the_page_draws_before_a_replayed_session_has_its_first_event(tmp_path: Path) -> None:
    # Found taking the screenshot: no trading day yet (replay mode, nothing applied) made the
    # day's table raise, and GET / answered 500.
    day = tmp_path / "day.jsonl"
    day.write_text(
        json.dumps({"type": "quote", "ts": "2026-11-24T09:30:00", "symbol": "ABCD", "bid": 1.99, "ask": 2.0})
        + "\n"
    )
    api = start_api(tmp_path, "--replay", str(day), "--speed", "0.001", with_db=False)
    try:
        page = api.client.get("/")
        assert page.status_code == 200 and "The day" in page.text and "No trade closed today" in page.text
    finally:
        api.stop()
