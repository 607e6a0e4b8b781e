"""Journal first, one writer, a side file for exits: real SQLite files, real second processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from momobot_core import hookimpl
from momobot_core.config import Config, ConfigError, InputError
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal, JournalError
from momobot_core.plugins import Hooks, PluginStartError
from momobot_core.session import run_recorded

from conftest import Recorder, SqliteLocker, make_hooks, momobot, quote, side_file, write_jsonl


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


def engine_on(db: Path, *plugins: object, mode: str = "live") -> Engine:
    engine = Engine(hooks=make_hooks(*plugins), journal=Journal(db), mode=mode)
    engine.start()
    return engine


def test_a_second_writer_is_refused_at_once_with_the_holders_pid(db: Path) -> None:
    first = Journal(db)
    with pytest.raises(JournalError, match=rf"\(PID {os.getpid()}\) is already writing"):
        Journal(db)
    # Another process is refused too (POSIX record locks are per process), and this one still holds it.
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from momobot_core.journal import Journal; Journal(sys.argv[1])",
            str(db),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert f"another MomoBot process (PID {os.getpid()}) is writing" in other.stderr
    first.close()
    Journal(db).close()  # the lock goes with its holder


def test_a_second_serve_on_the_same_journal_exits_2_naming_the_pid(db: Path, tmp_path: Path) -> None:
    holder = Journal(db)
    try:
        result = momobot(
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            cwd=tmp_path,
            env={"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws"},
        )
    finally:
        holder.close()
    assert result.returncode == 2
    assert f"(PID {os.getpid()})" in result.stderr and "Traceback" not in result.stderr


def test_readers_take_no_lock_while_a_writer_holds_it(db: Path) -> None:
    writer = engine_on(db)
    writer.on_quote(quote("ABCD", 2.00))
    writer.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    with Journal(db, readonly=True) as reader:
        assert [t.symbol for t in reader.open_trades()] == ["ABCD"]
    assert writer.journal is not None
    writer.journal.close()


def test_locked_journal_refuses_entries_at_once_and_never_holds_an_exit_back(db: Path) -> None:
    recorder = Recorder()
    engine = engine_on(db, recorder)
    engine.on_quote(quote("ABCD", 2.00))
    trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    engine.on_quote(quote("WXYZ", 5.00))
    locker = SqliteLocker(db)
    try:
        with pytest.raises(TradeRefused, match="journal cannot be written") as refused:
            engine.open_trade("WXYZ", 10, 5.5, 6.0, 4.5)
        assert refused.value.kind == "journal"
        assert recorder.events() == ["order entry buy 100"]  # nothing sent for the refused entry
        engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1: the exit goes out all the same
        assert recorder.events()[1:] == ["target tp1", "order take_profit sell 50"]
        assert engine.journal_pending and side_file(db)
        assert [a.kind for a in engine.alerts] == ["journal_error", "journal_error"]
        assert "new entries are halted" in engine.alerts[1].message
        with pytest.raises(TradeRefused, match="entries are halted"):
            engine.open_trade("WXYZ", 10, 5.5, 6.0, 4.5)
    finally:
        locker.release()
    engine.tick()  # serve's loop does this twice a second
    assert (engine.journal_pending, side_file(db)) == (False, [])
    assert engine.alerts[-1].kind == "resumed"
    assert engine.journal is not None
    assert [(leg.reason, leg.qty) for leg in engine.journal.legs()] == [("tp1", 50)]
    assert engine.journal.undispatched() == []  # its hooks ran, and the side file said so
    engine.open_trade("WXYZ", 10, 5.5, 6.0, 4.5)  # entries again
    engine.journal.close()
    with Journal(db) as again:
        restored = {t.symbol: t for t in again.open_trades()}
        assert restored["ABCD"].id == trade.id and restored["ABCD"].tp1_hit
        assert restored["ABCD"].remaining == 50 and restored["ABCD"].stop == trade.entry_price


def test_side_file_left_by_a_killed_process_is_written_first_thing_at_start(db: Path) -> None:
    engine = engine_on(db)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    locker = SqliteLocker(db)
    engine.on_quote(quote("ABCD", 2.21, t=1))  # TP1 into the side file
    assert engine.journal is not None
    engine.journal.close()  # as good as a kill for the file: nothing more is written
    locker.release()
    restarted = engine_on(db)
    assert not restarted.journal_pending and not side_file(db)
    assert restarted.open_trades["ABCD"].tp1_hit and not restarted.open_trades["ABCD"].unconfirmed
    assert restarted.journal is not None
    assert [leg.reason for leg in restarted.journal.legs()] == ["tp1"]
    restarted.journal.close()


CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime, timedelta
    from momobot_core import hookimpl
    from momobot_core.engine import Engine
    from momobot_core.journal import Journal
    from momobot_core.models import Quote
    from momobot_core.plugins import Hooks

    T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)

    class DiesInTp1:
        @hookimpl
        def on_target_hit(self, trade, target, quote):
            if target == "tp1":
                print("hook", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)   # between the commit and the dispatched mark

    hooks = Hooks()
    hooks.register(DiesInTp1(), name="dies")
    engine = Engine(hooks=hooks, journal=Journal(sys.argv[1]), mode="live")
    engine.start()
    engine.on_quote(Quote("ABCD", T0, 1.99, 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    engine.on_quote(Quote("ABCD", T0 + timedelta(seconds=1), 2.20, 2.21))
""")


