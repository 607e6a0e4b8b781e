"""The watchers on their own: quotes that stop, and trading halts (no engine, no clock)."""

from __future__ import annotations

from momobot_core.watch import QuoteWatch, TradingHalts


def test_a_symbol_without_quotes_goes_stale_once_and_comes_back_once() -> None:
    watch = QuoteWatch(limit_s=10, started_at=100.0)
    watch.quoted("ABCD", 100.0)
    assert watch.check(105.0, None, False, ["ABCD"]) == [] and watch.refusal("WXYZ") is None
    (notice,) = watch.check(111.0, None, False, ["ABCD"])
    assert (notice.kind, notice.symbol) == ("stale_quotes", "ABCD") and "over 10 s" in notice.message
    assert watch.check(112.0, None, False, ["ABCD"]) == []  # told once
    assert watch.refusal("WXYZ") == "WXYZ: entries are halted: no quotes from ABCD for over 10 s"
    watch.quoted("ABCD", 113.0)
    (back,) = watch.check(114.0, None, False, ["ABCD"])
    assert (back.kind, back.detail) == ("resumed", {"what": "stale_quotes"}) and watch.stale == frozenset()


def test_a_silent_source_counts_from_the_start_until_its_first_message() -> None:
    watch = QuoteWatch(limit_s=5, started_at=0.0)
    assert watch.check(4.0, None, True, []) == []
    (notice,) = watch.check(6.0, None, True, [])
    assert notice.symbol is None and "the live source" in notice.message
    assert [n.kind for n in watch.check(7.0, 0.5, True, [])] == ["resumed"]


def test_a_trading_halt_is_told_when_it_begins_and_ends() -> None:
    halts = TradingHalts()
    began = halts.change("ABCD", True, "LULD pause")
    assert began is not None and began.kind == "trading_halt"
    assert halts.change("ABCD", True, "LULD pause") is None  # already known
    assert halts.refusal("ABCD") == "ABCD: trading is halted on this symbol (LULD pause)"
    ended = halts.change("ABCD", False, "resumed")
    assert ended is not None and ended.kind == "resumed" and halts.refusal("ABCD") is None
    assert halts.change("WXYZ", False, "resumed") is None
