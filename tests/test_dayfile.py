"""Day files: recorded, sealed, read back; replayed batch by batch as a quote-by-quote replay is."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from momobot_core.backtest.columns import feed_day
from momobot_core.backtest.dayfile import DayFile, DayRecorder, convert, read_day, seal
from momobot_core.backtest.synthetic import generate_day
from momobot_core.config import Config, InputError
from momobot_core.engine import Engine
from momobot_core.journal import open_journal
from momobot_core.models import Arm, Close, Disarm, Fill, Kill, Open, Quote, Resume
from momobot_core.session import run_events

from conftest import momobot, write_jsonl
from hotkey_helpers import wait_until

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def recorded_events() -> list[object]:
    return [
        Arm("ABCD", "pullback", "1m", at(0), {"tp1": 0.2}, "recording"),
        Quote("ABCD", at(1), 2.00, 2.01, 2.0, at(1)),
        Quote("EFGH", at(1.5), 5.00, 5.02),
        Open("EFGH", 100, 5.2, 5.4, 4.9, at(2)),
        Quote("ABCD", at(3), 2.02, 2.03, 2.0, at(1)),  # the same print, carried
        Fill("order-1", 100, 5.02, at(2.5), "X1"),
        Close("EFGH", at(4)),
        Kill(at(5)),
        Resume(at(6)),
        Disarm("ABCD", at(7)),
        Open("ABCD", None, 2.3, 2.5, 1.9, at(8), risk=50.0),
    ]


def test_a_recording_reads_back_event_for_event_across_a_day_roll(tmp_path: Path) -> None:
    late = Quote("ZZZ", datetime(2026, 11, 25, 14, 30, tzinfo=UTC), 1.0, 1.01)
    recorder = DayRecorder(tmp_path, NY)
    recorder.start_here()
    for event in [*recorded_events(), late]:
        recorder.add(event)  # type: ignore[arg-type]
    recorder.close()
    assert recorder.error is None
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == ["2026-11-24.parquet", "2026-11-25.parquet"]
    first = list(read_day(tmp_path / "2026-11-24.parquet", NY))
    expected = [e for e in recorded_events() if type(e) is not Fill]  # a fill is the broker's
    assert first == expected
    assert list(read_day(tmp_path / "2026-11-25.parquet", NY)) == [late]


def test_a_row_earlier_than_the_one_before_is_written_at_its_time(tmp_path: Path) -> None:
    recorder = DayRecorder(tmp_path, NY)
    recorder.start_here()
    recorder.add(Quote("A", at(10), 1.0, 1.01))
    recorder.add(Quote("B", at(9), 2.0, 2.01))  # a late quote from another feed
    recorder.close()
    rows = list(read_day(tmp_path / "2026-11-24.parquet"))
    assert [(q.symbol, q.ts) for q in rows] == [("A", at(10)), ("B", at(10))]  # type: ignore[union-attr]


def test_a_second_run_on_the_same_day_appends_after_the_first(tmp_path: Path) -> None:
    for i in range(2):
        recorder = DayRecorder(tmp_path, NY)
        recorder.start_here()
        recorder.add(Quote("A", at(i), 1.0 + i, 1.5 + i))
        recorder.close()
    assert [q.bid for q in read_day(tmp_path / "2026-11-24.parquet")] == [1.0, 2.0]  # type: ignore[union-attr]


RECORDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo
    from momobot_core.backtest.dayfile import DayRecorder
    from momobot_core.models import Quote

    recorder = DayRecorder(sys.argv[1], ZoneInfo("America/New_York"))
    recorder.start_here()
    t0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    n = 0
    while True:
        for _ in range(1000):
            n += 1
            recorder.add(Quote("A", t0 + timedelta(microseconds=n), 1.0, 1.01))
        recorder.flush()
        print(n, flush=True)
    """
)


