"""Signing in to the dashboard with the API token: guesses are throttled, sessions end, and a
person can sign out. A real ``momobot serve`` on 127.0.0.1 with a token."""

from __future__ import annotations

from pathlib import Path

import httpx
from api_helpers import ApiProcess, start_api

from momobot_core.web.guard import LOCKOUT_S, MAX_FAILURES, SESSION_COOKIE, Sessions

from conftest import momobot

TOKEN = "s3cret-token"


def token_api(tmp_path: Path, **env: str) -> ApiProcess:
    return start_api(tmp_path, env={"MOMOBOT_API_TOKEN": TOKEN, **env})


def test_wrong_tokens_at_the_login_lock_the_client_out_with_retry_after(tmp_path: Path) -> None:
    api = token_api(tmp_path)
    closing: list[httpx.Client] = []
    try:
        trader = httpx.Client(base_url=api.url, timeout=10)
        client = httpx.Client(base_url=api.url, timeout=10)
        closing.extend((trader, client))
        assert trader.post("/ui/login", data={"token": TOKEN}).status_code == 303  # signed in before
        for _ in range(MAX_FAILURES):
            assert client.post("/ui/login", data={"token": "guess"}).status_code == 401
        # Locked out now: even the right token waits (a guesser cannot tell it was right).
        locked = client.post("/ui/login", data={"token": TOKEN})
        assert locked.status_code == 429, locked.text
        assert 0 < int(locked.headers["retry-after"]) <= LOCKOUT_S
        assert "try again in" in locked.json()["error"]
        assert client.post("/kill", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429
        assert api.client.get("/ping").json()["halted"] is False  # nothing was done meanwhile
        # The page a trader signed in to before keeps working (its kill switch must), though it
        # comes from the same address.
        assert trader.get("/").status_code == 200
    finally:
        for opened in closing:
            opened.close()
        api.stop()


def test_wrong_bearer_tokens_lock_the_client_out_too(tmp_path: Path) -> None:
    api = token_api(tmp_path)
    try:
        wrong = {"Authorization": "Bearer guess"}
        for _ in range(MAX_FAILURES):
            assert api.client.post("/resume", headers=wrong).status_code == 401
        assert api.client.post("/resume", headers=wrong).status_code == 429
        # Requests with no token at all (a page that was never signed in) are not guesses.
    finally:
        api.stop()


def test_no_token_at_all_is_never_counted_as_a_guess(tmp_path: Path) -> None:
    api = token_api(tmp_path)
    try:
        for _ in range(MAX_FAILURES * 2):
            assert api.client.post("/resume").status_code == 401
        assert api.client.post("/resume", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 409
    finally:
        api.stop()


def test_signing_out_ends_the_session(tmp_path: Path) -> None:
    api = token_api(tmp_path)
    closing: list[httpx.Client] = []
    try:
        browser = httpx.Client(base_url=api.url, timeout=10)
        closing.append(browser)
        signed_in = browser.post("/ui/login", data={"token": TOKEN})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
        session = browser.cookies[SESSION_COOKIE]
        page = browser.get("/")
        assert page.status_code == 200 and 'id="logout"' in page.text
        out = browser.post("/ui/logout")
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert SESSION_COOKIE not in browser.cookies
        replayed = httpx.get(api.url + "/events", cookies={SESSION_COOKIE: session}, timeout=10)
        assert replayed.status_code == 401  # the old cookie is dead, not just forgotten
        again = httpx.get(api.url + "/", cookies={SESSION_COOKIE: session}, timeout=10)
        assert again.status_code == 303 and again.headers["location"] == "/ui/login"
    finally:
        for opened in closing:
            opened.close()
        api.stop()


def test_a_session_ends_after_session_hours() -> None:
    now = [1000.0]
    sessions = Sessions(TOKEN, session_hours=2, clock=lambda: now[0])
    cookie = f"other=1; {SESSION_COOKIE}={sessions.open()}"
    assert sessions.valid(cookie)
    now[0] += 2 * 3600 - 1
    assert sessions.valid(cookie)
    now[0] += 2
    assert not sessions.valid(cookie)


def test_a_bad_session_length_is_refused_naming_the_key(tmp_path: Path) -> None:
    result = momobot(
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        env={"MOMOBOT_API_TOKEN": TOKEN, "MOMOBOT_API_SESSION_HOURS": "500"},
    )
    assert result.returncode == 2 and "session_hours" in result.stderr and "Traceback" not in result.stderr


def test_guesses_by_any_route_count_and_no_header_picks_the_address(tmp_path: Path) -> None:
    api = token_api(tmp_path)
    try:
        empty = {"token": ""}
        for _ in range(MAX_FAILURES + 1):  # an empty form is no guess
            assert api.client.post("/ui/login", data=empty).status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        for _ in range(MAX_FAILURES):  # a wrong token on a page's GET is a guess too
            assert api.client.get("/events", headers=wrong).status_code == 401
        assert api.client.get("/events", headers=wrong).status_code == 429
        # The lockout counts by the socket's address: a forwarded-for header changes nothing.
        spoofed = api.client.post(
            "/ui/login", data={"token": TOKEN}, headers={"X-Forwarded-For": "127.0.0.2"}
        )
        assert spoofed.status_code == 429
    finally:
        api.stop()


def test_guesses_sent_all_at_once_or_from_other_loopback_addresses_are_still_counted(tmp_path: Path) -> None:
    # Found by attack: 60 sign-ins whose bodies came after all their headers were all checked
    # (the lockout was read before the first failure was counted), and every address in
    # 127.0.0.0/8 had a counter of its own.
    import concurrent.futures

    api = token_api(tmp_path)
    try:

        def guess(n: int) -> int:
            local = f"127.0.{n // 250}.{n % 250 + 1}"  # another loopback address for each
            transport = httpx.HTTPTransport(local_address=local)
            with httpx.Client(base_url=api.url, transport=transport, timeout=30) as client:
                return client.post("/ui/login", data={"token": f"guess-{n}"}).status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(guess, range(40)))
        assert answers.count(401) <= MAX_FAILURES and answers.count(429) >= 40 - MAX_FAILURES
        assert api.client.post("/ui/login", data={"token": TOKEN}).status_code == 429
    finally:
        api.stop()


def test_an_open_event_stream_ends_when_its_session_does(tmp_path: Path) -> None:
    # Found by attack: after signing out, a stream opened before went on showing trades.
    api = token_api(tmp_path)
    try:
        with httpx.Client(base_url=api.url, timeout=30) as browser:
            assert browser.post("/ui/login", data={"token": TOKEN}).status_code == 303
            with browser.stream("GET", "/events") as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                assert any(line.startswith("event:") for line in lines)  # it flows
                with httpx.Client(base_url=api.url, cookies=browser.cookies, timeout=10) as other:
                    assert other.post("/ui/logout").status_code == 303
                # Something to show: the stream would send it, were it still open.
                bearer = {"Authorization": f"Bearer {TOKEN}"}
                api.client.post("/quotes", json={"symbol": "ABCD", "bid": 1.99, "ask": 2.0}, headers=bearer)
                rest = list(lines)  # ends: the server closes it
            assert not any("ABCD" in line for line in rest)
    finally:
        api.stop()
