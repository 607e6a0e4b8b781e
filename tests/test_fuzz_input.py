"""Bad recorded input gives FILE:LINE and exit 2, never a traceback (hypothesis, bounded).

``bench/fuzz_replay.py`` runs the same idea over 10,000 inputs through the command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momobot_core.config import Config, ConfigError, InputError
from momobot_core.report import tradervue_csv
from momobot_core.session import run_recorded

from conftest import momobot

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2026-11-24T14:30:00Z",
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59-05:00",
            "1764000000",
            "quote",
            "open",
            "close",
            "ABCD",
            "1e999",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ("type", "ts", "symbol", "bid", "ask", "last", "qty", "tp1", "tp2", "stop")
GOOD: dict[str, Any] = {
    "type": "quote",
    "ts": "2026-11-24T14:30:00Z",
    "symbol": "ABCD",
    "bid": 1.99,
    "ask": 2.00,
    "qty": 100,
    "tp1": 2.2,
    "tp2": 2.4,
    "stop": 1.9,
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event = dict(GOOD, type=draw(st.sampled_from(["quote", "open", "close"])))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            event[field] = draw(VALUES)
        else:
            event.pop(field, None)
    return event


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(events(), min_size=1, max_size=4))
def test_any_jsonl_event_is_read_or_refused_as_file_line(tmp_path: Path, lines: list[dict[str, Any]]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    db = tmp_path / "fuzz.db"
    for stale in tmp_path.glob("fuzz.db*"):
        stale.unlink()
    try:
        result = run_recorded([path], hooks=None, config=Config(), db=db)
    except InputError as exc:
        assert str(exc).startswith(f"{path}:")
        return
    # What was journaled can be read back and exported, whatever the input held.
    tradervue_csv(
        [
            {
                "ts": t.opened_at.isoformat(),
                "symbol": t.symbol,
                "qty": t.qty,
                "price": t.entry_price,
                "side": "buy",
            }
            for t in result.trades
        ]
    )


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    row=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12), min_size=1, max_size=6
    )
)
def test_any_csv_row_is_read_or_refused_as_file_line(tmp_path: Path, row: list[str]) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_text("ts,symbol,bid,ask,last\n" + ",".join(f'"{c}"' for c in row) + "\n")
    try:
        run_recorded([path], hooks=None, config=Config())
    except InputError as exc:
        assert str(exc).startswith(f"{path}:")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {"type": ["quote"], "ts": 0},
            "type ['quote'] is not one of quote, open, close, kill, resume, arm, disarm",
        ),
        ({"type": {"a": 1}, "ts": 0}, "is not one of quote, open, close, kill, resume, arm, disarm"),
        ({**GOOD, "bid": 10**400}, "bid 1000000"),
        ({**GOOD, "ts": "0001-01-01T00:00:00"}, "years 1970 to 2999"),
        ({**GOOD, "ts": "9999-12-31T23:59:59-05:00"}, "years 1970 to 2999"),
        ({**GOOD, "ts": 1e20}, "years 1970 to 2999"),
        ({**GOOD, "type": "open", "qty": "100"}, "qty '100' is a string"),
    ],
)
def test_inputs_that_gave_tracebacks_now_name_their_line(
    tmp_path: Path, line: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n")
    result = momobot("replay", str(path), "--db", str(tmp_path / "j.db"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:1:" in result.stderr and message in result.stderr


def test_nesting_deep_enough_for_a_recursion_error_is_a_line_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"type": "quote", "ts": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(InputError, match="nested too deeply"):
        run_recorded([path], hooks=None, config=Config())


def test_an_open_with_a_quantity_beyond_any_order_is_refused_not_journaled(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(
        json.dumps({**GOOD, "ts": "2026-11-24T14:30:00Z"})
        + "\n"
        + json.dumps({**GOOD, "type": "open", "ts": "2026-11-24T14:30:01Z", "qty": 9223372036854775808})
        + "\n"
    )
    result = run_recorded([path], hooks=None, config=Config(), db=tmp_path / "j.db")
    assert result.trades == [] and result.counters.refused_actions == 1


def test_a_min_hold_beyond_a_day_is_a_config_error() -> None:
    from momobot_core.config import CoreSettings

    with pytest.raises(ConfigError, match=r"\[momobot\] min_hold_s = 1e\+15: must be at most 86400"):
        CoreSettings.from_config(Config(tables={"momobot": {"min_hold_s": 1e15}}))


def test_an_excel_csv_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfts,symbol,bid,ask,last\r\n2026-11-24T14:30:00Z,ABCD,1.99,2.00,\r\n")
    assert run_recorded([path], hooks=None, config=Config()).counters.quotes == 1
