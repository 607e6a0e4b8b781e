"""Risk limits and the kill switch through a real ``momobot serve``, a real journal file and a
real WebSocket hotkey receiver on 127.0.0.1."""

from __future__ import annotations

import signal
from pathlib import Path

from api_helpers import ApiProcess, start_api

from hotkey_helpers import HotkeyTestServer

TRADE = {"tp1": 2.2, "tp2": 2.4, "stop": 1.9}


def quote(api: ApiProcess, symbol: str, ask: float = 2.00, bid: float = 1.99) -> None:
    assert api.client.post("/quotes", json={"symbol": symbol, "bid": bid, "ask": ask}).status_code == 200


def test_open_by_risk_a_refused_entry_kill_and_resume_over_http(tmp_path: Path) -> None:
    api = start_api(tmp_path, env={"MOMOBOT_RISK_MAX_SHARES": "400", "MOMOBOT_RISK_MAX_DAILY_LOSS": "100"})
    try:
        quote(api, "ABCD")
        opened = api.client.post("/trades", json={"symbol": "ABCD", "risk": 50, **TRADE})
        assert opened.status_code == 201, opened.text
        assert opened.json()["qty"] == 400  # 500 for $50 at a 0.10 stop, capped by max_shares

        quote(api, "WXYZ")
        refused = api.client.post("/trades", json={"symbol": "WXYZ", "qty": 401, **TRADE})
        assert refused.status_code == 403
        assert refused.json() == {"error": "WXYZ: qty 401 is over max_shares 400", "rule": "max_shares"}
        both = api.client.post("/trades", json={"symbol": "WXYZ", "qty": 10, "risk": 5, **TRADE})
        assert both.status_code == 422

        killed = api.client.post("/kill")
        assert killed.status_code == 200
        assert [(t["symbol"], t["close_reason"], t["remaining"]) for t in killed.json()] == [
            ("ABCD", "kill", 0)
        ]
        risk = api.client.get("/ping").json()["risk"]
        assert (risk["halted"], risk["realised"], risk["trades_today"]) == ("kill_switch", -4.0, 1)
        assert risk["refused"] == {"max_shares": 1}
        assert risk["limits"]["max_shares"] == 400

        halted = api.client.post("/trades", json={"symbol": "WXYZ", "qty": 10, **TRADE})
        assert (halted.status_code, halted.json()["rule"]) == (403, "kill_switch")
        assert api.client.post("/resume").status_code == 200
        again = api.client.post("/resume")
        assert again.status_code == 409
        assert again.json() == {"error": "entries are not halted by the kill switch or a risk limit"}
        assert api.client.post("/trades", json={"symbol": "WXYZ", "qty": 10, **TRADE}).status_code == 201
        kinds = [a["kind"] for a in api.client.get("/alerts").json()]
        assert kinds == ["risk_refused", "halted", "risk_refused", "resumed"]
    finally:
        api.stop()


def test_kill_and_resume_need_the_token(tmp_path: Path) -> None:
    api = start_api(tmp_path, env={"MOMOBOT_API_TOKEN": "s3cret"})
    try:
        assert api.client.post("/kill").status_code == 401
        assert api.client.post("/resume").status_code == 401
        assert api.client.get("/ping").json()["risk"]["halted"] is None
        auth = {"Authorization": "Bearer s3cret"}
        assert api.client.post("/kill", headers=auth).json() == []
        assert api.client.get("/ping").json()["risk"]["halted"] == "kill_switch"
    finally:
        api.stop()


def test_a_kill_presses_cancel_all_flatten_all_once_and_a_sigkill_keeps_the_day_halted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "journal.db"
    with HotkeyTestServer() as hotkeys:
        env = {"MOMOBOT_DISABLE_PLUGINS": "voice", "MOMOBOT_HOTKEY_URL": hotkeys.url}
        first = start_api(tmp_path, env=env, db=db)
        try:
            for symbol in ("ABCD", "WXYZ"):
                quote(first, symbol)
                response = first.client.post("/trades", json={"symbol": symbol, "qty": 100, **TRADE})
                assert response.status_code == 201
            assert hotkeys.wait_for(2) == ["buy_ask", "buy_ask"]
            assert len(first.client.post("/kill").json()) == 2
            # Once for the book, nothing per trade: no sell_all_bid for either symbol.
            assert hotkeys.wait_for(4) == ["buy_ask", "buy_ask", "cancel_all", "flatten_all"]
        finally:
            first.stop(signal.SIGKILL)

        second = start_api(tmp_path, env=env, db=db)
        try:
            ping = second.client.get("/ping").json()
            assert ping["risk"]["halted"] == "kill_switch"
            assert ping["open_trades"] == 0
            # The day's alerts are still the day's after the restart.
            assert "halted" in [a["kind"] for a in second.client.get("/alerts").json()]
            quote(second, "MNOP")
            refused = second.client.post("/trades", json={"symbol": "MNOP", "qty": 100, **TRADE})
            assert (refused.status_code, refused.json()["rule"]) == (403, "kill_switch")
            assert second.client.post("/resume").status_code == 200
            assert (
                second.client.post("/trades", json={"symbol": "MNOP", "qty": 100, **TRADE}).status_code == 201
            )
            # The link is ordered: anything re-sent at the restart would have come before this entry.
            assert hotkeys.wait_for(5)[4:] == ["buy_ask"]
        finally:
            second.stop()
    assert len(hotkeys.messages) == 5
