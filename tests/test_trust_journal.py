"""Faults that combine around the journal (trust III): a lock or a full disk, then a crash.

Real ``momobot serve`` processes, a real SQLite file held by another process, SIGKILL, and a
real WebSocket receiver on 127.0.0.1 for hotkey_ws (JSON), so "pressed twice" is counted
where a trader would see it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import ApiProcess, start_api

from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.sidefile import LOST_END
from momobot_core.wirelog import WireFile, WireLog, cut_sequences, log_incomplete, read_records

from conftest import Recorder, SqliteLocker, make_hooks, momobot, quote, side_file
from hotkey_helpers import HotkeyTestServer, wait_until


def pressed(hotkeys: HotkeyTestServer) -> Counter[tuple[str, str]]:
    """How many times each (event, command) reached the hotkey server."""
    return Counter((m["event"], m["command"]) for m in map(json.loads, hotkeys.messages))


def tp1_marked(db: Path) -> bool:
    """The side file holds TP1's event and its dispatched mark (the entry's mark may be there
    too, when the journal could not take the entry's fold either: it is not TP1's)."""
    records = [json.loads(line) for line in side_file(db) if line.startswith("{")]
    tp1 = {r["id"] for r in records if r.get("kind") == "tp1"}
    return any(r.get("dispatched") in tp1 for r in records)


def tp1_again_then_tp2(server: ApiProcess, hotkeys: HotkeyTestServer) -> None:
    """A quote at TP1 again (nothing to press: TP1 is done), then TP2 (its sell_ask, once)."""
    before = len(hotkeys.messages)
    for bid, ask in ((2.20, 2.21), (2.39, 2.40)):
        server.client.post("/quotes", json={"symbol": "ABCD", "bid": bid, "ask": ask}).raise_for_status()
    assert len(hotkeys.wait_for(before + 1, timeout=15)) == before + 1  # TP2's sell_ask
    assert wait_until(lambda: server.client.get("/positions").json() == [])


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
            assert side_file(db)  # the exit is in the side file, not the journal
            # Its hooks ran, and the side file says so (killed before that, the restart would
            # rightly show the trade unconfirmed, and press nothing for it).
            assert wait_until(lambda: tp1_marked(db))
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
            tp1_again_then_tp2(server, hotkeys)
        finally:
            server.stop()
    assert pressed(hotkeys)[("tp1", "sell_ask")] == 1
    with Journal(db, readonly=True) as journal:
        assert [(leg.reason, leg.qty) for leg in journal.legs()] == [("tp1", 50), ("tp2", 50)]


# -- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own (root only; skipped where the machine does not allow a mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not allow a tmpfs mount: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the file to remove to free it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:
        for size in (64 * 1024, 4096, 1):
            try:
                while True:
                    fh.write(bytes(size))
            except OSError:
                continue
    return filler


def test_a_full_disk_then_a_restart_never_presses_tp1_twice(tmp_path: Path, small_disk: Path) -> None:
    db = small_disk / "journal.db"
    with HotkeyTestServer() as hotkeys:
        env = {
            "MOMOBOT_DISABLE_PLUGINS": "das",
            "MOMOBOT_HOTKEY_URL": hotkeys.url,
            "MOMOBOT_HOTKEY_FORMAT": "json",
            "MOMOBOT_HOTKEY_SEQUENCE_DELAY": "0",
        }
        server = start_api(tmp_path, env=env, db=db)
        server.client.post("/quotes", json={"symbol": "ABCD", "bid": 1.99, "ask": 2.00}).raise_for_status()
        server.client.post("/quotes", json={"symbol": "EFGH", "bid": 4.99, "ask": 5.00}).raise_for_status()
        opened = server.client.post(
            "/trades", json={"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
        )
        assert opened.status_code == 201, opened.text
        assert len(hotkeys.wait_for(1, timeout=15)) == 1
        filler = fill(small_disk)
        server.client.post("/quotes", json={"symbol": "ABCD", "bid": 2.20, "ask": 2.21}).raise_for_status()
        assert len(hotkeys.wait_for(4, timeout=15)) == 4  # TP1 pressed: an exit is never held back
        assert side_file(db)  # recorded in the room the side file held from the start
        # Its hooks ran, and the side file says so (else the restart rightly shows it unconfirmed).
        assert wait_until(lambda: tp1_marked(db))
        ping = server.client.get("/ping").json()
        assert ping["journal"] != "ok" and ping["halted"] is True, ping
        entry = server.client.post(
            "/trades", json={"symbol": "EFGH", "qty": 10, "tp1": 5.5, "tp2": 6.0, "stop": 4.5}
        )
        assert entry.status_code == 503, entry.text
        server.stop(signal.SIGKILL)

        filler.unlink()
        server = start_api(tmp_path, env=env, db=db)
        try:
            (position,) = server.client.get("/positions").json()
            alerts = server.client.get("/alerts").json()
            held = (position["remaining"], position["tp1_hit"], position["unconfirmed"])
            assert held == (50, True, False), alerts
            assert server.client.get("/ping").json()["journal"] == "ok"
            tp1_again_then_tp2(server, hotkeys)
        finally:
            server.stop()
    assert pressed(hotkeys)[("tp1", "sell_ask")] == 1
    with Journal(db, readonly=True) as journal:
        assert [(leg.reason, leg.qty) for leg in journal.legs()] == [("tp1", 50), ("tp2", 50)]


def test_the_wire_log_keeps_what_went_out_on_a_full_disk_and_says_when_it_ran_out(small_disk: Path) -> None:
    db = small_disk / "journal.db"
    wire_path = Path(f"{db}.wire")
    wire = WireFile(wire_path, reserve=16 * 1024)
    log = WireLog(wire, "hotkey_ws")
    tp1 = {"trade_id": "t1", "symbol": "ABCD", "event": "tp1"}
    log.write(
        {"batch": "b1", "status": "queued", "commands": ["sell_ask", "cancel_all", "break_even"], **tp1}
    )
    filler = fill(small_disk)
    log.write({"batch": "b1", "status": "sent", "command": "sell_ask"})  # into the room held ahead
    log.write({"batch": "b1", "status": "sent", "command": "cancel_all"})
    (cut,) = cut_sequences(read_records(wire_path))
    assert (cut.sent, cut.unsent, cut.log_incomplete) == (("sell_ask", "cancel_all"), ("break_even",), False)
    for n in range(400):  # far past the room: the last of it says so, then nothing more is kept
        log.write({"batch": f"x{n}", "status": "sent", "command": "sell_all_bid", "pad": "." * 40})
    log.write({"batch": "b1", "status": "sent", "command": "break_even"})  # not kept
    records = read_records(wire_path)
    assert log_incomplete(records) and records[-1]["status"] == "incomplete"
    (cut, *_) = cut_sequences(records)
    assert cut.sent == ("sell_ask", "cancel_all") and cut.log_incomplete
    wire.close()  # the process stops here (killed: nothing is folded in)
    filler.unlink()

    restarted = live_engine(db, Recorder())
    kinds = [a.kind for a in restarted.alerts]
    assert "wire_log_incomplete" in kinds, kinds
    told = next(a for a in restarted.alerts if a.kind == "sequence_cut" and a.detail.get("trade_id") == "t1")
    assert "may or may not have gone out" in told.message and "sent nothing" not in told.message
    assert restarted.journal is not None
    restarted.journal.close()
    assert read_records(wire_path) == []  # folded into the journal


def no_room_past_the_marks(db: Path) -> None:
    """The side file's records area gives back the page its entry used (the entry went through
    it, then into the journal): past the marks' room it has none, as a reserve used up."""
    pending = Path(f"{db}.pending")
    assert pending.stat().st_size >= LOST_END and not side_file(db)
    os.truncate(pending, LOST_END)


