"""``momobot report``: a day of the journal as one self-contained HTML file, run as a real process."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from momobot_core.session import demo_session_path

from conftest import momobot


def replayed(tmp_path: Path) -> Path:
    db = tmp_path / "j.db"
    assert momobot("replay", "--db", str(db), str(demo_session_path()), cwd=tmp_path).returncode == 0
    return db


def cell(html: str, label: str) -> str:
    match = re.search(rf"<td>{re.escape(label)}</td><td[^>]*>([^<]*)</td>", html)
    assert match, label
    return match.group(1).strip()


def test_the_report_matches_momobot_trades_to_the_cent(tmp_path: Path) -> None:
    db = replayed(tmp_path)
    out = tmp_path / "day.html"
    done = momobot("report", "--db", str(db), "--day", "2026-11-24", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    legs = json.loads(momobot("trades", "--db", str(db), cwd=tmp_path).stdout)
    by_trade: dict[str, float] = defaultdict(float)
    for leg in legs:
        by_trade[leg["trade_id"]] += leg["pnl"]
    wins = [p for p in by_trade.values() if p > 0]
    losses = [p for p in by_trade.values() if p < 0]
    html = out.read_text()
    assert cell(html, "realised P&amp;L") == f"{sum(leg['pnl'] for leg in legs):+,.2f}"
    assert cell(html, "win rate (by trade)") == f"{len(wins) / len(by_trade) * 100:.0f}%"
    assert cell(html, "average win") == f"{sum(wins) / len(wins):+,.2f}"
    assert cell(html, "average loss") == f"{sum(losses) / len(losses):+,.2f}"
    assert cell(html, "profit factor") == f"{sum(wins) / -sum(losses):.2f}"
    assert cell(html, "largest loss") == f"{min(losses):+,.2f}"
    for symbol in {leg["symbol"] for leg in legs}:
        total = sum(leg["pnl"] for leg in legs if leg["symbol"] == symbol)
        assert f'<td>{symbol}</td><td class="{"down" if total < 0 else "up"}">{total:+,.2f}</td>' in html
    assert (
        done.stdout.strip()
        == f"{out}: 2026-11-24, {len(by_trade)} trade(s), realised {sum(by_trade.values()):+,.2f}"
    )
    assert "The market: regular 09:30-16:00 (New York time)." in html  # the exchange's calendar
    # Self-contained: two pictures inline, nothing fetched from anywhere.
    assert html.count("<svg") == 2
    assert not re.search(r"<script|<link|<img|src=", html)


def test_r_multiples_use_the_stop_the_trade_opened_with(tmp_path: Path) -> None:
    db = replayed(tmp_path)
    out = tmp_path / "day.html"
    assert momobot("report", "--db", str(db), "--out", str(out), cwd=tmp_path).returncode == 0
    html = out.read_text()
    # ABCD: 100 at 2.00, stop 1.90 ($10 at risk); TP1 then TP2 made $31.00: +3.10 R, although
    # its stop had moved to break-even.
    trades = html[html.index("<h2>Trades</h2>") :]
    row = re.search(r"<td>ABCD</td>.*?</tr>", trades, re.S)
    assert row is not None
    assert "<td>1.90</td>" in row.group(0) and "<td>+3.10</td>" in row.group(0)


def test_bad_report_requests_are_one_clear_line(tmp_path: Path) -> None:
    db = replayed(tmp_path)
    cases = [
        (["--db", str(db), "--day", "24/11/2026"], "--day '24/11/2026': give a date as YYYY-MM-DD"),
        (["--db", str(db), "--day", "20261124"], "--day '20261124': give a date as YYYY-MM-DD"),
        (["--db", str(db), "--day", "2026-W48-2"], "--day '2026-W48-2': give a date as YYYY-MM-DD"),
        (["--db", str(tmp_path / "none.db")], "none.db: no such journal file"),
        (["--db", str(db), "--out", str(tmp_path / "no" / "dir.html")], "cannot write it"),
    ]
    for args, says in cases:
        out = ["--out", str(tmp_path / "r.html")] if "--out" not in args else []
        done = momobot("report", *args, *out, cwd=tmp_path)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr
    quiet = momobot(
        "report", "--db", str(db), "--day", "2026-11-25", "--out", str(tmp_path / "q.html"), cwd=tmp_path
    )
    assert quiet.returncode == 0
    assert "0 trade(s)" in quiet.stdout and "days with trades: 2026-11-24" in quiet.stdout
    assert "No trade closed on this day." in (tmp_path / "q.html").read_text()


def test_the_report_and_trades_group_pnl_by_strategy(tmp_path: Path) -> None:
    day = Path(__file__).resolve().parent.parent / "docs" / "examples" / "strategy_day.jsonl"
    db = tmp_path / "j.db"
    assert momobot("replay", "--db", str(db), str(day), cwd=tmp_path).returncode == 0
    grouped = json.loads(momobot("trades", "--db", str(db), "--by-strategy", cwd=tmp_path).stdout)
    assert grouped == {
        "level": {"trades": 1, "wins": 1, "losses": 0, "pnl": 40.0},
        "pullback": {"trades": 1, "wins": 1, "losses": 0, "pnl": 4.0},
    }
    legs = json.loads(momobot("trades", "--db", str(db), cwd=tmp_path).stdout)
    assert {leg["symbol"]: leg["strategy"] for leg in legs} == {"ABCD": "pullback", "WXYZ": "level"}
    out = tmp_path / "day.html"
    assert (
        momobot("report", "--db", str(db), "--day", "2026-11-24", "--out", str(out), cwd=tmp_path).returncode
        == 0
    )
    html = out.read_text()
    assert '<td>level</td><td class="up">+40.00</td>' in html
    assert '<td>pullback</td><td class="up">+4.00</td>' in html


def test_the_report_says_when_the_day_was_a_half_day(tmp_path: Path) -> None:
    db = replayed(tmp_path)
    out = tmp_path / "day.html"
    done = momobot("report", "--db", str(db), "--day", "2026-11-27", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "The market: half day: regular 09:30-13:00 (New York time)." in out.read_text()