def test_a_killed_recorder_loses_nothing_it_wrote_and_its_day_is_sealed_at_the_next_start(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDER_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    written = 0
    while written < 5000:
        written = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not (tmp_path / "2026-11-24.parquet").exists()  # nothing sealed: the process was killed
    recorder = DayRecorder(tmp_path, NY)
    recorder.start_here()  # seals what the killed run left
    recorder.close()
    rows = DayFile(tmp_path / "2026-11-24.parquet").rows
    assert rows >= written  # every batch it reported written survived
    assert not list(tmp_path.glob("*.parts"))


def test_a_segment_cut_short_keeps_its_whole_batches(tmp_path: Path) -> None:
    recorder = DayRecorder(tmp_path, NY)
    recorder.start_here()
    for i in range(3):
        recorder.add(Quote("A", at(i), 1.0 + i, 1.5 + i))
        recorder.flush()  # a batch each
    recorder._sink.close()  # the process dies: no end-of-stream mark is written
    recorder._day = None
    segment = next((tmp_path / "2026-11-24.parts").glob("*.arrows"))
    os.truncate(segment, segment.stat().st_size - 20)  # the last batch cut short mid-write
    seal(tmp_path, datetime(2026, 11, 24).date())
    assert [q.bid for q in read_day(tmp_path / "2026-11-24.parquet")] == [1.0, 2.0]  # type: ignore[union-attr]


def test_a_record_folder_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot make the record folder"):
        DayRecorder(blocker / "days", NY).start_here()


# -- damaged files -----------------------------------------------------------------------------


def test_damaged_day_files_are_errors_that_name_the_file(tmp_path: Path) -> None:
    good = generate_day(tmp_path / "days", datetime(2026, 11, 2).date(), symbols=5, gappers=1, quotes=500)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    junk = tmp_path / "junk.parquet"
    junk.write_text("ts,symbol,bid,ask\n")
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    for path, why in (
        (cut, "not a readable day file"),
        (junk, "not a readable day file"),
        (other, "lacks column"),
    ):
        with pytest.raises(InputError, match=why) as info:
            list(read_day(path))
        assert str(path) in str(info.value)
    result = momobot("replay", str(cut))
    assert result.returncode == 2 and str(cut) in result.stderr


def test_rows_out_of_time_order_are_refused_with_the_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([at(2), at(1)], pa.timestamp("us", tz="UTC")),
            "kind": ["quote", "quote"],
            "symbol": ["A", "A"],
            "bid": [1.0, 1.0],
            "ask": [1.1, 1.1],
            "last": pa.array([None, None], pa.float64()),
            "last_at": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "data": pa.array([None, None], pa.string()),
        }
    )
    path = tmp_path / "day.parquet"
    pq.write_table(table, path)
    engine = Engine(journal=open_journal(None), charts=False)
    with pytest.raises(InputError, match=r"day.parquet: row 2: ts is earlier"):
        feed_day(engine, DayFile(path))
    with pytest.raises(InputError, match=r"day.parquet: row 2: ts"):
        list(read_day(path))


# -- the batch replay against the quote-by-quote one ----------------------------------------------


def _outcome(journal_trades: Sequence[Any], legs: Sequence[Any]) -> list[tuple[Any, ...]]:
    def strip(value: object) -> tuple[object, ...]:
        fields = attrs.asdict(value)  # type: ignore[arg-type]
        return tuple(sorted((k, v) for k, v in fields.items() if k not in ("id", "trade_id", "order_id")))

    return sorted(map(strip, journal_trades), key=repr) + sorted(map(strip, legs), key=repr)


def _replay(path: Path, by_batch: bool, config: Config) -> tuple[list[Any], dict[str, Any], dict[str, Quote]]:
    journal = open_journal(None)
    engine = Engine(config=config, journal=journal, charts=False)
    engine.start()
    if by_batch:
        feed_day(engine, DayFile(path), NY)
    else:
        run_events(engine, read_day(path, NY))
    engine.shutdown()
    return _outcome(journal.trades(), journal.legs()), attrs.asdict(engine.counters), dict(engine.last_quotes)


