"""Strategies and arms: the built-ins' rules, the arms' rules, a restart, and risk limits.

A real SQLite journal throughout; the engine is the real one (its entries are a person's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from momobot_core.candles import Candle, Timeframe
from momobot_core.config import Config, ConfigError
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Arm, Close, Disarm, Quote
from momobot_core.strategies import ArmSpec
from momobot_core.strategies.arms import parse_arm
from momobot_core.strategies.bracket import BracketSettings, on_tick
from momobot_core.strategies.builtin import Level, Pullback

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
SPEC = ArmSpec("ABCD", "pullback", Timeframe.parse("1m"))


def candle(n: int, high: float, low: float, close: float) -> Candle:
    return Candle("ABCD", "1m", T0 + timedelta(minutes=n), low, high, low, close, 1)


# -- pullback against a plain reference ------------------------------------------------------


def reference_pullback(events: list[tuple[str, float, float, float]]) -> list[tuple[int, float, float]]:
    """The rule in the issue's words, written plainly: ``(event index, level, stop)`` of each entry.

    Events are ("candle", high, low, close) or ("price", price, 0, 0)."""
    entries = []
    previous_close = None
    pulling_back = False
    level = lowest = 0.0
    for index, (kind, a, b, c) in enumerate(events):
        if kind == "candle":
            high, low, close = a, b, c
            if pulling_back:
                level = min(level, high)
                lowest = min(lowest, low)
            elif previous_close is not None and close < previous_close:
                pulling_back, level, lowest = True, high, low
            previous_close = close
        elif pulling_back and a > level:
            entries.append((index, level, lowest))
            pulling_back = False
    return entries


price = st.integers(min_value=100, max_value=140).map(lambda cents: cents / 100)


@st.composite
def candle_events(draw: st.DrawFn) -> list[tuple[str, float, float, float]]:
    events = []
    for _ in range(draw(st.integers(min_value=1, max_value=60))):
        if draw(st.booleans()):
            low, high = sorted((draw(price), draw(price)))
            close = draw(st.integers(min_value=int(low * 100), max_value=int(high * 100))) / 100
            events.append(("candle", high, low, close))
        else:
            events.append(("price", draw(price), 0.0, 0.0))
    return events


@settings(max_examples=300, deadline=None)
@given(events=candle_events())
def test_pullback_agrees_with_a_plain_reference_of_the_rule(
    events: list[tuple[str, float, float, float]],
) -> None:
    strategy = Pullback(SPEC)
    got = []
    for index, (kind, a, b, c) in enumerate(events):
        if kind == "candle":
            assert strategy.on_candle(candle(index, a, b, c)) is None
        else:
            signal = strategy.on_price(T0, a)
            if signal is not None:
                got.append((index, signal.level, signal.stop))
    assert got == reference_pullback(events)


def test_pullback_lowers_its_level_on_lower_highs_and_enters_above_it() -> None:
    strategy = Pullback(SPEC)
    strategy.on_candle(candle(0, 2.10, 2.00, 2.10))
    strategy.on_candle(candle(1, 2.08, 2.03, 2.05))  # closed lower: level 2.08
    assert strategy.on_price(T0, 2.08) is None  # at the level is not above it
    strategy.on_candle(candle(2, 2.06, 2.01, 2.02))  # a lower high: level 2.06, low 2.01
    signal = strategy.on_price(T0, 2.07)
    assert signal is not None and (signal.level, signal.stop) == (2.06, 2.01)
    assert strategy.on_price(T0, 2.09) is None  # the pullback ended with its breakout


def test_level_enters_once_from_below() -> None:
    level = Level(ArmSpec("ABCD", "level", Timeframe.parse("1m"), {"level": 5.20}))
    assert level.on_price(T0, 5.25) is None  # above from the start: not from below
    assert level.on_price(T0, 5.10) is None
    signal = level.on_price(T0, 5.20)
    assert signal is not None and signal.level == 5.20
    level.entered()
    level.on_price(T0, 5.00)
    assert level.on_price(T0, 5.30) is None  # once
    with pytest.raises(ValueError, match="level"):
        Level(ArmSpec("ABCD", "level", Timeframe.parse("1m"), {}))


# -- brackets -------------------------------------------------------------------------------


def test_the_seeds_bracket_and_r_multiples_of_the_patterns_stop_on_the_tick() -> None:
    assert BracketSettings().levels(2.00, None) == (2.10, 2.30, 1.90)
    pattern = BracketSettings().merged({"stop": "pattern", "tp1_r": 2, "tp2_r": 4, "risk": 50})
    assert (pattern.qty, pattern.risk) == (None, 50.0)
    assert pattern.levels(2.00, 1.95) == (2.10, 2.20, 1.95)
    assert pattern.levels(2.00, None) == (2.10, 2.30, 1.90)  # no pattern stop: the fixed offsets
    assert on_tick(0.123456) == 0.1235 and on_tick(2.005001) == 2.01
    for bad in (
        {"qty": 0},
        {"qty": 1.5},
        {"tp1": 0.3, "tp2": 0.1},
        {"stop": "wide"},
        {"trail": "wide"},
        {"trailing": 1},
    ):
        with pytest.raises(ValueError):
            BracketSettings().merged(bad)
    with pytest.raises(ValueError, match="not both"):
        BracketSettings().merged({"qty": 100, "risk": 50})


def test_arms_in_config_are_checked_at_start_with_the_entry_named() -> None:
    arm = parse_arm("ABCD level 1m level=5.2 qty=200", T0)
    assert (arm.symbol, arm.strategy, arm.timeframe, arm.params) == (
        "ABCD",
        "level",
        "1m",
        {"level": 5.2, "qty": 200},
    )
    for bad in (
        '"ABCD pullback"',
        "ABCD nosuch 1m",
        "ABCD pullback 7s",
        "ABCD level 1m",
        "ABCD pullback 1m qty",
        "ABCD level 1m level=2 level=3",
    ):
        engine = Engine(config=Config({"momobot": {"arm": [bad.strip('"')]}}))
        with pytest.raises(ConfigError, match=r"\[momobot\] arm"):
            engine.start()


# -- the arms' rules through the real engine ---------------------------------------------------


def quote(engine: Engine, seconds: float, price: float, symbol: str = "ABCD") -> None:
    engine.apply(Quote(symbol, T0 + timedelta(seconds=seconds), round(price - 0.01, 2), price, price))


def pullback_day(engine: Engine, start: float = 0) -> None:
    """Up, a pullback with a lower high (level 2.06, low 2.04), then a print above it."""
    for s, p in [(0, 2.00), (30, 2.10), (60, 2.08), (90, 2.05), (120, 2.06), (150, 2.04), (180, 2.05)]:
        quote(engine, start + s, p)


def test_a_signal_enters_through_the_engine_and_the_journal_names_the_strategy(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    engine = Engine(journal=journal)
    engine.start()
    engine.apply(Arm("ABCD", "pullback", "1m", T0))
    pullback_day(engine)
    assert engine.open_trades == {}
    quote(engine, 185, 2.07)
    trade = engine.open_trades["ABCD"]
    assert (trade.entry_price, trade.tp1, trade.tp2, trade.stop, trade.qty) == (2.07, 2.17, 2.37, 1.97, 100)
    engine.shutdown()
    (kept,) = journal.trades()
    assert (kept.strategy, kept.timeframe, kept.level) == ("pullback", "1m", 2.06)


def test_one_entry_per_arm_then_a_cooldown_and_a_refused_entry_does_not_spend_it(tmp_path: Path) -> None:
    engine = Engine(
        config=Config({"risk": {"max_trades_per_day": 1}, "bracket": {"entries": 2, "cooldown_s": 120}}),
        journal=Journal(tmp_path / "journal.db"),
    )
    engine.start()
    engine.apply(Arm("WXYZ", "level", "1m", T0, {"level": 3.0}))
    quote(engine, 0, 2.9, "WXYZ")
    quote(engine, 1, 3.0, "WXYZ")  # the day's one entry
    engine.apply(Arm("ABCD", "level", "1m", T0, {"level": 2.0}))
    quote(engine, 2, 1.9)
    quote(engine, 3, 2.0)  # refused: max_trades_per_day
    (arm,) = [a for a in engine.arms if a["symbol"] == "ABCD"]
    assert (arm["entries"], arm["refused"]) == (0, 1)
    assert engine.counters.refused_by_rule == {"max_trades_per_day": 1}


def test_an_arm_waits_its_cooldown_after_its_trade_closed(tmp_path: Path) -> None:
    engine = Engine(
        config=Config({"bracket": {"entries": 2, "cooldown_s": 300}}), journal=Journal(tmp_path / "j.db")
    )
    engine.start()
    engine.apply(Arm("ABCD", "pullback", "1m", T0))
    pullback_day(engine)
    quote(engine, 185, 2.07)
    engine.apply(Close("ABCD", T0 + timedelta(seconds=190)))
    pullback_day(engine, start=240)  # a second breakout 235 s after the close: cooling down
    quote(engine, 240 + 185, 2.07)
    assert "ABCD" not in engine.open_trades
    pullback_day(engine, start=600)  # and one after the cooldown
    quote(engine, 600 + 185, 2.07)
    assert "ABCD" in engine.open_trades and engine.arms[0]["entries"] == 2
    engine.apply(Disarm("ABCD", T0 + timedelta(seconds=800)))
    assert engine.arms == [] and "ABCD" in engine.open_trades  # the trade keeps its exits
    with pytest.raises(TradeRefused, match="not armed"):
        engine.apply(Disarm("ABCD", T0 + timedelta(seconds=801)))


def test_a_restart_keeps_its_arms_and_never_enters_twice_on_the_same_breakout(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    engine = Engine(config=Config({"bracket": {"entries": 3}}), journal=Journal(db))
    engine.start()
    engine.apply(Arm("ABCD", "pullback", "1m", T0))
    pullback_day(engine)
    engine.tick()  # the pullback's state (level 2.06) is journaled
    assert engine.journal is not None and engine.journal.arms()[0].state["strategy"]["level"] == 2.06
    quote(engine, 185, 2.07)
    trade = engine.open_trades["ABCD"]
    engine.apply(Close("ABCD", T0 + timedelta(seconds=186)))
    # A SIGKILL here: the pullback's state before its breakout is the journal's last word.
    engine.journal.close()
    again = Engine(config=Config({"bracket": {"entries": 3}}), journal=Journal(db))
    again.start()
    (arm,) = again.arms
    assert (arm["strategy"], arm["entries"]) == ("pullback", 1)
    assert arm["state"]["level"] is None  # the entry is journaled: its breakout is spent
    quote(again, 187, 2.08)  # above the old level: no second entry on the same breakout
    assert again.open_trades == {} and [t.id for t in again.journal.trades()] == [trade.id]  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(
    path=st.lists(st.integers(min_value=180, max_value=240), min_size=10, max_size=120),
    max_open=st.integers(min_value=1, max_value=3),
    max_trades=st.integers(min_value=1, max_value=4),
)
def test_no_strategy_entry_breaks_a_risk_limit(path: list[int], max_open: int, max_trades: int) -> None:
    config = Config(
        {
            "risk": {"max_open_trades": max_open, "max_trades_per_day": max_trades, "max_shares": 300},
            "bracket": {"entries": 5, "qty": 200},
        }
    )
    engine = Engine(config=config)
    engine.start()
    symbols = ["AAAA", "BBBB", "CCCC", "DDDD"]
    for symbol in symbols:
        engine.apply(Arm(symbol, "pullback", "10s", T0))
    for n, cents in enumerate(path):
        quote(engine, n * 7, cents / 100, symbols[n % 4])
        assert len(engine.open_trades) <= max_open
        assert engine.book.entries <= max_trades
        assert all(t.qty <= 300 for t in engine.open_trades.values())


def replay(day: Path, *args: str) -> Any:
    """``momobot replay`` as a user runs it, no plugins that send: the finished process."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "momobot_core.cli", "replay", str(day), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,das,voice", "PATH": "/usr/bin:/bin"},
    )


