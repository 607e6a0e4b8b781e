"""The dashboard in a real browser: headless Chromium (the operating system's package) driven by
Selenium, against a real ``momobot serve`` and a real WebSocket hotkey receiver on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import ApiProcess, start_api

from hotkey_helpers import HotkeyTestServer, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# On CI .ci/run installs both from the distribution's packages: there these tests must run.
needs_browser = pytest.mark.skipif(
    (CHROMIUM is None or DRIVER is None) and not os.environ.get("CI"),
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)
pytestmark = needs_browser

TRADE = {"tp1": 2.2, "tp2": 2.4, "stop": 1.9}


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def hotkeys() -> Iterator[HotkeyTestServer]:
    with HotkeyTestServer() as server:
        yield server


@pytest.fixture
def api(tmp_path: Path, hotkeys: HotkeyTestServer) -> Iterator[ApiProcess]:
    server = start_api(tmp_path, env={"MOMOBOT_DISABLE_PLUGINS": "voice", "MOMOBOT_HOTKEY_URL": hotkeys.url})
    yield server
    server.stop()


def quote(api: ApiProcess, symbol: str, ask: float, bid: float | None = None) -> None:
    body = {"symbol": symbol, "bid": round(ask - 0.01, 2) if bid is None else bid, "ask": ask}
    assert api.client.post("/quotes", json=body).status_code == 200


def open_trade(api: ApiProcess, symbol: str, qty: int = 100) -> None:
    assert api.client.post("/trades", json={"symbol": symbol, "qty": qty, **TRADE}).status_code == 201


def text_of(driver: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def click(driver: Any, css: str) -> None:
    """Click an element the live page may be swapping out (the positions table redraws as quotes move)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def attempt() -> bool:
        try:
            driver.find_element("css selector", css).click()
        except (NoSuchElementException, StaleElementReferenceException):
            return False
        return True

    assert wait_until(attempt, timeout=10), f"nothing to click at {css}"


