"""A stream source's two ways through a frame give the same result (Alpaca and Massive).

A frame of nothing but well-formed quotes and trades is decoded straight into structs
(``StreamSource.stream_decode``); any other frame goes message by message through the source's
``message``. Whatever the frame, the engine and the source must end up the same either way:
the same quotes applied, the same prints kept, the same messages skipped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momobot_alpaca.source import AlpacaSource
from momobot_core.config import Config
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.sources import stream as stream_module
from momobot_core.sources.stream import StreamSource
from momobot_massive.source import MassiveSource

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


class FixedClock(datetime):
    """Both paths read the wall clock once a frame: the same instant for both here."""

    @classmethod
    def now(cls, tz: Any = None) -> FixedClock:
        return cls.fromtimestamp(NOW.timestamp(), tz)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "datetime", FixedClock)


@attrs.frozen
class Vendor:
    """How one vendor spells a quote, a trade and a halt."""

    name: str
    kind: str  # the key that says what a message is
    quote: str
    trade: str
    symbol: str
    times: tuple[Any, ...]  # vendor times, good and bad
    halt: dict[str, Any]

    def source(self) -> tuple[Engine, StreamSource]:
        tables: dict[str, Any] = {
            "alpaca": {"key_id": "k", "secret_key": "s", "url": "ws://127.0.0.1:9", "feed": "sip"},
            "massive": {"key": "k", "url": "ws://127.0.0.1:9"},
        }
        config = Config(tables={self.name: tables[self.name], "risk": {"stale_quote_s": 0}})
        engine = Engine(config=config, journal=Journal(), mode="live")
        engine.start()
        return engine, (AlpacaSource if self.name == "alpaca" else MassiveSource)(engine)

    def quote_message(self, symbol: Any, bid: Any, ask: Any, t: Any) -> dict[str, Any]:
        return {
            self.kind: self.quote,
            self.symbol: symbol,
            "bp": bid,
            "bs": 3,
            "ap": ask,
            "as": 2,
            "t": t,
            "x": 1,
        }

    def trade_message(self, symbol: Any, price: Any, c: Any, t: Any) -> dict[str, Any]:
        return {self.kind: self.trade, self.symbol: symbol, "p": price, "s": 100, "c": c, "t": t, "i": 7}


ALPACA = Vendor(
    "alpaca",
    "T",
    "q",
    "t",
    "S",
    ("2026-11-24T14:29:59.5Z", "2026-11-24T14:30:01Z", "", "not a time", None, 7),
    {"T": "s", "S": "ABCD", "sc": "H", "sm": "halted"},
)
MASSIVE = Vendor(
    "massive",
    "ev",
    "Q",
    "T",
    "sym",
    (1_795_530_599_500, 1_795_530_601_000, 0, None, "x", 1.5),
    {"ev": "LULD", "T": "ABCD", "h": 2.5, "l": 1.5, "i": [17]},
)
VENDORS = [ALPACA, MASSIVE]


def state(engine: Engine, source: StreamSource) -> dict[str, Any]:
    return {
        "quotes": {s: (q.ts, q.bid, q.ask, q.last, q.last_at) for s, q in engine.last_quotes.items()},
        "counted": (engine.counters.quotes, engine.counters.rejected_quotes),
        "source": (source.messages, source.errors, source.one_sided),
        "kept": {
            key: value
            for key, value in vars(source).items()
            if key in ("_book", "_last", "_quoted_at", "_vendor_time", "_vendor_ms")
        },
        "halted": dict(engine.halted_symbols),
    }


def both(
    vendor: Vendor, frames: Sequence[str | bytes], *, dropped: frozenset[str] = frozenset()
) -> tuple[Any, Any, int]:
    """Each frame through the source's ``frame`` on one engine, and message by message on
    another (its ``stream_decode`` taken away): both states, and how many frames took the struct
    path."""
    fast_engine, fast = vendor.source()
    slow_engine, slow = vendor.source()
    assert fast.stream_decode is not None
    slow.stream_decode = None
    fast.dropped.update(dropped)
    slow.dropped.update(dropped)
    direct = 0
    for frame in frames:
        try:
            fast.stream_decode(frame)
            direct += 1
        except (msgspec.DecodeError, RecursionError):
            pass
        fast.frame(fast_engine, frame)
        slow.frame(slow_engine, frame)
    return state(fast_engine, fast), state(slow_engine, slow), direct


symbols = st.sampled_from(["ABCD", "WXYZ", "GONE"])
prices = st.one_of(
    st.floats(min_value=0.5, max_value=3.0),
    st.integers(min_value=0, max_value=4),
    st.sampled_from([0.0, -1.0, True, None, "2.0", 1e308, [1.0]]),
)
conditions = st.one_of(
    st.none(), st.lists(st.sampled_from(["@", "F", "I", "Z", 4, 37, 12]), max_size=3), st.just("I")
)


@st.composite
def well_formed(draw: st.DrawFn, vendor: Vendor) -> dict[str, Any]:
    """A quote or a trade the struct path takes (though its values may still be refused)."""
    symbol = draw(symbols)
    t = draw(st.sampled_from(vendor.times))
    if draw(st.integers(0, 3)):
        bid, ask = draw(st.floats(0.5, 3.0)), draw(st.one_of(st.floats(0.5, 3.0), st.integers(0, 4)))
        return vendor.quote_message(symbol, bid, ask, t)
    price = draw(st.one_of(st.floats(0.0, 3.0), st.integers(0, 4)))
    return vendor.trade_message(symbol, price, draw(conditions), t)


@st.composite
def anything(draw: st.DrawFn, vendor: Vendor) -> Any:
    """Any message, or not a message at all."""
    kind = draw(st.sampled_from(["quote", "trade", "halt", "other", "none"]))
    if kind == "halt":
        return dict(vendor.halt)
    if kind == "other" or kind == "none":
        item: dict[str, Any] = {vendor.kind: "x"} if kind == "other" else {}
        item[vendor.symbol] = draw(symbols)
        return item if draw(st.integers(0, 5)) else draw(st.sampled_from([1, "q", None]))
    item = (
        vendor.quote_message(draw(symbols), draw(prices), draw(prices), draw(st.sampled_from(vendor.times)))
        if kind == "quote"
        else vendor.trade_message(draw(symbols), draw(prices), draw(conditions), None)
    )
    for key in (vendor.symbol, "bp", "ap", "p", "t", "c"):
        if key in item and not draw(st.integers(0, 6)):
            del item[key]
    if not draw(st.integers(0, 4)):
        item[vendor.symbol] = draw(st.sampled_from([5, None, ["ABCD"]]))
    return item


@st.composite
def frames(draw: st.DrawFn, vendor: Vendor) -> list[str | bytes]:
    out: list[str | bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        items = draw(
            st.lists(
                st.one_of(well_formed(vendor), well_formed(vendor), anything(vendor)), min_size=1, max_size=6
            )
        )
        text = json.dumps(items if draw(st.integers(0, 15)) else items[0])
        out.append(text.encode() if draw(st.booleans()) else text)
    return out


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_frames_leave_the_engine_and_the_source_the_same_either_way(
    vendor: Vendor, data: st.DataObject
) -> None:
    fast, slow, _ = both(vendor, data.draw(frames(vendor)), dropped=frozenset({"GONE"}))
    assert fast == slow


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_frame_of_quotes_and_trades_takes_the_struct_path_and_reads_the_same(vendor: Vendor) -> None:
    t = vendor.times[0]
    q, tr = vendor.quote_message, vendor.trade_message
    sent: list[str | bytes] = [
        json.dumps([q("ABCD", 1.99, 2.00, t), q("WXYZ", 3, 4, t)]),
        json.dumps(
            [
                tr("ABCD", 2.0, None, t),
                tr("ABCD", 9.0, ["I"] if vendor is ALPACA else [37], t),
                q("ABCD", 2.01, 2.02, t),
            ]
        ),
        json.dumps([q("GONE", 1.0, 1.01, t), q("WXYZ", 0, 4.0, t)]).encode(),  # dropped, one-sided
    ]
    fast, slow, direct = both(vendor, sent, dropped=frozenset({"GONE"}))
    assert direct == 3  # none of them fell back: the struct path is what this compares
    assert fast == slow
    assert fast["quotes"]["ABCD"][1:4] == (2.01, 2.02, 2.0)  # the irregular print is not the last
    assert fast["quotes"]["WXYZ"][1:3] == (3.0, 4.0)  # integers taken as prices
    assert fast["source"] == (7, 0, 1)


def bad_ones(vendor: Vendor) -> list[dict[str, Any]]:
    t = vendor.times[0]
    return [
        vendor.quote_message("ABCD", True, 2.0, t),  # a bool is not a price
        vendor.quote_message("ABCD", "2.0", 2.0, t),
        {vendor.kind: vendor.quote, vendor.symbol: "ABCD", "ap": 2.0},  # no bid
        dict(vendor.halt),  # not a quote or a trade
        vendor.quote_message(5, 1.0, 1.1, t),  # a symbol that is not a string
    ]


@pytest.mark.parametrize(
    ("vendor", "bad"),
    [(v, bad) for v in VENDORS for bad in bad_ones(v)],
    ids=lambda x: getattr(x, "name", ""),
)
def test_a_frame_with_anything_else_goes_message_by_message_and_loses_none_of_its_quotes(
    vendor: Vendor, bad: dict[str, Any]
) -> None:
    t = vendor.times[0]
    sent = [
        json.dumps(
            [vendor.quote_message("WXYZ", 1.99, 2.00, t), bad, vendor.quote_message("ABCD", 2.1, 2.11, t)]
        )
    ]
    fast, slow, direct = both(vendor, sent)
    assert direct == 0
    assert fast == slow
    assert {"WXYZ", "ABCD"} <= set(fast["quotes"])
