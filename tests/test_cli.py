"""The momobot command line, run as a real process: output streams, exit codes, files."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from momobot_core.config import Config
from momobot_core.journal import Journal
from momobot_core.session import demo_session_path

from conftest import momobot, write_jsonl


def test_demo_prints_a_summary_covering_every_kind_of_exit() -> None:
    result = momobot("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in (
        "tp1 50@2.21, tp2 50@2.41",
        "stop 200@",
        "stop (break-even)",
        "manual 100@3.10",
        "Trades: 4 opened, 4 closed (3 won, 1 lost), 0 open; 6 exits",
        "Realised P&L: +17.50",
        "opened (E",
        "2026-11-24 09:30:05",
    ):
        assert text in out
    assert "Traceback" not in result.stderr


def session_files(tmp_path: Path) -> tuple[Path, Path]:
    quotes = tmp_path / "quotes.csv"
    quotes.write_text(
        "ts,symbol,bid,ask,last\n"
        "2026-11-24T14:30:00Z,ABCD,1.99,2.00,\n"
        "2026-11-24T14:30:10Z,ABCD,2.20,2.21,2.20\n"
        "2026-11-24T14:30:20Z,ABCD,2.50,2.40,\n"  # malformed: bid > ask
        "2026-11-24T14:30:30Z,ABCD,2.40,2.41,2.40\n"
    )
    events = write_jsonl(
        tmp_path / "events.jsonl",
        [
            {
                "type": "open",
                "ts": "2026-11-24T14:30:05Z",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.2,
                "tp2": 2.4,
                "stop": 1.9,
            },
            {
                "type": "open",
                "ts": "2026-11-24T14:30:06Z",
                "symbol": "ZZZZ",
                "qty": 1,
                "tp1": 2.2,
                "tp2": 2.4,
                "stop": 1.9,
            },
        ],
    )
    return quotes, events


def test_replay_merges_files_and_journals_when_db_is_given(tmp_path: Path) -> None:
    quotes, events = session_files(tmp_path)
    db = tmp_path / "j.db"
    result = momobot("replay", str(quotes), str(events), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "tp1 50@2.21, tp2 50@2.41" in result.stdout
    assert "1 rejected as malformed" in result.stdout
    assert "Refused actions: 1" in result.stdout
    assert "ZZZZ: unknown symbol: no quote yet" in result.stderr

    legs = json.loads(momobot("trades", "--db", str(db)).stdout)
    assert [(leg["symbol"], leg["qty"], leg["reason"], leg["pnl"]) for leg in legs] == [
        ("ABCD", 50, "tp1", 10.5),
        ("ABCD", 50, "tp2", 20.5),
    ]
    assert {"entry_price", "exit_price", "opened_at", "closed_at"} <= set(legs[0])


def test_trades_csv_is_tradervue_generic_format(tmp_path: Path) -> None:
    quotes, events = session_files(tmp_path)
    db = tmp_path / "j.db"
    momobot("replay", str(quotes), str(events), "--db", str(db))
    rows = list(csv.reader(io.StringIO(momobot("trades", "--db", str(db), "--format", "csv").stdout)))
    assert rows == [
        ["Date", "Time", "Symbol", "Quantity", "Price", "Side"],
        ["2026-11-24", "14:30:05", "ABCD", "100", "2.0", "Buy"],
        ["2026-11-24", "14:30:10", "ABCD", "50", "2.21", "Sell"],
        ["2026-11-24", "14:30:30", "ABCD", "50", "2.41", "Sell"],
    ]


def test_trades_default_db_is_momobot_db_in_the_current_directory(tmp_path: Path) -> None:
    result = momobot("trades", cwd=tmp_path)
    assert result.returncode == 2
    assert "momobot.db: no such journal file" in result.stderr


def test_unreadable_input_exits_2_with_file_line_and_writes_nothing(tmp_path: Path) -> None:
    quotes, events = session_files(tmp_path)
    with quotes.open("a") as fh:
        fh.write("2026-11-24T14:31:00Z,ABCD,abc,2.41,\n")
    db = tmp_path / "j.db"
    result = momobot("replay", str(quotes), str(events), "--db", str(db))
    assert result.returncode == 2
    assert f"{quotes}:6: bid 'abc' is not a number" in result.stderr
    assert result.stdout == ""
    with Journal(db) as journal:
        assert journal.trades() == []


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = momobot("replay", str(tmp_path / "none.csv"))
    assert result.returncode == 2
    assert "none.csv: no such file" in result.stderr


def test_bad_config_names_key_and_value(tmp_path: Path) -> None:
    config = tmp_path / "momobot.toml"
    config.write_text("[momobot]\nmin_hold_s = -3\n")
    result = momobot("demo", "--config", str(config))
    assert result.returncode == 2
    assert "[momobot] min_hold_s = -3: must be a finite number >= 0" in result.stderr
    config.write_text("[momobot]\nmin_hold = 3\n")
    assert "min_hold: unknown key" in momobot("demo", env={"MOMOBOT_CONFIG": str(config)}).stderr
    config.write_text("[momobot\n")
    assert "not valid TOML" in momobot("demo", "--config", str(config)).stderr


def test_config_from_environment_names_the_variable() -> None:
    result = momobot("demo", env={"MOMOBOT_MIN_HOLD_S": "soon"})
    assert result.returncode == 2
    assert "min_hold_s = 'soon' (from MOMOBOT_MIN_HOLD_S): must be a number" in result.stderr


def test_min_hold_from_config_changes_the_demo(tmp_path: Path) -> None:
    config = tmp_path / "momobot.toml"
    config.write_text("[momobot]\nmin_hold_s = 3600\n")
    result = momobot("demo", "--config", str(config))
    assert result.returncode == 0
    assert "Trades: 4 opened, 1 closed (1 won, 0 lost), 3 open; 1 exit\n" in result.stdout


def test_progress_bar_goes_to_stderr_when_asked(tmp_path: Path) -> None:
    quotes, _ = session_files(tmp_path)
    result = momobot("replay", str(quotes), "--progress")
    assert result.returncode == 0
    assert "replaying" in result.stderr
    assert "replaying" not in result.stdout


def test_trades_refuses_a_file_that_is_not_a_journal_and_leaves_it_alone(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    before = other.read_bytes()
    result = momobot("trades", "--db", str(other))
    assert result.returncode == 2
    assert "not a MomoBot journal" in result.stderr
    assert other.read_bytes() == before
    text = tmp_path / "notes.db"
    text.write_text("hello, this is not SQLite at all" * 10)
    garbage = momobot("trades", "--db", str(text))
    assert garbage.returncode == 2 and "not a usable journal" in garbage.stderr
    replay = momobot("demo", "--db", str(other))
    assert replay.returncode == 2 and "not a MomoBot journal" in replay.stderr


def test_trades_reads_a_journal_in_a_read_only_directory(tmp_path: Path) -> None:
    import importlib
    import shutil
    import tempfile

    # Root reads anything, so the reader runs as nobody (setpriv), in a directory it cannot write,
    # with a readable copy of what `momobot trades` imports (tox keeps its environment private).
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to read as another user")
    folder = Path(tempfile.mkdtemp(prefix="momobot-ro-"))
    try:
        folder.chmod(0o755)
        site = folder / "site"
        for name in ("momobot_core", "pluggy", "attr", "attrs", "click", "msgspec"):
            module = importlib.import_module(name)
            assert module.__file__ is not None
            shutil.copytree(Path(module.__file__).parent, site / name)
        for path in [site, *site.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        journal_dir = folder / "journals"
        journal_dir.mkdir()
        db = journal_dir / "journal.db"
        assert momobot("replay", str(demo_session_path()), "--db", str(db)).returncode == 0
        for path in journal_dir.iterdir():
            path.chmod(0o444)
        journal_dir.chmod(0o555)
        code = (
            f"import sys; sys.path.insert(0, {str(site)!r}); from momobot_core.cli import main;"
            f" main(['trades', '--db', {str(db)!r}])"
        )
        result = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-I", "-c", code],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=folder,
        )
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == 6
    finally:
        for path in folder.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    ("table", "hint"), [("hotkeyws", "did you mean [hotkey_ws]?"), ("momobott", "did you mean [momobot]?")]
)
def test_a_misspelt_table_is_an_error_naming_it_and_the_tables_there_are(
    tmp_path: Path, table: str, hint: str
) -> None:
    config = tmp_path / "momobot.toml"
    config.write_text(f'[{table}]\nurl = "ws://127.0.0.1:9"\n')
    result = momobot("demo", "--config", str(config))
    assert result.returncode == 2
    assert f"[{table}]: no component has this table ({hint})" in result.stderr
    assert "[momobot], [api]" in result.stderr and "Traceback" not in result.stderr


def test_a_table_of_a_plugin_that_is_not_installed_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Every plugin of this project is installed here: check the rule against a set without das.
    config = Config({"das": {"route": "SMAT"}})
    config.check_tables({"hotkey_ws", "voice"})
    assert "[das] configures the das plugin, which is not installed: ignored" in caplog.text


def test_a_missing_config_named_by_the_environment_says_so(tmp_path: Path) -> None:
    result = momobot("demo", env={"MOMOBOT_CONFIG": str(tmp_path / "gone.toml")})
    assert result.returncode == 2
    assert "gone.toml (from MOMOBOT_CONFIG): no such file" in result.stderr


def test_naive_times_are_the_exchanges_and_shown_in_exchange_time(tmp_path: Path) -> None:
    session = write_jsonl(
        tmp_path / "ny.jsonl",
        [
            {"type": "quote", "ts": "2026-07-01T09:30:00", "symbol": "ABCD", "bid": 1.99, "ask": 2.00},
            {
                "type": "open",
                "ts": "2026-07-01T09:30:01",
                "symbol": "ABCD",
                "qty": 10,
                "tp1": 2.2,
                "tp2": 2.4,
                "stop": 1.9,
            },
            {"type": "close", "ts": "2026-07-01T09:31:00", "symbol": "ABCD"},
        ],
    )
    db = tmp_path / "j.db"
    result = momobot("replay", str(session), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "2026-07-01 09:30:01" in result.stdout  # New York time, as recorded
    [leg] = json.loads(momobot("trades", "--db", str(db)).stdout)
    assert leg["opened_at"] == "2026-07-01T13:30:01Z"  # 09:30 EDT, written in UTC with a Z


def test_a_replay_without_db_says_how_to_keep_its_journal() -> None:
    result = momobot("replay", str(demo_session_path()))
    assert "replay with --db momobot.db to keep it" in result.stdout


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_serve_with_a_port_out_of_range_is_one_line_and_exit_2(tmp_path: Path, port: str) -> None:
    result = momobot("serve", "--port", port, "--db", str(tmp_path / "j.db"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "API on" not in result.stderr and "--port" in result.stderr


def test_serve_on_a_port_in_use_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = momobot(
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "j.db"),
            env={"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws"},
        )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "API on" not in result.stderr
    assert not (tmp_path / "j.db").exists()  # nothing started, nothing written


def test_serve_replay_takes_several_files_as_the_docs_show(tmp_path: Path) -> None:
    quotes = tmp_path / "q.csv"
    quotes.write_text("ts,symbol,bid,ask\n2026-11-24T14:30:00Z,ZZZZ,1.99,2.00\n")
    bad = momobot(
        "serve",
        "--replay",
        str(demo_session_path()),
        str(quotes),
        "--speed",
        "0",
        env={"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws"},
    )
    assert bad.returncode == 2 and "--speed" in bad.stderr  # parsed as files, the speed refused
    alone = momobot("serve", str(quotes))
    assert alone.returncode == 2 and "files are only read with --replay" in alone.stderr