def test_event_committed_but_not_dispatched_comes_back_unconfirmed(db: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(db)], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == -signal.SIGKILL and child.stdout == "hook\n"
    recorder = Recorder()
    engine = engine_on(db, recorder)
    trade = engine.open_trades["ABCD"]
    assert trade.unconfirmed and trade.tp1_hit and trade.remaining == 50
    [alert] = [a for a in engine.alerts if a.kind == "unconfirmed_trade"]
    assert alert.symbol == "ABCD" and trade.id in alert.message
    engine.on_quote(quote("ABCD", 2.50, t=10))  # past TP2, but nothing is sent for it
    engine.on_quote(quote("ABCD", 1.50, t=11))  # below the stop: nothing either
    assert recorder.events() == []
    assert engine.confirm_trade("ABCD").unconfirmed is False
    engine.on_quote(quote("ABCD", 2.50, t=12))
    assert recorder.events() == ["target tp2", "order take_profit sell 50", "closed tp2"]
    assert engine.journal is not None
    engine.journal.close()
    with Journal(db) as again:  # confirmed for good: no alert at the next start
        assert again.undispatched() == []


def test_closing_an_unconfirmed_trade_is_a_persons_decision_and_is_sent(db: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASH_CHILD, str(db)], capture_output=True, timeout=60, check=False)
    recorder = Recorder()
    engine = engine_on(db, recorder)
    engine.on_quote(quote("ABCD", 2.10, t=10))
    engine.close_trade("ABCD")
    assert recorder.events() == ["order manual sell 50", "closed manual"]
    assert engine.journal is not None
    engine.journal.close()


def test_a_plugins_system_exit_or_keyboard_interrupt_in_a_hook_is_isolated(db: Path) -> None:
    class Exits:
        @hookimpl
        def on_order_submitted(self, order: Any, trade: Any) -> None:
            raise SystemExit(3)

        @hookimpl
        def on_target_hit(self, trade: Any, target: Any, quote: Any) -> None:
            raise KeyboardInterrupt

    recorder = Recorder()
    engine = Engine(hooks=make_hooks(recorder, Exits()), journal=Journal(db))
    engine.start()
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    engine.on_quote(quote("ABCD", 2.21, t=1))
    assert recorder.events() == ["order entry buy 100", "target tp1", "order take_profit sell 50"]
    assert engine.hooks is not None and engine.hooks.errors == 3
    assert engine.journal is not None and engine.journal.undispatched() == []
    engine.journal.close()


def test_a_plugins_runtime_error_in_on_startup_stops_start_up_naming_it() -> None:
    started: list[str] = []

    class Fine:
        @hookimpl
        def on_startup(self, bot: Any) -> None:
            started.append("fine")

        @hookimpl
        def on_shutdown(self, bot: Any) -> None:
            started.append("fine shut down")

    class Broken:
        @hookimpl
        def on_startup(self, bot: Any) -> None:
            raise RuntimeError("cannot find its device")

    class Never:
        @hookimpl
        def on_startup(self, bot: Any) -> None:
            started.append("never")

        @hookimpl
        def on_shutdown(self, bot: Any) -> None:
            started.append("never shut down")

    hooks = Hooks()
    hooks.register(Never(), name="never")  # pluggy calls the last registered first
    hooks.register(Broken(), name="broken")
    hooks.register(Fine(), name="fine")
    engine = Engine(hooks=hooks, journal=Journal())
    with pytest.raises(PluginStartError, match="plugin 'broken' failed to start: RuntimeError: cannot"):
        engine.start()
    assert isinstance(PluginStartError("x"), ConfigError)  # so the CLI exits 2 with the message
    engine.shutdown()
    assert started == ["fine", "fine shut down"]