def live_engine(db: Path, recorder: Recorder, **journal: Any) -> Engine:
    engine = Engine(hooks=make_hooks(recorder), journal=Journal(db, **journal), mode="live")
    engine.start()
    return engine


def test_an_exit_past_the_side_files_room_comes_back_unconfirmed_never_as_before(small_disk: Path) -> None:
    db = small_disk / "journal.db"
    recorder = Recorder()
    engine = live_engine(db, recorder, side_file_reserve=LOST_END)  # no room beyond the marks
    engine.on_quote(quote("ABCD", 2.00))
    trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    no_room_past_the_marks(db)
    filler = fill(small_disk)
    engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1: pressed; neither journal nor records area takes it
    assert recorder.events()[1:] == ["target tp1", "order take_profit sell 50"]
    assert engine.journal_state.startswith("exits not recorded") and engine.entries_halted
    assert "comes back unconfirmed" in engine.alerts[-1].message
    assert engine.journal is not None
    engine.journal.close()  # as good as a kill for the files: nothing more is written
    filler.unlink()

    again = Recorder()
    restarted = live_engine(db, again)
    restored = restarted.open_trades["ABCD"]
    assert restored.id == trade.id and restored.unconfirmed  # never simply as before its exit
    (alert,) = [a for a in restarted.alerts if a.kind == "unconfirmed_trade"]
    assert "tp1 exit" in alert.message and "could not be recorded" in alert.message
    restarted.on_quote(quote("ABCD", 2.21, t=2))
    assert again.events() == []  # nothing sent until a person checks the broker
    assert restarted.journal is not None
    restarted.journal.close()