Rows = list[tuple[Any, ...]]


def journal_of(db: Path) -> tuple[Rows, Rows, Rows]:
    """A journal's trades, legs and arms without their random ids."""
    with Journal(db, readonly=True) as journal:
        trades = [
            (
                t.symbol,
                t.qty,
                t.entry_price,
                t.tp1,
                t.tp2,
                t.initial_stop,
                t.strategy,
                t.timeframe,
                t.level,
                t.opened_at,
                t.closed_at,
                t.close_reason,
            )
            for t in journal.trades()
        ]
        legs = [
            (leg.symbol, leg.qty, leg.exit_price, leg.pnl, leg.reason, leg.closed_at)
            for leg in journal.legs()
        ]
        arms = [(a.symbol, a.strategy, a.timeframe, a.params, a.state, a.armed_at) for a in journal.arms()]
    return trades, legs, arms


def test_a_recorded_day_with_arms_replays_to_the_documented_entries_and_the_same_journal_twice(
    tmp_path: Path,
) -> None:

    day = Path(__file__).resolve().parent.parent / "docs" / "examples" / "strategy_day.jsonl"
    journals = []
    for run in ("first", "second"):
        db = tmp_path / f"{run}.db"
        done = replay(day, "--db", str(db))
        assert done.returncode == 0, done.stderr
        journals.append(journal_of(db))
    assert journals[0] == journals[1]
    trades, legs, arms = journals[0]
    # docs/strategies.md, "A recorded day": the entries, at these prices.
    assert [t[:9] for t in trades] == [
        ("WXYZ", 200, 5.21, 5.31, 5.51, 5.11, "level", "1m", 5.2),
        ("ABCD", 100, 2.07, 2.17, 2.37, 1.97, "pullback", "1m", 2.06),
    ]
    assert round(sum(leg[3] for leg in legs), 2) == 44.0
    assert [(a[0], a[4]["disarmed"]) for a in arms] == [("ABCD", True), ("WXYZ", False)]  # ABCD: 09:40


