"""``momobot backtest``: the grid, a real Dask LocalCluster of worker processes, results, report."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from momobot_core.backtest.results import ResultsFile, compute_stats
from momobot_core.backtest.sweep import parse_grid
from momobot_core.backtest.synthetic import generate
from momobot_core.session import demo_session_path

from conftest import momobot

TRADE_KEY = (
    "SELECT set_id, day, symbol, opened_at, closed_at, qty, entry_model, entry_fill, pnl_model, pnl, r,"
    " exits FROM trades ORDER BY 1, 2, 3, 4"
)


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("days")
    generate(folder, days=3, symbols=40, gappers=5, quotes=20_000, seed=7)
    return folder


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def test_the_grid_is_every_combination_in_the_order_given() -> None:
    assert parse_grid(["tp1=0.05,0.1", "timeframe=1m,5m"]) == [
        {"tp1": 0.05, "timeframe": "1m"},
        {"tp1": 0.05, "timeframe": "5m"},
        {"tp1": 0.1, "timeframe": "1m"},
        {"tp1": 0.1, "timeframe": "5m"},
    ]
    assert parse_grid([]) == [{}]
    for bad, why in (("tp1", "KEY=VALUE"), ("tp1=0.1,0.1", "twice"), ("tp1=nan", "finite"), ("=1", "KEY")):
        with pytest.raises(ValueError, match=why):
            parse_grid([bad])


def test_two_workers_give_what_one_gives_and_the_report_shows_it(days: Path, tmp_path: Path) -> None:
    args = [
        "backtest",
        str(days),
        "--strategy",
        "pullback",
        "--grid",
        "tp1=0.05,0.2",
        "--grid",
        "timeframe=1m,5m",
    ]
    one = momobot(*args, "--workers", "1", "--out", str(tmp_path / "one.db"))
    two = momobot(*args, "--workers", "2", "--out", str(tmp_path / "two.db"), "--latency-ms", "0")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "12 task(s) (3 day(s) x 4 set(s)) on 2 worker(s)" in two.stdout
    trades = rows(tmp_path / "one.db", TRADE_KEY)
    assert trades and trades == rows(tmp_path / "two.db", TRADE_KEY)
    assert {t[0] for t in trades} == {0, 1, 2, 3}  # every set traded
    stats = rows(
        tmp_path / "two.db", "SELECT set_id, trades, days_ok, days_failed FROM stats ORDER BY set_id"
    )
    assert [s[2:] for s in stats] == [(3, 0)] * 4
    assert [s[1] for s in stats] == [sum(1 for t in trades if t[0] == i) for i in range(4)]
    report = momobot("backtest", "report", str(tmp_path / "two.db"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "two.html").read_text()
    assert "<svg" in page and "over tp1 and timeframe" in page and "2026-11-04" in page
    assert "<script" not in page and "http" not in page.split("</style>")[1]  # self-contained


def test_slippage_and_latency_move_the_fills_and_are_stated(days: Path, tmp_path: Path) -> None:
    base = ["backtest", str(days), "--strategy", "pullback", "--workers", "1"]
    plain = momobot(*base, "--out", str(tmp_path / "plain.db"))
    costly = momobot(*base, "--slippage", "0.02", "--latency-ms", "500", "--out", str(tmp_path / "costly.db"))
    assert plain.returncode == 0 and costly.returncode == 0, costly.stderr
    model = rows(
        tmp_path / "plain.db",
        "SELECT entry_model, entry_fill, pnl_model, pnl FROM trades ORDER BY day, opened_at, symbol",
    )
    moved = rows(
        tmp_path / "costly.db",
        "SELECT entry_model, entry_fill, pnl_model, pnl FROM trades ORDER BY day, opened_at, symbol",
    )
    assert [m[0] for m in model] == [m[0] for m in moved]  # the engine traded the same
    assert all(m[1] == m[0] and m[3] == m[2] for m in model)  # no costs: the model's fills
    assert any(m[1] != m[0] + 0.02 for m in moved)  # a later quote's ask
    assert sum(m[3] for m in moved) < sum(m[3] for m in model)
    fills = json.loads(rows(tmp_path / "costly.db", "SELECT value FROM run WHERE key = 'fills'")[0][0])
    assert "500 ms later" in fills and "0.02 $/share" in fills


def test_a_damaged_day_fails_alone_and_the_report_names_it(days: Path, tmp_path: Path) -> None:
    folder = tmp_path / "days"
    folder.mkdir()
    for path in days.glob("*.parquet"):
        (folder / path.name).write_bytes(path.read_bytes())
    broken = folder / "2026-11-03.parquet"
    broken.write_bytes(broken.read_bytes()[:5000])
    result = momobot(
        "backtest", str(folder), "--strategy", "pullback", "--workers", "2", "--out", str(tmp_path / "r.db")
    )
    assert result.returncode == 0, result.stderr
    assert f"FAILED 2026-11-03: {broken}" in result.stdout
    tasks = rows(tmp_path / "r.db", "SELECT day, status FROM tasks ORDER BY day")
    assert tasks == [("2026-11-02", "ok"), ("2026-11-03", "failed"), ("2026-11-04", "ok")]
    assert (
        momobot("backtest", "report", str(tmp_path / "r.db"), "--out", str(tmp_path / "r.html")).returncode
        == 0
    )
    page = (tmp_path / "r.html").read_text()
    assert "Days that failed" in page and "2026-11-03" in page and "not a readable day file" in page


def test_a_backtest_of_the_bundled_session_is_its_replay_trade_for_trade(tmp_path: Path) -> None:
    made = momobot("record", str(tmp_path / "days"), "--from", str(demo_session_path()))
    assert made.returncode == 0, made.stderr
    db = tmp_path / "replay.db"
    assert momobot("replay", str(demo_session_path()), "--db", str(db)).returncode == 0
    run = momobot("backtest", str(tmp_path / "days"), "--workers", "2", "--out", str(tmp_path / "bt.db"))
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(db) as con:
        legs = con.execute(
            "SELECT l.symbol, t.opened_at, t.qty, t.entry_price, SUM(l.pnl), GROUP_CONCAT(l.reason)"
            " FROM legs l JOIN trades t ON t.id = l.trade_id GROUP BY l.trade_id"
            " ORDER BY t.opened_at, l.symbol"
        ).fetchall()
    backtest = rows(
        tmp_path / "bt.db",
        "SELECT symbol, opened_at, qty, entry_model, pnl_model, exits FROM trades ORDER BY opened_at, symbol",
    )
    assert len(legs) == 4
    assert [(s, o, q, e, round(p, 6), x) for s, o, q, e, p, x in legs] == [
        (s, o, q, e, p, x) for s, o, q, e, p, x in backtest
    ]


def test_bad_backtest_input_is_a_clear_error(days: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x.db")
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "2026-11-02.parquet").write_bytes((days / "2026-11-02.parquet").read_bytes())
    for args, why in (
        (["--strategy", "nope"], "--strategy nope: no such strategy"),
        (["--strategy", "pullback", "--grid", "tp1=abc"], "does not arm"),
        (["--strategy", "pullback", "--grid", "timeframe=7q"], "does not arm"),
        (["--symbols", "all"], "needs --strategy"),
        (["--strategy", "pullback", "--symbols", ",,,"], "is not a ticker"),
        (["--strategy", "pullback", "--symbols", "ABCD,$$"], "'$$' is not a ticker"),
        (["--slippage", "nan"], "give a finite number"),
        (["--latency-ms", "nan"], "give a finite number"),
        (["--scheduler", "foo"], "--scheduler foo: cannot reach the Dask scheduler"),
        ([str(twin)], "2026-11-02.parquet is named twice"),
    ):
        result = momobot("backtest", str(days), *args, "--out", out)
        assert result.returncode == 2, (args, result.stdout)
        assert why in result.stderr, (args, result.stderr)
    missing = momobot("backtest", str(tmp_path / "none"), "--out", out)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    (tmp_path / "x.db").write_text("")
    exists = momobot("backtest", str(days), "--out", out)
    assert exists.returncode == 2 and "already exists" in exists.stderr
    report = momobot("backtest", "report", str(tmp_path / "x.db"))
    assert report.returncode == 2 and "not a backtest results file" in report.stderr
    folder = momobot("backtest", str(days), "--out", str(tmp_path), "--replace")
    assert folder.returncode == 2 and "is a folder" in folder.stderr
    assert not list(tmp_path.glob("*.db"))[1:]  # nothing left behind but x.db
    with sqlite3.connect(tmp_path / "y.db") as con:
        con.executescript(
            "CREATE TABLE run (a); CREATE TABLE sets (a); CREATE TABLE tasks (a); CREATE TABLE trades (a);"
            " CREATE TABLE stats (a);"
        )
    other = momobot("backtest", "report", str(tmp_path / "y.db"))
    assert other.returncode == 2 and "not a backtest results file" in other.stderr


def test_the_report_never_overwrites_its_results_nor_a_sample_a_recorded_day(
    days: Path, tmp_path: Path
) -> None:
    out = tmp_path / "res.html"
    assert (
        momobot(
            "backtest", str(days), "--strategy", "pullback", "--workers", "1", "--out", str(out)
        ).returncode
        == 0
    )
    before = out.read_bytes()
    same = momobot("backtest", "report", str(out))
    assert same.returncode == 2 and "that is the results file itself" in same.stderr
    assert out.read_bytes() == before
    folder = tmp_path / "recorded"
    folder.mkdir()
    (folder / "2026-11-02.parquet").write_bytes((days / "2026-11-02.parquet").read_bytes())
    sample = momobot("backtest", "sample", str(folder), "--days", "1", "--symbols", "3", "--quotes", "10")
    assert sample.returncode == 2 and "a day file is there already" in sample.stderr
    assert (folder / "2026-11-02.parquet").read_bytes() == (days / "2026-11-02.parquet").read_bytes()


def test_a_recorded_strategy_that_is_not_installed_is_a_warning_not_silence(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    folder = tmp_path / "days"
    generate(folder, days=1, symbols=10, gappers=2, quotes=2000)
    (path,) = folder.glob("*.parquet")
    table = pq.read_table(path)
    data = [
        None if text is None else text.replace('"strategy":"pullback"', '"strategy":"gone_strategy"')
        for text in table["data"].to_pylist()
    ]
    import pyarrow as pa

    table = table.set_column(table.schema.get_field_index("data"), "data", pa.array(data, pa.string()))
    pq.write_table(table, path)
    result = momobot("backtest", str(folder), "--workers", "1", "--out", str(tmp_path / "r.db"))
    assert result.returncode == 0, result.stderr
    assert "WARNING 2026-11-02: arm of BAA refused" in result.stdout and "gone_strategy" in result.stdout
    assert momobot("backtest", "report", str(tmp_path / "r.db")).returncode == 0
    assert "gone_strategy" in (tmp_path / "r.html").read_text()


def test_the_report_of_a_run_cut_short_says_so_and_counts_what_finished(days: Path, tmp_path: Path) -> None:
    from momobot_core.backtest.sweep import Plan, find_days, run_here

    results = ResultsFile(tmp_path / "cut.db")
    plan = Plan(days=tuple(find_days([days])), sets=({},), strategy="pullback")
    results.start({"strategy": "pullback", "tasks_planned": 3}, [{}])
    first = next(run_here(plan))  # one task of three, then the run is killed: no finish()
    results.add(first)
    results.close()
    assert momobot("backtest", "report", str(tmp_path / "cut.db")).returncode == 0
    page = (tmp_path / "cut.html").read_text()
    assert "This run was cut short" in page and "1 of 3 tasks finished" in page
    assert f"<td>{len(first['trades'])}</td>" in page  # the finished task's trades are counted


def test_statistics_of_a_set(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "r.db")
    results.start({}, [{}])
    trade = {
        "day": "d",
        "symbol": "A",
        "strategy": None,
        "timeframe": None,
        "opened_at": "t",
        "qty": 100,
        "entry_model": 1.0,
        "entry_fill": 1.0,
        "initial_stop": 0.9,
        "pnl_model": 0.0,
        "exits": "stop",
    }
    pnls = [(20.0, 2.0), (-10.0, -1.0), (-15.0, -1.5), (30.0, 3.0)]
    result = {
        "day": "d",
        "set_id": 0,
        "error": None,
        "quotes": 10,
        "seconds": 0.1,
        "trades": [dict(trade, closed_at=f"t{i}", pnl=p, r=r) for i, (p, r) in enumerate(pnls)],
    }
    results.add(result)
    (stats,) = compute_stats(results.db)
    results.close()
    assert stats["trades"] == 4 and stats["wins"] == 2 and stats["win_rate"] == 0.5
    assert stats["expectancy_usd"] == 6.25 and stats["expectancy_r"] == 0.625
    assert stats["profit_factor"] == 2.0
    assert stats["max_drawdown"] == 25.0  # +20 then -10, -15
    assert stats["total"] == 25.0


def test_sample_days_are_the_same_for_the_same_seed(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", days=1, symbols=20, gappers=2, quotes=2000, first=date(2026, 11, 2))
    b = generate(tmp_path / "b", days=1, symbols=20, gappers=2, quotes=2000, first=date(2026, 11, 2))
    assert a[0].read_bytes() == b[0].read_bytes()
    made = momobot(
        "backtest", "sample", str(tmp_path / "c"), "--days", "2", "--symbols", "10", "--quotes", "1000"
    )
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["2026-11-02.parquet", "2026-11-03.parquet"]


def test_an_existing_cluster_runs_the_tasks_and_an_unreachable_one_is_a_clear_error(
    days: Path, tmp_path: Path
) -> None:
    from dask.distributed import LocalCluster

    from hotkey_helpers import free_port

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = momobot(
            "backtest",
            str(days),
            "--strategy",
            "pullback",
            "--scheduler",
            cluster.scheduler_address,
            "--out",
            str(tmp_path / "r.db"),
        )
    assert result.returncode == 0, result.stderr
    assert "on 1 worker(s)" in result.stdout
    assert rows(tmp_path / "r.db", "SELECT COUNT(*) FROM tasks WHERE status = 'ok'") == [(3,)]
    closed = f"tcp://127.0.0.1:{free_port()}"
    unreachable = momobot("backtest", str(days), "--scheduler", closed, "--out", str(tmp_path / "u.db"))
    assert unreachable.returncode == 2
    assert f"--scheduler {closed}: cannot reach the Dask scheduler" in unreachable.stderr
    assert not (tmp_path / "u.db").exists()  # nothing ran: no results file


def test_the_readme_backtest_command_works_as_written(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if "momobot backtest sample" in line and "&&" in line]
    steps = [step.strip() for step in line.split("&&")]
    assert steps[0].startswith(".venv/bin/python -m pip install './[backtest]'")  # tox installed it
    for step in steps[1:]:
        words = step.split()
        assert words[0] == ".venv/bin/momobot"
        result = momobot(*words[1:], cwd=tmp_path)
        assert result.returncode == 0, (step, result.stderr)
    assert (tmp_path / "backtest.html").is_file()
    assert len(list((tmp_path / "days").glob("*.parquet"))) == 5


def test_a_trade_still_open_when_the_day_ends_is_sold_at_the_last_bid_as_end_of_day(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from momobot_core.backtest.dayfile import convert
    from momobot_core.backtest.sweep import Plan, run_here

    quotes = tmp_path / "q.csv"
    quotes.write_text(
        "ts,symbol,bid,ask\n2026-11-24T09:30:00,ABCD,2.00,2.01\n2026-11-24T09:31:00,ABCD,2.04,2.05\n"
    )
    opens = tmp_path / "o.jsonl"
    opens.write_text(
        '{"type":"open","ts":"2026-11-24T09:30:01","symbol":"ABCD","qty":100,"tp1":3,"tp2":4,"stop":1}\n'
        '{"type":"close","ts":"2026-11-24T09:30:30","symbol":"NONE"}\n'  # a person's refused close
    )
    (day,) = convert([quotes, opens], tmp_path / "days", ZoneInfo("America/New_York"))
    (result,) = run_here(Plan(days=(str(day),), sets=({},)))
    (trade,) = result["trades"]
    assert trade["exits"] == "end_of_day" and trade["pnl"] == 3.0  # 100 x (2.04 - 2.01)
