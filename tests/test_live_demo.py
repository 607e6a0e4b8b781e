"""``momobot live-demo``: one command, no keys; the fake Alpaca feed, the dry-run hotkey server and
``serve`` with the dashboard, run for real and stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from hotkey_helpers import wait_until


def test_live_demo_trades_the_session_on_the_dashboard_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOMOBOT_", "APCA_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "momobot_core.cli", "live-demo", "--speed", "10", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: any("in your browser" in line for line in lines), timeout=60), "".join(
            lines
        )
        found = re.search(r"open (http://127\.0\.0\.1:\d+)/ in your browser", "".join(lines))
        assert found is not None
        url = found.group(1)
        with httpx.Client(base_url=url, timeout=10) as client:
            page = client.get("/")
            assert page.status_code == 200 and "<h2>Hotkeys</h2>" in page.text
            ping = client.get("/ping").json()
            assert ping["source"]["name"] == "alpaca"

            def session_played() -> bool:
                legs = client.get("/trades").json()
                return {leg["reason"] for leg in legs} >= {"tp1", "tp2", "stop", "manual"}

            assert wait_until(session_played, timeout=60)
            legs = client.get("/trades").json()
            assert {leg["symbol"] for leg in legs} == {"ABCD", "EFGH", "IJKL", "MNOP"}
            panel = client.get("/ui/hotkey_ws").text
            assert "buy_ask" in panel and "sell_all_bid" in panel and "up" in panel
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)


def test_live_demo_on_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "momobot_core.cli", "live-demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"momobot: error: --port {port}: 127.0.0.1:{port} is taken (Address already in use): stop what"
        " uses it, or pass --port 0"
    ]
