"""What a person must answer first about a trade in doubt after a restart (restart.Doubts), on
its own: no engine, no journal."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from momobot_core.errors import TradeRefused
from momobot_core.journal import LOST_PREFIX
from momobot_core.models import Trade
from momobot_core.restart import Doubts

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
TRADE = Trade(
    id="t1",
    symbol="ABCD",
    qty=100,
    remaining=100,
    entry_price=2.0,
    tp1=2.2,
    tp2=2.4,
    stop=1.9,
    opened_at=T0,
    unconfirmed=True,
)


def test_an_entry_in_doubt_may_be_discarded_but_one_that_went_out_may_not() -> None:
    doubts = Doubts([("t1", "ABCD", "open", T0.isoformat())])
    assert doubts.unconfirmed() == {"t1"} and doubts.refusal_to_discard(TRADE, []) is None
    assert doubts.refusal_to_close(TRADE) is None and doubts.lost_for_confirm(TRADE, None) is None
    went = Doubts([("t1", "ABCD", "tp1", T0.isoformat())])
    refused = went.refusal_to_discard(TRADE, [])
    assert refused is not None and refused.kind == "already_open" and "only its tp1" in str(refused)
    confirmed = attrs.evolve(TRADE, unconfirmed=False)
    assert went.refusal_to_discard(confirmed, []) is not None  # a confirmed trade is closed instead


def test_a_lost_exit_needs_the_persons_word_before_a_close_or_a_confirm() -> None:
    doubts = Doubts([("t1", "ABCD", LOST_PREFIX + "tp1", T0.isoformat())])
    assert doubts.lost_exits("t1") == ["tp1"]
    refused = doubts.refusal_to_close(TRADE)
    assert refused is not None and refused.kind == "lost_exit"
    with pytest.raises(TradeRefused, match="say what your broker shows") as asked:
        doubts.lost_for_confirm(TRADE, None)
    assert asked.value.kind == "lost_exit"
    assert doubts.lost_for_confirm(TRADE, True) == "tp1" and doubts.lost_for_confirm(TRADE, False) is None
    doubts.answered("t1")
    assert doubts.lost_exits("t1") == [] and doubts.unconfirmed() == set()
    with pytest.raises(TradeRefused, match="no exit that went out unrecorded"):
        doubts.lost_for_confirm(TRADE, True)
