"""Faults that combine around the journal (trust III): a lock or a full disk, then a crash.

Real ``momobot serve`` processes, a real SQLite file held by another process, SIGKILL, and a
real WebSocket receiver on 127.0.0.1 for hotkey_ws (JSON), so "pressed twice" is counted
where a trader would see it.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from api_helpers import start_api

from momobot_core.journal import Journal

from conftest import SqliteLocker, momobot
from hotkey_helpers import HotkeyTestServer, wait_until


def pressed(hotkeys: HotkeyTestServer) -> Counter[tuple[str, str]]:
    """How many times each (event, command) reached the hotkey server."""
    return Counter((m["event"], m["command"]) for m in map(json.loads, hotkeys.messages))


def test_a_crash_while_another_program_locks_the_journal_never_presses_tp1_twice(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    with HotkeyTestServer() as hotkeys:
        env = {
            "MOMOBOT_DISABLE_PLUGINS": "das",
            "MOMOBOT_HOTKEY_URL": hotkeys.url,
            "MOMOBOT_HOTKEY_FORMAT": "json",
            "MOMOBOT_HOTKEY_SEQUENCE_DELAY": "0",
            "MOMOBOT_JOURNAL_WAIT_S": "1",
        }
        server = start_api(tmp_path, env=env, db=db)
        server.client.post("/quotes", json={"symbol": "ABCD", "bid": 1.99, "ask": 2.00}).raise_for_status()
        trade = server.client.post(
            "/trades", json={"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
        )
        assert trade.status_code == 201, trade.text
        assert len(hotkeys.wait_for(1, timeout=15)) == 1
        locker = SqliteLocker(db)
        try:
            server.client.post(
                "/quotes", json={"symbol": "ABCD", "bid": 2.20, "ask": 2.21}
            ).raise_for_status()
            assert len(hotkeys.wait_for(4, timeout=15)) == 4  # buy_ask, then TP1's three: pressed, rightly
            assert Path(f"{db}.pending").exists()  # the exit is in the side file, not the journal
            server.stop(signal.SIGKILL)

            # Started again while the lock is still held: it waits, then refuses, restoring nothing.
            try:
                refused = momobot("serve", "--port", "0", "--db", str(db), cwd=tmp_path, env=env, timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail("serve started from the journal without its side file (TP1 not yet fired)")
            assert refused.returncode == 2, refused.stderr
            assert "side file" in refused.stderr and "nothing was restored" in refused.stderr
            assert "Traceback" not in refused.stderr
            assert len(refused.stderr.strip().splitlines()) <= 2, refused.stderr
        finally:
            locker.release()

        server = start_api(tmp_path, env=env, db=db)
        try:
            (position,) = server.client.get("/positions").json()
            assert (position["remaining"], position["tp1_hit"], position["stop"]) == (50, True, 2.0)
            before = len(hotkeys.messages)
            server.client.post(
                "/quotes", json={"symbol": "ABCD", "bid": 2.20, "ask": 2.21}
            ).raise_for_status()
            server.client.post(
                "/quotes", json={"symbol": "ABCD", "bid": 2.39, "ask": 2.40}
            ).raise_for_status()
            assert len(hotkeys.wait_for(before + 1, timeout=15)) == before + 1  # TP2's sell_ask
            assert wait_until(lambda: server.client.get("/positions").json() == [])
        finally:
            server.stop()
    assert pressed(hotkeys)[("tp1", "sell_ask")] == 1
    with Journal(db, readonly=True) as journal:
        assert [(leg.reason, leg.qty) for leg in journal.legs()] == [("tp1", 50), ("tp2", 50)]
