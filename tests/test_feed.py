"""Reading recorded sessions: formats, merge order, and a clear FILE:LINE for bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from momobot_core.config import InputError
from momobot_core.models import Close, Open, Quote
from momobot_core.sources.recorded import parse_ts, read_csv, read_events

from conftest import write_jsonl


def test_csv_quotes_parse_with_and_without_last(tmp_path: Path) -> None:
    f = tmp_path / "q.csv"
    f.write_text(
        "ts,symbol,bid,ask,last\n2026-11-24T14:30:00Z,ABCD,1.99,2.00,1.995\n1795530601,ABCD,1.98,2.01,\n"
    )
    quotes = list(read_csv(f))
    at = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    assert quotes[0] == Quote("ABCD", at, 1.99, 2.00, 1.995, at)  # printed at its row's time
    assert quotes[1].last is None
    assert quotes[1].ts == datetime.fromtimestamp(1795530601, UTC)


def test_csv_columns_may_come_in_any_order_and_last_may_be_absent(tmp_path: Path) -> None:
    f = tmp_path / "q.csv"
    f.write_text("symbol,ask,bid,ts\nABCD,2.00,1.99,2026-11-24T14:30:00+00:00\n")
    [q] = list(read_csv(f))
    assert (q.symbol, q.bid, q.ask, q.last) == ("ABCD", 1.99, 2.00, None)


def test_naive_timestamps_are_in_the_given_zone_and_epoch_seconds_are_absolute() -> None:
    new_york = ZoneInfo("America/New_York")
    assert parse_ts("2026-11-24T09:30:00", new_york) == datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    assert parse_ts("2026-11-24T14:30:00") == datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    assert parse_ts(1764000000, new_york) == parse_ts(1764000000)
    assert parse_ts(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_jsonl_events_parse(tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "e.jsonl",
        [
            {"type": "quote", "ts": 100, "symbol": "ABCD", "bid": 1.0, "ask": 1.1},
            {"type": "open", "ts": 101, "symbol": "ABCD", "qty": 10, "tp1": 1.2, "tp2": 1.3, "stop": 1},
            {"type": "close", "ts": "1970-01-01T00:01:42Z", "symbol": "ABCD"},
        ],
    )
    events = list(read_events([f]))
    assert isinstance(events[0], Quote)
    assert events[1] == Open("ABCD", 10, 1.2, 1.3, 1.0, parse_ts(101))
    assert events[2] == Close("ABCD", parse_ts(102))


def test_files_merge_in_time_order_ties_by_file_then_line(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("ts,symbol,bid,ask,last\n1,A1,1,1.1,\n3,A3,1,1.1,\n3,A3b,1,1.1,\n")
    b = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"type": "quote", "ts": 2, "symbol": "B2", "bid": 1, "ask": 1.1},
            {"type": "quote", "ts": 3, "symbol": "B3", "bid": 1, "ask": 1.1},
        ],
    )
    assert [getattr(e, "symbol", "") for e in read_events([a, b])] == ["A1", "B2", "A3", "A3b", "B3"]
    assert [getattr(e, "symbol", "") for e in read_events([b, a])] == ["A1", "B2", "B3", "A3", "A3b"]


def test_malformed_but_parseable_prices_reach_the_engine(tmp_path: Path) -> None:
    f = tmp_path / "q.csv"
    f.write_text("ts,symbol,bid,ask,last\n1,ABCD,nan,-2,\n")
    [q] = list(read_csv(f))
    assert q.ask == -2.0


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("ts,symbol,bid,ask,last\n1,ABCD,1.0,oops,\n", ":2:", "ask 'oops' is not a number"),
        ("ts,symbol,bid,ask,last\n1,ABCD,1.0,1.1,\nyesterday,ABCD,1,1.1,\n", ":3:", "ts 'yesterday'"),
        ("ts,symbol,bid,ask,last\n1,ABCD,1.0\n", ":2:", "expected 5 fields"),
        ("ts,symbol,bid,ask,last\n1,,1.0,1.1,\n", ":2:", "symbol is empty"),
        ("ts,symbol,bid\n", ":1:", "lacks column(s) ask"),
        ("", ":1:", "empty file"),
        ("ts,symbol,bid,ask,last\n5,ABCD,1.0,1.1,\n4,ABCD,1.0,1.1,\n", ":3:", "earlier than the line before"),
    ],
)
def test_unreadable_csv_names_file_line_and_problem(
    tmp_path: Path, content: str, where: str, what: str
) -> None:
    f = tmp_path / "q.csv"
    f.write_text(content)
    with pytest.raises(InputError) as info:
        list(read_events([f]))
    assert str(info.value).startswith(f"{f}{where}")
    assert what in str(info.value)


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"type": "trade", "ts": 1}', "type 'trade'"),
        ('{"type": "quote", "ts": 1, "symbol": "A", "bid": 1}', "lacks field 'ask'"),
        ('{"type": "quote", "ts": 1, "symbol": "A", "bid": "1", "ask": 2}', "bid '1' must be a number"),
        (
            '{"type": "open", "ts": 1, "symbol": "A", "qty": 1.5, "tp1": 1, "tp2": 2, "stop": 0.5}',
            "qty 1.5 must be a whole number",
        ),
        ('{"type": "close", "ts": "noon", "symbol": "A"}', "ts 'noon'"),
        ('{"type": "close", "ts": 1, "symbol": 7}', "symbol 7"),
    ],
)
def test_unreadable_jsonl_names_file_line_and_problem(tmp_path: Path, line: str, what: str) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text('{"type": "quote", "ts": 0, "symbol": "A", "bid": 1, "ask": 1.1}\n\n' + line + "\n")
    with pytest.raises(InputError) as info:
        list(read_events([f]))
    assert str(info.value).startswith(f"{f}:3:")
    assert what in str(info.value)


def test_missing_file_and_unknown_type_are_reported_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_events([tmp_path / "nope.csv"])
    other = tmp_path / "x.txt"
    other.write_text("hello")
    with pytest.raises(InputError, match="unknown file type"):
        read_events([other])
