"""Discarding an unconfirmed trade whose entry never reached the broker: closed in the journal,
nothing sent. A crash between the entry's commit and its hooks makes such a trade; closing it
would send a sell for shares the broker never bought."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from api_helpers import start_api

from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import CloseReason

from conftest import momobot
from hotkey_helpers import HotkeyTestServer

DIES_BEFORE_THE_ENTRY_GOES_OUT = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from momobot_core import hookimpl
    from momobot_core.engine import Engine, TradeRefused
    from momobot_core.journal import Journal
    from momobot_core.models import Quote
    from momobot_core.plugins import Hooks

    class DiesAtTheEntry:
        @hookimpl
        def on_order_submitted(self, order, trade):
            os.kill(os.getpid(), signal.SIGKILL)  # journaled, never sent

    hooks = Hooks()
    hooks.register(DiesAtTheEntry(), name="dies")
    engine = Engine(hooks=hooks, journal=Journal(sys.argv[1]), mode="live")
    engine.start()
    engine.on_quote(Quote("ABCD", datetime.now(UTC), 1.99, 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
""")


def unconfirmed_entry(db: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", DIES_BEFORE_THE_ENTRY_GOES_OUT, str(db)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    with Journal(db, readonly=True) as journal:
        assert [t.symbol for t in journal.open_trades()] == ["ABCD"]


def test_discard_closes_an_unconfirmed_trade_and_sends_nothing(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    unconfirmed_entry(db)
    with HotkeyTestServer() as hotkeys:
        env = {"MOMOBOT_DISABLE_PLUGINS": "das", "MOMOBOT_HOTKEY_URL": hotkeys.url}
        api = start_api(tmp_path, env=env, db=db)
        try:
            (position,) = api.client.get("/positions").json()
            assert position["unconfirmed"] is True
            page = api.client.get("/")  # the dashboard offers the button beside confirm
            assert page.status_code == 200 and 'hx-post="/ui/discard"' in page.text
            discarded = api.client.post("/discard", json={"symbol": "ABCD"})
            assert discarded.status_code == 200, discarded.text
            assert discarded.json()["close_reason"] == "discarded"
            assert api.client.get("/positions").json() == []
            assert api.client.get("/ping").json()["unconfirmed"] == []
            again = api.client.post("/discard", json={"symbol": "ABCD"})
            assert again.status_code == 404
            api.client.post("/quotes", json={"symbol": "ABCD", "bid": 1.99, "ask": 2.00})
            api.client.post(
                "/trades", json={"symbol": "ABCD", "qty": 10, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
            )
            assert hotkeys.wait_for(1) == ["buy_ask"]  # the first thing ever sent: the discard sent nothing
            refused = api.client.post("/discard", json={"symbol": "ABCD"})  # a confirmed trade
            assert refused.status_code == 409 and "close it" in refused.json()["error"]
        finally:
            api.stop()
    engine = Engine(journal=Journal(db), mode="live")
    engine.start()
    assert not [a for a in engine.alerts if a.kind == "unconfirmed_trade"]  # told no more
    trades = {t.id: t for t in engine.journal.trades()} if engine.journal else {}
    assert [t.close_reason for t in trades.values() if t.closed_at] == [CloseReason.DISCARDED]
    assert engine.journal is not None and engine.journal.legs() == []  # nothing was sold
    engine.journal.close()


def test_discard_from_the_command_line_when_serve_is_not_running(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    unconfirmed_entry(db)
    with Journal(db):  # a running writer: the command says who holds the journal
        busy = momobot("discard", "ABCD", "--db", str(db), cwd=tmp_path)
    assert busy.returncode == 2 and "is writing" in busy.stderr and "Traceback" not in busy.stderr
    done = momobot("discard", "abcd", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ABCD: trade" in done.stdout and "nothing sent" in done.stdout
    with Journal(db, readonly=True) as journal:
        assert journal.open_trades() == []
    nothing = momobot("discard", "ABCD", "--db", str(db), cwd=tmp_path)
    assert nothing.returncode == 2 and "no open trade to discard" in nothing.stderr
    missing = momobot("discard", "ABCD", "--db", str(tmp_path / "typo.db"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such journal" in missing.stderr
    assert not (tmp_path / "typo.db").exists()  # never a new empty journal


DIES_BEFORE_TP1_GOES_OUT = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from momobot_core import hookimpl
    from momobot_core.engine import Engine, TradeRefused
    from momobot_core.journal import Journal
    from momobot_core.models import Quote
    from momobot_core.plugins import Hooks

    class DiesAtTp1:
        @hookimpl
        def on_target_hit(self, trade, target, quote):
            os.kill(os.getpid(), signal.SIGKILL)  # the entry went out; TP1 journaled, never sent

    hooks = Hooks()
    hooks.register(DiesAtTp1(), name="dies")
    engine = Engine(hooks=hooks, journal=Journal(sys.argv[1]), mode="live")
    engine.start()
    engine.on_quote(Quote("ABCD", datetime.now(UTC), 1.99, 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    engine.on_quote(Quote("ABCD", datetime.now(UTC), 2.20, 2.21))
""")


def test_a_trade_whose_entry_went_out_is_never_discarded(tmp_path: Path) -> None:
    # Found by attack: discarding it left 100 shares at the broker that nothing watched.
    db = tmp_path / "journal.db"
    subprocess.run(
        [sys.executable, "-c", DIES_BEFORE_TP1_GOES_OUT, str(db)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    engine = Engine(journal=Journal(db), mode="live")
    engine.start()
    (alert,) = [a for a in engine.alerts if a.kind == "unconfirmed_trade"]
    assert "tp1 event" in alert.message and "its entry did go out" in alert.message
    refused = momobot("discard", "ABCD", "--db", str(db), cwd=tmp_path)  # the journal is held: busy
    assert refused.returncode == 2
    with pytest.raises(TradeRefused, match=r"the entry of trade \w+ went out"):
        engine.discard_trade("ABCD")
    assert engine.open_trades["ABCD"].unconfirmed
    assert engine.journal is not None
    engine.journal.close()
    cli = momobot("discard", "ABCD", "--db", str(db), cwd=tmp_path)
    assert cli.returncode == 2 and "went out" in cli.stderr
