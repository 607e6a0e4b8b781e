"""Risk limits over random trading days (hypothesis), against the real engine and journal.

A model built only from what the hooks said (entries, exits, kills, alerts)
checks, event by event: no entry breaks a configured limit, an exit is never
refused, a kill flattens every open trade exactly once, and the day's
realised P&L never passes ``-max_daily_loss`` by more than the slippage of
exits filled below their stops.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momobot_core import hookimpl
from momobot_core.config import Config
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Close, Kill, Open, Quote, Resume

from conftest import make_hooks

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 09:30 in New York
NEW_YORK = ZoneInfo("America/New_York")
price = st.integers(150, 300).map(lambda cents: cents / 100)


@st.composite
def limits(draw: Any) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, values in (
        ("max_daily_loss", st.sampled_from([20, 50, 100, 300])),
        ("max_trades_per_day", st.integers(1, 8)),
        ("max_open_trades", st.integers(1, 4)),
        ("max_shares", st.sampled_from([50, 200, 1000])),
        ("max_position_value", st.sampled_from([100, 500, 2000])),
        ("loss_streak", st.integers(1, 4)),
        ("trading_end", st.sampled_from(["09:35", "09:40"])),
    ):
        if draw(st.booleans()):
            table[key] = draw(values)
    table["loss_confirm_s"] = draw(st.sampled_from([0, 1, 5]))
    return table


@st.composite
def day(draw: Any) -> list[tuple[Any, ...]]:
    """Events a second or a few apart: quotes (sometimes with the bid pulled), opens, closes, kills."""
    steps: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 80))):
        gap = draw(st.integers(0, 20))
        kind = draw(st.sampled_from(["quote"] * 6 + ["open"] * 3 + ["close", "kill", "resume"]))
        symbol = draw(st.sampled_from(SYMBOLS))
        if kind == "quote":
            bid = draw(price)
            spread = draw(st.sampled_from([0.01, 0.01, 0.02, 0.5]))  # 0.5: a bid pulled
            last = draw(st.one_of(st.none(), price))
            steps.append((gap, "quote", symbol, bid, round(bid + spread, 2), last))
        elif kind == "open":
            sized = draw(st.booleans())
            steps.append(
                (
                    gap,
                    "open",
                    symbol,
                    None if sized else draw(st.integers(1, 1200)),
                    draw(st.sampled_from([5, 20, 60])) if sized else None,
                    draw(st.sampled_from([0.05, 0.1, 0.3])),  # tp1 above the ask
                    draw(st.sampled_from([0.05, 0.1, 0.3])),  # stop below the ask
                )
            )
        else:
            steps.append((gap, kind, symbol))
    return steps


class Heard:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def on_order_submitted(self, order: Any, trade: Any) -> None:
        self.calls.append(("order", (order, trade)))

    @hookimpl
    def on_position_closed(self, trade: Any, reason: str, price: float) -> None:
        self.calls.append(("closed", (trade, reason)))

    @hookimpl
    def on_kill(self, trades: Any, reason: str) -> None:
        self.calls.append(("kill", ([t.id for t in trades], reason)))

    @hookimpl
    def on_alert(self, alert: Any) -> None:
        self.calls.append(("alert", alert))


class Model:
    """The account as the hooks describe it."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.open: dict[str, dict[str, Any]] = {}  # trade id -> entry, qty held, stop
        self.realised = 0.0
        self.slippage = 0.0  # exits filled below their stop
        self.entries = 0
        self.streak = 0
        self.pnl: dict[str, float] = {}
        self.halted: str | None = None

    def at_stops(self) -> float:
        return float(sum(min(0.0, (t["stop"] - t["entry"]) * t["held"]) for t in self.open.values()))

    def check_entry_allowed(self, order: Any, trade: Any, ts: datetime) -> None:
        """An entry the engine let through: every limit held before it."""
        limit = self.table
        assert self.halted is None, f"entry while halted ({self.halted})"
        assert order.qty <= limit.get("max_shares", order.qty)
        assert order.qty * order.price <= limit.get("max_position_value", 1e18) + 1e-9
        assert len(self.open) < limit.get("max_open_trades", 10**9)
        assert self.entries < limit.get("max_trades_per_day", 10**9)
        if "trading_end" in limit:
            assert ts.astimezone(NEW_YORK).strftime("%H:%M") < limit["trading_end"]
        if "max_daily_loss" in limit:
            own = order.qty * (order.price - trade.stop)
            assert self.realised + self.at_stops() - own >= -limit["max_daily_loss"] - 0.01

    def hear(self, calls: list[tuple[str, Any]], ts: datetime) -> None:
        killed: list[str] = []
        for name, args in calls:
            if name == "order":
                order, trade = args
                if order.intent == "entry":
                    self.check_entry_allowed(order, trade, ts)
                    self.entries += 1
                    self.open[trade.id] = {"entry": order.price, "held": order.qty, "stop": trade.stop}
                    continue
                held = self.open[trade.id]
                pnl = (order.price - held["entry"]) * order.qty
                self.realised += pnl
                self.pnl[trade.id] = self.pnl.get(trade.id, 0.0) + pnl
                if order.intent != "take_profit":
                    self.slippage += max(0.0, (held["stop"] - order.price) * order.qty)
                held["held"] -= order.qty
                held["stop"] = trade.stop  # break-even after TP1
            elif name == "closed":
                trade, reason = args
                if reason == "kill":
                    killed.append(trade.id)
                del self.open[trade.id]
                self.streak = self.streak + 1 if self.pnl.pop(trade.id, 0.0) < 0 else 0
            elif name == "kill":
                ids, reason = args
                assert sorted(ids) == sorted(self.open), "a kill names exactly the open trades"
                self.halted = reason
            elif name == "alert" and args.kind == "halted":
                self.halted = args.detail["reason"]
        for trade_id in killed:
            assert trade_id not in self.open
        if any(name == "kill" for name, _ in calls):
            assert self.open == {}, "a kill leaves nothing open"
            kill_ids = [args[0] for name, args in calls if name == "kill"]
            assert sorted(killed) == sorted(i for ids in kill_ids for i in ids), "each flattened once"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits(), day())