def severe_console_messages(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def connected(driver: Any) -> bool:
    """The page's event stream is open (the htmx SSE extension keeps its EventSource on the element)."""
    script = (
        "const e = document.querySelector('[sse-connect]');"
        " const d = e && e['htmx-internal-data'];"
        " return !!(d && d.sseEventSource && d.sseEventSource.readyState === 1);"
    )
    return bool(driver.execute_script(script))


def test_the_page_follows_quotes_and_tp1_live_and_close_presses_sell_all_bid(
    browser: Any, api: ApiProcess, hotkeys: HotkeyTestServer
) -> None:
    quote(api, "ABCD", 2.00)
    open_trade(api, "ABCD")
    assert hotkeys.wait_for(1) == ["buy_ask"]
    browser.get(api.url + "/")
    assert wait_until(lambda: "ABCD" in text_of(browser, "#pos-ABCD"), timeout=10)
    assert wait_until(lambda: connected(browser), timeout=10)
    page_id = browser.execute_script("return window.performance.timeOrigin")

    quote(api, "ABCD", 2.10, bid=2.08)  # +$8.00 at the bid
    assert wait_until(lambda: text_of(browser, "#pos-ABCD .pnl") == "$8.00", timeout=10)
    quote(api, "ABCD", 2.21)  # TP1: half sold, the stop to break-even
    assert wait_until(lambda: "b/e" in text_of(browser, "#pos-ABCD .stop"), timeout=10)
    assert wait_until(lambda: text_of(browser, "#pos-ABCD td:nth-child(2)") == "50 / 100", timeout=10)
    assert wait_until(lambda: "TP1 at 2.21" in text_of(browser, "#log"), timeout=10)
    assert browser.execute_script("return window.performance.timeOrigin") == page_id  # no reload

    click(browser, "#pos-ABCD button.close")
    assert hotkeys.wait_for(5) == ["buy_ask", "sell_ask", "cancel_all", "break_even", "sell_all_bid"]
    assert wait_until(lambda: "No open positions" in text_of(browser, "#positions"), timeout=10)
    # hotkey_ws's panel: the link, and the close's command with its event-to-wire time.
    assert wait_until(lambda: "sell_all_bid" in text_of(browser, ".panel"), timeout=10)
    assert wait_until(lambda: " up " in text_of(browser, ".panel"), timeout=10)
    assert severe_console_messages(browser) == []


def test_the_kill_switch_flattens_everything_and_resume_lifts_it(
    browser: Any, api: ApiProcess, hotkeys: HotkeyTestServer
) -> None:
    for symbol in ("ABCD", "WXYZ"):
        quote(api, symbol, 2.00)
        open_trade(api, symbol)
    assert hotkeys.wait_for(2) == ["buy_ask", "buy_ask"]
    browser.get(api.url + "/")
    assert wait_until(lambda: connected(browser), timeout=10)
    click(browser, "#kill")
    browser.switch_to.alert.accept()  # "Flatten every position ...?"
    assert hotkeys.wait_for(4)[2:] == ["cancel_all", "flatten_all"]
    assert wait_until(lambda: "No open positions" in text_of(browser, "#positions"), timeout=10)
    assert wait_until(lambda: "halted: kill switch" in text_of(browser, "#entries"), timeout=10)
    assert api.client.get("/ping").json()["risk"]["halted"] == "kill_switch"
    click(browser, "#resume")
    assert wait_until(lambda: "allowed" in text_of(browser, "#entries"), timeout=10)
    assert severe_console_messages(browser) == []


def test_with_a_token_nothing_works_before_it_is_given_and_other_origins_are_refused(
    browser: Any, tmp_path: Path, hotkeys: HotkeyTestServer
) -> None:
    env = {
        "MOMOBOT_DISABLE_PLUGINS": "voice",
        "MOMOBOT_HOTKEY_URL": hotkeys.url,
        "MOMOBOT_API_TOKEN": "s3cret",
    }
    api = start_api(tmp_path, env=env)
    try:
        auth = {"Authorization": "Bearer s3cret"}
        api.client.headers.update(auth)
        quote(api, "ABCD", 2.00)
        assert (
            api.client.post("/trades", json={"symbol": "ABCD", "qty": 100, **TRADE}, headers=auth).status_code
            == 201
        )
        browser.get(api.url + "/")
        assert browser.current_url.endswith("/ui/login")
        # Before the token: the page cannot act, the stream is closed to it, a kill from it is 401.
        status = browser.execute_script("return fetch('/ui/kill', {method: 'POST'}).then(r => r.status);")
        assert status == 401
        assert httpx.get(api.url + "/events").status_code == 401
        assert api.client.get("/ping").json()["open_trades"] == 1
        browser.find_element("css selector", "#token").send_keys("wrong")
        browser.find_element("css selector", "#login").click()
        assert wait_until(lambda: "not the API token" in text_of(browser, "body"), timeout=10)
        # The refused fetch and the refused login are the only errors the browser saw so far.
        assert all(" 401 " in m for m in severe_console_messages(browser))
        browser.find_element("css selector", "#token").send_keys("s3cret")
        browser.find_element("css selector", "#login").click()
        assert wait_until(lambda: "ABCD" in text_of(browser, "#positions"), timeout=10)
        # The table is in the page's HTML before htmx has bound its forms: a click before that
        # would submit the close form natively and never reach /ui/close (seen on a busy CI).
        assert wait_until(lambda: connected(browser), timeout=10)
        cookie = browser.get_cookie("momobot_session")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert "s3cret" not in cookie["value"]
        # The session cookie from another Origin (a web page posting a form): refused.
        stolen = {"Cookie": f"momobot_session={cookie['value']}", "Origin": "http://evil.example:8000"}
        assert httpx.post(api.url + "/ui/kill", headers=stolen).status_code == 403
        assert (
            httpx.post(api.url + "/kill", headers={**auth, "Origin": "http://evil.example:8000"}).status_code
            == 403
        )
        assert api.client.get("/ping").json()["open_trades"] == 1
        # From the page itself, with the cookie: it works.
        click(browser, "#pos-ABCD button.close")
        assert hotkeys.wait_for(2) == ["buy_ask", "sell_all_bid"]
        assert severe_console_messages(browser) == []
        # A session the server does not know (it restarted): the button says so, it is not silent.
        browser.delete_all_cookies()
        click(browser, "#kill")
        browser.switch_to.alert.accept()
        assert wait_until(lambda: "not signed in" in text_of(browser, "#said"), timeout=10)
        assert api.client.get("/ping").json()["risk"]["halted"] is None
    finally:
        api.stop()


def test_a_page_whose_bot_went_away_says_so_and_a_button_that_fails_is_seen(
    browser: Any, tmp_path: Path, hotkeys: HotkeyTestServer
) -> None:
    api = start_api(tmp_path, env={"MOMOBOT_DISABLE_PLUGINS": "voice", "MOMOBOT_HOTKEY_URL": hotkeys.url})
    browser.get(api.url + "/")
    assert wait_until(lambda: connected(browser), timeout=10)
    assert not browser.find_element("css selector", "#offline").is_displayed()
    api.stop()
    assert wait_until(lambda: browser.find_element("css selector", "#offline").is_displayed(), timeout=15)
    click(browser, "#resume")
    assert wait_until(lambda: "Not done: the bot does not answer." in text_of(browser, "#said"), timeout=10)
    browser.get_log("browser")  # the refused connections are expected here: read and dropped


def test_the_chart_draws_a_symbols_candles_and_its_trades_lines_and_follows_the_stream(
    browser: Any, api: ApiProcess, hotkeys: HotkeyTestServer
) -> None:
    quote(api, "ABCD", 2.00)
    open_trade(api, "ABCD")  # entry 2.00, TP1 2.2, TP2 2.4, stop 1.9
    quote(api, "ABCD", 2.05)
    browser.get(api.url + "/")
    assert wait_until(lambda: connected(browser), timeout=10)
    browser.find_element("css selector", "#chart-symbol").send_keys("ABCD")
    browser.find_element("css selector", "#chart-timeframe option[value='10s']").click()
    click(browser, "#chart-show")
    # Read back through the chart library's own API, not pixels.
    assert wait_until(
        lambda: len(browser.execute_script("return window.momobotChart.data()")) >= 1, timeout=10
    )
    lines = browser.execute_script("return window.momobotChart.lines()")
    assert lines == {"entry": 2.0, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
    assert browser.execute_script("return window.momobotChart.shown()") == ["ABCD", "10s"]
    (entry,) = browser.execute_script("return window.momobotChart.markers()")  # the entry's fill
    assert (entry["shape"], entry["text"]) == ("arrowUp", "entry 100 @ 2")
    quote(api, "ABCD", 2.21)  # TP1: a new high (the mid, 2.205: no prints), the stop to break-even
    assert wait_until(
        lambda: (
            browser.execute_script("const d = window.momobotChart.data(); return d[d.length - 1].high")
            == 2.205
        ),
        timeout=10,
    )
    assert wait_until(
        lambda: browser.execute_script("return window.momobotChart.lines()").get("stop") == 2.0, timeout=10
    )
    assert wait_until(  # TP1's sell, once journaled, is a marker over its candle
        lambda: (
            [m["text"] for m in browser.execute_script("return window.momobotChart.markers()")]
            == ["entry 100 @ 2", "take profit 50 @ 2.21"]
        ),
        timeout=10,
    )
    bad = api.client.get("/candles", params={"symbol": "ABCD", "timeframe": "7m"})
    assert bad.status_code == 422
    assert severe_console_messages(browser) == []


@pytest.fixture
def limited(tmp_path: Path, hotkeys: HotkeyTestServer) -> Iterator[ApiProcess]:
    env = {
        "MOMOBOT_DISABLE_PLUGINS": "voice",
        "MOMOBOT_HOTKEY_URL": hotkeys.url,
        "MOMOBOT_RISK_MAX_DAILY_LOSS": "100",
        "MOMOBOT_RISK_MAX_SHARES": "500",
    }
    server = start_api(tmp_path, env=env)
    yield server
    server.stop()


def fill(driver: Any, css: str, text: str) -> None:
    box = driver.find_element("css selector", css)
    box.clear()
    box.send_keys(text)


def test_the_ticket_fills_from_the_bracket_shows_its_risk_sends_and_says_which_rule_refused(
    browser: Any, limited: ApiProcess, hotkeys: HotkeyTestServer
) -> None:
    quote(limited, "ABCD", 2.00)
    browser.get(limited.url + "/")
    assert wait_until(lambda: connected(browser), timeout=10)
    fill(browser, "#ticket-symbol", "ABCD")
    click(browser, "#ticket-fill")
    # [bracket] around the ask: TP1 +0.10, TP2 +0.30, stop -0.10, 100 shares; $10 at risk of $100.
    assert wait_until(
        lambda: browser.find_element("css selector", "#ticket-tp1").get_attribute("value") == "2.1"
    )
    values = {
        k: browser.find_element("css selector", f"#ticket-{k}").get_attribute("value")
        for k in ("qty", "tp2", "stop")
    }
    assert values == {"qty": "100", "tp2": "2.3", "stop": "1.9"}
    assert "risk $10.00 at the stop; today's max_daily_loss leaves $100.00" in text_of(
        browser, "#ticket-risk-line"
    )
    fill(browser, "#ticket-qty", "600")
    assert "(this entry would be refused)" not in text_of(browser, "#ticket-risk-line")  # $60 < $100
    click(browser, "#ticket-send")
    assert wait_until(lambda: "refused by max_shares" in text_of(browser, "#said"), timeout=10)
    fill(browser, "#ticket-qty", "200")
    click(browser, "#ticket-send")
    assert hotkeys.wait_for(1) == ["buy_ask"]
    assert wait_until(lambda: "ABCD: entry sent" in text_of(browser, "#said"), timeout=10)
    assert wait_until(lambda: "200 / 200" in text_of(browser, "#pos-ABCD"), timeout=10)
    assert severe_console_messages(browser) == []


def test_arm_from_the_page_see_it_enter_on_its_level_and_the_keys(
    browser: Any, api: ApiProcess, hotkeys: HotkeyTestServer
) -> None:
    quote(api, "WXYZ", 5.10)
    browser.get(api.url + "/")
    assert wait_until(lambda: connected(browser), timeout=10)
    assert "Keys:" in text_of(browser, "#keys")
    browser.find_element("css selector", "body").send_keys("a")  # the arm form's symbol
    assert browser.execute_script("return document.activeElement.id") == "arm-symbol"
    browser.switch_to.active_element.send_keys("WXYZ")
    browser.find_element("css selector", "#arm-strategy option[value='level']").click()
    fill(browser, "#arm-level", "5.2")
    click(browser, "#arm-preview")
    assert wait_until(lambda: "TP1 5.2, TP2 5.4, stop 5" in text_of(browser, "#arm-bracket"), timeout=10)
    click(browser, "#arm-send")
    assert wait_until(lambda: "level 1m" in text_of(browser, "#arm-WXYZ"), timeout=10)
    quote(api, "WXYZ", 5.15)  # below the level, seen by the arm
    quote(api, "WXYZ", 5.21)  # from below: the entry
    assert hotkeys.wait_for(1) == ["buy_ask"]
    assert wait_until(lambda: "1 / 1" in text_of(browser, "#arm-WXYZ"), timeout=10)
    browser.find_element("css selector", "body").send_keys("t")
    assert browser.execute_script("return document.activeElement.id") == "ticket-symbol"
    browser.switch_to.active_element.send_keys("\ue00c")  # Esc leaves the field
    quote(api, "WXYZ", 5.15, bid=5.14)
    click(browser, "#arm-WXYZ button.disarm")
    assert wait_until(lambda: "Nothing is armed" in text_of(browser, "#arms"), timeout=10)
    api.client.post("/close-position", json={"symbol": "WXYZ"})
    assert wait_until(
        lambda: "level" in text_of(browser, "#day") and "-$7.00" in text_of(browser, "#day"), timeout=10
    )
    assert severe_console_messages(browser) == []


def test_the_watchlist_shows_quotes_changes_and_arms_charts_a_row_and_removes_it(
    browser: Any, api: ApiProcess
) -> None:
    quote(api, "ABCD", 2.00)
    browser.get(api.url + "/")
    assert wait_until(lambda: connected(browser), timeout=10)
    for symbol in ("ABCD", "WXYZ"):
        fill(browser, "#watch-symbol", symbol)
        click(browser, "#watch-add")
        assert wait_until(lambda s=symbol: s in text_of(browser, "#watch"), timeout=10)  # type: ignore[misc]
    assert (
        api.client.post(
            "/arm", json={"symbol": "ABCD", "strategy": "pullback", "timeframe": "1m"}
        ).status_code
        == 201
    )
    quote(api, "ABCD", 2.20)  # +0.20 on the first price seen (the mid, 1.995)
    assert wait_until(lambda: "+0.20 (+10.0%)" in text_of(browser, "#watch-ABCD"), timeout=10)
    assert "pullback 1m (0/1)" in text_of(browser, "#watch-ABCD")
    click(browser, "#watch-ABCD button.chart-it")
    assert wait_until(
        lambda: browser.execute_script("return window.momobotChart.shown()") == ["ABCD", "1m"], timeout=10
    )
    assert browser.find_element("css selector", "#ticket-symbol").get_attribute("value") == "ABCD"
    click(browser, "#watch-WXYZ button.unwatch")
    assert wait_until(lambda: "WXYZ" not in text_of(browser, "#watch"), timeout=10)
    assert severe_console_messages(browser) == []


def test_a_replayed_breakout_enters_on_the_chart_with_its_candles_lines_and_fills(
    browser: Any, tmp_path: Path, hotkeys: HotkeyTestServer
) -> None:
    # docs/examples/strategy_day.jsonl, paced through serve: ABCD armed on pullback 1m at 09:30
    # (charted from then), its breakout at 09:33:05, TP1 at 09:34.
    day = Path(__file__).resolve().parent.parent / "docs" / "examples" / "strategy_day.jsonl"
    env = {
        "MOMOBOT_DISABLE_PLUGINS": "voice,das",
        "MOMOBOT_HOTKEY_URL": hotkeys.url,
        "MOMOBOT_HOTKEY_REPLAY": "1",
    }
    api = start_api(tmp_path, "--replay", str(day), "--speed", "20", env=env, with_db=False)
    try:
        browser.get(api.url + "/")
        assert wait_until(lambda: connected(browser), timeout=10)
        fill(browser, "#chart-symbol", "ABCD")
        click(browser, "#chart-show")
        assert hotkeys.wait_for(1, timeout=60) == ["buy_ask"]  # the pullback's entry, sent
        assert wait_until(
            lambda: browser.execute_script("return window.momobotChart.lines()").get("entry") == 2.07,
            timeout=20,
        )
        lines = browser.execute_script("return window.momobotChart.lines()")
        assert (lines["tp1"], lines["tp2"]) == (2.17, 2.37)
        assert wait_until(
            lambda: len(browser.execute_script("return window.momobotChart.data()")) >= 4, timeout=20
        )
        assert wait_until(
            lambda: (
                "entry 100 @ 2.07"
                in [m["text"] for m in browser.execute_script("return window.momobotChart.markers()")]
            ),
            timeout=20,
        )
        assert severe_console_messages(browser) == []
    finally:
        api.stop()


def test_the_kill_switch_key_asks_first(browser: Any, api: ApiProcess, hotkeys: HotkeyTestServer) -> None:
    quote(api, "ABCD", 2.00)
    open_trade(api, "ABCD")
    browser.get(api.url + "/")
    assert wait_until(lambda: connected(browser), timeout=10)
    browser.find_element("css selector", "body").send_keys("k")
    assert wait_until(lambda: _alert_open(browser), timeout=10)
    browser.switch_to.alert.dismiss()  # no: nothing happens
    assert api.client.get("/positions").json() != []
    browser.find_element("css selector", "body").send_keys("k")
    assert wait_until(lambda: _alert_open(browser), timeout=10)
    browser.switch_to.alert.accept()
    assert wait_until(lambda: api.client.get("/positions").json() == [], timeout=10)
    assert hotkeys.wait_for(3)[1:] == ["cancel_all", "flatten_all"]  # the kill's own keys


def _alert_open(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert.text  # noqa: B018 (asked for its side effect: raises without one)
    except NoAlertPresentException:
        return False
    return True