@pytest.mark.parametrize("trail", [None, 0.05, "candle"])
def test_a_day_fed_batch_by_batch_trades_as_quote_by_quote(tmp_path: Path, trail: object) -> None:
    path = generate_day(tmp_path, datetime(2026, 11, 3).date(), symbols=60, gappers=6, quotes=60_000)
    # Malformed quotes and a person's trade among the strategy's: they too must come out the same.
    table = pq.read_table(path)
    ts = table["ts"][100].as_py()
    gappers = {row["symbol"] for row in table.slice(0, 6).to_pylist()}
    quiet = next(s for s in table["symbol"].to_pylist()[6:100] if s not in gappers)
    person = json.dumps(
        {
            "type": "open",
            "ts": ts.isoformat(),
            "symbol": quiet,
            "qty": 100,
            "tp1": 999,
            "tp2": 1000,
            "stop": 0.5,
        }
    )
    extra = pa.table(
        {
            "ts": pa.array([ts] * 3, pa.timestamp("us", tz="UTC")),
            "kind": ["quote", "quote", "open"],
            "symbol": ["BAD", "AAB", quiet],
            "bid": [2.0, math.nan, None],
            "ask": [1.0, 1.0, None],
            "last": pa.array([None, None, None], pa.float64()),
            "last_at": pa.array([None, None, None], pa.timestamp("us", tz="UTC")),
            "data": [None, None, person],
        }
    ).cast(table.schema)
    merged = pa.concat_tables([table.slice(0, 101), extra, table.slice(101)])
    pq.write_table(merged, path, row_group_size=7_000)  # batches cut across actions and symbols
    config = Config({"bracket": {"trail": trail}} if trail is not None else {})
    by_batch, counters_batch, last_batch = _replay(path, True, config)
    one_by_one, counters_one, last_one = _replay(path, False, config)
    assert by_batch == one_by_one
    assert counters_batch == counters_one
    assert counters_batch["rejected_quotes"] == 2
    assert counters_batch["trades_opened"] >= 7  # the person's, and the gappers'
    assert any(("symbol", quiet) in trade for trade in by_batch)
    assert last_batch == last_one


def test_replay_and_record_from_take_day_files(tmp_path: Path) -> None:
    csv = tmp_path / "quotes.csv"
    csv.write_text(
        "ts,symbol,bid,ask,last\n"
        "2026-11-24T09:30:00,ABCD,2.00,2.01,2.00\n"
        "2026-11-24T09:30:02,ABCD,2.12,2.13,2.12\n"
        "2026-11-24T09:30:04,ABCD,2.32,2.33,2.33\n"
    )
    events = write_jsonl(
        tmp_path / "opens.jsonl",
        [
            {
                "type": "open",
                "ts": "2026-11-24T09:30:01",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.1,
                "tp2": 2.3,
                "stop": 1.9,
            }
        ],
    )
    made = momobot("record", str(tmp_path / "days"), "--from", str(csv), "--from", str(events))
    assert made.returncode == 0, made.stderr
    day = tmp_path / "days" / "2026-11-24.parquet"
    assert made.stdout.strip() == str(day)
    from_csv = momobot("replay", str(csv), str(events))
    from_day = momobot("replay", str(day))
    assert from_day.returncode == 0, from_day.stderr
    assert "1 opened, 1 closed (1 won, 0 lost)" in from_day.stdout
    # The same trade table and totals, whichever file it came from.
    assert from_csv.stdout.split("Quotes:")[0] == from_day.stdout.split("Quotes:")[0]


