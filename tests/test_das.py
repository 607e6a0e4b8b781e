"""plugins/das against a fake DAS CMD API on 127.0.0.1: orders, fills, rejections, reconnects."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from das_helpers import DasSession, das_config, order_lines, platform_down, platform_order

from momobot_core.config import ConfigError
from momobot_das.fake import FakeDas

from conftest import momobot
from hotkey_helpers import wait_until


@pytest.fixture
def fake() -> Iterator[FakeDas]:
    with FakeDas() as server:
        yield server


@pytest.fixture
def session(fake: FakeDas, tmp_path: Path) -> Iterator[DasSession]:
    s = DasSession(das_config(fake), tmp_path / "journal.db")
    yield s
    s.close()


def test_an_entry_is_a_marketable_limit_for_its_symbol_and_its_fill_is_journaled(
    fake: FakeDas, session: DasSession
) -> None:
    session.quote("ABCD", 1.99, 2.00)
    trade = session.open("ABCD", 100, 2.20, 2.40, 1.90)
    # Written on the engine's thread before open_trade returned: nothing queued behind it.
    assert [w.line.split()[2:] for w in session.desk.orders.values()] == [
        ["B", "ABCD", "SMAT", "100", "2.05", "TIF=DAY+"]
    ]
    assert session.pump(lambda: session.engine.counters.fills == 1)
    fills = session.journal.fills()
    assert [(f.qty, f.price) for f in fills] == [(100, 2.05)]
    entry = session.journal.order(fills[0].order_id)
    assert entry is not None and entry.trade_id == trade.id and entry.intent == "entry"
    assert fake.lines()[0] == "LOGIN trader secret TR1234"
    assert order_lines(fake) == ["B ABCD SMAT 100 2.05 TIF=DAY+"]


def test_take_profits_sell_at_the_ask_and_the_journal_shows_broker_prices_and_slippage(
    fake: FakeDas, session: DasSession, tmp_path: Path
) -> None:
    session.entered("ABCD")
    session.quote("ABCD", 2.19, 2.20)  # TP1: 50 at the ask
    assert session.pump(lambda: session.engine.counters.fills == 2)
    session.quote("ABCD", 2.40, 2.41)  # TP2: the rest, a limit at the ask first
    assert session.pump(lambda: session.engine.counters.fills == 3 and not session.desk.exits)
    assert order_lines(fake) == [
        "B ABCD SMAT 100 2.05 TIF=DAY+",
        "S ABCD SMAT 50 2.20 TIF=DAY+",
        "S ABCD SMAT 50 2.41 TIF=DAY+",
    ]
    assert fake.positions == {"ABCD": 0} and fake.lowest == {}
    session.close()
    result = momobot("trades", "--db", str(tmp_path / "journal.db"))
    assert result.returncode == 0, result.stderr
    legs = json.loads(result.stdout)
    assert [(leg["reason"], leg["broker_entry_price"], leg["broker_exit_price"]) for leg in legs] == [
        ("tp1", 2.05, 2.20),
        ("tp2", 2.05, 2.41),
    ]
    # Paid 5 cents over the model's entry on 50 shares each leg; the exits filled at the model.
    assert [leg["slippage"] for leg in legs] == [-2.5, -2.5]


def test_partial_fills_are_each_journaled_and_averaged(fake: FakeDas, session: DasSession) -> None:
    fake.fill_buys = False
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: len(fake.orders) == 1)
    das_id = next(iter(fake.orders))
    fake.fill(das_id, 30, "2.01")
    fake.fill(das_id, 70, "2.02")
    assert session.pump(lambda: session.engine.counters.fills == 2)
    assert sorted((f.qty, f.price) for f in session.journal.fills()) == [(30, 2.01), (70, 2.02)]
    assert session.desk.orders[next(iter(session.desk.orders))].filled == 100


def test_a_rejected_order_is_an_alert_with_the_brokers_reason(fake: FakeDas, session: DasSession) -> None:
    fake.reject_next("Insufficient buying power")
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert session.pump(lambda: bool(session.alerts("order_rejected")))
    alert = session.alerts("order_rejected")[0]
    assert "Insufficient buying power" in alert.message and "ABCD" in alert.message
    assert "nothing was bought" in alert.message
    assert alert.symbol == "ABCD"
    assert session.journal.fills() == []


def test_a_stop_cancels_the_trades_orders_one_by_one_and_sells_what_the_broker_holds(
    fake: FakeDas, session: DasSession
) -> None:
    trade = session.entered("ABCD")
    fake.fill_sells = False
    session.quote("ABCD", 2.19, 2.20)  # TP1 rests unfilled at the broker
    take_profit_id = platform_order(fake, session, trade, "take_profit").das_id
    session.quote("ABCD", 1.85, 1.86)  # the break-even stop
    # The TP1 order is cancelled by its id; the 50 the engine still holds are sold at once at
    # the bid less 5 cents, and the 50 the cancelled TP1 did not sell once it is out.
    assert fake.wait_for(lambda: len(fake.lines("CANCEL")) >= 1 and fake.positions["ABCD"] == 100)
    assert session.pump(lambda: sum(o.qty for o in fake.working("ABCD")) == 100)
    assert fake.lines("CANCEL")[0] == f"CANCEL {take_profit_id}"
    sells = [line for line in order_lines(fake) if line.startswith("S ")][1:]
    assert sells == ["S ABCD SMAT 50 1.80 TIF=DAY+", "S ABCD SMAT 50 1.80 TIF=DAY+"]
    fake.fill_sells = True
    for order in fake.working("ABCD"):
        fake.fill(order.das_id)
    assert session.pump(lambda: not session.desk.exits)
    assert fake.positions == {"ABCD": 0} and fake.lowest == {}


def test_an_unfilled_exit_is_repriced_from_the_bid_and_never_dropped(
    fake: FakeDas, session: DasSession
) -> None:
    session.entered("ABCD")
    fake.fill_sells = False
    session.quote("ABCD", 1.85, 1.86)  # stop
    assert fake.wait_for(lambda: len(fake.lines("NEWORDER")) == 2)
    session.quote("ABCD", 1.70, 1.71)  # the bid falls away from the first sell's limit
    assert session.pump(lambda: len(fake.lines("CANCEL")) >= 1 and len(fake.lines("NEWORDER")) >= 3)
    sells = order_lines(fake)[1:3]
    assert sells == ["S ABCD SMAT 100 1.80 TIF=DAY+", "S ABCD SMAT 100 1.65 TIF=DAY+"]
    pending = session.alerts("exit_pending")
    assert len(pending) == 1 and "re-priced from the bid" in pending[0].message
    fake.fill_sells = True
    for order in fake.working("ABCD"):
        fake.fill(order.das_id)
    assert session.pump(lambda: not session.desk.exits and session.engine.counters.fills == 2)


def test_orders_for_different_symbols_never_wait_for_each_other(fake: FakeDas, session: DasSession) -> None:
    for symbol in ("AAAA", "BBBB", "CCCC"):
        session.quote(symbol, 1.99, 2.00)
        session.open(symbol, 100, 2.20, 2.40, 1.90)
    assert session.pump(lambda: session.engine.counters.fills == 3)
    fake.fill_sells = False
    session.quote("AAAA", 2.19, 2.20)  # a take profit on one symbol ...
    session.quote("BBBB", 1.85, 1.86)  # ... then a stop on another: written on the same call
    lines = [w.line.split()[2:5] for w in session.desk.orders.values()][3:]
    assert lines == [["S", "AAAA", "SMAT"], ["S", "BBBB", "SMAT"]]
    assert fake.wait_for(lambda: len(fake.lines("NEWORDER")) == 5)
    assert [line.split()[3] for line in fake.lines("NEWORDER")] == ["AAAA", "BBBB", "CCCC", "AAAA", "BBBB"]


def test_a_connection_dropped_between_an_order_and_its_fill_loses_nothing(
    fake: FakeDas, session: DasSession
) -> None:
    fake.fill_buys = False
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert session.pump(lambda: all(w.das_id for w in session.desk.orders.values()))
    fake.drop_connections()
    link = session.plugin.link
    assert link is not None
    assert wait_until(lambda: link.state != "up" or link.connects > 1, timeout=10)
    fake.fill(next(iter(fake.orders)), 100, "2.03")  # filled while the link was down
    assert session.pump(lambda: link.connects >= 2 and session.engine.counters.fills == 1)
    assert [(f.qty, f.price) for f in session.journal.fills()] == [(100, 2.03)]
    assert session.pump(lambda: session.desk.last_reconcile is not None and fake.logins == 2)
    assert session.pump(lambda: session.desk.positions.get("ABCD") == 100)
    assert session.alerts("link_down")
    assert fake.lines("LOGIN") == ["LOGIN trader secret TR1234"] * 2


def test_a_position_the_engine_does_not_know_is_an_alert_never_a_change(
    fake: FakeDas, tmp_path: Path
) -> None:
    fake.positions = {"ZZZZ": 300}
    s = DasSession(das_config(fake), tmp_path / "journal.db")
    try:
        assert s.pump(lambda: bool(s.alerts("reconcile_mismatch")))
        alert = s.alerts("reconcile_mismatch")[0]
        assert (
            alert.symbol == "ZZZZ"
            and "DAS holds 300" in alert.message
            and "engine's open trades 0" in alert.message
        )
        assert s.desk.last_reconcile is not None
        assert s.desk.last_reconcile["mismatches"] == [{"symbol": "ZZZZ", "engine": 0, "broker": 300}]
        assert fake.lines("NEWORDER") == [] and fake.lines("CANCEL") == []
    finally:
        s.close()


def test_an_entry_not_sent_within_its_ttl_is_dropped_and_alerted(tmp_path: Path) -> None:
    with platform_down(tmp_path, entry_ttl=0.3) as (fake, s):
        s.quote("ABCD", 1.99, 2.00)
        s.open("ABCD", 100, 2.20, 2.40, 1.90)
        assert s.pump(lambda: bool(s.alerts("das_entry_dropped")))
        assert "nothing was bought" in s.alerts("das_entry_dropped")[0].message
        fake.start()  # the platform comes up late: the dropped entry is not sent then
        link = s.plugin.link
        assert link is not None
        assert s.pump(lambda: link.up and s.desk.positions_known)
        assert fake.lines("NEWORDER") == []


def test_an_exit_while_the_link_is_down_goes_out_when_it_is_back(fake: FakeDas, tmp_path: Path) -> None:
    s = DasSession(das_config(fake, exit_reprice_s=0.2), tmp_path / "journal.db")
    try:
        s.entered("ABCD")
        port = fake.port
        fake.close()
        link = s.plugin.link
        assert link is not None
        assert wait_until(lambda: link.state != "up", timeout=10)
        s.quote("ABCD", 1.85, 1.86)  # stop, with no link
        assert s.pump(lambda: bool(s.alerts("exit_pending")))
        back = FakeDas(port=port)
        back.positions = {"ABCD": 100}
        with back:
            assert s.pump(lambda: not s.desk.exits, timeout=15)
            assert order_lines(back) == ["S ABCD SMAT 100 1.80 TIF=DAY+"]
            assert back.positions == {"ABCD": 0}
    finally:
        s.close()


def test_a_refused_login_stops_start_up_and_never_shows_the_password(
    fake: FakeDas, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.echo = True  # a platform that echoes commands back: the password comes back too
    config = das_config(fake, password="wrong-pass-123")
    with pytest.raises(ConfigError) as raised:
        DasSession(config, tmp_path / "journal.db")
    assert "refused the login of user 'trader' on account 'TR1234'" in str(raised.value)
    assert "invalid user, password or account" in str(raised.value)
    assert "wrong-pass-123" not in str(raised.value)
    assert "wrong-pass-123" not in caplog.text
    assert wait_until(lambda: fake.lines("LOGIN") == ["LOGIN trader wrong-pass-123 TR1234"])


def test_the_password_is_never_logged_nor_written_to_the_wire_log(
    fake: FakeDas, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.echo = True
    s = DasSession(das_config(fake), tmp_path / "journal.db")
    try:
        s.entered("ABCD")
    finally:
        s.close()
    assert fake.password not in caplog.text
    assert "***" in caplog.text or "LOGIN" not in caplog.text
    wire = Path(str(tmp_path / "journal.db") + ".wire")
    assert not wire.exists() or fake.password not in wire.read_text()
    import sqlite3

    with sqlite3.connect(tmp_path / "journal.db") as db:
        records = [row[0] for row in db.execute("SELECT record FROM wire")]
    assert records and all(fake.password not in r for r in records)


def test_an_exit_cut_by_a_stop_of_the_bot_is_reported_at_the_next_start(
    fake: FakeDas, tmp_path: Path
) -> None:
    db = tmp_path / "journal.db"
    s = DasSession(das_config(fake), db)
    s.entered("ABCD")
    fake.fill_sells = False
    s.quote("ABCD", 1.85, 1.86)  # stop: the sell rests unfilled
    assert fake.wait_for(lambda: len(fake.lines("NEWORDER")) == 2)
    s.close()
    again = DasSession(das_config(fake), db)
    try:
        dropped = again.alerts("exit_dropped")
        assert len(dropped) == 1 and "das" in dropped[0].message and "ABCD" in dropped[0].message
        assert "close it by hand" in dropped[0].message
    finally:
        again.close()


def test_an_exit_killed_while_its_sell_waits_for_a_stops_cancel_is_one_to_close_by_hand(
    fake: FakeDas, tmp_path: Path
) -> None:
    import shutil

    from momobot_core.journal import Journal

    ten_am = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    db = tmp_path / "journal.db"
    s = DasSession(das_config(fake, catastrophic_stop_pct=10), db, wall=lambda: ten_am)
    try:
        s.quote("ABCD", 1.99, 2.00)
        s.open("ABCD", 100, 2.20, 2.40, 1.90)
        assert fake.wait_for(lambda: [o.kind for o in fake.working("ABCD")] == ["STOP"])
        fake.refuse_cancels = True  # the broker-side stop stays: the exit's sell must wait
        s.quote("ABCD", 1.85, 1.86)  # the trade's stop
        assert fake.wait_for(lambda: bool(fake.lines("CANCEL")))
        # The files as a SIGKILL here leaves them: the wire log without the exit's end.
        killed = tmp_path / "killed"
        killed.mkdir()
        shutil.copy(f"{db}.wire", killed / "journal.db.wire")
    finally:
        s.close()
    with Journal(killed / "journal.db") as journal:
        (cut,) = journal.cut_sequences
    assert (cut.plugin, cut.symbol, cut.event, cut.dropped_exit) == ("das", "ABCD", "stop", True)


def test_a_catastrophic_stop_follows_each_fill_in_regular_hours_only(fake: FakeDas, tmp_path: Path) -> None:
    ten_am = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
    s = DasSession(das_config(fake, catastrophic_stop_pct=10), tmp_path / "journal.db", wall=lambda: ten_am)
    try:
        s.quote("ABCD", 1.99, 2.00)
        s.open("ABCD", 100, 2.20, 2.40, 1.90)
        assert fake.wait_for(lambda: len(fake.lines("NEWORDER")) == 2)
        assert fake.lines("NEWORDER")[1].split()[2:] == [
            "S",
            "ABCD",
            "SMAT",
            "100",
            "STOPMKT",
            "1.84",
            "TIF=DAY",
        ]
        s.quote("ABCD", 2.19, 2.20)  # TP1: the stop is cancelled, then placed again for the 50 left
        assert fake.wait_for(
            lambda: (
                [o.qty for o in fake.working("ABCD") if o.kind == "STOP"] == [50]
                and fake.positions["ABCD"] == 50
            )
        )
        s.quote("ABCD", 2.40, 2.41)  # TP2: the stop goes before the last sell
        assert s.pump(lambda: not s.desk.exits and fake.working("ABCD") == [])
        assert fake.positions == {"ABCD": 0} and fake.lowest == {}
    finally:
        s.close()
    evening = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)  # 18:00 in New York: no stop orders
    with FakeDas() as late:
        s = DasSession(das_config(late, catastrophic_stop_pct=10), tmp_path / "late.db", wall=lambda: evening)
        try:
            s.quote("ABCD", 1.99, 2.00)
            s.open("ABCD", 100, 2.20, 2.40, 1.90)
            assert s.pump(lambda: s.engine.counters.fills == 1)
            assert [line.split()[6] for line in late.lines("NEWORDER")] == ["2.05"]
            told = [a for a in s.engine.alerts if a.kind == "das_extended_hours"]
            assert len(told) == 1 and "it is after-hours now" in told[0].message
        finally:
            s.close()
    # A half day: the regular session ends at 13:00 (the exchange's calendar), so 14:00 has none.
    half_day = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    with FakeDas() as early:
        s = DasSession(
            das_config(early, catastrophic_stop_pct=10), tmp_path / "half.db", wall=lambda: half_day
        )
        try:
            s.quote("ABCD", 1.99, 2.00)
            s.open("ABCD", 100, 2.20, 2.40, 1.90)
            assert s.pump(lambda: s.engine.counters.fills == 1)
            assert [line.split()[6] for line in early.lines("NEWORDER")] == ["2.05"]
        finally:
            s.close()


def test_replays_send_nothing_unless_told(fake: FakeDas, tmp_path: Path) -> None:
    env = {
        "MOMOBOT_DAS_USER": fake.user,
        "MOMOBOT_DAS_ACCOUNT": fake.account,
        "MOMOBOT_DAS_ROUTE": "SMAT",
        "MOMOBOT_DAS_PORT": str(fake.port),
        "MOMOBOT_DAS_PASSWORD": fake.password,
        "MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,voice",
    }
    quiet = momobot("demo", env=env, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "no orders are sent" in quiet.stderr
    assert fake.lines() == []
    db = tmp_path / "demo.db"
    loud = momobot("demo", "--db", str(db), env={**env, "MOMOBOT_DAS_REPLAY": "1"}, cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "orders ARE sent" in loud.stderr
    lines = order_lines(fake)
    buys = [line for line in lines if line.startswith("B ")]
    assert len(buys) == 4 and all(line.split()[2] == "SMAT" and line.endswith("TIF=DAY+") for line in lines)
    # Each entry is a limit 5 cents over the recorded ask: the journal has the fake's fills beside it.
    legs = json.loads(momobot("trades", "--db", str(db)).stdout)
    assert legs and all(leg["broker_entry_price"] == round(leg["entry_price"] + 0.05, 2) for leg in legs)
    assert all(leg["broker_exit_price"] is not None for leg in legs)


def test_the_plugin_installed_but_not_configured_says_so_and_sends_nothing(tmp_path: Path) -> None:
    result = momobot("demo", env={"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,voice"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "installed but not configured" in result.stderr


def test_an_incomplete_das_table_stops_start_up_naming_what_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "momobot.toml"
    config.write_text('[das]\nuser = "trader"\n')
    result = momobot("demo", "--config", str(config), env={"MOMOBOT_DAS_REPLAY": "1"}, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "[das] account, route: required" in result.stderr


def test_serve_sends_real_orders_and_the_journal_carries_the_fakes_fills(
    fake: FakeDas, tmp_path: Path
) -> None:
    from api_helpers import start_api

    config = tmp_path / "momobot.toml"
    config.write_text(
        f'[das]\nuser = "trader"\naccount = "TR1234"\nroute = "SMAT"\nport = {fake.port}\nexit_offset = 2\n'
    )
    env = {"MOMOBOT_DAS_PASSWORD": fake.password, "MOMOBOT_DISABLE_PLUGINS": "hotkey_ws"}
    api = start_api(tmp_path, "--config", str(config), env=env)
    try:
        client = api.client
        assert client.post("/quotes", json={"symbol": "ABCD", "bid": 1.99, "ask": 2.00}).status_code == 200
        opened = client.post(
            "/trades", json={"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
        )
        assert opened.status_code == 201, opened.text
        # The bot knows the entry filled (its %TRADE and %POS read) before the price moves on.
        assert wait_until(lambda: client.get("/ping").json()["plugins"]["das"]["positions"] == {"ABCD": 100})
        assert client.post("/quotes", json={"symbol": "ABCD", "bid": 2.19, "ask": 2.20}).status_code == 200
        assert fake.wait_for(lambda: fake.positions.get("ABCD") == 50)
        assert client.post("/quotes", json={"symbol": "ABCD", "bid": 1.95, "ask": 1.96}).status_code == 200
        assert fake.wait_for(lambda: fake.positions.get("ABCD") == 0)
        assert order_lines(fake) == [
            "B ABCD SMAT 100 2.05 TIF=DAY+",
            "S ABCD SMAT 50 2.20 TIF=DAY+",
            "S ABCD SMAT 50 1.93 TIF=DAY+",  # the break-even stop: the bid less 2 cents
        ]
        ping = client.get("/ping").json()["plugins"]["das"]
        assert ping["state"] == "up" and ping["last_reconcile"]["mismatches"] == []
        assert wait_until(lambda: client.get("/ping").json()["plugins"]["das"]["fills"] == 3)
        panel = client.get("/ui/das")
        assert panel.status_code == 200 and "all positions match" in panel.text and "ABCD" in panel.text
    finally:
        code, err = api.stop()
    assert code == 0, err
    assert "secret" not in err
    result = momobot("trades", "--db", str(tmp_path / "journal.db"))
    legs = json.loads(result.stdout)
    assert [(leg["reason"], leg["broker_exit_price"]) for leg in legs] == [("tp1", 2.2), ("stop", 1.93)]
    assert [leg["broker_entry_price"] for leg in legs] == [2.05, 2.05]


def test_the_kill_switch_flattens_every_symbol_at_the_broker(fake: FakeDas, session: DasSession) -> None:
    for symbol in ("AAAA", "BBBB"):
        session.quote(symbol, 1.99, 2.00)
        session.open(symbol, 100, 2.20, 2.40, 1.90)
    assert session.pump(lambda: session.engine.counters.fills == 2)
    fake.fill_sells = False
    session.quote("AAAA", 2.19, 2.20)  # AAAA's take profit 1 rests at the broker
    session.engine.kill()
    assert fake.wait_for(lambda: len(fake.lines("CANCEL")) == 1)
    assert session.pump(lambda: len([line for line in order_lines(fake) if line.startswith("S ")]) == 4)
    for order in fake.working():  # the market takes the resting sells
        fake.fill(order.das_id)
    assert session.pump(lambda: not session.desk.exits and fake.positions == {"AAAA": 0, "BBBB": 0})
    assert fake.working() == [] and fake.lowest == {}  # never sold a share it did not hold
    sells = [line for line in order_lines(fake) if line.startswith("S ")]
    # AAAA: its take profit 1 (cancelled), then at once what the engine held, at the bid - 5c;
    # BBBB: all of it. The rest of AAAA follows once the take profit's cancel is confirmed.
    assert sells[:2] == ["S AAAA SMAT 50 2.20 TIF=DAY+", "S AAAA SMAT 50 2.14 TIF=DAY+"]
    assert "S BBBB SMAT 100 1.94 TIF=DAY+" in sells[2:4]


def test_a_manual_close_of_a_trade_restored_from_the_journal_sells_what_the_broker_holds(
    fake: FakeDas, tmp_path: Path
) -> None:
    db = tmp_path / "journal.db"
    first = DasSession(das_config(fake), db)
    first.entered("ABCD")
    first.close()
    fake.positions["ABCD"] = 60  # sold 40 by hand in DAS meanwhile
    again = DasSession(das_config(fake), db)
    try:
        assert again.pump(lambda: bool(again.alerts("reconcile_mismatch")))
        assert (
            "DAS holds 60 shares, the engine's open trades 100"
            in again.alerts("reconcile_mismatch")[0].message
        )
        again.quote("ABCD", 2.05, 2.06)
        again.engine.close_trade("ABCD")
        assert again.pump(lambda: not again.desk.exits and fake.positions == {"ABCD": 0})
        assert order_lines(fake)[-1] == "S ABCD SMAT 60 2.00 TIF=DAY+"  # never more than the broker holds
        assert fake.lowest == {}
        tokens = [order.token for order in fake.orders.values()]
        assert len(set(tokens)) == len(tokens)  # a restart never reuses a token the platform knows
    finally:
        again.close()


def test_an_exit_sell_lost_with_its_connection_is_sent_again_after_the_reconnect(
    fake: FakeDas, session: DasSession
) -> None:
    session.entered("ABCD")
    fake.drop_on = lambda line: line.startswith("NEWORDER") and " S " in line  # the sell never arrives
    session.quote("ABCD", 1.85, 1.86)  # stop
    link = session.plugin.link
    assert link is not None
    assert session.pump(lambda: not session.desk.exits and fake.positions == {"ABCD": 0}, timeout=15)
    assert link.connects == 2 and fake.lowest == {}
    assert order_lines(fake) == ["B ABCD SMAT 100 2.05 TIF=DAY+", "S ABCD SMAT 100 1.80 TIF=DAY+"]


def test_an_exit_cancels_the_symbols_open_orders_of_an_earlier_run(fake: FakeDas, tmp_path: Path) -> None:
    ten_am = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    db = tmp_path / "journal.db"
    first = DasSession(das_config(fake, catastrophic_stop_pct=10), db, wall=lambda: ten_am)
    first.quote("ABCD", 1.99, 2.00)
    first.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: [o.kind for o in fake.working("ABCD")] == ["STOP"])
    first.close()  # the broker-side stop stays: it protects the position while the bot is down
    again = DasSession(das_config(fake, catastrophic_stop_pct=10), db, wall=lambda: ten_am)
    try:
        again.quote("ABCD", 1.85, 1.86)  # the restored trade's stop
        assert again.pump(lambda: not again.desk.exits and fake.working() == [])
        assert fake.positions == {"ABCD": 0} and fake.lowest == {}
        stop_id = next(o.das_id for o in fake.orders.values() if o.kind == "STOP")
        assert f"CANCEL {stop_id}" in fake.lines("CANCEL")
    finally:
        again.close()


def test_fills_of_an_exit_kept_in_the_side_file_are_journaled_once_it_is_back(
    fake: FakeDas, session: DasSession, tmp_path: Path
) -> None:
    from conftest import SqliteLocker

    session.entered("ABCD")
    locker = SqliteLocker(tmp_path / "journal.db")
    try:
        session.quote("ABCD", 1.85, 1.86)  # stop: journaled to the side file, sent, filled
        assert session.engine.journal_pending
        assert fake.wait_for(lambda: fake.positions == {"ABCD": 0})
        assert session.pump(lambda: len(session.engine._fills_pending) == 1)
    finally:
        locker.release()
    assert session.pump(lambda: session.engine.counters.fills == 2 and not session.engine.journal_pending)
    assert sorted(f.price for f in session.journal.fills()) == [1.80, 2.05]


def test_a_take_profits_unsold_shares_sold_by_the_stop_are_its_fills(
    fake: FakeDas, session: DasSession
) -> None:
    session.entered("ABCD")
    fake.fill_sells = False
    session.quote("ABCD", 2.19, 2.20)  # TP1 rests unfilled
    assert fake.wait_for(lambda: len(fake.working("ABCD")) == 1)
    fake.fill_sells = True
    session.quote("ABCD", 1.95, 1.96)  # the break-even stop sells all 100
    assert session.pump(lambda: not session.desk.exits and session.engine.counters.fills == 3)
    executions = {row["order_id"]: row["intent"] for row in session.journal.executions()}
    by_intent = {executions[f.order_id]: (f.qty, f.price) for f in session.journal.fills()}
    # 50 to the stop's order, 50 to take profit 1's: each leg shows what its shares fetched.
    assert by_intent == {"entry": (100, 2.05), "stop": (50, 1.90), "take_profit": (50, 1.90)}


def test_a_rejected_exit_is_alerted_and_tried_again(fake: FakeDas, session: DasSession) -> None:
    session.entered("ABCD")
    fake.reject_next("Route closed")
    session.quote("ABCD", 1.85, 1.86)
    assert session.pump(lambda: not session.desk.exits and fake.positions == {"ABCD": 0})
    rejected = session.alerts("order_rejected")
    assert (
        len(rejected) == 1 and "Route closed" in rejected[0].message and "tried again" in rejected[0].message
    )
    assert order_lines(fake)[1:] == ["S ABCD SMAT 100 1.80 TIF=DAY+"] * 2


def test_a_rejection_without_a_reason_is_still_told(fake: FakeDas, session: DasSession) -> None:
    fake.fill_buys = False
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: len(fake.orders) == 1)
    order = next(iter(fake.orders.values()))
    fake.push(f"%ORDER {order.das_id} {order.token} ABCD B L 100 0 100 2.05 SMAT Rejected 09:30:00")
    assert session.pump(lambda: bool(session.alerts("order_rejected")))
    assert "no reason given" in session.alerts("order_rejected")[0].message


def test_an_exit_the_broker_has_no_shares_for_asks_again_then_says_so(
    fake: FakeDas, session: DasSession
) -> None:
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert session.pump(
        lambda: session.engine.counters.fills == 1 and session.desk.positions.get("ABCD") == 100
    )
    fake.positions["ABCD"] = 0  # sold elsewhere; no %POS pushed to this connection
    session.desk.positions["ABCD"] = 0  # ... and the plugin heard of it
    session.quote("ABCD", 1.85, 1.86)
    assert session.pump(lambda: not session.desk.exits)
    assert fake.lines("POSREFRESH") == ["POSREFRESH"]
    assert [line for line in order_lines(fake) if line.startswith("S ")] == []
    (mismatch,) = session.alerts("reconcile_mismatch")
    assert "DAS shows no ABCD shares to sell" in mismatch.message


# -- found by attacking it ------------------------------------------------------------------------


def receipts(fake: FakeDas, prefix: str) -> list[int]:
    with fake._lock:
        return [at for at, line in fake.received if line.startswith(prefix)]


def test_an_entry_waiting_for_the_link_is_never_sent_once_its_trade_closed(tmp_path: Path) -> None:
    with platform_down(tmp_path, entry_ttl=5.0) as (fake, s):
        s.quote("ABCD", 1.99, 2.00)
        s.open("ABCD", 100, 2.20, 2.40, 1.90)
        s.quote("ABCD", 1.85, 1.86)  # stop, while the entry still waits for the link
        fake.start()
        link = s.plugin.link
        assert link is not None
        assert s.pump(lambda: link.up and s.desk.snapshot_done and not s.desk.exits)
        assert fake.lines("NEWORDER") == []  # neither the entry nor a sell of shares never bought


def test_a_platform_that_stops_answering_orders_is_dropped_and_the_exit_sent_again(
    fake: FakeDas, session: DasSession
) -> None:
    session.entered("ABCD")
    fake.ignore_on = lambda line: line.startswith("NEWORDER") and " S " in line  # read, never answered
    session.quote("ABCD", 1.85, 1.86)
    assert session.pump(lambda: bool(session.alerts("link_down")), timeout=15)
    assert "no answer to NEWORDER" in session.alerts("link_down")[0].message
    fake.ignore_on = lambda line: False
    assert session.pump(lambda: not session.desk.exits and fake.positions == {"ABCD": 0}, timeout=15)
    assert fake.lowest == {}


def test_take_profit_1_never_sells_more_than_the_broker_holds(fake: FakeDas, session: DasSession) -> None:
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert session.pump(
        lambda: session.engine.counters.fills == 1 and session.desk.positions.get("ABCD") == 100
    )
    fake.positions["ABCD"] = 0  # flattened by hand in DAS ...
    fake.push(fake._pos_line("ABCD"))  # ... and the platform says so
    assert session.pump(lambda: session.desk.positions.get("ABCD") == 0)
    session.quote("ABCD", 2.19, 2.20)  # TP1
    assert session.pump(lambda: bool(session.alerts("das_take_profit_waiting")))
    assert [line for line in order_lines(fake) if line.startswith("S ")] == [] and fake.lowest == {}


def test_take_profit_1_before_the_entrys_fill_waits_for_it(fake: FakeDas, session: DasSession) -> None:
    fake.fill_buys = False
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: len(fake.orders) == 1)
    session.quote("ABCD", 2.19, 2.20)  # TP1 fires before the broker filled the entry
    fake.fill(next(iter(fake.orders)))
    assert session.pump(lambda: any(line.startswith("S ") for line in order_lines(fake)))
    assert order_lines(fake)[1] == "S ABCD SMAT 50 2.20 TIF=DAY+"


def test_a_trade_whose_entry_was_dropped_sells_none_of_the_accounts_shares(tmp_path: Path) -> None:
    with platform_down(tmp_path, entry_ttl=0.2) as (fake, s):
        fake.positions = {"ABCD": 300}  # the trader's own shares
        s.quote("ABCD", 1.99, 2.00)
        s.open("ABCD", 100, 2.20, 2.40, 1.90)
        assert s.pump(lambda: bool(s.alerts("das_entry_dropped")))
        fake.start()
        link = s.plugin.link
        assert link is not None
        assert s.pump(lambda: link.up and s.desk.snapshot_done)
        s.engine.close_trade("ABCD")  # as the alert says to
        assert s.pump(lambda: not s.desk.exits)
        assert fake.lines("NEWORDER") == [] and fake.positions == {"ABCD": 300}


def test_a_refused_catastrophic_stop_is_not_placed_again(fake: FakeDas, tmp_path: Path) -> None:
    ten_am = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    s = DasSession(das_config(fake, catastrophic_stop_pct=10), tmp_path / "journal.db", wall=lambda: ten_am)
    try:
        fake.reject_sells = "Stop orders are not allowed on this route"
        s.quote("ABCD", 1.99, 2.00)
        s.open("ABCD", 100, 2.20, 2.40, 1.90)
        assert s.pump(lambda: bool(s.alerts("order_rejected")))
        assert "no broker-side stop" in s.alerts("order_rejected")[0].message
        s.quote("ABCD", 2.00, 2.01)  # more events for the trade: no new stop order
        s.pump(lambda: False, timeout=0.5)
        assert len(fake.lines("NEWORDER")) == 2
    finally:
        s.close()


def test_rejected_exit_sells_are_tried_again_each_time_later(fake: FakeDas, session: DasSession) -> None:
    session.entered("ABCD")
    fake.reject_sells = "Route closed"
    session.quote("ABCD", 1.85, 1.86)
    assert session.pump(lambda: len(fake.lines("NEWORDER")) >= 4)  # the first sell and 2 retries
    fake.reject_sells = None
    assert session.pump(lambda: not session.desk.exits and fake.positions == {"ABCD": 0})
    sells = receipts(fake, "NEWORDER")[1:4]
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(sells)]
    assert gaps[0] >= 0.3 * 0.9 and gaps[1] >= 0.6 * 0.9  # exit_reprice_s, then twice that
    assert len(session.alerts("order_rejected")) == 1  # told once; the log has the rest


def test_a_refused_cancel_is_tried_again_not_hammered(fake: FakeDas, session: DasSession) -> None:
    trade = session.entered("ABCD")
    fake.fill_sells = False
    fake.refuse_cancels = True
    session.quote("ABCD", 2.19, 2.20)  # TP1 rests
    take_profit_id = platform_order(fake, session, trade, "take_profit").das_id
    session.quote("ABCD", 1.95, 1.96)  # stop: cancels TP1, which the platform refuses
    assert session.pump(lambda: fake.lines("CANCEL").count(f"CANCEL {take_profit_id}") >= 3)
    with fake._lock:
        cancels = [at for at, line in fake.received if line == f"CANCEL {take_profit_id}"]
    assert all((b - a) / 1e9 >= 0.3 * 0.9 for a, b in itertools.pairwise(cancels))
    fake.refuse_cancels = False
    fake.fill_sells = True
    for order in fake.working("ABCD"):
        fake.fill(order.das_id)
    assert session.pump(lambda: not session.desk.exits and fake.positions == {"ABCD": 0})


def test_a_login_refused_after_start_up_is_told_and_retried(fake: FakeDas, session: DasSession) -> None:
    link = session.plugin.link
    assert link is not None and link.up
    fake.password = "changed"
    fake.drop_connections()
    assert session.pump(lambda: bool(session.alerts("das_login_refused")), timeout=15)
    assert link.state != "refused"
    fake.password = "secret"
    assert session.pump(lambda: link.up and fake.logins == 2, timeout=15)


def test_a_platform_that_closes_right_after_each_login_is_backed_off(tmp_path: Path) -> None:
    with FakeDas() as fake:
        fake.drop_on = lambda line: False
        s = DasSession(das_config(fake, reconnect_max_delay=1.0), tmp_path / "journal.db")
        try:
            original = fake._login

            def login_then_close(client: object, line: str) -> bool:
                original(client, line)  # type: ignore[arg-type]
                return False  # ... and close the connection

            fake._login = login_then_close  # type: ignore[method-assign]
            fake.drop_connections()
            assert s.pump(lambda: fake.logins >= 6, timeout=20)
            logins = receipts(fake, "LOGIN")[-4:]
            gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(logins)]
            assert gaps[-1] >= 0.4 * 0.9  # 0.1, 0.2, 0.4, 0.8 ...: not a reconnect storm
        finally:
            s.close()


def test_an_order_line_naming_another_symbol_under_our_token_is_not_ours(
    fake: FakeDas, session: DasSession
) -> None:
    fake.fill_buys = False
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: len(fake.orders) == 1)
    token = next(iter(fake.orders.values())).token
    fake.push(f"%ORDER 999 {token} WXYZ B L 10 0 0 1.00 SMAT Executed 09:30:00")
    fake.push("%TRADE 777 WXYZ B 10 1.00 SMAT 09:30:00 999")
    session.pump(lambda: False, timeout=0.3)
    assert session.journal.fills() == []


def test_a_lowercase_symbol_is_sent_upper_case_and_one_das_cannot_take_is_told(
    fake: FakeDas, session: DasSession
) -> None:
    session.quote("abcd", 1.99, 2.00)
    session.open("abcd", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: len(fake.lines("NEWORDER")) == 1)
    assert order_lines(fake) == ["B ABCD SMAT 100 2.05 TIF=DAY+"]
    session.quote("A=B", 1.99, 2.00)
    session.open("A=B", 100, 2.20, 2.40, 1.90)
    (refused,) = [a for a in session.alerts("order_rejected") if a.symbol == "A=B"]
    assert "not a symbol DAS takes" in refused.message


def test_a_take_profit_that_never_went_out_still_gets_its_shares_fills(
    fake: FakeDas, session: DasSession
) -> None:
    fake.hold()  # the entry fills at once, but the platform's lines saying so come late
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: fake.positions.get("ABCD") == 100)
    session.quote("ABCD", 2.19, 2.20)  # TP1 waits for the entry's fill ...
    session.quote("ABCD", 1.95, 1.96)  # ... and the break-even stop comes first
    fake.release()
    assert session.pump(lambda: not session.desk.exits and session.engine.counters.fills == 3)
    executions = {row["order_id"]: row["intent"] for row in session.journal.executions()}
    by_intent = {executions[f.order_id]: (f.qty, f.price) for f in session.journal.fills()}
    assert by_intent == {"entry": (100, 2.05), "stop": (50, 1.90), "take_profit": (50, 1.90)}
    assert fake.positions == {"ABCD": 0} and fake.lowest == {}


def test_an_entry_the_platform_never_took_is_told_and_never_sent_again(
    fake: FakeDas, session: DasSession
) -> None:
    fake.ignore_on = lambda line: line.startswith("NEWORDER")  # read, never answered
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert session.pump(lambda: bool(session.alerts("das_entry_dropped")), timeout=15)
    assert "never took it" in session.alerts("das_entry_dropped")[0].message
    fake.ignore_on = lambda line: False
    link = session.plugin.link
    assert link is not None
    assert session.pump(lambda: link.up and session.desk.snapshot_done)
    assert len(fake.lines("NEWORDER")) == 1 and fake.orders == {}  # read once, ignored, not re-sent


# -- found by attacking it again -------------------------------------------------------------------


def test_an_order_written_while_the_login_lists_come_is_not_counted_lost(tmp_path: Path) -> None:
    import threading

    class SlowLists(FakeDas):
        """Answers the login at once, then its order list only when a test lets it."""

        go = threading.Event()

        def _login(self, client, line):  # type: ignore[no-untyped-def]
            if self.logins == 0:
                return super()._login(client, line)
            with self._lock:
                orders = [self._order_line(o) for o in self.orders.values()]  # as at the login
                self.logins += 1
                self._clients.append(client)
            self._send(client, "#LOGIN SUCCESSED", *self._position_list())
            trades = list(self.trades)

            def rest() -> None:  # the rest of the lists, late, while orders are served
                self.go.wait(10)
                self._send(client, "#Order", *orders, "#OrderEnd", "#Trade", *trades, "#TradeEnd")

            threading.Thread(target=rest, daemon=True).start()
            return True

    fake = SlowLists()
    with fake:
        s = DasSession(das_config(fake), tmp_path / "journal.db")
        try:
            link = s.plugin.link
            assert link is not None
            fake.drop_connections()
            assert s.pump(lambda: fake.logins == 2 and link.up)
            fake.fill_buys = False
            s.quote("ABCD", 1.99, 2.00)
            s.open("ABCD", 100, 2.20, 2.40, 1.90)  # written before this login's order list came
            assert s.pump(lambda: all(w.das_id for w in s.desk.orders.values()))
            fake.go.set()
            assert s.pump(lambda: s.desk.snapshot_done)
            assert s.alerts("das_entry_dropped") == []
            fake.fill(next(iter(fake.orders)))  # still working: it fills
            assert s.pump(lambda: s.engine.counters.fills == 1)
            s.quote("ABCD", 1.85, 1.86)
            assert s.pump(lambda: not s.desk.exits and fake.positions == {"ABCD": 0})
            assert fake.lowest == {}
        finally:
            s.close()


def test_an_older_platform_without_tokens_on_order_lines_still_trades_and_journals(
    fake: FakeDas, session: DasSession
) -> None:
    fake.old_layout = True
    session.entered("ABCD")
    session.quote("ABCD", 1.85, 1.86)
    assert session.pump(lambda: not session.desk.exits and session.engine.counters.fills == 2)
    assert fake.positions == {"ABCD": 0} and fake.lowest == {}
    assert session.desk.others == {}


def test_take_profit_1_during_a_partial_entry_sells_the_rest_as_it_fills(
    fake: FakeDas, session: DasSession
) -> None:
    fake.fill_buys = False
    session.quote("ABCD", 1.99, 2.00)
    session.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: len(fake.orders) == 1)
    entry = next(iter(fake.orders))
    fake.fill(entry, 30)
    assert session.pump(
        lambda: session.engine.counters.fills == 1 and session.desk.positions.get("ABCD") == 30
    )
    session.quote("ABCD", 2.19, 2.20)  # TP1 of 50: 30 can go now
    assert session.pump(lambda: "S ABCD SMAT 30 2.20 TIF=DAY+" in order_lines(fake))
    fake.fill(entry)  # the other 70
    assert session.pump(lambda: "S ABCD SMAT 20 2.20 TIF=DAY+" in order_lines(fake))
    assert fake.positions == {"ABCD": 50}


def test_an_exit_at_a_bid_that_does_not_move_is_not_cancelled_and_resent(
    fake: FakeDas, session: DasSession
) -> None:
    session.entered("ABCD")
    fake.fill_sells = False
    session.quote("ABCD", 1.85, 1.86)  # the stop's sell rests; the quote stays (a halt)
    assert fake.wait_for(lambda: len(fake.lines("NEWORDER")) == 2)
    session.pump(lambda: False, timeout=1.2)  # four reprice periods
    assert fake.lines("CANCEL") == [] and len(fake.lines("NEWORDER")) == 2
    session.quote("ABCD", 1.75, 1.76)  # the bid moves: now it is re-priced
    assert session.pump(lambda: "S ABCD SMAT 100 1.70 TIF=DAY+" in order_lines(fake))


def test_a_refused_cancel_of_an_exit_sell_is_tried_again(fake: FakeDas, session: DasSession) -> None:
    trade = session.entered("ABCD")
    fake.fill_sells = False
    session.quote("ABCD", 1.85, 1.86)
    sell_id = platform_order(fake, session, trade, "stop").das_id
    fake.refuse_cancels = True
    session.quote("ABCD", 1.75, 1.76)  # re-price: the cancel is refused, and tried again
    assert session.pump(lambda: fake.lines("CANCEL").count(f"CANCEL {sell_id}") >= 2)
    fake.refuse_cancels = False
    assert session.pump(lambda: "S ABCD SMAT 100 1.70 TIF=DAY+" in order_lines(fake))


def test_an_exit_after_a_restart_also_sells_what_the_earlier_runs_take_profit_offered(
    fake: FakeDas, tmp_path: Path
) -> None:
    # Found by attack: TP1's sell rests unfilled, the bot restarts; the new run's exit cancelled
    # that sell as "not this run's" and sold only the engine's 50: 50 shares left at the broker.
    db = tmp_path / "journal.db"
    first = DasSession(das_config(fake), db)
    first.entered("ABCD")
    fake.fill_sells = False
    first.quote("ABCD", 2.20, 2.21)  # TP1: a sell of 50 rests
    assert fake.wait_for(lambda: [o.side for o in fake.working("ABCD")] == ["S"])
    first.close()
    fake.fill_sells = True
    again = DasSession(das_config(fake), db)
    try:
        again.quote("ABCD", 1.95, 1.96)  # the break-even stop of the restored trade
        assert again.pump(lambda: not again.desk.exits and not fake.working("ABCD"), timeout=15)
        assert fake.positions == {"ABCD": 0} and fake.lowest == {}
    finally:
        again.close()


def test_a_restored_trades_exit_sells_a_take_profit_that_never_went(tmp_path: Path) -> None:
    # Found by attack: TP1 waited for the link (down), then the exit dropped it ("its exit sells
    # it"), but a restored trade's exit sold only the engine's 50.
    from hotkey_helpers import free_port

    port = free_port()
    fake = FakeDas(port=port).start()
    db = tmp_path / "journal.db"
    first = DasSession(das_config(fake, port=port), db)
    first.entered("ABCD")
    first.close()
    fake.close()  # the platform goes away before the bot comes back
    down = FakeDas(port=port)
    down.positions = {"ABCD": 100}  # the account still holds the entry
    again = DasSession(das_config(down, port=port), db)
    try:
        again.quote("ABCD", 2.20, 2.21)  # TP1 while the link is down: it waits
        again.quote("ABCD", 2.05, 2.06)
        again.engine.close_trade("ABCD")  # the last exit: TP1's wait ends, the exit sells it all
        down.start()
        assert again.pump(lambda: not again.desk.exits, timeout=15)
        assert down.positions == {"ABCD": 0} and down.lowest == {}
    finally:
        again.close()
        down.close()


def killed_while_tp1_waits_for_the_fill(fake: FakeDas, db: Path) -> None:
    """TP1 fires before the plugin read the entry's fill (a busy link thread): it waits, unwritten;
    then the process dies (no shutdown hook, the link just goes)."""
    first = DasSession(das_config(fake), db)
    first.quote("ABCD", 1.99, 2.00)
    fake.hold()  # the platform filled the buy; the plugin has not read it yet
    first.open("ABCD", 100, 2.20, 2.40, 1.90)
    assert fake.wait_for(lambda: fake.positions.get("ABCD") == 100)
    first.quote("ABCD", 2.20, 2.21)
    assert [p.trade.symbol for p in first.desk._pending_tp] == ["ABCD"]
    assert first.plugin.link is not None
    first.plugin.link.close()
    first.journal.close()
    fake.release()


def test_a_take_profit_a_killed_run_never_wrote_goes_after_the_restart(tmp_path: Path) -> None:
    # CI found it (test_das_freeze, once): the restarted engine held 50, the platform 100, and
    # the TP1 the engine counted as sold was never written: the runner's exit then sold only 50.
    fake = FakeDas().start()
    killed_while_tp1_waits_for_the_fill(fake, tmp_path / "journal.db")
    again = DasSession(das_config(fake), tmp_path / "journal.db")
    try:
        assert again.engine.open_trades["ABCD"].remaining == 50
        assert again.pump(lambda: fake.positions == {"ABCD": 50})  # TP1 went at last
        again.quote("ABCD", 2.05, 2.06)
        again.engine.close_trade("ABCD")
        assert again.pump(lambda: not again.desk.exits)
        assert fake.wait_for(lambda: fake.positions == {"ABCD": 0}) and fake.lowest == {}
    finally:
        again.close()
        fake.close()


def test_a_restored_trades_exit_sells_a_take_profit_a_killed_run_never_wrote(tmp_path: Path) -> None:
    fake = FakeDas().start()
    killed_while_tp1_waits_for_the_fill(fake, tmp_path / "journal.db")
    fake.hold()  # the restarted plugin has not read the position yet when the trade is closed
    again = DasSession(das_config(fake), tmp_path / "journal.db")
    try:
        again.quote("ABCD", 2.05, 2.06)
        again.engine.close_trade("ABCD")  # the last exit: it sells the waiting TP1 too
        fake.release()
        assert again.pump(lambda: not again.desk.exits)
        assert fake.wait_for(lambda: fake.positions == {"ABCD": 0}) and fake.lowest == {}
    finally:
        again.close()
        fake.close()


class LateBuys(FakeDas):
    """A platform that runs a buy only after the connection it came on is gone (it froze with
    the line unread, and woke after the bot logged in again)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hold_buys = False
        self.side = "B"  # the side whose new orders are held
        self.late: list[tuple[Any, str]] = []

    def _command(self, client: Any, line: str) -> None:
        if self.hold_buys and line.startswith("NEWORDER") and line.split()[2] == self.side:
            self.late.append((client, line))
            return
        super()._command(client, line)

    def buy_late(self) -> None:
        with self._lock:
            self.hold_buys = False
            late, self.late = self.late, []
        for client, line in late:
            super()._command(client, line)


