"""The trading path's slot constructors: the same values as attrs' own ``__init__``, or refused."""

from __future__ import annotations

import inspect
import itertools
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from momobot_core import brackets
from momobot_core.brackets import StopMove, new_stop_move
from momobot_core.journal import JournalEvent, new_event
from momobot_core.models import (
    CloseReason,
    Intent,
    Leg,
    Order,
    Quote,
    Side,
    Trade,
    new_leg,
    new_order,
    new_quote,
    new_trade,
    slot_constructor,
)

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
TRADE = Trade("t1", "ABCD", 100, 50, 2.0, 2.2, 2.4, 2.0, T0, True, False, False, None, None, False, 1.9)
ORDER = Order("o1", "ABCD", Side.SELL, 50, 2.21, Intent.TAKE_PROFIT, "t1", T0 + timedelta(seconds=5))
LEG = Leg("t1", "ABCD", 50, 2.0, 2.21, 10.5, "tp1", T0, T0 + timedelta(seconds=5), "o1")

TRADE_VALUES = (
    "t9", "WXYZ", 300, 150, 3.0, 3.3, 3.6, 2.9, T0, True, True, True, T0 + timedelta(minutes=1),
    CloseReason.MANUAL, True, 2.8, "orb", "1m", 3.05, "candle",
)  # fmt: skip

# Every field of each class given a value unlike its default: a constructor that left a field
# unset, or set one field from another's argument, could not build an equal instance.
CASES: list[tuple[type[Any], Callable[..., Any], tuple[Any, ...]]] = [
    (Quote, new_quote, ("ABCD", T0, 2.19, 2.21, 2.2, T0 - timedelta(seconds=1))),
    (Trade, new_trade, TRADE_VALUES),
    (Order, new_order, ("o9", "WXYZ", Side.BUY, 300, 3.0, Intent.ENTRY, "t9", T0)),
    (Leg, new_leg, ("t9", "WXYZ", 150, 3.0, 3.3, 45.0, "tp1", T0, T0 + timedelta(minutes=1), "o9")),
    (JournalEvent, new_event, ("tp1", TRADE, ORDER, LEG, T0 + timedelta(seconds=5), "e9")),
    (StopMove, new_stop_move, (T0, 2.2, T0 - timedelta(seconds=1))),
]


@pytest.mark.parametrize(("cls", "build", "values"), CASES, ids=[case[0].__name__ for case in CASES])
def test_a_slot_constructor_builds_what_attrs_init_builds(
    cls: type[Any], build: Callable[..., Any], values: tuple[Any, ...]
) -> None:
    fields = attrs.fields(cls)
    # One parameter per field, in the class's order: a field added later makes every call site
    # of the constructor fail loudly until it passes the new field.
    assert len(inspect.signature(build).parameters) == len(fields) == len(values)
    for field, value in zip(fields, values, strict=True):
        if field.default is not attrs.NOTHING and not isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            assert value != field.default, field.name
    built, by_attrs = build(*values), cls(*values)
    assert type(built) is cls
    assert built == by_attrs and hash(built) == hash(by_attrs) and repr(built) == repr(by_attrs)
    for field, value in zip(fields, values, strict=True):
        assert getattr(built, field.name) is value
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(built, fields[0].name, values[1])
    assert pickle.loads(pickle.dumps(built)) == by_attrs
    assert attrs.evolve(built) == by_attrs


def test_a_trades_flags_never_trade_places() -> None:
    # Four of Trade's fields are flags: with all four True, two of them set from each other's
    # argument would still compare equal, so every mix of them is built both ways.
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(Trade)
    flags = [i for i, field in enumerate(fields) if field.type in (bool, "bool")]
    assert len(flags) == 4
    for mix in itertools.product((False, True), repeat=len(flags)):
        values: list[Any] = list(TRADE_VALUES)
        for i, flag in zip(flags, mix, strict=True):
            values[i] = flag
        assert new_trade(*values) == Trade(*values), mix


def test_the_paths_that_use_them_build_what_attrs_init_builds() -> None:
    later = T0 + timedelta(seconds=5)
    order = brackets.order(TRADE, Side.SELL, 50, 2.4, Intent.TAKE_PROFIT, later)
    assert order == Order(order.id, "ABCD", Side.SELL, 50, 2.4, Intent.TAKE_PROFIT, "t1", later)
    assert brackets.leg(TRADE, 50, 2.4, "tp2", later) == Leg(
        trade_id="t1",
        symbol="ABCD",
        qty=50,
        entry_price=2.0,
        exit_price=2.4,
        pnl=20.0,
        reason="tp2",
        opened_at=T0,
        closed_at=later,
    )


@attrs.frozen
class _Checked:
    price: float = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen
class _Converted:
    qty: int = attrs.field(converter=int)


@attrs.frozen
class _AfterInit:
    symbol: str

    def __attrs_post_init__(self) -> None:
        pass


@attrs.frozen
class _BeforeInit:
    symbol: str

    def __attrs_pre_init__(self) -> None:
        pass


@attrs.frozen(cache_hash=True)
class _CachedHash:
    symbol: str


@attrs.frozen(init=False)
class _OwnInit:
    symbol: str

    def __init__(self, symbol: str) -> None:
        self.__attrs_init__(symbol.upper())


@attrs.frozen
class _KeywordOnly:
    symbol: str = attrs.field(kw_only=True)


@attrs.define
class _Mutable:
    symbol: str


@attrs.frozen(slots=False)
class _WithDict:
    symbol: str


class _Plain:
    __slots__ = ("symbol",)


@pytest.mark.parametrize(
    "cls",
    [
        _Checked,
        _Converted,
        _AfterInit,
        _BeforeInit,
        _CachedHash,
        _OwnInit,
        _KeywordOnly,
        _Mutable,
        _WithDict,
        _Plain,
    ],
)
def test_a_class_whose_init_does_more_than_set_its_slots_is_refused(cls: type[Any]) -> None:
    # The constructor runs no validator, converter or init hook: for such a class it would
    # build what attrs' init refuses or changes, so it is never made.
    with pytest.raises(TypeError, match=cls.__name__):
        slot_constructor(cls)