def test_a_replay_into_a_journal_refuses_a_day_it_already_holds(tmp_path: Path) -> None:
    day = generate_day(tmp_path, datetime(2026, 11, 4).date(), symbols=5, gappers=1, quotes=300)
    db = tmp_path / "j.db"
    assert momobot("replay", str(day), "--db", str(db)).returncode == 0
    again = momobot("replay", str(day), "--db", str(db))
    assert again.returncode == 2 and "at or before the journal's last event" in again.stderr


def test_serve_records_its_quotes_and_a_persons_trade_into_a_day_file(tmp_path: Path) -> None:
    from api_helpers import start_api

    config = tmp_path / "momobot.toml"
    config.write_text(f'[momobot]\nrecord = "{tmp_path / "days"}"\n')
    api = start_api(tmp_path, "--config", str(config))
    try:
        quote = {"symbol": "ABCD", "bid": 2.00, "ask": 2.01, "last": 2.00}
        assert api.client.post("/quotes", json=quote).status_code == 200
        order = {"symbol": "ABCD", "qty": 100, "tp1": 2.10, "tp2": 2.30, "stop": 1.90}
        assert api.client.post("/trades", json=order).status_code == 201
        assert (
            api.client.post("/quotes", json={**quote, "bid": 2.12, "ask": 2.13, "last": 2.12}).status_code
            == 200
        )
        # Written a second at a time, to a segment, until the day is sealed at the stop.
        assert wait_until(lambda: bool(list((tmp_path / "days").glob("*.parts/*.arrows"))), timeout=30)
    finally:
        code, err = api.stop()
    assert code == 0, err
    (day,) = (tmp_path / "days").glob("*.parquet")
    events = list(read_day(day))
    assert [type(e).__name__ for e in events] == ["Quote", "Open", "Quote"]
    replayed = momobot("replay", str(day))
    assert replayed.returncode == 0, replayed.stderr
    assert "Trades: 1 opened" in replayed.stdout and "Realised P&L: +6.00" in replayed.stdout  # TP1


def test_momobot_record_records_a_live_source_until_stopped(tmp_path: Path) -> None:
    from momobot_alpaca.fake import FakeAlpacaServer, FakeAlpacaThread

    quotes = [Quote("ABCD", at(n), 2.0 + n / 100, 2.01 + n / 100, 2.0 + n / 100) for n in range(4)]
    config = tmp_path / "momobot.toml"
    with FakeAlpacaThread(FakeAlpacaServer(quotes, speed=0)) as fake:
        config.write_text(
            f'[alpaca]\nkey_id = "test-key"\nsecret_key = "test-secret"\nurl = "{fake.server.url}"\n'
            'feed = "sip"\n[risk]\nstale_quote_s = 0\n'
        )
        days = tmp_path / "days"
        err = (tmp_path / "record.err").open("w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "momobot_core.cli",
                "record",
                str(days),
                "--source",
                "alpaca",
                "--watchlist",
                "abcd",
                "--config",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")},
        )
        try:
            # The fake sends its quotes at once; the recorder writes them within a second.
            assert wait_until(lambda: any(p.stat().st_size > 600 for p in days.glob("*.parts/*.arrows")), 60)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
            err.close()
    assert proc.returncode == 0, (tmp_path / "record.err").read_text()
    assert "recorded" in (tmp_path / "record.err").read_text()
    (day,) = days.glob("*.parquet")
    rows = list(read_day(day))
    seen = [(q.bid, q.ask) for q in rows if isinstance(q, Quote)]
    assert list(dict.fromkeys(seen)) == [(q.bid, q.ask) for q in quotes]  # a print repeats its quote


