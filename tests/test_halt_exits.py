"""Exits during a trading halt: held by the engine and sent at the first quote after the resume,
at its bid; the LULD entry rule. Live, in a replay of a recording, and over the HTTP API."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from momobot_core import hookimpl
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal, open_journal
from momobot_core.models import TradingHalt

from conftest import Recorder, make_hooks, momobot, write_jsonl

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _engine(recorder: Recorder, journal: Journal | None = None) -> Engine:
    engine = Engine(hooks=make_hooks(recorder), journal=journal or Journal(), mode="replay")
    engine.start()
    return engine


def _quote(engine: Engine, seconds: float, bid: float, ask: float, symbol: str = "ABCD") -> None:
    from momobot_core.models import Quote

    assert engine.on_quote(Quote(symbol, at(seconds), bid, ask, bid))


def _halt(engine: Engine, seconds: float, halted: bool, symbol: str = "ABCD") -> None:
    engine.apply(TradingHalt(symbol, halted, "LULD pause" if halted else "resumed", at(seconds)))


def _sells(recorder: Recorder) -> list[tuple[str, float]]:
    return [
        (call["trade"].symbol, call["order"].price)
        for name, call in recorder.calls
        if name == "on_order_submitted" and call["order"].side == "sell"
    ]


def test_a_stop_price_during_a_halt_sends_nothing_and_the_first_quote_after_the_resume_decides(
    recorder: Recorder,
) -> None:
    engine = _engine(recorder)
    _quote(engine, 0, 2.00, 2.01)
    engine.open_trade("ABCD", 100, 2.10, 2.30, 1.90, ts=at(1))
    _halt(engine, 2, True)
    _quote(engine, 3, 1.50, 1.80)  # a price from the halt, under the stop: nothing goes out
    _quote(engine, 4, 2.40, 2.45)  # past TP2, still halted: nothing either
    assert _sells(recorder) == [] and "ABCD" in engine.open_trades
    _halt(engine, 5, False)
    assert _sells(recorder) == []  # the resume itself has no price
    _quote(engine, 6, 1.85, 1.86)  # the fresh price: under the stop, the stop goes at this bid
    assert _sells(recorder) == [("ABCD", 1.85)]
    assert "ABCD" not in engine.open_trades


def test_a_manual_close_during_a_halt_is_held_told_and_sent_at_the_fresh_bid(recorder: Recorder) -> None:
    engine = _engine(recorder)
    _quote(engine, 0, 2.00, 2.01)
    engine.open_trade("ABCD", 100, 2.10, 2.30, 1.90, ts=at(1))
    _halt(engine, 2, True)
    held = engine.close_trade("ABCD", ts=at(3))
    assert held.closed_at is None and engine.held_exits == {"ABCD": "manual"}
    engine.close_trade("ABCD", ts=at(3.5))  # asked twice: still one exit
    _quote(engine, 4, 1.70, 1.75)
    assert _sells(recorder) == []
    _halt(engine, 5, False)
    _quote(engine, 6, 2.05, 2.06)
    assert _sells(recorder) == [("ABCD", 2.05)]
    closed = [call for name, call in recorder.calls if name == "on_position_closed"]
    assert [(c["reason"], c["price"]) for c in closed] == [("manual", 2.05)]
    assert engine.held_exits == {}
    kinds = [alert.kind for alert in engine.alerts]
    assert kinds.count("exit_held") == 1 and kinds.count("exit_released") == 1
    assert kinds.index("trading_halt") < kinds.index("exit_held") < kinds.index("resumed")
    _quote(engine, 7, 1.0, 1.01)  # nothing left to sell
    assert len(_sells(recorder)) == 1


class KillRecorder(Recorder):
    @hookimpl
    def on_kill(self, trades: Any, reason: str) -> None:
        self.calls.append(("on_kill", {"trades": trades, "reason": reason}))


def test_a_kill_during_a_halt_flattens_the_rest_now_and_the_halted_trade_at_its_resume() -> None:
    recorder = KillRecorder()
    engine = _engine(recorder)
    _quote(engine, 0, 2.00, 2.01)
    _quote(engine, 0, 5.00, 5.01, symbol="WXYZ")
    engine.open_trade("ABCD", 100, 2.10, 2.30, 1.90, ts=at(1))
    engine.open_trade("WXYZ", 100, 5.10, 5.30, 4.90, ts=at(1))
    _halt(engine, 2, True)
    flattened = engine.kill(ts=at(3))
    assert [t.symbol for t in flattened] == ["WXYZ"]
    assert _sells(recorder) == [("WXYZ", 5.00)]
    assert engine.held_exits == {"ABCD": "kill_switch"} and "ABCD" in engine.open_trades
    with pytest.raises(TradeRefused, match="halted"):
        engine.open_trade("WXYZ", 100, 5.10, 5.30, 4.90, ts=at(3.5))
    _halt(engine, 4, False)
    _quote(engine, 5, 1.95, 1.97)
    assert _sells(recorder) == [("WXYZ", 5.00), ("ABCD", 1.95)]
    kills = [call for name, call in recorder.calls if name == "on_kill"]
    assert [([t.symbol for t in c["trades"]], c["reason"]) for c in kills] == [
        (["WXYZ"], "kill_switch"),
        (["ABCD"], "kill_switch"),
    ]
    halted = next(alert for alert in engine.alerts if alert.kind == "halted")
    assert "ABCD 100 held by its trading halt" in halted.message
    closed = [call["reason"] for name, call in recorder.calls if name == "on_position_closed"]
    assert closed == ["kill", "kill"]
    assert engine.open_trades == {}


def test_a_held_exit_is_not_kept_across_a_restart_the_trade_is(tmp_path: Path, recorder: Recorder) -> None:
    journal = open_journal(tmp_path / "j.db")
    engine = _engine(recorder, journal)
    _quote(engine, 0, 2.00, 2.01)
    engine.open_trade("ABCD", 100, 2.10, 2.30, 1.90, ts=at(1))
    _halt(engine, 2, True)
    engine.close_trade("ABCD", ts=at(3))
    assert engine.held_exits == {"ABCD": "manual"}
    journal.close()
    # Restart: the trade comes back open and nothing is held (docs/risk.md: ask again).
    engine2 = _engine(Recorder(), open_journal(tmp_path / "j.db"))
    assert "ABCD" in engine2.open_trades and engine2.held_exits == {}


def test_an_entry_whose_stop_lies_below_the_lower_luld_band_is_refused_with_its_rule(
    recorder: Recorder,
) -> None:
    engine = _engine(recorder)
    _quote(engine, 0, 2.00, 2.01)
    engine.luld("ABCD", 1.92, 2.10)
    with pytest.raises(
        TradeRefused, match=r"stop 1.9 lies below the lower limit-up/limit-down band 1.92"
    ) as exc:
        engine.open_trade("ABCD", 100, 2.05, 2.08, 1.90, ts=at(1))
    assert exc.value.rule == "luld"
    assert engine.counters.refused_by_rule == {"luld": 1}
    trade = engine.open_trade("ABCD", 100, 2.05, 2.08, 1.95, ts=at(2))  # inside the band: taken
    assert trade.stop == 1.95


def _day(tmp_path: Path) -> Path:
    def quote(ts: str, bid: float, ask: float) -> dict[str, Any]:
        return {"type": "quote", "ts": ts, "symbol": "ABCD", "bid": bid, "ask": ask, "last": bid}

    return write_jsonl(
        tmp_path / "day.jsonl",
        [
            quote("2026-11-24T14:30:00Z", 2.00, 2.01),
            {
                "type": "open",
                "ts": "2026-11-24T14:30:01Z",
                "symbol": "ABCD",
                "qty": 100,
                "tp1": 2.1,
                "tp2": 2.3,
                "stop": 1.9,
            },
            {
                "type": "trading_halt",
                "ts": "2026-11-24T14:30:02Z",
                "symbol": "ABCD",
                "halted": True,
                "reason": "LULD pause",
            },
            quote("2026-11-24T14:30:03Z", 1.50, 1.60),
            {"type": "close", "ts": "2026-11-24T14:30:04Z", "symbol": "ABCD"},
            quote("2026-11-24T14:30:05Z", 1.40, 1.60),
            {"type": "trading_halt", "ts": "2026-11-24T14:35:02Z", "symbol": "ABCD", "halted": False},
            quote("2026-11-24T14:35:03Z", 1.97, 1.98),
        ],
    )


def test_a_replayed_halt_holds_the_exits_as_live_and_the_report_shows_the_fresh_price(tmp_path: Path) -> None:
    day = _day(tmp_path)
    db = tmp_path / "replay.db"
    result = momobot("replay", str(day), "--db", str(db))
    assert result.returncode == 0, result.stderr
    journal = open_journal(db)
    (trade,) = journal.trades()
    assert trade.close_reason == "manual"
    assert [(leg.reason, leg.exit_price, leg.closed_at) for leg in journal.legs()] == [
        ("manual", 1.97, at(303))
    ]
    journal.close()


def test_the_columnar_replay_of_a_recorded_halt_holds_the_exit_the_same_way(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    day = _day(tmp_path)
    out = tmp_path / "days"
    converted = momobot("record", str(out), "--from", str(day))
    assert converted.returncode == 0, converted.stderr
    (parquet,) = out.glob("*.parquet")
    db = tmp_path / "replay.db"
    result = momobot("replay", str(parquet), "--db", str(db))
    assert result.returncode == 0, result.stderr
    journal = open_journal(db)
    assert [(leg.reason, leg.exit_price, leg.closed_at) for leg in journal.legs()] == [
        ("manual", 1.97, at(303))
    ]
    journal.close()


def test_serve_holds_a_close_asked_during_a_live_halt_and_sends_it_at_the_resume(tmp_path: Path) -> None:
    # Fake Alpaca feed -> serve --source alpaca -> entry -> halt status -> POST /close-position
    # answers 202 and no hotkey goes -> resume status -> the next quote: sell_all_bid at its bid.
    from api_helpers import start_api

    from momobot_alpaca import protocol
    from momobot_alpaca.fake import FakeAlpacaServer, FakeAlpacaThread

    from hotkey_helpers import HotkeyTestServer, wait_until

    with FakeAlpacaThread(FakeAlpacaServer(speed=0)) as feed, HotkeyTestServer() as hotkeys:
        env = {
            "MOMOBOT_DISABLE_PLUGINS": "",
            "MOMOBOT_HOTKEY_URL": hotkeys.url,
            "MOMOBOT_ALPACA_URL": feed.server.url,
            "MOMOBOT_ALPACA_FEED": "sip",
            "APCA_API_KEY_ID": "test-key",
            "APCA_API_SECRET_KEY": "test-secret",
            "MOMOBOT_QUOTE_WAIT_S": "30",  # the held entry waits on the test's push, not on luck
        }
        server = start_api(tmp_path, "--source", "alpaca", env=env)
        client = server.client
        try:
            assert wait_until(lambda: bool((client.get("/ping").json()["source"] or {}).get("connected")))
            # The symbol is not watched yet: the entry adds it and waits for its first quote.
            opening = client.build_request(
                "POST", "/trades", json={"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
            )
            result: list[Any] = []
            sender = threading.Thread(target=lambda: result.append(client.send(opening)))
            sender.start()
            assert wait_until(lambda: "ABCD" in feed.server.subscribed)
            feed.push(protocol.quote("ABCD", 1.99, 2.00, "x"))
            sender.join(10)
            assert result and result[0].status_code == 201, result
            assert hotkeys.wait_for(1) == ["buy_ask"]
            feed.push(protocol.status("ABCD", "H", "Trading Halt", "x"))
            assert wait_until(lambda: "ABCD" in client.get("/ping").json()["halted_symbols"])
            held = client.post("/close-position", json={"symbol": "ABCD"})
            assert held.status_code == 202, held.text
            assert held.json()["closed_at"] is None
            assert client.get("/ping").json()["held_exits"] == {"ABCD": "manual"}
            feed.push(protocol.luld("ABCD", 1.8, 2.2, "x"))
            assert wait_until(lambda: "ABCD" in client.get("/ping").json()["luld_bands"])
            assert client.post("/ui/watch", data={"symbol": "ABCD"}).status_code == 200
            page = client.get("/").text  # the dashboard shows the halt, the held exit and the band
            assert 'title="Trading Halt">halted</span>' in page and "manual exit held" in page
            assert "1.80 &ndash; 2.20" in page
            feed.push(protocol.quote("ABCD", 1.50, 1.70, "x"))  # a price from the halt: nothing goes
            feed.push(protocol.status("ABCD", "T", "Resume", "x"))
            assert wait_until(lambda: "ABCD" not in client.get("/ping").json()["halted_symbols"])
            assert client.get("/positions").json() != []  # the resume has no price of its own
            # The reopening print comes first: the source's bid from before the halt is no price
            # now, so nothing goes until a fresh quote.
            feed.push(protocol.trade("ABCD", 1.20, "x"))
            feed.push(protocol.quote("ABCD", 1.96, 1.97, "x"))
            assert hotkeys.wait_for(2) == ["buy_ask", "sell_all_bid"]
            legs = client.get("/trades").json()
            assert [(leg["reason"], leg["exit_price"]) for leg in legs] == [("manual", 1.96)]
            kinds = [alert["kind"] for alert in client.get("/alerts").json()]
            assert {"trading_halt", "exit_held", "resumed", "exit_released"} <= set(kinds)
        finally:
            code, err = server.stop()
        assert code == 0, err


def test_a_kill_and_resume_during_a_halt_never_lift_the_daily_loss_limits_halt() -> None:
    from momobot_core.config import Config

    engine = Engine(
        config=Config(tables={"risk": {"max_daily_loss": 20, "loss_confirm_s": 0}}), journal=Journal()
    )
    engine.start()
    _quote(engine, 0, 2.00, 2.01)
    engine.open_trade("ABCD", 100, 2.10, 2.30, 1.90, ts=at(1))
    _halt(engine, 2, True)
    _quote(engine, 3, 1.70, 1.71)  # during the halt: -30 unrealised, past the limit: a flatten, held
    assert engine.risk_status()["halted"] == "max_daily_loss"
    assert engine.held_exits == {"ABCD": "max_daily_loss"}
    engine.kill(ts=at(4))  # a person presses the kill switch too
    assert engine.risk_status()["halted"] == "max_daily_loss"  # not replaced by the button's
    with pytest.raises(TradeRefused):
        engine.resume(ts=at(5))
    _quote(engine, 5, 5.00, 5.01, symbol="WXYZ")
    with pytest.raises(TradeRefused, match="halted"):
        engine.open_trade("WXYZ", 100, 5.2, 5.4, 4.9, ts=at(6))


def test_a_held_kill_that_takes_the_day_past_its_loss_limit_is_no_second_kill() -> None:
    from momobot_core.config import Config

    recorder = KillRecorder()
    config = Config(tables={"risk": {"max_daily_loss": 20}})
    engine = Engine(config=config, hooks=make_hooks(recorder), journal=Journal())
    engine.start()
    _quote(engine, 0, 2.00, 2.01)
    engine.open_trade("ABCD", 100, 2.10, 2.30, 1.90, ts=at(1))
    _halt(engine, 2, True)
    engine.kill(ts=at(3))
    _halt(engine, 4, False)
    _quote(engine, 5, 1.50, 1.51)  # released at 1.50: realised -51, past max_daily_loss
    kills = [(len(c["trades"]), c["reason"]) for name, c in recorder.calls if name == "on_kill"]
    assert kills == [(0, "kill_switch"), (1, "kill_switch")]  # the kill, then its held trade; no third
    assert engine.risk_status()["halted"] == "max_daily_loss"
    halted = [a.message for a in engine.alerts if a.kind == "halted"]
    assert len(halted) == 2 and "past max_daily_loss" in halted[1]


def test_a_stop_trailing_by_candles_does_not_move_on_the_candles_of_a_halt() -> None:
    from momobot_core.config import Config
    from momobot_core.models import Open

    engine = Engine(config=Config(tables={}), journal=Journal())
    engine.start()
    _quote(engine, 0, 2.00, 2.01)
    engine.apply(Open("ABCD", 100, tp1=2.10, tp2=2.50, stop=1.90, ts=at(1), trail="candle", timeframe="1m"))
    _quote(engine, 2, 2.10, 2.11)  # TP1: the stop at break-even
    assert engine.open_trades["ABCD"].stop == 2.01
    _halt(engine, 3, True)
    for minute in range(1, 5):  # candles close during the halt, each low above the stop
        _quote(engine, 60 * minute, 2.30, 2.31)
    assert engine.open_trades["ABCD"].stop == 2.01  # no trailing move on a halt's prices
    _halt(engine, 300, False)
    _quote(engine, 301, 2.15, 2.16)  # the fresh price: above the stop, nothing sold
    assert engine.open_trades["ABCD"].remaining == 50


def test_limit_up_limit_down_bands_go_with_their_day() -> None:
    engine = _engine(Recorder())
    _quote(engine, 0, 10.00, 10.01)
    engine.luld("ABCD", 9.0, 11.0)
    tomorrow = 86400
    _quote(engine, tomorrow, 5.00, 5.01)
    trade = engine.open_trade("ABCD", 100, 5.2, 5.4, 4.9, ts=at(tomorrow + 1))  # yesterday's band: gone
    assert trade.stop == 4.9
    engine.luld("ABCD", 4.95, 5.5)  # today's band: it applies
    engine.close_trade("ABCD", ts=at(tomorrow + 2))
    with pytest.raises(TradeRefused, match=r"band 4\.95"):
        engine.open_trade("ABCD", 100, 5.2, 5.4, 4.9, ts=at(tomorrow + 3))


def test_a_halted_symbols_silence_is_the_halts_not_a_stale_feed() -> None:
    from momobot_core.config import Config
    from momobot_core.models import Quote

    engine = Engine(config=Config(tables={"risk": {"stale_quote_s": 0.2}}), journal=Journal(), mode="live")
    engine.start()
    now = datetime.now(UTC)
    for symbol in ("ABCD", "WXYZ"):
        engine.on_quote(Quote(symbol, now, 1.99, 2.00))
        engine.open_trade(symbol, 100, 2.2, 2.4, 1.9)
    engine.trading_halt("ABCD", True, "news pending")

    def stale_symbols() -> set[str | None]:
        engine.tick()
        return {a.symbol for a in engine.alerts if a.kind == "stale_quotes"}

    # Neither symbol is quoted again: WXYZ goes stale (the control); ABCD is halted, not stale.
    from hotkey_helpers import wait_until

    assert wait_until(lambda: "WXYZ" in stale_symbols())
    assert "ABCD" not in stale_symbols()
    engine.shutdown()


def test_a_held_close_released_into_a_locked_journal_then_a_kill_of_the_process_sells_once(
    tmp_path: Path,
) -> None:
    # Faults in a row: a halt holds a close; the journal is locked by another program when the
    # resume's first quote releases it (the exit goes to the side file, its hooks run); the
    # process dies before the lock goes. The restart keeps the close once and sends nothing again.
    from conftest import SqliteLocker

    db = tmp_path / "journal.db"
    first = Recorder()
    engine = Engine(hooks=make_hooks(first), journal=Journal(db), mode="replay")
    engine.start()
    _quote(engine, 0, 2.00, 2.01)
    engine.open_trade("ABCD", 100, 2.10, 2.30, 1.90, ts=at(1))
    _halt(engine, 2, True)
    engine.close_trade("ABCD", ts=at(3))
    _halt(engine, 4, False)
    locker = SqliteLocker(db)
    try:
        _quote(engine, 5, 1.96, 1.97)  # released: into the side file, sent all the same
        assert _sells(first) == [("ABCD", 1.96)] and engine.journal_pending
        assert engine.journal is not None
        engine.journal.close()  # as good as a kill for the file: nothing more is written
    finally:
        locker.release()
    again = Recorder()
    restarted = Engine(hooks=make_hooks(again), journal=Journal(db), mode="replay")
    restarted.start()
    assert restarted.open_trades == {} and restarted.held_exits == {}
    assert restarted.journal is not None
    legs = [(leg.reason, leg.qty, leg.exit_price) for leg in restarted.journal.legs()]
    assert legs == [("manual", 100, 1.96)]
    _quote(restarted, 6, 1.50, 1.51)  # under the old stop: nothing is open, nothing goes
    assert _sells(again) == []
    restarted.journal.close()
