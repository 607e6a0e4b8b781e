"""Arms and signals through a real ``momobot serve`` on a loopback port, and ``momobot arm``."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from api_helpers import ApiProcess, start_api

TOKEN = "t0ken-s3cret"
SECRET = "tv-s3cret"
ENV = {"MOMOBOT_API_TOKEN": TOKEN, "MOMOBOT_API_SIGNAL_SECRET": SECRET, "MOMOBOT_RISK_STALE_QUOTE_S": "0"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def serve(tmp_path: Path) -> ApiProcess:
    return start_api(tmp_path, env=ENV)


def quote(api: ApiProcess, symbol: str, ask: float) -> None:
    body = {"symbol": symbol, "bid": round(ask - 0.01, 2), "ask": ask, "last": ask}
    assert api.client.post("/quotes", json=body, headers=AUTH).status_code == 200


def cli(api: ApiProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "momobot_core.cli", *args, "--url", api.url, "--token", TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_level_arm_enters_once_from_below_and_survives_a_sigkill(tmp_path: Path) -> None:
    api = serve(tmp_path)
    try:
        assert (
            api.client.post(
                "/arm", json={"symbol": "ABCD", "strategy": "level", "timeframe": "1m"}
            ).status_code
            == 401
        )
        bad = api.client.post(
            "/arm", json={"symbol": "ABCD", "strategy": "level", "timeframe": "7s"}, headers=AUTH
        )
        assert bad.status_code == 422 and "timeframe '7s'" in bad.json()["error"]
        nosuch = api.client.post(
            "/arm", json={"symbol": "ABCD", "strategy": "nosuch", "timeframe": "1m"}, headers=AUTH
        )
        assert nosuch.status_code == 422 and "installed: level, pullback, signal" in nosuch.json()["error"]
        armed = cli(api, "arm", "ABCD", "level", "1m", "level=2.05", "qty=200")
        assert armed.returncode == 0, armed.stderr
        assert armed.stdout.strip() == "ABCD: armed with level 1m"
        quote(api, "ABCD", 2.00)
        quote(api, "ABCD", 2.06)  # reached from below: the entry, 200 at the ask
        (position,) = api.client.get("/positions").json()
        assert (position["symbol"], position["qty"], position["strategy"], position["level"]) == (
            "ABCD",
            200,
            "level",
            2.05,
        )
        assert (position["tp1"], position["tp2"], position["stop"]) == (2.16, 2.36, 1.96)
        listed = cli(api, "arms")
        assert listed.returncode == 0 and "entries 1/1" in listed.stdout and "level 2.05" in listed.stdout
        api.stop(signal.SIGKILL)
        api = serve(tmp_path)
        (arm,) = api.client.get("/arms").json()
        assert (arm["symbol"], arm["entries"], arm["state"]["done"]) == ("ABCD", 1, True)
        disarmed = cli(api, "disarm", "ABCD")
        assert disarmed.returncode == 0 and api.client.get("/arms").json() == []
        again = cli(api, "disarm", "ABCD")
        assert again.returncode == 1 and "ABCD: not armed" in again.stderr
    finally:
        api.stop()


def test_a_signal_needs_the_secret_an_armed_symbol_a_new_id_and_a_fresh_time(tmp_path: Path) -> None:
    api = serve(tmp_path)
    try:
        quote(api, "ABCD", 2.00)
        alert = {
            "passphrase": SECRET,
            "ticker": "ABCD",
            "action": "buy",
            "id": "a1",
            "time": datetime.now(UTC).isoformat(),
        }
        wrong = api.client.post("/signals", json={**alert, "passphrase": "guess"})
        assert wrong.status_code == 401 and "secret" in wrong.json()["error"]
        not_armed = api.client.post("/signals", json=alert)
        assert not_armed.status_code == 409 and "not armed for signals" in not_armed.json()["error"]
        body = {
            "symbol": "ABCD",
            "strategy": "signal",
            "timeframe": "1m",
            "stop": "pattern",
            "tp1_r": 2,
            "tp2_r": 4,
        }
        assert api.client.post("/arm", json=body, headers=AUTH).status_code == 201
        old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        stale = api.client.post("/signals", json={**alert, "time": old})
        assert stale.status_code == 409 and "signal_max_age_s" in stale.json()["error"]
        sell = api.client.post("/signals", json={**alert, "action": "sell"})
        assert sell.status_code == 422
        taken = api.client.post("/signals", json={**alert, "stop": 1.95})  # no token: the secret is enough
        assert taken.status_code == 201, taken.text
        trade = taken.json()["trade"]
        assert (trade["entry_price"], trade["stop"], trade["tp1"], trade["tp2"]) == (2.0, 1.95, 2.1, 2.2)
        duplicate = api.client.post("/signals", json=alert)
        assert duplicate.status_code == 409 and "received before" in duplicate.json()["error"]
        spent = api.client.post("/signals", json={**alert, "id": "a2"})
        assert spent.status_code == 200 and spent.json()["taken"] is False  # one trade open, one entry
    finally:
        api.stop()


def test_no_secret_configured_turns_signals_off(tmp_path: Path) -> None:
    api = start_api(tmp_path)
    try:
        response = httpx.post(f"{api.url}/signals", json={"secret": "x", "ticker": "ABCD"})
        assert response.status_code == 403 and "signal_secret" in response.json()["error"]
    finally:
        api.stop()


def test_a_signal_before_a_quote_or_refused_by_a_limit_keeps_its_id_for_later(tmp_path: Path) -> None:
    api = start_api(tmp_path, env={**ENV, "MOMOBOT_RISK_MAX_OPEN_TRADES": "1"})
    try:
        body = {"symbol": "SIG", "strategy": "signal", "timeframe": "1m", "entries": 3, "stop": "pattern"}
        assert api.client.post("/arm", json=body, headers=AUTH).status_code == 201
        alert = {"secret": SECRET, "symbol": "SIG", "id": "early"}
        early = api.client.post("/signals", json=alert)
        assert early.status_code == 404 and "no quote yet" in early.json()["error"]
        quote(api, "OPEN", 3.00)
        assert (
            api.client.post(
                "/trades", json={"symbol": "OPEN", "qty": 10, "tp1": 3.5, "tp2": 4, "stop": 2.5}, headers=AUTH
            ).status_code
            == 201
        )
        quote(api, "SIG", 2.00)
        limited = api.client.post("/signals", json=alert)
        assert limited.status_code == 403 and limited.json()["rule"] == "max_open_trades"
        assert api.client.post("/close-position", json={"symbol": "OPEN"}, headers=AUTH).status_code == 200
        taken = api.client.post("/signals", json=alert)  # the same alert, once the limit lifts
        assert taken.status_code == 201, taken.text
        high = api.client.post("/signals", json={**alert, "id": "high", "stop": 5.0})
        assert high.status_code == 200 and high.json() == {
            "taken": False,
            "reason": "a trade is open on the symbol",
        }
        assert api.client.post("/close-position", json={"symbol": "SIG"}, headers=AUTH).status_code == 200
        above = api.client.post("/signals", json={**alert, "id": "above", "stop": 5.0})
        assert above.status_code == 422 and "not below the ask" in above.json()["error"]
        future = api.client.post("/signals", json={**alert, "id": "f", "time": "2099-01-01T00:00:00Z"})
        assert future.status_code == 409 and "in the future" in future.json()["error"]
        assert api.client.post("/signals", json={**alert, "id": True}).status_code == 422
    finally:
        api.stop()


def test_wrong_secrets_count_toward_the_lockout_as_wrong_tokens_do(tmp_path: Path) -> None:
    api = serve(tmp_path)
    try:
        answers = [
            api.client.post("/signals", json={"secret": f"guess{n}", "ticker": "ABCD"}).status_code
            for n in range(6)
        ]
        assert answers[:5] == [401] * 5 and answers[5] == 429
        right = api.client.post("/signals", json={"secret": SECRET, "ticker": "ABCD"})
        assert right.status_code == 429 and int(right.headers["retry-after"]) > 0  # the right one waits too
    finally:
        api.stop()


def test_the_pages_forms_take_plain_numbers_and_tickers_only(tmp_path: Path) -> None:
    api = start_api(tmp_path)  # no token: the page's forms answer as a signed-in page's do
    try:
        quote(api, "ABCD", 2.00)
        odd = {"symbol": "ABCD", "qty": "1_000", "tp1": "2.2", "tp2": "2.4", "stop": "1.9"}
        said = api.client.post("/ui/trade", data=odd)  # int() would read 1_000 as 1000
        assert "must be numbers" in said.text and api.client.get("/positions").json() == []
        assert "not a symbol" in api.client.post("/ui/watch", data={"symbol": "*"}).text
        assert "not a symbol" in api.client.post("/ui/arm", data={"symbol": "a,b", "strategy": "level"}).text
        unknown = api.client.get("/ticket", params={"symbol": "ABCD", "strategy": "nope"})
        assert unknown.status_code == 422 and "no strategy 'nope'" in unknown.json()["error"]
        sent = api.client.post("/ui/trade", data={**odd, "qty": "100"})
        assert "ABCD: entry sent" in sent.text and api.client.get("/positions").json()[0]["qty"] == 100
    finally:
        api.stop()