def test_a_day_file_is_never_sealed_twice_nor_written_by_two_recorders(tmp_path: Path) -> None:
    recorder = DayRecorder(tmp_path, NY)
    recorder.start_here()
    with pytest.raises(InputError, match=r"another recorder \(PID \d+\) is writing into this folder"):
        DayRecorder(tmp_path, NY).start_here()
    for i in range(3):
        recorder.add(Quote("A", at(i), 1.0 + i, 1.5 + i))
    recorder.flush()
    (segment,) = (tmp_path / "2026-11-24.parts").glob("*.arrows")
    kept = segment.read_bytes()
    recorder.close()
    # A crash after the sealed file was renamed into place, before its segments were removed:
    segment.parent.mkdir()
    segment.write_bytes(kept)
    again = DayRecorder(tmp_path, NY)
    again.start_here()  # seals what is left: nothing new
    again.add(Quote("A", at(1), 9.0, 9.5))  # earlier than the sealed rows: goes on after them
    again.close()
    rows = list(read_day(tmp_path / "2026-11-24.parquet"))
    assert [(q.bid, q.ts) for q in rows] == [(1.0, at(0)), (2.0, at(1)), (3.0, at(2)), (9.0, at(2))]  # type: ignore[union-attr]


def test_a_conversion_into_a_day_already_there_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("ts,symbol,bid,ask\n2026-11-24T10:00:00,A,1.00,1.01\n")
    second = tmp_path / "b.csv"
    second.write_text("ts,symbol,bid,ask\n2026-11-23T09:30:00,A,2.00,2.01\n2026-11-24T09:30:00,A,2.00,2.01\n")
    (made,) = convert([first], tmp_path / "days", NY)
    before = made.read_bytes()
    with pytest.raises(InputError, match="has a day file for 2026-11-24 already"):
        convert([second], tmp_path / "days", NY)
    assert made.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "days").iterdir()) == [".record.lock", "2026-11-24.parquet"]
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,symbol,bid,ask\n2026-11-25T09:30:00,A,1.00,1.01\n2026-11-25T09:31:00,A,x,1.01\n")
    result = momobot("record", str(tmp_path / "days"), "--from", str(bad))
    assert result.returncode == 2 and "bad.csv:3: bid 'x' is not a number" in result.stderr
    assert not list((tmp_path / "days").glob("2026-11-25*"))