def lost_tp1(db: Path, small_disk: Path) -> str:
    """A trade whose TP1 went out while neither the journal nor the side file's records could
    take it: only its mark (with the whole event) was kept. Returns the trade's id."""
    engine = live_engine(db, Recorder(), side_file_reserve=LOST_END)
    engine.on_quote(quote("ABCD", 2.00))
    trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    no_room_past_the_marks(db)
    filler = fill(small_disk)
    engine.on_quote(quote("ABCD", 2.21, t=1))
    assert engine.journal is not None
    engine.journal.close()
    filler.unlink()
    return trade.id


def test_a_lost_exit_the_broker_shows_done_is_recorded_as_sent_and_never_pressed_again(
    small_disk: Path,
) -> None:
    db = small_disk / "journal.db"
    trade_id = lost_tp1(db, small_disk)
    recorder = Recorder()
    engine = live_engine(db, recorder)
    assert engine.lost_exits(trade_id) == ["tp1"]
    with pytest.raises(TradeRefused, match="say what your broker shows") as refused:
        engine.confirm_trade("ABCD")  # a plain confirm would press TP1 again at 2.21
    assert refused.value.kind == "lost_exit" and engine.open_trades["ABCD"].unconfirmed
    confirmed = engine.confirm_trade("ABCD", exits_sent=True)
    assert (confirmed.remaining, confirmed.tp1_hit, confirmed.stop, confirmed.unconfirmed) == (
        50,
        True,
        2.00,
        False,
    )
    assert engine.book.realised == pytest.approx(50 * 0.21)  # the day's P&L holds the leg
    engine.on_quote(quote("ABCD", 2.21, t=2))
    assert recorder.events() == []  # TP1 is not pressed twice
    engine.on_quote(quote("ABCD", 2.41, t=3))
    assert recorder.events()[:2] == ["target tp2", "order take_profit sell 50"]
    assert engine.journal is not None
    assert [(leg.reason, leg.qty) for leg in engine.journal.legs()] == [("tp1", 50), ("tp2", 50)]
    engine.journal.close()
    restarted = live_engine(db, Recorder())
    assert restarted.open_trades == {} and not [a for a in restarted.alerts if a.kind == "unconfirmed_trade"]
    assert restarted.journal is not None
    restarted.journal.close()


def test_a_lost_exit_the_broker_shows_not_done_resumes_the_trade_as_before_it(small_disk: Path) -> None:
    db = small_disk / "journal.db"
    lost_tp1(db, small_disk)
    recorder = Recorder()
    engine = live_engine(db, recorder)
    resumed = engine.confirm_trade("ABCD", exits_sent=False)
    assert (resumed.remaining, resumed.tp1_hit, resumed.unconfirmed) == (100, False, False)
    engine.on_quote(quote("ABCD", 2.21, t=2))  # TP1 goes out now, once
    assert recorder.events()[:2] == ["target tp1", "order take_profit sell 50"]
    assert engine.journal is not None
    assert [(leg.reason, leg.qty) for leg in engine.journal.legs()] == [("tp1", 50)]
    assert engine.lost_exits(resumed.id) == []
    engine.journal.close()


