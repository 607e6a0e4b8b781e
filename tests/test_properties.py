"""Properties that hold over any quote path (hypothesis), against the real engine and journal."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Quote

from conftest import Recorder, at, make_hooks

SYMBOLS = ["AAA", "BBB"]
price = st.floats(min_value=0.5, max_value=3.0, allow_nan=False).map(lambda p: round(p, 2))
odd_price = st.sampled_from([math.nan, math.inf, -1.0, 0.0])


@st.composite
def quote_event(draw: Any) -> tuple[Any, ...]:
    symbol = draw(st.sampled_from(SYMBOLS))
    bid = draw(price)
    ask = round(bid + draw(st.sampled_from([0.0, 0.01, 0.02, 0.05])), 2)
    last = draw(st.one_of(st.none(), price))
    if draw(st.integers(0, 30)) == 0:  # now and then a malformed quote
        if draw(st.booleans()):
            bid, ask = ask + 0.1, bid
        else:
            ask = draw(odd_price)
    return ("quote", symbol, bid, ask, last)


@st.composite
def open_event(draw: Any) -> tuple[Any, ...]:
    return (
        "open",
        draw(st.sampled_from(SYMBOLS)),
        draw(st.one_of(st.integers(1, 3), st.integers(1, 500))),
        draw(st.floats(0.01, 0.5)),
        draw(st.floats(0.0, 0.5)),
        draw(st.floats(0.01, 0.5)),
    )


events = st.lists(
    st.one_of(
        quote_event(),
        quote_event(),
        quote_event(),
        open_event(),
        st.tuples(st.just("close"), st.sampled_from(SYMBOLS)),
    ),
    max_size=120,
)


def run(evts: list[tuple[Any, ...]]) -> tuple[Engine, Recorder, Journal]:
    recorder = Recorder()
    journal = Journal()
    engine = Engine(hooks=make_hooks(recorder), journal=journal)
    for n, event in enumerate(evts):
        ts = at(n)
        kind = event[0]
        try:
            if kind == "quote":
                engine.on_quote(Quote(event[1], ts, event[2], event[3], event[4]))
            elif kind == "open":
                _, symbol, qty, up1, up2, down = event
                last = engine.last_quotes.get(symbol)
                ask = last.ask if last else 1.0
                engine.open_trade(
                    symbol,
                    qty,
                    round(ask + up1, 4),
                    round(ask + up1 + up2, 4),
                    round(max(ask - down, 0.01), 4),
                    ts=ts,
                )
            else:
                engine.close_trade(event[1], ts=ts)
        except TradeRefused:
            pass
    return engine, recorder, journal


LEGAL_TARGET_ORDERS = {(), ("tp1",), ("tp1", "tp2"), ("tp1", "stop"), ("stop",)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_any_quote_path_keeps_every_trade_consistent(evts: list[tuple[Any, ...]]) -> None:
    engine, recorder, journal = run(evts)
    bought: dict[str, int] = defaultdict(int)
    sold: dict[str, int] = defaultdict(int)
    targets: dict[str, list[str]] = defaultdict(list)
    for name, kw in recorder.calls:
        if name == "on_order_submitted":
            order = kw["order"]
            (bought if order.side == "buy" else sold)[order.trade_id] += order.qty
            assert order.qty > 0
        elif name == "on_target_hit":
            targets[kw["trade"].id].append(str(kw["target"]))

    trades = {t.id: t for t in journal.trades()}
    for trade_id, trade in trades.items():
        # a trade never sells more than it bought, and what it holds is what it did not sell
        assert sold[trade_id] <= bought[trade_id] == trade.qty
        assert trade.remaining == trade.qty - sold[trade_id]
        # targets fire at most once each, in a legal order
        assert tuple(targets[trade_id]) in LEGAL_TARGET_ORDERS
        # every trade ends closed, or open with something left to sell
        if trade.is_open:
            assert trade.remaining > 0 and trade.symbol in engine.open_trades
        else:
            assert trade.remaining == 0 and trade.close_reason is not None
        if trade.tp1_hit:
            assert trade.stop == trade.entry_price

    # P&L in the journal equals the sum over legs, to the cent
    legs = journal.legs()
    executions = journal.executions()
    cash = sum(
        (-1 if e["side"] == "buy" else 1) * float(e["price"]) * int(e["qty"])  # type: ignore[arg-type,call-overload]
        for e in executions
    )
    held_cost = sum(t.entry_price * t.remaining for t in trades.values())
    assert math.isclose(sum(leg.pnl for leg in legs), cash + held_cost, abs_tol=0.005)
    assert sum(leg.qty for leg in legs) == sum(sold.values())
    # TP1 sells half of the entry quantity, rounded down
    for leg in legs:
        if leg.reason == "tp1":
            assert leg.qty == trades[leg.trade_id].qty // 2