def test_a_damaged_sealed_file_with_segments_left_is_a_clear_error(tmp_path: Path) -> None:
    recorder = DayRecorder(tmp_path, NY)
    recorder.start_here()
    recorder.add(Quote("A", at(0), 1.0, 1.5))
    recorder.flush()
    recorder._sink.close()  # killed: the segment stays
    recorder._day = None
    recorder._unlock()
    (tmp_path / "2026-11-24.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"2026-11-24.parquet: the day's sealed file cannot be read"):
        DayRecorder(tmp_path, NY).start_here()
    assert list((tmp_path / "2026-11-24.parts").glob("*.arrows"))  # the segment is kept


def _table(rows: list[dict[str, object]]) -> pa.Table:
    columns = {
        name: [row.get(name) for row in rows]
        for name in ("ts", "kind", "symbol", "bid", "ask", "last", "last_at", "data")
    }
    return pa.table(
        {
            "ts": pa.array(columns["ts"], pa.timestamp("us", tz="UTC")),
            "kind": pa.array(columns["kind"], pa.string()),
            "symbol": pa.array(columns["symbol"], pa.string()),
            "bid": pa.array(columns["bid"], pa.float64()),
            "ask": pa.array(columns["ask"], pa.float64()),
            "last": pa.array(columns["last"], pa.float64()),
            "last_at": pa.array(columns["last_at"], pa.timestamp("us", tz="UTC")),
            "data": pa.array(columns["data"], pa.string()),
        }
    )


OPEN_A = (
    '{"type":"open","ts":"2026-11-24T14:30:01+00:00","symbol":"A","qty":100,"tp1":10.1,"tp2":10.3,"stop":9.9}'
)


@pytest.mark.parametrize(
    "rows",
    [
        # a print stamped before 1970 (an older print never triggers a stop moved later)
        [
            {"ts": at(0), "kind": "quote", "symbol": "A", "bid": 9.99, "ask": 10.0},
            {"ts": at(1), "kind": "open", "symbol": "A", "data": OPEN_A},
            {
                "ts": at(2),
                "kind": "quote",
                "symbol": "A",
                "bid": 10.1,
                "ask": 10.11,
                "last": 10.1,
                "last_at": at(2),
            },
            {
                "ts": at(3),
                "kind": "quote",
                "symbol": "A",
                "bid": 10.0,
                "ask": 10.01,
                "last": 9.95,
                "last_at": datetime(1969, 12, 31, tzinfo=UTC),
            },
            {"ts": at(4), "kind": "quote", "symbol": "B", "bid": 0, "ask": 1.0},  # malformed, last
        ],
        [{"ts": at(0), "kind": "quote", "symbol": "A", "bid": None, "ask": 10.0}],
        [{"ts": at(0), "kind": "quote", "symbol": "", "bid": 9.0, "ask": 10.0}],
        [{"ts": at(0), "kind": None, "symbol": "A", "data": OPEN_A}],
        [{"ts": at(0), "kind": "trade", "symbol": "A", "data": OPEN_A}],
    ],
    ids=["old-print", "null-bid", "empty-symbol", "null-kind", "unknown-kind"],
)
def test_odd_rows_come_out_the_same_batch_by_batch_as_one_by_one(
    tmp_path: Path, rows: list[dict[str, object]]
) -> None:
    path = tmp_path / "odd.parquet"
    pq.write_table(_table(rows), path)
    outcomes: list[object] = []
    for by_batch in (True, False):
        try:
            journal = open_journal(None)
            engine = Engine(journal=journal, charts=False)
            engine.start()
            if by_batch:
                feed_day(engine, DayFile(path), NY)
            else:
                run_events(engine, read_day(path, NY))
            outcomes.append(
                (
                    _outcome(journal.trades(), journal.legs()),
                    attrs.asdict(engine.counters),
                    engine.clock.current,
                )
            )
        except InputError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


def test_a_recording_serve_killed_and_started_again_keeps_its_trade_and_its_day_whole(tmp_path: Path) -> None:
    from api_helpers import start_api

    from momobot_core.backtest.dayfile import read_segment

    config = tmp_path / "momobot.toml"
    config.write_text(f'[momobot]\nrecord = "{tmp_path / "days"}"\n')
    api = start_api(tmp_path, "--config", str(config))
    quote = {"symbol": "ABCD", "bid": 2.00, "ask": 2.01, "last": 2.00}
    assert api.client.post("/quotes", json=quote).status_code == 200
    order = {"symbol": "ABCD", "qty": 100, "tp1": 2.10, "tp2": 2.30, "stop": 1.90}
    assert api.client.post("/trades", json=order).status_code == 201
    assert (
        api.client.post("/quotes", json={**quote, "bid": 2.12, "ask": 2.13, "last": 2.12}).status_code == 200
    )

    def rows_written() -> int:
        return sum(b.num_rows for p in (tmp_path / "days").glob("*.parts/*.arrows") for b in read_segment(p))

    assert wait_until(lambda: rows_written() >= 3, timeout=30)
    api.stop(signal.SIGKILL)  # no seal, no shutdown: the segment and the journal as they were
    again = start_api(tmp_path, "--config", str(config))  # seals the killed run's segment first
    try:
        (position,) = again.client.get("/positions").json()
        assert (position["symbol"], position["remaining"], position["tp1_hit"]) == ("ABCD", 50, True)
        assert (
            again.client.post("/quotes", json={**quote, "bid": 2.20, "ask": 2.21, "last": 2.20}).status_code
            == 200
        )
    finally:
        code, err = again.stop()
    assert code == 0, err
    (day,) = (tmp_path / "days").glob("*.parquet")
    events = list(read_day(day))
    assert [type(e).__name__ for e in events] == ["Quote", "Open", "Quote", "Quote"]  # once each, in order
    assert [e.bid for e in events if isinstance(e, Quote)] == [2.00, 2.12, 2.20]