def test_confirm_answers_409_until_told_whether_a_lost_exit_went_out(
    tmp_path: Path, small_disk: Path
) -> None:
    db = small_disk / "journal.db"
    lost_tp1(db, small_disk)
    api = start_api(tmp_path, db=db)
    try:
        page = api.client.get("/")  # the dashboard asks the question with two buttons
        assert "tp1 done" in page.text and "tp1 not done" in page.text
        plain = api.client.post("/confirm", json={"symbol": "ABCD"})
        assert plain.status_code == 409 and "exits_sent" in plain.json()["error"]
        loose = api.client.post("/confirm", json={"symbol": "ABCD", "exits_sent": "yes"})
        assert loose.status_code == 422
        done = api.client.post("/confirm", json={"symbol": "ABCD", "exits_sent": True})
        assert done.status_code == 200, done.text
        assert (done.json()["remaining"], done.json()["tp1_hit"]) == (50, True)
        assert api.client.get("/ping").json()["unconfirmed"] == []
        again = api.client.post("/confirm", json={"symbol": "ABCD", "exits_sent": True})
        assert again.status_code == 409  # not unconfirmed any more
        assert [leg["reason"] for leg in api.client.get("/trades").json()] == ["tp1"]
    finally:
        api.stop()


def test_exits_kept_in_memory_are_journaled_once_the_disk_has_room(small_disk: Path) -> None:
    db = small_disk / "journal.db"
    recorder = Recorder()
    engine = live_engine(db, recorder, side_file_reserve=LOST_END)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    no_room_past_the_marks(db)
    filler = fill(small_disk)
    engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1, kept in memory and marked
    engine.on_quote(quote("ABCD", 2.41, t=2))  # TP2, the same
    engine.tick()
    assert engine.entries_halted
    filler.unlink()
    engine.tick()  # serve's loop does this twice a second
    assert (engine.journal_state, engine.entries_halted) == ("ok", False)
    assert engine.alerts[-1].kind == "resumed"
    assert engine.journal is not None
    assert [(leg.reason, leg.qty) for leg in engine.journal.legs()] == [("tp1", 50), ("tp2", 50)]
    assert engine.journal.undispatched() == []
    engine.journal.close()
    restarted = live_engine(db, Recorder())
    assert restarted.open_trades == {} and not [a for a in restarted.alerts if a.kind == "unconfirmed_trade"]
    assert restarted.journal is not None
    restarted.journal.close()