def test_no_entry_breaks_a_limit_and_a_kill_flattens_each_trade_once(
    table: dict[str, Any], steps: list[tuple[Any, ...]]
) -> None:
    heard = Heard()
    engine = Engine(
        config=Config(tables={"risk": table}), hooks=make_hooks(heard), journal=Journal(), mode="replay"
    )
    engine.start()
    model = Model(table)
    ts = START
    for step in steps:
        ts += timedelta(seconds=step[0])
        kind, symbol = step[1], step[2]
        before = len(heard.calls)
        event: Any
        if kind == "quote":
            event = Quote(symbol, ts, step[3], step[4], step[5])
        elif kind == "open":
            quote = engine.last_quotes.get(symbol)
            ask = quote.ask if quote else 2.0
            event = Open(
                symbol,
                step[3],
                round(ask + step[5], 2),
                round(ask + 0.5, 2),
                round(ask - step[6], 2),
                ts,
                step[4],
            )
        elif kind == "close":
            event = Close(symbol, ts)
        elif kind == "kill":
            event = Kill(ts)
        else:
            event = Resume(ts)
        was_open = symbol in engine.open_trades and symbol in engine.last_quotes
        try:
            result = engine.apply(event)
        except TradeRefused:
            assert kind != "close" or not was_open, "an exit is never refused"
            assert kind != "kill"
            result = None
        model.hear(heard.calls[before:], ts)
        if kind == "resume" and result is True:
            assert model.halted == "kill_switch", "only the kill switch is lifted by hand"
            model.halted = None
        if "loss_streak" in table and model.streak >= table["loss_streak"]:
            assert model.halted is not None, "a losing streak halts entries"
        if "max_daily_loss" in table:
            assert model.realised >= -table["max_daily_loss"] - model.slippage - 0.01
    engine.shutdown()