def test_a_plugin_hanging_in_on_shutdown_is_named_and_left_behind(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    release = threading.Event()
    done: list[str] = []

    class Hangs:
        @hookimpl
        def on_shutdown(self, bot: Any) -> None:
            release.wait(30)

    class Next:
        @hookimpl
        def on_shutdown(self, bot: Any) -> None:
            done.append("next")

    hooks = Hooks()
    hooks.register(Next(), name="next")
    hooks.register(Hangs(), name="hangs")
    engine = Engine(hooks=hooks, journal=Journal())
    engine.start()
    hooks.shutdown(engine, timeout=0.2)
    release.set()
    assert done == ["next"]
    assert any(
        "plugin 'hangs' did not finish on_shutdown within 0.2 s" in r.getMessage() for r in caplog.records
    )


def test_a_hook_that_blocks_is_logged_with_the_plugins_name(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    class Sleeps:
        @hookimpl
        def on_order_submitted(self, order: Any, trade: Any) -> None:
            threading.Event().wait(0.02)

    engine = Engine(hooks=make_hooks(Sleeps()), journal=Journal())
    engine.start()
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    assert engine.hooks is not None and engine.hooks.slow_calls == {"test-plugin-0": 1}
    assert any(
        "plugin 'test-plugin-0' took" in r.getMessage() and "on_order_submitted" in r.getMessage()
        for r in caplog.records
    )


def test_values_the_journal_cannot_hold_are_refused_before_anything_happens(db: Path) -> None:
    recorder = Recorder()
    engine = engine_on(db, recorder)
    engine.on_quote(quote("ABCD", 2.00))
    for qty in (9223372036854775808, 10**30, "100"):
        with pytest.raises(TradeRefused, match="qty"):
            engine.open_trade("ABCD", qty, 2.20, 2.40, 1.90)  # type: ignore[arg-type]
    with pytest.raises(TradeRefused, match="tp2"):
        engine.open_trade("ABCD", 100, 2.20, 1e300, 1.90)
    assert recorder.events() == []
    assert engine.journal is not None and engine.journal.trades() == []
    engine.journal.close()


# -- replays into a journal ------------------------------------------------------------


def session(path: Path, start: str = "2026-11-24T14:30:0") -> Path:
    return write_jsonl(
        path,
        [
            {"type": "quote", "ts": f"{start}0Z", "symbol": "ABCD", "bid": 1.99, "ask": 2.00},
            {
                "type": "open",
                "ts": f"{start}1Z",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.2,
                "tp2": 2.4,
                "stop": 1.9,
            },
            {"type": "quote", "ts": f"{start}2Z", "symbol": "ABCD", "bid": 2.20, "ask": 2.21},
        ],
    )


def test_replaying_the_same_file_twice_is_refused_and_writes_nothing(db: Path, tmp_path: Path) -> None:
    events = session(tmp_path / "day.jsonl")
    run_recorded([events], hooks=None, config=Config(), db=db)
    with Journal(db, readonly=True) as journal:
        before = (journal.trades(), journal.legs(), journal.executions())
    with pytest.raises(InputError, match="at or before the journal's last event"):
        run_recorded([events], hooks=None, config=Config(), db=db)
    with Journal(db, readonly=True) as journal:
        assert (journal.trades(), journal.legs(), journal.executions()) == before


def test_a_replay_that_goes_back_in_time_is_refused(db: Path, tmp_path: Path) -> None:
    run_recorded([session(tmp_path / "late.jsonl", "2026-11-24T15:00:0")], hooks=None, config=Config(), db=db)
    with pytest.raises(InputError, match="a replay only appends newer events"):
        run_recorded([session(tmp_path / "early.jsonl")], hooks=None, config=Config(), db=db)
    later = run_recorded(
        [session(tmp_path / "next.jsonl", "2026-11-24T16:00:0")], hooks=None, config=Config(), db=db
    )
    assert all(leg.closed_at >= leg.opened_at for leg in later.legs)
    assert len(later.trades) == 2


def test_replay_twice_from_the_command_line_exits_2(db: Path, tmp_path: Path) -> None:
    events = session(tmp_path / "day.jsonl")
    assert momobot("replay", str(events), "--db", str(db)).returncode == 0
    again = momobot("replay", str(events), "--db", str(db))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "at or before the journal's last event" in again.stderr


@pytest.fixture
def edited(db: Path) -> Iterator[Path]:
    engine = engine_on(db)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    assert engine.journal is not None
    engine.journal.close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE trades SET qty = 'lots', opened_at = 'yesterday'")
    yield db


def test_a_hand_edited_journal_row_is_a_clear_error_not_a_traceback(edited: Path, tmp_path: Path) -> None:
    with (
        Journal(edited) as journal,
        pytest.raises(JournalError, match="table trades has a row that is not valid"),
    ):
        Engine(journal=journal)
    for args in (["serve", "--port", "0"], ["replay", str(session(tmp_path / "x.jsonl"))]):
        result = momobot(
            *args, "--db", str(edited), cwd=tmp_path, env={"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws"}
        )
        assert result.returncode == 2, result.stderr
        assert "not valid" in result.stderr and "Traceback" not in result.stderr


def test_side_file_lines_round_trip(db: Path) -> None:
    engine = engine_on(db)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 1, 2.20, 2.40, 1.90)
    locker = SqliteLocker(db)
    engine.on_quote(quote("ABCD", 2.21, t=1))  # a 1-share TP1: no order, still an event
    engine.on_quote(quote("ABCD", 1.99, t=2, last=1.99))  # the break-even stop
    locker.release()
    lines = [json.loads(line) for line in side_file(db)]
    assert [line.get("kind") for line in lines if "kind" in line] == ["tp1", "stop"]
    assert sum("dispatched" in line for line in lines) == 2
    engine.tick()
    assert engine.journal is not None
    assert [leg.reason for leg in engine.journal.legs()] == ["stop"]
    engine.journal.close()


def test_a_journal_named_through_a_link_is_still_one_journal(db: Path, tmp_path: Path) -> None:
    first = Journal(db)
    alias = tmp_path / "alias.db"
    alias.symlink_to(db)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from momobot_core.journal import Journal; Journal(sys.argv[1])",
            str(alias),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    first.close()
    assert other.returncode == 1 and f"(PID {os.getpid()}) is writing" in other.stderr


def test_the_bot_starts_while_another_program_holds_the_journal_locked(db: Path) -> None:
    engine = engine_on(db)
    engine.on_quote(quote("ABCD", 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    assert engine.journal is not None
    engine.journal.close()
    locker = SqliteLocker(db)
    try:
        recorder = Recorder()
        restarted = engine_on(db, recorder)  # open trades must be watched, lock or not
        assert list(restarted.open_trades) == ["ABCD"]
        restarted.on_quote(quote("ABCD", 1.85, t=1, last=1.85))  # the stop goes out all the same
        assert recorder.events() == ["target stop", "order stop sell 100", "closed stop"]
        assert restarted.journal_pending
    finally:
        locker.release()
    restarted.tick()
    assert restarted.journal is not None
    assert [leg.reason for leg in restarted.journal.legs()] == ["stop"]
    restarted.journal.close()


def test_serve_replaying_into_a_journal_twice_is_refused(tmp_path: Path) -> None:
    events = session(tmp_path / "day.jsonl")
    db = tmp_path / "paced.db"
    args = ["serve", "--replay", str(events), "--speed", "1000", "--port", "0", "--db", str(db)]
    run_recorded([events], hooks=None, config=Config(), db=db)  # the same session, already in
    result = momobot(*args, cwd=tmp_path, env={"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws"})
    assert result.returncode == 2 and "at or before the journal's last event" in result.stderr


def test_closing_an_unconfirmed_trade_ends_its_alerts(db: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASH_CHILD, str(db)], capture_output=True, timeout=60, check=False)
    engine = engine_on(db)
    engine.on_quote(quote("ABCD", 2.10, t=10))
    engine.close_trade("ABCD")
    assert engine.journal is not None
    engine.journal.close()
    again = engine_on(db)
    assert not any(a.kind == "unconfirmed_trade" for a in again.alerts)
    assert again.journal is not None
    again.journal.close()
