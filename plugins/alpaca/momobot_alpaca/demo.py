"""``momobot live-demo``: watch the bot trade in a browser, with no keys and nothing to set up.

Three parts on this machine: the Alpaca-protocol fake feed streaming the
bundled session restamped to now (the session's opens and closes are posted to
the bot's API at their time on the same clock), the dry-run hotkey server
(nothing is pressed), and ``momobot serve --source alpaca`` with the
dashboard. It prints the dashboard's URL and runs until Ctrl-C.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, NoReturn

import click

from momobot_alpaca.fake import FakeAlpacaServer, FakeAlpacaThread
from momobot_core.models import Close, Open, Quote
from momobot_core.session import demo_session_path
from momobot_core.sources.recorded import Event, read_events

KEY, SECRET = "live-demo", "live-demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # refused, timed out: the bot is busy or gone; the demo goes on
        return 0, str(getattr(exc, "reason", exc))


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1):
            return True
    except OSError:
        return False


class Trader(threading.Thread):
    """Posts the session's opens and closes to the bot's API, in order, as the feed reaches them."""

    def __init__(self, api: str) -> None:
        super().__init__(name="live-demo-trader", daemon=True)
        self.api = api
        self.actions: queue.Queue[Event] = queue.Queue()

    def run(self) -> None:
        while True:
            event = self.actions.get()
            if type(event) is Open:
                body = {"symbol": event.symbol, "tp1": event.tp1, "tp2": event.tp2, "stop": event.stop}
                body.update({"qty": event.qty} if event.qty is not None else {"risk": event.risk})
                status, text = _post(self.api + "/trades", body)
                what = f"open {event.symbol}"
            elif type(event) is Close:
                status, text = _post(self.api + "/close-position", {"symbol": event.symbol})
                what = f"close {event.symbol}"
            else:
                continue
            if not 200 <= status < 300:
                click.echo(f"live-demo: {what}: {status or 'no answer'} {text}", err=True)


@click.command("live-demo")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="How many times faster than the session was recorded.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The dashboard's port on 127.0.0.1 (0 picks a free one).",
)
def live_demo(speed: float, port: int) -> None:
    """Watch the bot trade the bundled session live in your browser (no keys, nothing pressed)."""
    if not math.isfinite(speed):
        _fail(f"--speed {speed}: must be a number above 0")
    events = list(read_events([demo_session_path()]))
    symbols = sorted({e.symbol for e in events if type(e) in (Quote, Open, Close)})  # type: ignore[union-attr]
    port = port or _free_port()
    api = f"http://127.0.0.1:{port}"
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            _fail(
                f"--port {port}: 127.0.0.1:{port} is taken ({exc.strerror or exc}): stop what"
                " uses it, or pass --port 0"
            )
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on)
    trader = Trader(api)
    feed = FakeAlpacaServer(events, key=KEY, secret=SECRET, speed=speed, on_action=trader.actions.put)
    hotkeys = _dry_run_hotkey_server()
    with tempfile.TemporaryDirectory(prefix="momobot-live-demo-") as tmp, FakeAlpacaThread(feed) as thread:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOMOBOT_", "APCA_"))}
        env.update(
            {
                "MOMOBOT_ALPACA_URL": thread.server.url,
                "MOMOBOT_ALPACA_FEED": "sip",
                "APCA_API_KEY_ID": KEY,
                "APCA_API_SECRET_KEY": SECRET,
                "MOMOBOT_WATCHLIST": ",".join(symbols),
                "MOMOBOT_DISABLE_PLUGINS": "voice",
            }
        )
        if hotkeys is not None:
            env["MOMOBOT_HOTKEY_URL"] = hotkeys.url
        else:
            env["MOMOBOT_DISABLE_PLUGINS"] += ",hotkey_ws"
        command = [sys.executable, "-m", "momobot_core.cli", "serve", "--port", str(port)]
        command += ["--db", os.path.join(tmp, "live-demo.db"), "--source", "alpaca"]
        bot = subprocess.Popen(command, env=env)
        try:
            deadline = time.monotonic() + 30
            while not _up(api):
                if bot.poll() is not None or time.monotonic() > deadline:
                    _fail("the bot did not start (its messages are above)")
                time.sleep(0.1)
            trader.start()
            click.echo(
                f"\n  MomoBot live demo: open {api}/ in your browser\n"
                f"  the bundled session ({len(symbols)} symbols) streams at {speed:g}x through a fake"
                " Alpaca feed;\n"
                + (
                    f"  hotkeys go to a dry-run server on {hotkeys.url}: nothing is pressed.\n"
                    if hotkeys is not None
                    else "  hotkey_ws is not installed: no hotkeys are sent.\n"
                )
                + "  Ctrl-C stops it.\n",
                err=True,
            )
            if bot.wait() != 0:
                _fail(f"the bot stopped with exit code {bot.returncode} (its messages are above)")
        except KeyboardInterrupt:
            pass
        finally:
            if bot.poll() is None:
                bot.terminate()
                try:
                    bot.wait(15)
                except subprocess.TimeoutExpired:
                    bot.kill()
            if hotkeys is not None:
                hotkeys.stop()


def _fail(message: str) -> NoReturn:
    click.echo(f"momobot: error: {message}", err=True)
    sys.exit(2)


def _stop_on(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM, SIGHUP: stop the bot and the feed as Ctrl-C does


def _dry_run_hotkey_server() -> Any:
    """hotkey_ws's dry-run server on a free loopback port, when hotkey_ws is installed."""
    try:
        from hotkey_ws.server import HotkeyServer, ServerThread
    except ImportError:
        return None
    # It says what it receives (what would have been pressed) on this terminal.
    server = HotkeyServer("127.0.0.1", 0, echo=lambda line: click.echo(f"dry-run hotkeys: {line}", err=True))
    thread = ServerThread(server)
    thread.start()
    return thread
