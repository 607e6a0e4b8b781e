"""The market's clock: sessions on the exchange's calendar (holidays, half days), the
``[momobot] session`` entry rule, and what /ping shows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from momobot_core.config import Config, ConfigError
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.market import NEW_YORK, MarketHours
from momobot_core.models import Quote

from conftest import momobot, write_jsonl


def ny(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NEW_YORK)


MONDAY = date(2026, 12, 7)
THANKSGIVING = date(2026, 11, 26)
HALF_DAY = date(2026, 11, 27)  # the day after Thanksgiving: the regular session ends at 13:00


@pytest.mark.parametrize(
    ("at", "session"),
    [
        (ny(MONDAY, 3, 59, 59), "closed"),
        (ny(MONDAY, 4, 0), "pre"),
        (ny(MONDAY, 9, 29, 59), "pre"),
        (ny(MONDAY, 9, 30), "regular"),
        (ny(MONDAY, 15, 59, 59), "regular"),
        (ny(MONDAY, 16, 0), "after"),
        (ny(MONDAY, 19, 59, 59), "after"),
        (ny(MONDAY, 20, 0), "closed"),
        (ny(HALF_DAY, 12, 59), "regular"),
        (ny(HALF_DAY, 13, 0), "after"),
        (ny(HALF_DAY, 16, 59), "after"),
        (ny(HALF_DAY, 17, 0), "closed"),
        (ny(THANKSGIVING, 10, 0), "closed"),
        (ny(date(2026, 12, 5), 10, 0), "closed"),  # a Saturday
    ],
)
def test_each_session_on_the_exchanges_calendar(at: datetime, session: str) -> None:
    assert MarketHours().session_at(at) == session


def test_holidays_and_half_days_come_from_the_calendar() -> None:
    market = MarketHours()
    assert market.hours(THANKSGIVING).describe() == "closed (holiday)"
    assert market.hours(HALF_DAY).describe() == "half day: regular 09:30-13:00"
    assert market.hours(date(2026, 12, 25)).closed == "holiday"
    assert market.hours(date(2026, 12, 24)).early_close
    assert market.hours(MONDAY).describe() == "regular 09:30-16:00"
    assert market.source == "exchange_calendars XNYS"


@pytest.fixture
def fresh_calendar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Nothing read yet in this process, and an empty cache folder of the test's own."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOMOBOT_CACHE_DIR", str(cache))
    MarketHours.forget()
    yield cache
    MarketHours.forget()


def test_without_the_calendar_library_every_weekday_is_a_full_day_and_it_is_said(
    fresh_calendar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The calendar is read by a child process; there, the library cannot be imported.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "exchange_calendars.py").write_text("raise ImportError('not installed here')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    market = MarketHours()
    with caplog.at_level(logging.WARNING):
        assert market.hours(THANKSGIVING).describe() == "regular 09:30-16:00"
    assert market.hours(date(2026, 12, 5)).closed == "weekend"
    assert "holidays and half days are not known" in caplog.text and "momobot-core[calendar]" in caplog.text
    assert market.source == "weekdays (no exchange calendar)"
    assert not list(fresh_calendar.glob("*.json"))  # nothing kept of a year not read


def test_a_year_read_is_kept_on_disk_and_read_back_without_the_library(
    fresh_calendar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MarketHours().hours(THANKSGIVING).closed == "holiday"  # read by the library's child
    (kept,) = fresh_calendar.glob("*.json")
    assert kept.name == "xnys-2026.json"
    MarketHours.forget()
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "exchange_calendars.py").write_text("raise ImportError('not installed here')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))  # a child now could not read it: the file serves
    assert MarketHours().hours(HALF_DAY).describe() == "half day: regular 09:30-13:00"
    for damaged in (
        "{not json",
        '{"made": "2099-01-01", "rows": []}',
        '{"made": "%s", "rows": [["x", "y"]]}',
    ):
        kept.write_text(damaged.replace("%s", date.today().isoformat()))  # never trusted: read again
        MarketHours.forget()
        assert MarketHours().hours(THANKSGIVING).describe() == "regular 09:30-16:00"  # weekdays: said


def _engine(session: object, **risk: object) -> Engine:
    tables: dict[str, dict[str, object]] = {"momobot": {"session": session}}
    if risk:
        tables["risk"] = dict(risk)
    engine = Engine(config=Config(tables=tables), journal=Journal())
    engine.start()
    return engine


def _entry(engine: Engine, at: datetime) -> str:
    engine.on_quote(Quote("ABCD", at, 1.99, 2.00))
    try:
        engine.open_trade("ABCD", 100, 2.2, 2.4, 1.9, ts=at)
    except TradeRefused as exc:
        assert exc.rule == "session"
        return f"refused: {exc}"
    engine.close_trade("ABCD", ts=at)
    return "taken"


def test_entries_are_taken_in_the_configured_sessions_only() -> None:
    regular = _engine("regular")
    assert _entry(regular, ny(MONDAY, 10)) == "taken"
    assert _entry(regular, ny(MONDAY, 8)) == (
        "refused: ABCD: it is pre-market now (08:00 New York, regular 09:30-16:00); entries are taken in"
        " the regular session only ([momobot] session)"
    )
    assert _entry(regular, ny(HALF_DAY, 13, 30)).startswith(
        "refused: ABCD: it is after-hours now (13:30 New York,"
    )
    assert _entry(regular, ny(THANKSGIVING, 10)) == (
        "refused: ABCD: the market is closed today (holiday); entries are taken in the regular session only"
    )
    assert regular.counters.refused_by_rule == {"session": 3}
    extended = _engine("extended")
    assert [_entry(extended, ny(MONDAY, h)) for h in (4, 8, 12, 18)] == ["taken"] * 4
    assert _entry(extended, ny(MONDAY, 21)).startswith("refused: ABCD: it is outside the trading day now")
    early = _engine(["pre", "regular"])
    assert _entry(early, ny(MONDAY, 7)) == "taken" and _entry(early, ny(MONDAY, 17)).startswith("refused")
    anytime = Engine(journal=Journal())  # no [momobot] session: as before, at any time
    anytime.start()
    assert _entry(anytime, ny(THANKSGIVING, 22)) == "taken"


@pytest.mark.parametrize(
    ("session", "risk", "message"),
    [
        ("overnight", {}, "[momobot] session = 'overnight': sessions are pre, regular and after"),
        (["regular", "lunch"], {}, "[momobot] session = ['regular', 'lunch']: sessions are pre"),
        ([], {}, "[momobot] session = []: name at least one session"),
        (["pre", "after"], {}, "[momobot] session = ['pre', 'after']: the sessions must follow each other"),
        (
            "regular",
            {"trading_start": "07:00"},
            "[risk] trading_start = 07:00 lies outside [momobot] session = regular (09:30-16:00 New York",
        ),
        (
            ["pre", "regular"],
            {"trading_end": "16:30"},
            "[risk] trading_end = 16:30 lies outside [momobot] session = pre, regular (04:00-16:00",
        ),
    ],
)
def test_a_bad_session_or_a_window_outside_it_is_refused_at_start(
    session: object, risk: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        _engine(session, **risk)
    assert message in str(exc.value)


def test_a_window_inside_the_session_is_fine_and_the_environment_sets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _engine("extended", trading_start="07:00", trading_end="19:00")
    assert engine.settings.session == ("pre", "regular", "after")
    monkeypatch.setenv("MOMOBOT_SESSION", "pre regular")
    assert _engine("after").settings.session == ("pre", "regular")
    monkeypatch.delenv("MOMOBOT_SESSION")
    assert _engine(["Regular", " AFTER"]).settings.session == ("regular", "after")


def test_a_replay_refuses_a_pre_market_entry_under_a_regular_session(tmp_path: Path) -> None:
    day = write_jsonl(
        tmp_path / "day.jsonl",
        [
            {"type": "quote", "ts": "2026-12-07T08:00:00-05:00", "symbol": "ABCD", "bid": 1.99, "ask": 2.0},
            {
                "type": "open",
                "ts": "2026-12-07T08:00:01-05:00",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.2,
                "tp2": 2.4,
                "stop": 1.9,
            },
            {"type": "quote", "ts": "2026-12-07T10:00:00-05:00", "symbol": "ABCD", "bid": 1.99, "ask": 2.0},
            {
                "type": "open",
                "ts": "2026-12-07T10:00:01-05:00",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.2,
                "tp2": 2.4,
                "stop": 1.9,
            },
        ],
    )
    config = tmp_path / "momobot.toml"
    config.write_text('[momobot]\nsession = "regular"\n')
    result = momobot("replay", str(day), env={"MOMOBOT_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert "Trades: 1 opened" in result.stdout
    assert "it is pre-market now (08:00 New York" in result.stderr


def test_the_session_now_for_ping_and_the_page() -> None:
    engine = _engine(["pre", "regular"])
    now = engine.session_now(ny(HALF_DAY, 13, 30))
    assert now == {
        "session": "after",
        "name": "after-hours",
        "in_session": False,
        "sessions": ["pre", "regular"],
        "day": "half day: regular 09:30-13:00",
        "early_close": True,
        "calendar": "exchange_calendars XNYS",
    }
    assert engine.session_end(HALF_DAY).isoformat() == "13:00:00"  # type: ignore[union-attr]
    assert engine.session_end(THANKSGIVING) is None
    assert _engine("extended").session_end(MONDAY).isoformat() == "20:00:00"  # type: ignore[union-attr]
