"""Risk limits, sizing and the kill switch, in the engine (a real in-memory or on-disk journal)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from momobot_core import hookimpl
from momobot_core.config import Config, ConfigError
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Kill, Open, Quote, Resume
from momobot_core.risk import RiskSettings, size_from_risk
from momobot_core.testing import START, Script, run_script


def risk(**limits: Any) -> dict[str, dict[str, Any]]:
    return {"risk": limits}


class Kills:
    def __init__(self) -> None:
        self.kills: list[tuple[str, list[str]]] = []

    @hookimpl
    def on_kill(self, trades: Any, reason: str) -> None:
        self.kills.append((reason, [t.symbol for t in trades]))


# -- configuration -----------------------------------------------------------------------


def test_every_limit_is_read_from_the_table() -> None:
    settings = RiskSettings.from_config(
        Config(
            tables=risk(
                max_daily_loss=500,
                max_trades_per_day=10,
                max_open_trades=3,
                max_shares=2000,
                max_position_value=10_000,
                trading_start="09:30",
                trading_end="15:45",
                loss_streak=3,
                stale_quote_s=5,
                max_spread_pct=1.5,
                loss_confirm_s=1,
            )
        )
    )
    assert settings.max_daily_loss == 500 and settings.max_trades_per_day == 10
    assert settings.max_open_trades == 3 and settings.max_shares == 2000
    assert settings.max_position_value == 10_000 and settings.loss_streak == 3
    assert f"{settings.trading_start:%H:%M}-{settings.trading_end:%H:%M}" == "09:30-15:45"
    assert (settings.stale_quote_s, settings.max_spread_pct, settings.loss_confirm_s) == (5, 1.5, 1)
    assert RiskSettings.from_config(Config()) == RiskSettings()  # all optional: no limit


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"max_daily_loss": -5}, "[risk] max_daily_loss = -5: must be a finite number > 0"),
        ({"max_daily_loss": "lots"}, "[risk] max_daily_loss = 'lots': must be a number"),
        ({"max_shares": 0}, "[risk] max_shares = 0: must be >= 1"),
        ({"max_trades_per_day": 2.5}, "[risk] max_trades_per_day = 2.5: must be a whole number"),
        ({"trading_start": "9:30"}, "[risk] trading_start = '9:30': must be a time of day"),
        ({"trading_end": "24:00"}, "[risk] trading_end = '24:00': must be a time of day"),
        (
            {"trading_start": "15:00", "trading_end": "09:30"},
            "[risk] trading_end = 09:30 must be after trading_start = 15:00",
        ),
        ({"max_spread_pct": 0}, "[risk] max_spread_pct = 0: must be a finite number > 0"),
        ({"max_loss": 100}, "[risk] max_loss: unknown key"),
        ({"loss_confirm_s": 1e300}, "[risk] loss_confirm_s = 1e+300: must be at most 86400 seconds"),
    ],
)
def test_a_bad_limit_stops_start_up_naming_key_and_value(table: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as error:
        Engine(config=Config(tables={"risk": table}))
    assert says in str(error.value)


def test_a_limit_from_the_environment_is_named_with_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOMOBOT_RISK_MAX_OPEN_TRADES", "none")
    with pytest.raises(ConfigError, match=r"max_open_trades = 'none' \(from MOMOBOT_RISK_MAX_OPEN_TRADES\)"):
        Engine()


def test_a_misspelt_limit_in_the_environment_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOMOBOT_RISK_MAX_DAILY_LOS", "100")
    with pytest.raises(ConfigError, match="MOMOBOT_RISK_MAX_DAILY_LOS: not a \\[risk\\] key"):
        Engine()


# -- sizing ---------------------------------------------------------------------------------


def test_sizing_by_risk_is_exact_in_decimal() -> None:
    assert size_from_risk(50, 2.00, 1.90) == 500  # floats say 499.99999999999994
    assert size_from_risk(100, 3.30, 3.00) == 333
    assert size_from_risk(10, 0.0512, 0.0411) == 990
    assert size_from_risk(50, 2.00, 2.00) == 0
    # A sub-tick stop distance never sizes past the risk (rounded, 0.0001 would buy 1,000,000).
    assert size_from_risk(100, 2.00014, 2.0) == 714_285


def test_the_caps_allow_exactly_the_cap_and_a_sized_entry_too_large_is_refused() -> None:
    script = (
        Script()
        .quote("A", ask=0.14)
        .open("A", risk=1e6, tp1=0.2, tp2=0.3, stop=0.1)  # capped to 19,250: 19,250 x 0.14 = 2,695
    )
    result = run_script(script, config=risk(max_position_value=2695))
    assert [(t.symbol, t.qty) for t in result.trades] == [("A", 19_250)]
    script = Script().quote("B", ask=2.00).open("B", risk=1e7, tp1=2.2, tp2=2.4, stop=1.9999)
    result = run_script(script)
    assert result.trades == []
    assert "more than the 1,000,000,000 the engine takes" in result.refused[0]


def test_an_open_by_risk_buys_the_sized_quantity_capped_by_the_limits() -> None:
    script = (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", risk=50, tp1=2.2, tp2=2.4, stop=1.9)
        .quote("EFGH", ask=2.00)
        .open("EFGH", risk=500, tp1=2.2, tp2=2.4, stop=1.9)  # 5,000 shares: capped to 1,000
        .quote("MNOP", ask=20.00)
        .open("MNOP", risk=500, tp1=22, tp2=24, stop=19)  # 500 shares: $10,000 capped to $6,000
    )
    result = run_script(script, config=risk(max_shares=1000, max_position_value=6000))
    assert {t.symbol: t.qty for t in result.trades} == {"ABCD": 500, "EFGH": 1000, "MNOP": 300}
    assert result.refused == []


def test_an_explicit_qty_over_a_cap_is_refused_not_cut() -> None:
    script = (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", qty=1001, tp1=2.2, tp2=2.4, stop=1.9)
        .open("ABCD", qty=600, tp1=2.2, tp2=2.4, stop=1.9)  # $1,200 > $1,000
        .open("ABCD", qty=500, tp1=2.2, tp2=2.4, stop=1.9)
    )
    result = run_script(script, config=risk(max_shares=1000, max_position_value=1000))
    assert [t.qty for t in result.trades] == [500]
    assert result.refused == [
        "ABCD: qty 1,001 is over max_shares 1,000",
        "ABCD: 600 x 2.0 = $1,200.00 is over max_position_value $1,000.00",
    ]
    assert result.counters.refused_by_rule == {"max_shares": 1, "max_position_value": 1}


def test_risk_that_buys_less_than_a_share_and_qty_with_risk_are_refused() -> None:
    script = (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", risk=0.05, tp1=2.2, tp2=2.4, stop=1.9)
        .open("ABCD", qty=10, risk=50, tp1=2.2, tp2=2.4, stop=1.9)
    )
    result = run_script(script)
    assert result.trades == []
    assert "buys less than one share" in result.refused[0]
    assert result.refused[1] == "ABCD: give qty (shares) or risk (dollars to lose at the stop), not both"


# -- entries a limit refuses --------------------------------------------------------------


def test_trades_per_day_and_open_trades_are_counted() -> None:
    script = Script()
    for symbol in ("A", "B", "C"):
        script.quote(symbol, ask=2.00).open(symbol, qty=10, tp1=2.2, tp2=2.4, stop=1.9)
    script.close("A").open("A", qty=10, tp1=2.2, tp2=2.4, stop=1.9)  # 3rd entry of the day
    script.close("A").quote("D", ask=2.0).open("D", qty=10, tp1=2.2, tp2=2.4, stop=1.9)  # a 4th
    result = run_script(script, config=risk(max_open_trades=2, max_trades_per_day=3))
    assert [t.symbol for t in result.trades] == ["A", "B", "A"]
    assert result.counters.refused_by_rule == {"max_open_trades": 1, "max_trades_per_day": 1}
    assert result.refused[0] == "C: 2 trades are open: max_open_trades is 2"


def test_the_trading_window_is_in_the_configured_time_zone() -> None:
    # START is 14:30 UTC on 2 January: 09:30 in New York.
    script = (
        Script()
        .quote("ABCD", ask=2.00, at=0)
        .open("ABCD", qty=10, tp1=2.2, tp2=2.4, stop=1.9, at=1)  # 09:30:01: before 09:45
        .open("ABCD", qty=10, tp1=2.2, tp2=2.4, stop=1.9, at=15 * 60)  # 09:45
        .close("ABCD", at=6 * 3600)  # 15:30: exits are never refused
        .open("ABCD", qty=10, tp1=2.2, tp2=2.4, stop=1.9, at=6 * 3600 + 1)  # 15:30:01: after 15:30
    )
    result = run_script(script, config=risk(trading_start="09:45", trading_end="15:30"))
    assert [(t.symbol, t.close_reason) for t in result.trades] == [("ABCD", "manual")]
    assert result.counters.refused_by_rule == {"trading_start": 1, "trading_end": 1}
    assert "entries start at 09:45 (09:30:01 now, America/New_York)" in result.refused[0]


def test_a_refused_entry_is_alerted_journaled_and_summarised(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    script = Script().quote("ABCD", ask=2.00).open("ABCD", qty=200, tp1=2.2, tp2=2.4, stop=1.9)
    result = run_script(script, config=risk(max_shares=100), db=db)
    [alert] = [a for a in result.engine.alerts if a.kind == "risk_refused"]
    assert alert.symbol == "ABCD" and alert.detail == {"rule": "max_shares"}
    with Journal(db, readonly=True) as journal:
        [row] = journal.risk_events(START.date())
    assert (row.kind, row.rule, row.symbol) == ("refused", "max_shares", "ABCD")
    from momobot_core.report import summary

    text = summary(result.trades, result.legs, result.counters, 0, None)
    assert "Entries refused by a limit: max_shares 1" in text


def test_an_entry_whose_own_risk_would_pass_the_daily_loss_is_refused() -> None:
    script = (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", qty=1000, tp1=2.2, tp2=2.4, stop=1.9)  # risks $100
        .quote("ABCD", ask=1.89, bid=1.88, last=1.88)  # stop: -$120 realised
        .quote("EFGH", ask=2.00)
        .open("EFGH", qty=900, tp1=2.2, tp2=2.4, stop=1.9)  # -120 - 90 = -210: past 200
        .open("EFGH", qty=800, tp1=2.2, tp2=2.4, stop=1.9)  # -120 - 80 = -200: allowed
    )
    result = run_script(script, config=risk(max_daily_loss=200))
    assert [t.qty for t in result.trades] == [1000, 800]
    assert result.counters.refused_by_rule == {"max_daily_loss": 1}
    assert "would take today's P&L to $-210.00" in result.refused[0]


def test_open_trades_stops_count_against_the_daily_loss_of_a_new_entry() -> None:
    script = (
        Script()
        .quote("A", ask=2.00)
        .open("A", qty=1000, tp1=2.2, tp2=2.4, stop=1.9)  # $100 at risk
        .quote("B", ask=2.00)
        .open("B", qty=1000, tp1=2.2, tp2=2.4, stop=1.9)  # 100 + 100 = 200 allowed
        .quote("C", ask=2.00)
        .open("C", qty=100, tp1=2.2, tp2=2.4, stop=1.9)  # 210: refused
    )
    result = run_script(script, config=risk(max_daily_loss=200))
    assert [t.symbol for t in result.trades] == ["A", "B"]
    assert result.counters.refused_by_rule == {"max_daily_loss": 1}


# -- the daily loss limit flattens the book -------------------------------------------------


def test_a_realised_loss_reaching_the_limit_flattens_the_book_and_halts_the_day() -> None:
    kills = Kills()
    script = (
        Script()
        .quote("A", ask=2.00)
        .open("A", qty=1000, tp1=2.2, tp2=2.4, stop=1.9)
        .quote("B", ask=5.00)
        .open("B", qty=100, tp1=5.5, tp2=6.0, stop=4.9)
        .quote("B", ask=5.05, bid=5.04)
        .quote("A", ask=1.86, bid=1.85, last=1.85)  # stop: -$150 realised, limit 150
        .quote("B", ask=5.10, bid=5.09)  # B is flat already: nothing fires
        .quote("C", ask=3.00)
        .open("C", qty=10, tp1=3.3, tp2=3.6, stop=2.9)
    )
    result = run_script(script, [kills], config=risk(max_daily_loss=150))
    assert kills.kills == [("max_daily_loss", ["B"])]
    assert [(leg.symbol, leg.reason, leg.exit_price) for leg in result.legs] == [
        ("A", "stop", 1.85),
        ("B", "kill", 5.04),
    ]
    assert result.refused == [
        "C: entries are halted for the day: today's realised P&L $-150.00 reached max_daily_loss $150.00"
    ]
    halted = [a for a in result.engine.alerts if a.kind == "halted"]
    assert len(halted) == 1 and halted[0].detail["reason"] == "max_daily_loss"
    assert result.engine.risk_status()["halted"] == "max_daily_loss"


def test_one_quote_with_the_bid_pulled_cannot_flatten_the_book() -> None:
    kills = Kills()
    script = (
        Script()
        .quote("A", ask=2.00, at=0)
        .open("A", qty=500, tp1=2.2, tp2=2.4, stop=1.8, at=1)  # risks $100: the whole limit
        # The bid pulled (a 33% spread: -$250 at the bid), prints still above the stop:
        .quote("A", ask=2.00, bid=1.50, last=1.99, at=2)
        .quote("A", ask=2.00, bid=1.50, last=1.99, at=10)
        .quote("A", ask=2.00, bid=1.99, at=11)
    )
    result = run_script(script, [kills], config=risk(max_daily_loss=100))
    assert kills.kills == []
    assert [t.is_open for t in result.trades] == [True]


def test_an_unrealised_breach_must_last_loss_confirm_s() -> None:
    kills = Kills()
    script = (
        Script()
        .quote("A", ask=2.00, at=0)
        .open("A", qty=500, tp1=2.2, tp2=2.4, stop=1.8, at=1)  # risks $100: the whole limit
        # Prints stay above the stop (no stop fires) while the bid sinks below it:
        .quote("A", ask=1.80, bid=1.79, last=1.85, at=2)  # -$105 at the bid: the breach begins
        .quote("A", ask=1.86, bid=1.85, last=1.85, at=3)  # -$75: over
        .quote("A", ask=1.80, bid=1.79, last=1.85, at=4)  # begins again
        .quote("A", ask=1.80, bid=1.79, last=1.85, at=5)  # 1 s: not yet
        .quote("A", ask=1.79, bid=1.78, last=1.85, at=6)  # 2 s: confirmed
    )
    result = run_script(script, [kills], config=risk(max_daily_loss=100, loss_confirm_s=2))
    assert kills.kills == [("max_daily_loss", ["A"])]
    [leg] = result.legs
    assert (leg.reason, leg.exit_price, leg.closed_at - START) == ("kill", 1.78, timedelta(seconds=6))


# -- the losing streak, the kill switch, resume ---------------------------------------------


def test_a_losing_streak_halts_entries_for_the_day() -> None:
    script = Script()
    for symbol in ("A", "B"):
        script.quote(symbol, ask=2.00).open(symbol, qty=10, tp1=2.2, tp2=2.4, stop=1.9)
        script.quote(symbol, ask=1.89, bid=1.88, last=1.88)  # stopped out: a loss
    script.quote("C", ask=2.00).open("C", qty=10, tp1=2.2, tp2=2.4, stop=1.9)  # refused
    script.resume().open("C", qty=10, tp1=2.2, tp2=2.4, stop=1.9)  # not lifted by hand
    script.quote("C", ask=2.00, at=24 * 3600).open("C", qty=10, tp1=2.2, tp2=2.4, stop=1.9)  # next day
    result = run_script(script, config=risk(loss_streak=2))
    assert [t.symbol for t in result.trades] == ["A", "B", "C"]
    assert result.counters.refused_by_rule == {"loss_streak": 2}
    assert result.refused[1].startswith("entries stay halted for the rest of the trading day: 2 losing")
    # The day's alerts: a new day starts a new list (the journal keeps them all).
    assert [a.kind for a in result.engine.alerts] == ["resumed"]


def test_a_streak_reached_under_the_kill_switch_still_halts_the_day_after_resume() -> None:
    script = Script()
    for symbol in ("A", "B"):
        script.quote(symbol, ask=2.00).open(symbol, qty=10, tp1=2.2, tp2=2.4, stop=1.9)
    script.quote("A", ask=1.89, bid=1.88, last=1.88)  # a loss: streak 1
    script.kill()  # B flattened at a loss under the kill switch: streak 2
    script.resume()  # lifts the kill switch, but the streak holds the day
    script.quote("C", ask=2.00).open("C", qty=10, tp1=2.2, tp2=2.4, stop=1.9)
    result = run_script(script, config=risk(loss_streak=2))
    assert [t.symbol for t in result.trades] == ["A", "B"]
    assert "2 losing trades in a row (loss_streak 2)" in result.refused[0]
    assert result.engine.risk_status()["halted"] == "loss_streak"


def test_a_kill_whose_flatten_reaches_the_daily_loss_cannot_be_resumed() -> None:
    script = (
        Script()
        .quote("A", ask=2.00)
        .open("A", qty=1000, tp1=2.2, tp2=2.4, stop=1.9)
        .quote("A", ask=1.93, bid=1.89, last=1.95)  # spread 2.1%: not counted as a breach
        .kill()  # flattened at 1.89: -$110, past the limit of 100
        .resume()
    )
    result = run_script(script, config=risk(max_daily_loss=100))
    assert result.engine.risk_status()["halted"] == "max_daily_loss"
    assert result.refused[0].startswith("entries stay halted for the rest of the trading day")


def test_an_exit_on_a_new_day_is_counted_once() -> None:
    # A trade held overnight: the next day's first event is its stop. Counted twice, -$52 would
    # read as -$104 and flatten the book at a limit of 100.
    kills = Kills()
    script = (
        Script()
        .quote("A", ask=2.00)
        .open("A", qty=400, tp1=2.2, tp2=2.4, stop=1.9)
        .quote("A", ask=1.88, bid=1.87, last=1.87, at=24 * 3600)  # day 2: stopped, -$52
        .quote("B", ask=2.00, at=24 * 3600 + 1)
        .open("B", qty=400, tp1=2.2, tp2=2.4, stop=1.9, at=24 * 3600 + 2)  # -52 - 40 = -92: allowed
    )
    result = run_script(script, [kills], config=risk(max_daily_loss=100))
    assert kills.kills == []
    assert result.engine.risk_status()["realised"] == -52.0
    assert [t.symbol for t in result.trades] == ["A", "B"]


def test_the_kill_switch_flattens_halts_and_resume_lifts_it() -> None:
    kills = Kills()
    script = (
        Script()
        .quote("A", ask=2.00)
        .open("A", qty=10, tp1=2.2, tp2=2.4, stop=1.9)
        .kill()
        .open("A", qty=10, tp1=2.2, tp2=2.4, stop=1.9)  # refused: kill_switch
        .resume()
        .open("A", qty=10, tp1=2.2, tp2=2.4, stop=1.9)
    )
    result = run_script(script, [kills])
    assert kills.kills == [("kill_switch", ["A"])]
    assert [(t.close_reason, t.is_open) for t in result.trades] == [("kill", False), (None, True)]
    assert result.counters.refused_by_rule == {"kill_switch": 1}


def test_resume_is_refused_when_not_halted_and_after_the_daily_loss() -> None:
    script = (
        Script()
        .resume()
        .quote("A", ask=2.00)
        .open("A", qty=1000, tp1=2.2, tp2=2.4, stop=1.9)
        .quote("A", ask=1.89, bid=1.88, last=1.88)  # -$120: the limit is 100
        .resume()
    )
    result = run_script(script, config=risk(max_daily_loss=100))
    assert result.refused[0] == "entries are not halted by the kill switch or a risk limit"
    assert result.refused[1].startswith("entries stay halted for the rest of the trading day")


def test_a_new_trading_day_lifts_the_halt() -> None:
    script = Script().quote("A", ask=2.00).kill().open("A", qty=10, tp1=2.2, tp2=2.4, stop=1.9)
    script.quote("A", ask=2.00, at=24 * 3600).open("A", qty=10, tp1=2.2, tp2=2.4, stop=1.9)
    result = run_script(script)
    assert len(result.trades) == 1 and result.trades[0].opened_at == START + timedelta(days=1, seconds=1)
    assert result.counters.refused_by_rule == {"kill_switch": 1}
    assert [a.kind for a in result.engine.alerts] == ["resumed"]  # the new day's


def test_exits_are_never_refused_while_halted() -> None:
    script = (
        Script()
        .quote("A", ask=2.00)
        .quote("B", ask=2.00)
        .open("A", qty=10, tp1=2.2, tp2=2.4, stop=1.9)
        .open("B", qty=10, tp1=2.2, tp2=2.4, stop=1.9)
        .quote("A", ask=1.89, bid=1.88, last=1.88)
        .quote("B", ask=1.89, bid=1.88, last=1.88)  # 2nd loss: halted; B's exit went out first
        .quote("C", ask=2.00)
    )
    result = run_script(script, config=risk(loss_streak=1))
    assert [(t.symbol, t.close_reason) for t in result.trades] == [("A", "stop"), ("B", "stop")]


# -- across a restart -------------------------------------------------------------------------


def _engine(db: Path, **limits: Any) -> Engine:
    return Engine(config=Config(tables=risk(**limits)), journal=Journal(db), mode="replay")


def test_the_losing_streak_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    bot = _engine(db, loss_streak=3)
    bot.start()
    for n, symbol in enumerate(("A", "B")):
        at = START + timedelta(seconds=10 * n)
        bot.apply(Quote(symbol, at, 1.99, 2.00))
        bot.apply(Open(symbol, 10, 2.2, 2.4, 1.9, at + timedelta(seconds=1)))
        bot.apply(Quote(symbol, at + timedelta(seconds=2), 1.88, 1.89, 1.88))
    assert bot.risk_status()["losing_streak"] == 2
    bot.shutdown()
    assert bot.journal is not None
    bot.journal.close()
    again = _engine(db, loss_streak=3)
    again.start()
    again.apply(Quote("C", START + timedelta(seconds=30), 1.99, 2.00))
    again.apply(Open("C", 10, 2.2, 2.4, 1.9, START + timedelta(seconds=31)))
    assert again.risk_status()["losing_streak"] == 2
    again.apply(Quote("C", START + timedelta(seconds=32), 1.88, 1.89, 1.88))  # the third loss
    assert again.risk_status()["halted"] == "loss_streak"
    again.shutdown()
    assert again.journal is not None
    again.journal.close()


def test_a_halted_day_stays_halted_after_a_restart_with_its_count(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    bot = _engine(db, max_trades_per_day=5)
    bot.start()
    bot.apply(Quote("A", START, 1.99, 2.00))
    bot.apply(Open("A", 10, 2.2, 2.4, 1.9, START))
    bot.apply(Quote("A", START + timedelta(seconds=1), 1.88, 1.89, 1.88))  # -$1.20
    bot.apply(Kill(START + timedelta(seconds=2)))
    bot.shutdown()
    assert bot.journal is not None
    bot.journal.close()

    again = _engine(db, max_trades_per_day=5)
    again.start()
    again.apply(Quote("A", START + timedelta(seconds=3), 1.99, 2.00))
    with pytest.raises(TradeRefused) as refused:
        again.apply(Open("A", 10, 2.2, 2.4, 1.9, START + timedelta(seconds=4)))
    assert refused.value.rule == "kill_switch"
    status = again.risk_status()
    assert (status["halted"], status["realised"], status["trades_today"]) == ("kill_switch", -1.2, 1)
    again.apply(Resume(START + timedelta(seconds=5)))
    again.apply(Open("A", 10, 2.2, 2.4, 1.9, START + timedelta(seconds=6)))
    assert again.risk_status()["trades_today"] == 2
    again.shutdown()
    assert again.journal is not None
    again.journal.close()
    with sqlite3.connect(db) as raw:
        kinds = [row[0] for row in raw.execute("SELECT kind FROM risk ORDER BY seq")]
    assert kinds == ["halt", "refused", "resume"]


def test_the_worked_example_in_docs_risk_md() -> None:
    kills = Kills()
    m = 60  # START is 09:30 New York time
    script = (
        Script()
        .quote("ABCD", ask=2.00, at=5 * m - 1)
        .open("ABCD", risk=50, tp1=2.2, tp2=2.4, stop=1.9, at=5 * m)
        .quote("EFGH", ask=4.00, at=6 * m - 1)
        .open("EFGH", qty=2500, tp1=4.4, tp2=4.8, stop=3.9, at=6 * m)
        .open("EFGH", risk=120, tp1=4.4, tp2=4.8, stop=3.9, at=7 * m)
        .open("EFGH", risk=90, tp1=4.4, tp2=4.8, stop=3.9, at=7 * m + 1)
        .quote("ABCD", ask=1.89, bid=1.88, last=1.89, at=11 * m)
        .quote("EFGH", ask=3.96, bid=3.95, at=14 * m)
        .quote("EFGH", ask=3.96, bid=3.20, last=3.95, at=16 * m)
        .quote("EFGH", ask=3.90, bid=3.89, last=3.91, at=18 * m)
        .quote("EFGH", ask=3.90, bid=3.89, last=3.91, at=18 * m + 2)
        .quote("MNOP", ask=3.00, at=20 * m - 1)
        .open("MNOP", qty=100, tp1=3.3, tp2=3.6, stop=2.9, at=20 * m)
        .resume(at=21 * m)
    )
    config = risk(max_daily_loss=150, max_trades_per_day=6, max_shares=2000, loss_streak=3)
    result = run_script(script, [kills], config=config)
    assert [(t.symbol, t.qty, t.close_reason) for t in result.trades] == [
        ("ABCD", 500, "stop"),
        ("EFGH", 900, "kill"),
    ]
    assert [(leg.symbol, leg.exit_price, leg.pnl) for leg in result.legs] == [
        ("ABCD", 1.88, -60.0),
        ("EFGH", 3.89, -99.0),
    ]
    assert kills.kills == [("max_daily_loss", ["EFGH"])]
    assert result.legs[1].closed_at == START + timedelta(seconds=18 * m + 2)
    status = result.engine.risk_status()
    assert (status["realised"], status["trades_today"], status["losing_streak"]) == (-159.0, 2, 2)
    assert (status["halted"], status["refused"]) == ("max_daily_loss", {"max_shares": 1, "max_daily_loss": 2})
    assert result.refused[-1].startswith("entries stay halted for the rest of the trading day")


def test_a_kill_cut_short_by_a_crash_is_told_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    bot = _engine(db)
    bot.start()
    bot.apply(Quote("A", START, 1.99, 2.00))
    bot.apply(Open("A", 10, 2.2, 2.4, 1.9, START))
    assert bot.journal is not None
    # The halt row is written first; the process dies before A's flatten is journaled.
    bot.journal.record_risk("halt", "kill_switch", "the kill switch was pressed", None, START, START.date())
    bot.journal.close()
    again = _engine(db)
    again.start()
    again.apply(Quote("B", START + timedelta(seconds=5), 1.99, 2.00))
    with pytest.raises(TradeRefused):  # a replay's day starts with its first action (live: at start)
        again.apply(Open("B", 10, 2.2, 2.4, 1.9, START + timedelta(seconds=6)))
    [told] = [a for a in again.alerts if a.kind == "halted"]
    assert "A still open and not flattened" in told.message and told.detail["symbols"] == ["A"]
    assert again.risk_status()["halted"] == "kill_switch"
    again.shutdown()
    assert again.journal is not None
    again.journal.close()


def test_a_trade_opened_long_after_start_is_not_stale_at_once() -> None:
    # Found in review: a symbol's silence was counted from the process's start, so a trade
    # opened after stale_quote_s of uptime raised stale_quotes (and halted entries) at once.
    import time
    from datetime import UTC, datetime

    engine = Engine(mode="live")
    engine.start()
    engine._started_at = time.monotonic() - 60  # up for a minute
    engine.apply(Quote("ABCD", datetime.now(UTC), 1.99, 2.00))
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    engine.tick()
    assert [a.kind for a in engine.alerts if a.kind == "stale_quotes"] == []
    assert engine.stale_quotes == frozenset()


def test_a_source_whose_status_raises_never_stops_the_upkeep_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """tick() asks the source for its status first (stale quotes); a source that raises there
    must not keep the rest of the upkeep from running (the daily loss watch, the arms, the
    candles): here a candle of the last minute is closed by the tick after it."""
    from datetime import UTC, datetime

    class Broken:
        name = "broken"
        calls = 0

        def status(self) -> Any:
            self.calls += 1
            raise ValueError(f"year 285,000,000 is out of range (call {self.calls})")

    config = Config(tables={"risk": {"stale_quote_s": 60}})
    engine = Engine(config=config, journal=Journal(), mode="live")
    engine.start()
    engine.source = Broken()  # type: ignore[assignment]
    engine.chart("ABCD")
    engine.apply(Quote("ABCD", datetime.now(UTC) - timedelta(minutes=2), 1.99, 2.00))
    before = engine.charts.version("ABCD")  # the candle is still forming: no quote closed it
    engine.tick()
    engine.tick()
    assert engine.charts.version("ABCD") > before  # closed by the tick, after the status
    assert "source" in engine.stale_quotes  # fails closed: no word from the source is silence
    said = [r for r in caplog.records if "status could not be read" in r.getMessage()]
    assert len(said) == 1 and "ValueError: year 285,000,000" in said[0].getMessage()  # once, not every tick
