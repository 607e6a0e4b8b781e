"""Restart safety: a process killed with SIGKILL leaves a journal a new engine resumes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from momobot_core.engine import Engine
from momobot_core.journal import Journal

from conftest import Recorder, install_fake_dist, make_hooks, quote, write_jsonl

LIVE_CHILD = """
    import sys, threading
    from datetime import UTC, datetime
    from momobot_core.engine import Engine
    from momobot_core.journal import Journal
    from momobot_core.models import Quote

    def q(symbol, ask, last=None):
        return Quote(symbol, datetime.now(UTC), round(ask - 0.01, 2), ask, last)

    engine = Engine(journal=Journal(sys.argv[1]), mode="live")
    engine.start()
    for symbol in ("AAA", "BBB", "CCC"):
        engine.on_quote(q(symbol, 2.00))
        engine.open_trade(symbol, 100, 2.20, 2.40, 1.90)
    engine.on_quote(q("AAA", 2.21))              # TP1: 50 sold, stop to 2.00
    engine.on_quote(q("CCC", 1.95, last=1.89))   # stop: CCC closed
    print("READY", flush=True)
    threading.Event().wait(600)
"""


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_line(proc: subprocess.Popen[str], marker: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            return
    raise AssertionError(f"child exited without {marker!r}: {proc.stderr.read() if proc.stderr else ''}")


def sigkill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def test_open_trades_survive_sigkill_with_their_state(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(LIVE_CHILD))
    proc = spawn([sys.executable, str(script), str(db)])
    try:
        wait_for_line(proc, "READY")
    finally:
        sigkill(proc)
    assert proc.returncode == -signal.SIGKILL

    recorder = Recorder()
    engine = Engine(hooks=make_hooks(recorder), journal=Journal(db), mode="live")
    engine.start()
    assert sorted(engine.open_trades) == ["AAA", "BBB"]
    aaa, bbb = engine.open_trades["AAA"], engine.open_trades["BBB"]
    assert (aaa.tp1_hit, aaa.stop, aaa.remaining, aaa.qty) == (True, 2.00, 50, 100)
    assert (bbb.tp1_hit, bbb.stop, bbb.remaining) == (False, 1.90, 100)
    assert engine.journal is not None
    assert sorted((leg.symbol, leg.reason, leg.qty) for leg in engine.journal.legs()) == [
        ("AAA", "tp1", 50),
        ("CCC", "stop", 100),
    ]
    assert len(engine.journal.trades()) == 3  # none duplicated, none lost
    assert recorder.names() == ["on_startup"]  # no entry event emitted again

    # The restored trade goes on under the same rules: its break-even stop, its remaining 50.
    engine.on_quote(quote("AAA", 2.01, bid=1.99, last=2.00))
    assert recorder.events() == ["target stop", "order stop sell 50", "closed stop"]
    engine.on_quote(quote("BBB", 2.10))
    assert engine.open_trades["BBB"].remaining == 100


HANG = """
    import sys, threading
    from momobot_core import hookimpl

    @hookimpl
    def on_target_hit(trade, target):
        if trade.symbol == "BBB":
            print("MID-REPLAY", flush=True)
            threading.Event().wait(600)
"""


def test_replay_killed_midway_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    session = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"type": "quote", "ts": 1, "symbol": "AAA", "bid": 1.99, "ask": 2.0},
            {"type": "open", "ts": 2, "symbol": "AAA", "qty": 10, "tp1": 2.2, "tp2": 2.4, "stop": 1.9},
            {"type": "quote", "ts": 3, "symbol": "AAA", "bid": 2.4, "ask": 2.45},
            {"type": "quote", "ts": 4, "symbol": "BBB", "bid": 1.99, "ask": 2.0},
            {"type": "open", "ts": 5, "symbol": "BBB", "qty": 10, "tp1": 2.2, "tp2": 2.4, "stop": 1.9},
            {"type": "quote", "ts": 6, "symbol": "BBB", "bid": 2.4, "ask": 2.45},
        ],
    )
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "momobot-hang", "momobot_hang", HANG, "hang")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = spawn([sys.executable, "-m", "momobot_core.cli", "replay", str(session), "--db", str(db)], env=env)
    try:
        wait_for_line(proc, "MID-REPLAY")
    finally:
        sigkill(proc)
    with Journal(db) as journal:
        assert journal.trades() == [] and journal.legs() == [] and journal.executions() == []

    # The same replay, not killed, lands whole.
    done = subprocess.run(
        [sys.executable, "-m", "momobot_core.cli", "replay", str(session), "--db", str(db)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with Journal(db) as journal:
        assert [t.symbol for t in journal.trades()] == ["AAA", "BBB"]