def test_an_entry_counted_lost_that_the_platform_buys_late_is_sold_by_the_exit(tmp_path: Path) -> None:
    # Found by attack: the exit of a trade whose entry was "never taken" ended at once (it held
    # nothing); the platform bought the entry a moment later: 100 shares nobody watched.
    fake = LateBuys()
    fake.start()
    s = DasSession(das_config(fake), tmp_path / "journal.db")
    try:
        s.quote("ABCD", 1.99, 2.00)
        fake.hold_buys = True
        s.open("ABCD", 100, 2.20, 2.40, 1.90)
        assert fake.wait_for(lambda: bool(fake.late))
        fake.drop_connections()  # the bot logs in again; the lists lack the buy
        assert s.pump(lambda: bool(s.alerts("das_entry_dropped")), timeout=15)
        assert "may still buy it" in s.alerts("das_entry_dropped")[0].message
        s.engine.close_trade("ABCD")  # as the alert says; the exit waits for the platform
        fake.buy_late()
        assert s.pump(lambda: not s.desk.exits and not fake.working("ABCD"), timeout=15)
        assert fake.positions == {"ABCD": 0} and fake.lowest == {}
    finally:
        s.close()
        fake.close()


def test_a_take_profit_counted_lost_that_the_platform_runs_late_is_not_sent_again(tmp_path: Path) -> None:
    # Found by attack: TP1 counted lost was queued to go again; the platform ran the old one, and
    # the copy sold the runner too (at TP1's price), leaving the engine's 50 with no shares.
    fake = LateBuys()
    fake.start()
    s = DasSession(das_config(fake), tmp_path / "journal.db")
    try:
        s.entered("ABCD")
        fake.side, fake.hold_buys = "S", True
        s.quote("ABCD", 2.20, 2.21)  # TP1's sell, held unread
        assert fake.wait_for(lambda: bool(fake.late))
        fake.drop_connections()
        assert s.pump(lambda: bool(s.desk._pending_tp), timeout=15)  # counted lost: queued again
        fake.buy_late()  # the platform runs the old one after all
        assert s.pump(lambda: not s.desk._pending_tp, timeout=15)
        assert [line.split()[2] for line in fake.lines("NEWORDER")].count("S") == 1
        assert fake.positions == {"ABCD": 50}
        s.engine.close_trade("ABCD")
        assert s.pump(lambda: not s.desk.exits and not fake.working("ABCD"), timeout=15)
        assert fake.positions == {"ABCD": 0} and fake.lowest == {}
    finally:
        s.close()
        fake.close()
