"""The bracket rules on their own: a pure step from a trade and a quote to the exits it causes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import attrs
from hypothesis import given
from hypothesis import strategies as st

from momobot_core import brackets
from momobot_core.brackets import StopMove
from momobot_core.models import CloseReason, Quote, Target, Trade

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
TRADE = Trade(
    id="t1", symbol="ABCD", qty=100, remaining=100, entry_price=2.0, tp1=2.2, tp2=2.4, stop=1.9, opened_at=T0
)


def q(
    bid: float, ask: float, last: float | None = None, *, t: float = 1, last_t: float | None = None
) -> Quote:
    last_at = None if last_t is None else T0 + timedelta(seconds=last_t)
    return Quote("ABCD", T0 + timedelta(seconds=t), bid, ask, last, last_at)


def test_each_level_and_its_price() -> None:
    assert brackets.exits(TRADE, q(2.10, 2.11), None) == ()
    assert brackets.exits(TRADE, q(2.20, 2.21), None) == (Target.TP1,)
    assert brackets.exits(TRADE, q(2.40, 2.41), None) == (Target.TP1, Target.TP2)  # a gap through both
    assert brackets.exits(TRADE, q(1.89, 1.90), None) == (Target.STOP,)
    assert brackets.exits(TRADE, q(1.95, 1.96, last=1.90), None) == (Target.STOP,)  # the print, not the bid
    assert brackets.exits(TRADE, q(1.85, 1.86, last=1.95), None) == ()
    assert brackets.exit_price(Target.TP1, q(2.20, 2.21)) == 2.21
    assert brackets.exit_price(Target.STOP, q(1.89, 1.90)) == 1.89


def test_tp1_sells_half_and_moves_the_stop_to_break_even() -> None:
    after = brackets.after_tp1(TRADE)
    assert (after.remaining, after.stop, after.tp1_hit) == (50, 2.0, True)
    assert brackets.tp1_qty(attrs.evolve(TRADE, qty=1, remaining=1)) == 0
    assert brackets.exits(after, q(2.40, 2.41), None) == (Target.TP2,)
    assert brackets.exits(after, q(1.99, 2.00), None) == (Target.STOP,)
    closed = brackets.after_close(after, Target.TP2, CloseReason.TP2, T0)
    assert (closed.remaining, closed.tp2_hit, closed.stop_hit, closed.close_reason) == (
        0,
        True,
        False,
        CloseReason.TP2,
    )


def test_a_print_from_before_the_stop_moved_never_triggers_it() -> None:
    after = brackets.after_tp1(TRADE)
    move = StopMove.on(q(2.20, 2.21, last=2.00, t=1, last_t=0))
    # The entry's own print, still the last one known: the bid (2.05) decides, not 2.00.
    assert brackets.exits(after, q(2.05, 2.06, last=2.00, t=2, last_t=0), move) == ()
    # The same print the move knew, in the same frame: still not new.
    assert (
        brackets.exits(
            after, q(2.05, 2.06, last=2.00, t=1, last_t=1), StopMove.on(q(2.2, 2.21, 2.0, t=1, last_t=1))
        )
        == ()
    )
    # A fresh print at break-even does.
    assert brackets.exits(after, q(2.05, 2.06, last=2.00, t=3, last_t=3), move) == (Target.STOP,)


prices = st.floats(min_value=0.5, max_value=5.0, allow_nan=False).map(lambda p: round(p, 2))


@given(
    bid=prices, spread=st.floats(min_value=0, max_value=0.2), last=st.none() | prices, tp1_hit=st.booleans()
)
def test_a_step_never_mixes_a_stop_with_a_take_profit(
    bid: float, spread: float, last: float | None, tp1_hit: bool
) -> None:
    trade = brackets.after_tp1(TRADE) if tp1_hit else TRADE
    quote = q(bid, round(bid + spread, 2), last)
    targets = brackets.exits(trade, quote, None)
    assert targets in ((), (Target.TP1,), (Target.TP1, Target.TP2), (Target.TP2,), (Target.STOP,))
    if Target.TP2 in targets and Target.TP1 not in targets:
        assert trade.tp1_hit  # TP2 only after TP1
    if tp1_hit:
        assert Target.TP1 not in targets  # TP1 once
    if targets == (Target.STOP,):
        assert brackets.stop_price(trade, quote, None) <= trade.stop


def test_an_entrys_levels_are_checked_against_each_other_and_the_ask() -> None:
    import pytest

    from momobot_core.brackets import check_levels
    from momobot_core.errors import TradeRefused

    check_levels("ABCD", 100, None, 2.2, 2.4, 1.9, 2.0)  # sound: nothing raised
    cases = [
        ((100, 50.0, 2.2, 2.4, 1.9), "invalid", "not both"),
        ((None, None, 2.2, 2.4, 1.9), "invalid", "neither"),
        (("100", None, 2.2, 2.4, 1.9), "invalid", "is a string"),
        ((0, None, 2.2, 2.4, 1.9), "invalid", "whole number from 1"),
        ((100, None, float("nan"), 2.4, 1.9), "invalid", "tp1 must be a price"),
        ((100, None, 2.2, 2.4, 2.0), "market", "stop 2.0 must be below"),
        ((100, None, 2.0, 2.4, 1.9), "market", "tp1 2.0 must be above"),
        ((100, None, 2.3, 2.2, 1.9), "invalid", "tp2 2.2 must be at or above"),
    ]
    for (qty, risk, tp1, tp2, stop), kind, words in cases:
        with pytest.raises(TradeRefused, match=words) as refused:
            check_levels("ABCD", qty, risk, tp1, tp2, stop, 2.0)  # type: ignore[arg-type]
        assert refused.value.kind == kind


def test_an_exit_carries_every_field_it_does_not_move() -> None:
    # after_tp1, after_close and moved_stop build the trade field by field (an exit's path is
    # cold): each must equal attrs.evolve of the fields it moves, for every field Trade has,
    # including one added later (every field of `trade` differs from its default), and with
    # every mix of the flags, so that no two of them can trade places unseen.
    defaults = Trade(
        id="x",
        symbol="X",
        qty=1,
        remaining=1,
        entry_price=1.0,
        tp1=2.0,
        tp2=3.0,
        stop=0.5,
        opened_at=T0 - timedelta(days=1),
    )
    trade = Trade(
        id="t9",
        symbol="WXYZ",
        qty=300,
        remaining=150,
        entry_price=3.0,
        tp1=3.3,
        tp2=3.6,
        stop=2.9,
        opened_at=T0,
        tp1_hit=True,
        tp2_hit=True,
        stop_hit=True,
        closed_at=T0 + timedelta(minutes=1),
        close_reason=CloseReason.MANUAL,
        unconfirmed=True,
        initial_stop=2.8,
        strategy="orb",
        timeframe="1m",
        level=3.05,
        trail="candle",
    )
    for field in attrs.fields(Trade):
        assert getattr(trade, field.name) != getattr(defaults, field.name), field.name
    later = T0 + timedelta(minutes=2)
    for tp1_hit, tp2_hit, stop_hit, unconfirmed, closed in itertools.product((False, True), repeat=5):
        mix = attrs.evolve(
            trade,
            tp1_hit=tp1_hit,
            tp2_hit=tp2_hit,
            stop_hit=stop_hit,
            unconfirmed=unconfirmed,
            closed_at=trade.closed_at if closed else None,
            close_reason=trade.close_reason if closed else None,
        )
        assert brackets.after_tp1(mix) == attrs.evolve(
            mix, tp1_hit=True, remaining=mix.remaining - mix.qty // 2, stop=mix.entry_price
        )
        assert brackets.moved_stop(mix, 3.1) == attrs.evolve(mix, stop=3.1)
        for target, reason in (
            (Target.TP2, CloseReason.TP2),
            (Target.STOP, CloseReason.STOP),
            (None, CloseReason.MANUAL),
        ):
            assert brackets.after_close(mix, target, reason, later) == attrs.evolve(
                mix,
                remaining=0,
                closed_at=later,
                close_reason=reason,
                tp2_hit=True if target is Target.TP2 else mix.tp2_hit,
                stop_hit=True if target is Target.STOP else mix.stop_hit,
            )
