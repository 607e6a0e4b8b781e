"""``register_routes`` and ``dashboard_panels``: a plugin installed as pip would, in a real
``momobot serve``, over real HTTP."""

from __future__ import annotations

from pathlib import Path

from api_helpers import ApiProcess, start_api

from conftest import install_fake_dist

TALLY = """
from momobot_core import Panel, hookimpl


@hookimpl
def register_routes(app, bot):
    from fastapi.responses import HTMLResponse

    @app.get("/ui/tally")
    async def tally():
        return HTMLResponse(f"<b id='tally'>{len(bot.open_trades)} open</b>")

    @app.post("/ui/tally")
    async def reset():
        return {"reset": True}


@hookimpl
def dashboard_panels(bot):
    return [Panel("Tally", "/ui/tally")]
"""

BROKEN = """
from momobot_core import hookimpl


@hookimpl
def dashboard_panels(bot):
    raise RuntimeError("no panel today")
"""


def serve_with(tmp_path: Path, *plugins: tuple[str, str], token: str | None = None) -> ApiProcess:
    site = tmp_path / "site"
    site.mkdir()
    for name, source in plugins:
        install_fake_dist(site, f"momobot-{name}", f"momobot_{name}", source, name)
    env = {"PYTHONPATH": str(site), "MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,voice"}
    if token:
        env["MOMOBOT_API_TOKEN"] = token
    return start_api(tmp_path, env=env)


def test_hook_register_routes_adds_a_route_behind_the_core_guard(tmp_path: Path) -> None:
    api = serve_with(tmp_path, ("tally", TALLY), token="s3cret")
    try:
        api.client.post(
            "/quotes",
            json={"symbol": "ABCD", "bid": 1.99, "ask": 2.0},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert api.client.post("/ui/tally").status_code == 401  # not a GET: the token
        auth = {"Authorization": "Bearer s3cret"}
        assert api.client.post("/ui/tally", headers=auth).json() == {"reset": True}
        evil = {**auth, "Origin": "http://evil.example:8000"}
        assert api.client.post("/ui/tally", headers=evil).status_code == 403
        # With a token, the dashboard's fragments are for a signed-in browser only.
        assert api.client.get("/ui/tally").json() == {
            "error": "sign in first: missing or wrong API token or session"
        }
        assert api.client.get("/ui/tally", headers=auth).status_code == 200
    finally:
        api.stop()


def test_hook_dashboard_panels_puts_a_panel_on_the_page_and_a_broken_one_is_left_out(
    tmp_path: Path,
) -> None:
    api = serve_with(tmp_path, ("tally", TALLY), ("broken", BROKEN))
    try:
        page = api.client.get("/")
        assert page.status_code == 200
        assert "<h2>Tally</h2>" in page.text
        assert 'hx-get="/ui/tally"' in page.text
    finally:
        _, err = api.stop()
    assert "plugin 'broken' raised in dashboard_panels" in err


def test_the_session_cookie_is_found_among_other_programs_cookies() -> None:
    from momobot_core.web.guard import Sessions

    sessions = Sessions("s3cret")
    mine = sessions.open()
    for header in (
        f"momobot_session={mine}",
        f'pref={{"a":1}}; momobot_session={mine}',  # another local app's cookie, not RFC-clean
        f'a=b c; x="a\\"; momobot_session="{mine}"',
    ):
        assert sessions.valid(header), header
    assert not sessions.valid("momobot_session=forged")
    assert not sessions.valid(f"other_session={mine}")
    assert not sessions.valid(None)


def test_sigterm_with_dashboard_streams_open_ends_them_cleanly(tmp_path: Path) -> None:
    import signal
    import threading

    import httpx

    from hotkey_helpers import wait_until

    api = start_api(tmp_path)
    # One flag per stream: three chunks from one stream is not three streams open (a SIGTERM
    # while another's request was still unanswered reset it, and its reader thread raised).
    drawn = [threading.Event() for _ in range(3)]

    def listen(first: threading.Event) -> None:
        with httpx.Client(base_url=api.url, timeout=30) as client, client.stream("GET", "/events") as events:
            for _ in events.iter_bytes():
                first.set()

    readers = [threading.Thread(target=listen, args=(flag,), daemon=True) for flag in drawn]
    for reader in readers:
        reader.start()
    assert wait_until(lambda: all(flag.is_set() for flag in drawn), timeout=15)  # each has drawn
    code, err = api.stop(signal.SIGTERM)
    for reader in readers:
        reader.join(timeout=15)
    assert code == 0, err
    assert "ASGI callable returned without completing response" not in err
    assert "ERROR" not in err