def test_live_a_candle_closes_when_the_clock_passes_its_end_without_a_later_price() -> None:
    engine = Engine(mode="live")
    engine.start()
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    engine.apply(Arm("ABCD", "pullback", "1m", now))
    for at, price in ((minute - timedelta(seconds=150), 2.10), (minute - timedelta(seconds=90), 2.05)):
        engine.apply(Quote("ABCD", at, round(price - 0.01, 2), price, price))
    # The minute before last closed (2.10); the last one (close 2.05) is still forming: no pullback.
    assert engine.arms[0]["state"]["level"] is None
    engine.tick()  # the clock is past its end: it closes, and the pullback starts (level 2.05)
    (after,) = engine.arms
    assert (after["state"]["level"], after["candle"]) == (2.05, None)


def config_engine(db: Path, *entries: str) -> Engine:
    engine = Engine(config=Config({"momobot": {"arm": list(entries)}}), journal=Journal(db), mode="live")
    engine.start()
    return engine


def restarted(engine: Engine, db: Path, *entries: str) -> Engine:
    engine.shutdown()
    assert engine.journal is not None
    engine.journal.close()
    return config_engine(db, *entries)


def test_todays_arms_and_disarms_made_by_a_person_outlive_a_restart_over_the_config(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    now = datetime.now(UTC)
    engine = config_engine(db, "ABCD pullback 1m", "EFGH level 1m level=5.20", "IJKL pullback 1m")
    engine.apply(Arm("ABCD", "level", "1m", now, {"level": 3.0}))  # a person, through the API
    engine.apply(Disarm("IJKL", now))
    engine = restarted(engine, db, "ABCD pullback 1m", "EFGH level 1m level=5.50", "IJKL pullback 1m")
    arms = {a["symbol"]: a for a in engine.arms}
    assert set(arms) == {"ABCD", "EFGH"}  # IJKL stays disarmed today
    assert (arms["ABCD"]["strategy"], arms["ABCD"]["origin"]) == ("level", "api")  # the person's arm
    assert arms["EFGH"]["params"] == {"level": 5.5}  # the changed entry replaced its old arm
    engine = restarted(engine, db, "ABCD pullback 1m", "EFGH level 1m level=5.50", "IJKL pullback 1m")
    assert {a["symbol"] for a in engine.arms} == {"ABCD", "EFGH"}
    with pytest.raises(ConfigError, match="ABCD armed twice"):
        restarted(engine, db, "ABCD pullback 1m", "ABCD level 1m level=2")


def test_a_configured_arms_entries_hold_across_restarts_whatever_the_case_of_its_timeframe(
    tmp_path: Path,
) -> None:
    db = tmp_path / "journal.db"
    engine = config_engine(db, "WXYZ level 1M level=5.20")
    now = datetime.now(UTC)
    for n, price in enumerate((5.10, 5.25)):
        engine.apply(Quote("WXYZ", now + timedelta(milliseconds=n), round(price - 0.01, 2), price, price))
    assert "WXYZ" in engine.open_trades
    engine.apply(Close("WXYZ", now + timedelta(milliseconds=5)))
    engine = restarted(engine, db, "WXYZ level 1M level=5.20")
    (arm,) = engine.arms
    assert arm["entries"] == 1
    for n, price in enumerate((5.10, 5.25)):
        engine.apply(Quote("WXYZ", now + timedelta(seconds=1 + n), round(price - 0.01, 2), price, price))
    assert engine.open_trades == {}  # its one entry is spent


def test_an_arm_that_cannot_be_restored_is_dropped_from_the_journal_and_told(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    engine = Engine(journal=Journal(db), mode="live")
    engine.start()
    engine.apply(Arm("DRP", "level", "1m", datetime.now(UTC), {"level": 2.0, "tp2": 0.3}))
    engine.shutdown()
    assert engine.journal is not None
    engine.journal.close()
    again = Engine(config=Config({"bracket": {"tp1": 0.5, "tp2": 1.0}}), journal=Journal(db), mode="live")
    again.start()
    assert again.arms == [] and [a.kind for a in again.alerts] == ["arm_dropped"]
    assert again.journal is not None and again.journal.arms() == []


def test_a_late_print_after_the_clock_closed_its_candle_is_dropped() -> None:
    from momobot_core.candles import CandleBuilder

    builder = CandleBuilder("ABCD", Timeframe.parse("1m"), UTC)
    builder.price(T0, 2.00)
    closed = builder.tick(T0 + timedelta(minutes=1))
    assert closed is not None and closed.close == 2.00
    late = builder.price(T0 + timedelta(seconds=50), 2.50)
    assert (late, builder.current) == (None, None)
    builder.price(T0 + timedelta(minutes=1, seconds=1), 2.05)
    current = builder.current
    assert current is not None and current.start == T0 + timedelta(minutes=1)


def test_lowercase_symbols_are_armed_and_traded_as_given(tmp_path: Path) -> None:
    engine = Engine()
    engine.start()
    engine.apply(Arm("wxyz", "level", "1m", T0, {"level": 5.2}))
    quote(engine, 0, 5.1, "wxyz")
    quote(engine, 1, 5.2, "wxyz")
    assert "wxyz" in engine.open_trades
    engine.apply(Disarm("wxyz", T0 + timedelta(seconds=2)))
    assert engine.arms == []


def test_a_recorded_arm_that_is_refused_is_counted_in_the_replay(tmp_path: Path) -> None:
    import json

    day = tmp_path / "bad.jsonl"
    day.write_text(
        json.dumps(
            {
                "type": "arm",
                "ts": "2026-11-24T09:30:00",
                "symbol": "ABCD",
                "strategy": "pulback",
                "timeframe": "1m",
            }
        )
        + "\n"
    )
    done = replay(day)
    assert done.returncode == 0, done.stderr
    assert "Refused actions: 1" in done.stdout and "no strategy 'pulback'" in done.stderr


def test_a_strategy_that_raises_is_disarmed_and_told_and_trading_goes_on() -> None:
    from momobot_core.plugins import Hooks

    class Broken:
        def __init__(self, spec: object) -> None:
            pass

        def on_candle(self, candle: object) -> None:
            return None

        def on_price(self, ts: object, price: float) -> None:
            raise ZeroDivisionError("a bug in the plugin")

        def entered(self) -> None:
            pass

        def state(self) -> dict[str, object]:
            return {}

        def restore(self, state: object) -> None:
            pass

    class Offers:
        from momobot_core import hookimpl

        @hookimpl
        def register_strategies(self, register: Any) -> None:
            register("broken", Broken)

    hooks = Hooks()
    hooks.load_builtins()
    hooks.register(Offers(), name="broken-plugin")
    engine = Engine(hooks=hooks)
    engine.start()
    engine.apply(Arm("ABCD", "broken", "1m", T0))
    engine.apply(Arm("WXYZ", "level", "1m", T0, {"level": 5.2}))
    quote(engine, 0, 2.00)  # raises inside the strategy: never out of apply
    assert [a["symbol"] for a in engine.arms] == ["WXYZ"]
    (alert,) = [a for a in engine.alerts if a.kind == "strategy_error"]
    assert "broken-plugin" in alert.message and "ZeroDivisionError" in alert.message
    quote(engine, 1, 5.1, "WXYZ")
    quote(engine, 2, 5.2, "WXYZ")
    assert "WXYZ" in engine.open_trades  # the other arms trade on


def test_after_tp1_a_stop_trailing_by_cents_follows_the_high_and_exits_there(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    engine = Engine(config=Config({"bracket": {"trail": 0.05}}), journal=Journal(db))
    engine.start()
    engine.apply(Arm("WXYZ", "level", "1m", T0, {"level": 5.0}))
    quote(engine, 0, 4.9, "WXYZ")
    quote(engine, 1, 5.0, "WXYZ")  # the entry: 100 at 5.00, TP1 5.10, TP2 5.30, stop 4.90
    trade = engine.open_trades["WXYZ"]
    assert (trade.trail, trade.stop) == ("0.05", 4.9)
    quote(engine, 2, 5.08, "WXYZ")  # before TP1 the stop does not trail
    assert engine.open_trades["WXYZ"].stop == 4.9
    quote(engine, 3, 5.10, "WXYZ")  # TP1: half sold; the stop goes to break-even, then trails
    assert engine.open_trades["WXYZ"].stop == 5.05  # 5.10 - 0.05: above break-even, so there
    quote(engine, 4, 5.20, "WXYZ")
    assert engine.open_trades["WXYZ"].stop == 5.15
    quote(engine, 5, 5.17, "WXYZ")  # lower: the stop stays
    assert engine.open_trades["WXYZ"].stop == 5.15
    engine.shutdown()
    assert engine.journal is not None
    engine.journal.close()
    again = Engine(config=Config({"bracket": {"trail": 0.05}}), journal=Journal(db))
    again.start()
    restored = again.open_trades["WXYZ"]
    assert (restored.stop, restored.trail, restored.tp1_hit) == (5.15, "0.05", True)
    quote(again, 6, 5.15, "WXYZ")  # the trailing stop: the rest sold at the bid
    assert "WXYZ" not in again.open_trades
    (leg,) = [leg for leg in again.journal.legs() if leg.reason == "stop"]  # type: ignore[union-attr]
    assert (leg.qty, leg.exit_price) == (50, 5.14)


def test_after_tp1_a_stop_trailing_by_candles_sits_a_tick_under_each_closed_low() -> None:
    engine = Engine(config=Config({"bracket": {"trail": "candle"}}))
    engine.start()
    engine.apply(Arm("WXYZ", "level", "1m", T0, {"level": 5.0}))
    quote(engine, 0, 4.9, "WXYZ")
    quote(engine, 1, 5.0, "WXYZ")  # the entry at 5.00
    quote(engine, 61, 5.12, "WXYZ")  # a new minute (the first closes: no TP1 yet); TP1 at 5.12
    assert engine.open_trades["WXYZ"].stop == 5.0  # break-even
    quote(engine, 90, 5.20, "WXYZ")
    quote(engine, 121, 5.22, "WXYZ")  # the 09:31 minute closes: low 5.12 -> the stop 5.11
    assert engine.open_trades["WXYZ"].stop == 5.11
    quote(engine, 125, 5.10, "WXYZ")  # through it: sold at the bid
    assert "WXYZ" not in engine.open_trades


def test_a_trailing_move_cut_short_by_a_kill_leaves_the_trade_confirmed_at_its_new_stop(
    tmp_path: Path,
) -> None:
    import attrs as _attrs

    from momobot_core.journal import JournalEvent

    db = tmp_path / "journal.db"
    engine = Engine(config=Config({"bracket": {"trail": 0.05}}), journal=Journal(db))
    engine.start()
    engine.apply(Arm("WXYZ", "level", "1m", T0, {"level": 5.0}))
    quote(engine, 0, 4.9, "WXYZ")
    quote(engine, 1, 5.0, "WXYZ")
    quote(engine, 2, 5.10, "WXYZ")  # TP1
    moved = _attrs.evolve(engine.open_trades["WXYZ"], stop=5.12)
    assert engine.journal is not None
    engine.journal.write(JournalEvent("trail", moved, at=T0))  # written, its mark never: a kill
    engine.journal.close()
    again = Engine(config=Config({"bracket": {"trail": 0.05}}), journal=Journal(db))
    again.start()
    restored = again.open_trades["WXYZ"]
    assert (restored.unconfirmed, restored.stop) == (False, 5.12)
    assert [a.kind for a in again.alerts if a.kind == "unconfirmed"] == []


def test_a_trailing_stop_never_reaches_the_bid_nor_follows_a_print_from_before_tp1() -> None:
    engine = Engine(config=Config({"bracket": {"trail": 0.05}}))
    engine.start()
    engine.apply(Arm("WXYZ", "level", "1m", T0, {"level": 5.0}))
    quote(engine, 0, 4.9, "WXYZ")
    quote(engine, 1, 5.0, "WXYZ")  # the entry at 5.00
    old_print = T0 - timedelta(seconds=30)
    engine.apply(Quote("WXYZ", T0 + timedelta(seconds=2), 5.09, 5.10, 5.28, old_print))  # TP1; a stale print
    assert engine.open_trades["WXYZ"].stop == 5.04  # from the bid 5.09, not the old 5.28
    engine.apply(Quote("WXYZ", T0 + timedelta(seconds=3), 5.05, 5.15, 5.15))  # a wide spread
    assert engine.open_trades["WXYZ"].stop == 5.04  # 5.15 - 0.05 = 5.10 would be over the bid
    engine.apply(Quote("WXYZ", T0 + timedelta(seconds=4), 5.05, 5.15, 5.15))
    assert "WXYZ" in engine.open_trades  # no price moved: nothing sold