def test_a_side_file_from_before_the_reserve_is_still_written_in_at_start(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    engine = live_engine(db, Recorder())
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    locker = SqliteLocker(db)
    engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1 into the side file
    assert engine.journal is not None
    engine.journal.close()
    locker.release()
    # The older layout: the same lines, plain, from the first byte.
    Path(f"{db}.pending").write_text("".join(line + "\n" for line in side_file(db)))
    restarted = live_engine(db, Recorder())
    assert restarted.open_trades["ABCD"].tp1_hit and not restarted.open_trades["ABCD"].unconfirmed
    assert side_file(db) == [] and restarted.journal_state == "ok"
    assert restarted.journal is not None
    assert [leg.reason for leg in restarted.journal.legs()] == ["tp1"]
    restarted.journal.close()


def test_a_kill_while_the_journal_is_locked_still_halts_the_day_after_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    engine = live_engine(db, Recorder())
    for symbol in ("AAAA", "BBBB"):
        engine.on_quote(quote(symbol, 2.00))
        engine.open_trade(symbol, 100, 2.20, 2.40, 1.90)
    locker = SqliteLocker(db)
    try:
        engine.kill()  # the halt and both flattens go to the side file
        assert engine.entries_halted and engine.book.halt is not None
        assert engine.journal is not None
        engine.journal.close()  # as good as a kill for the files: nothing more is written
    finally:
        locker.release()
    restarted = live_engine(db, Recorder())
    assert restarted.book.halt is not None and restarted.book.halt.reason == "kill_switch"
    assert restarted.open_trades == {}
    restarted.on_quote(quote("CCCC", 2.00))
    with pytest.raises(TradeRefused, match="kill"):
        restarted.open_trade("CCCC", 100, 2.20, 2.40, 1.90)
    assert restarted.journal is not None
    restarted.journal.close()


def test_a_journal_started_through_a_link_finds_its_side_file(tmp_path: Path) -> None:
    db = side_file_with_tp1(tmp_path)  # TP1 waits in journal.db.pending
    link = tmp_path / "current.db"
    link.symlink_to(db)
    recorder = Recorder()
    restarted = live_engine(link, recorder)
    trade = restarted.open_trades["ABCD"]
    assert (trade.tp1_hit, trade.remaining) == (True, 50)  # never as before TP1
    restarted.on_quote(quote("ABCD", 2.21, t=2))
    assert recorder.events() == []
    assert restarted.journal is not None
    restarted.journal.close()
    assert not Path(f"{link}.pending").exists()


def test_an_event_folded_in_late_never_opens_a_closed_trade_again(tmp_path: Path) -> None:
    db = side_file_with_tp1(tmp_path)
    stale = Path(f"{db}.pending").read_bytes()
    engine = live_engine(db, Recorder())
    engine.on_quote(quote("ABCD", 1.99, t=2))  # the break-even stop closes the rest
    assert engine.open_trades == {} and engine.journal is not None
    engine.journal.close()
    Path(f"{db}.pending").write_bytes(stale)  # the TP1 record again, from another name for it
    again = live_engine(db, Recorder())
    assert again.open_trades == {}  # the stale TP1 event does not bring 50 shares back
    assert again.journal is not None
    again.journal.close()


def test_a_mark_that_did_not_go_whole_leaves_nothing_behind(small_disk: Path) -> None:
    from momobot_core.sidefile import SideFile

    filler = fill(small_disk)
    with filler.open("r+b") as fh:  # one page free: the header's
        fh.truncate(filler.stat().st_size - 4096)
    side = SideFile(small_disk / "journal.db.pending")
    assert side.reserve_error  # no room could be held
    with pytest.raises(OSError):
        side.mark_lost("x" * 6000)  # past the one page: part of it written, then no room
    side.mark_lost('{"lost": "e1"}')
    assert side.lost() == [('{"lost": "e1"}', "ok")]  # no tail of the first one read as a line
    side.close()


def test_entries_wait_while_no_room_is_held_for_exits(small_disk: Path) -> None:
    db = small_disk / "journal.db"
    Journal(db).close()  # the journal's own pages exist
    Path(f"{db}.pending").unlink()  # and its side file's room is given back
    filler = fill(small_disk)
    with filler.open("r+b") as fh:  # less than the side file's room is left
        fh.truncate(filler.stat().st_size - 300 * 1024)
    recorder = Recorder()
    engine = live_engine(db, recorder)
    assert engine.entries_halted and engine.journal_state.startswith("no room held for exits")
    assert any(a.kind == "journal_error" and "no room is held" in a.message for a in engine.alerts)
    engine.on_quote(quote("ABCD", 2.00))
    with pytest.raises(TradeRefused, match="no room is held") as refused:
        engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    assert refused.value.kind == "journal" and recorder.events() == []
    filler.unlink()
    engine.tick()
    assert (engine.entries_halted, engine.alerts[-1].kind) == (False, "resumed")
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    assert recorder.events() == ["order entry buy 100"]
    assert engine.journal is not None
    engine.journal.close()


def test_a_trade_with_a_lost_exit_is_neither_closed_nor_discarded_before_the_question(
    small_disk: Path,
) -> None:
    db = small_disk / "journal.db"
    lost_tp1(db, small_disk)
    recorder = Recorder()
    engine = live_engine(db, recorder)
    (alert,) = [a for a in engine.alerts if a.kind == "unconfirmed_trade"]
    assert "the tp1 exit" in alert.message and "exits_sent" in alert.message
    engine.on_quote(quote("ABCD", 2.05, t=2))
    with pytest.raises(TradeRefused, match="confirm the trade first") as closing:
        engine.close_trade("ABCD")  # it would sell 100 where the broker may hold 50
    with pytest.raises(TradeRefused, match="its entry reached the broker") as discarding:
        engine.discard_trade("ABCD")
    assert closing.value.kind == discarding.value.kind == "lost_exit" and recorder.events() == []
    engine.confirm_trade("ABCD", exits_sent=True)
    engine.close_trade("ABCD")
    assert recorder.events() == ["order manual sell 50", "closed manual"]  # what the broker holds
    assert engine.journal is not None
    assert [(leg.reason, leg.qty) for leg in engine.journal.legs()] == [("tp1", 50), ("manual", 50)]
    engine.journal.close()


def side_file_with_tp1(tmp_path: Path) -> Path:
    """A journal whose TP1 exit waits in the side file (the journal was locked), as left by a kill."""
    db = tmp_path / "journal.db"
    engine = live_engine(db, Recorder())
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    locker = SqliteLocker(db)
    try:
        engine.on_quote(quote("ABCD", 2.21, t=1))
        assert engine.journal is not None
        engine.journal.close()
    finally:
        locker.release()
    return db


@pytest.mark.parametrize(
    "damage", ["header", "last record", "lost mark", "NUL first", "NUL inside", "NUL in a mark"]
)
def test_a_damaged_side_file_is_refused_never_quietly_dropped(tmp_path: Path, damage: str) -> None:
    from momobot_core.journal import JournalError
    from momobot_core.sidefile import HEADER

    db = side_file_with_tp1(tmp_path)
    pending = Path(f"{db}.pending")
    data = bytearray(pending.read_bytes())
    if damage == "header":
        data[5] = ord("X")
    elif damage == "last record":
        # Only the TP1 record left (its dispatched mark gone), one byte in its middle changed:
        # complete, ending in "}", yet unreadable: damage, not a write cut by a crash.
        tp1 = bytes(data[LOST_END:]).split(b"\0", 1)[0].split(b"\n")[0]
        damaged = tp1[:20] + b"#" + tp1[21:]
        data[LOST_END:] = damaged + b"\n" + bytes(len(data) - LOST_END - len(damaged) - 1)
    elif damage == "NUL first":  # the records area read as empty: TP1 dropped, pressed again
        data[LOST_END] = 0
    elif damage == "NUL inside":  # the TP1 record read as a line cut by a crash, and dropped
        data[LOST_END + 30] = 0
    elif damage == "NUL in a mark":
        mark = b'{"lost": "x", "trade_id": "t", "symbol": "ABCD", "kind": "tp1", "ts": "2026-11-24"}\n'
        data[len(HEADER) : len(HEADER) + len(mark)] = mark
        data[len(HEADER) + 3] = 0
    else:
        mark = b'{"lost": "x", "trade_id": "t", "symbol": "ABCD", "kind": "tp1", "ts": "not a time"}\n'
        data[len(HEADER) : len(HEADER) + len(mark)] = mark
    pending.write_bytes(bytes(data))
    before = pending.read_bytes()
    with pytest.raises(JournalError, match=r"\.pending"):
        Journal(db)
    assert pending.read_bytes() == before  # kept exactly as it was, for a person to look at


def test_wire_records_held_for_a_moment_reach_the_file_in_the_order_they_were_given(tmp_path: Path) -> None:
    wire_path = tmp_path / "journal.db.wire"
    wire = WireFile(wire_path)
    log = WireLog(wire, "hotkey_ws")
    log.hold([{"batch": "a", "status": "queued", "commands": ["buy_ask"]}, {"batch": "a", "status": "done"}])
    assert read_records(wire_path) == []  # in memory: no system call on the caller's path
    log.write({"batch": "b", "status": "queued", "commands": ["sell_ask"]})  # written at once, after them
    assert [(r["batch"], r["status"]) for r in read_records(wire_path)] == [
        ("a", "queued"),
        ("a", "done"),
        ("b", "queued"),
    ]
    log.hold([{"batch": "c", "status": "queued", "commands": ["sell_all_bid"]}])
    wire.flush()
    assert read_records(wire_path)[-1] == {
        "plugin": "hotkey_ws",
        "batch": "c",
        "status": "queued",
        "commands": ["sell_all_bid"],
    }
    log.hold([{"batch": "d", "status": "done"}])
    wire.close()  # a clean close writes what waits
    assert read_records(wire_path)[-1]["batch"] == "d"
