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

    def source(self, stale_quote_s: float = 0) -> tuple[Engine, StreamSource]:
        tables: dict[str, Any] = {
            "alpaca": {"key_id": "k", "secret_key": "s", "url": "ws://127.0.0.1:9", "feed": "sip"},
            "massive": {"key": "k", "url": "ws://127.0.0.1:9"},
        }
        config = Config(tables={self.name: tables[self.name], "risk": {"stale_quote_s": stale_quote_s}})
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
            if key in ("_book", "_last", "_quoted_at", "vendor_time")
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
        except (ValueError, RecursionError):
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
        item = vendor.quote_message(symbol, bid, ask, t)
    else:
        price = draw(st.one_of(st.floats(0.0, 3.0), st.integers(0, 4)))
        item = vendor.trade_message(symbol, price, draw(conditions), t)
    for key in ("t", "c"):  # the keys a struct has a default for
        if key in item and not draw(st.integers(0, 3)):
            del item[key]
    return item


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
    """Both sides then run the same code: what this holds is that none of it took the struct
    path and the good quotes around the odd message still count."""
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


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_quotes_and_trades_without_a_time_or_conditions_read_the_same(vendor: Vendor) -> None:
    q = vendor.quote_message("ABCD", 1.99, 2.00, None)
    del q["t"]
    tr = vendor.trade_message("ABCD", 1.995, None, None)
    del tr["t"], tr["c"]
    fast, slow, direct = both(vendor, [json.dumps([q]), json.dumps([tr]), json.dumps([q, tr])])
    assert direct == 3
    assert fast == slow
    assert fast["quotes"]["ABCD"][3] == 1.995


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_print_stamped_before_the_last_quote_is_as_old_either_way(vendor: Vendor) -> None:
    late, early = vendor.times[1], vendor.times[0]  # the print happened before the quote
    sent = [
        json.dumps([vendor.quote_message("ABCD", 1.99, 2.00, late)]),
        json.dumps([vendor.trade_message("ABCD", 2.0, None, early)]),
    ]
    fast, slow, direct = both(vendor, sent)
    assert direct == 2
    assert fast == slow
    assert fast["quotes"]["ABCD"][4] < NOW  # the print's time is before this frame came


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_print_time_out_of_range_skips_that_message_only(vendor: Vendor) -> None:
    """A vendor time that no clock can hold (far before the quote's) is a message that cannot
    be read: skipped and counted, and the frame's other messages still go in, either way."""
    huge, tiny = ("9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z") if vendor is ALPACA else (9 * 10**18, 1)
    sent = [
        json.dumps([vendor.quote_message("ABCD", 1.5, 1.6, huge)]),
        json.dumps(
            [vendor.trade_message("ABCD", 1.55, None, tiny), vendor.quote_message("WXYZ", 2, 3, tiny)]
        ),
    ]
    fast, slow, direct = both(vendor, sent)
    assert direct == 2
    assert fast == slow
    assert fast["source"] == (3, 1, 0)
    assert "WXYZ" in fast["quotes"]


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@pytest.mark.parametrize(
    "frame",
    ['[{"T":"q","S":"AB\ud800","bp":1.5,"ap":1.6}]', "[" * 5000 + "]" * 5000, "not json"],
    ids=["surrogate", "deep", "text"],
)
def test_a_frame_that_cannot_be_read_is_skipped_and_counted_either_way(vendor: Vendor, frame: str) -> None:
    fast, slow, _ = both(
        vendor, [frame, json.dumps([vendor.quote_message("ABCD", 1.5, 1.6, vendor.times[0])])]
    )
    assert fast == slow
    assert fast["source"][1] == 1
    assert "ABCD" in fast["quotes"]


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_keys_the_structs_do_not_read_are_not_checked(vendor: Vendor) -> None:
    """docs/sources.md: a value the dict decoder refuses in a key neither way reads costs the
    message by message way the whole frame, the structs none of its quotes."""
    sent = [
        json.dumps([vendor.quote_message("ABCD", 1.5, 1.6, vendor.times[0])]).replace(
            '"bs": 3', '"bs": 1e400'
        )
    ]
    fast, slow, direct = both(vendor, sent)
    assert direct == 1
    assert "ABCD" in fast["quotes"] and fast["source"][1] == 0
    assert "ABCD" not in slow["quotes"] and slow["source"][1] == 1


@pytest.mark.parametrize("t", ["x", 9 * 10**18, [1], 10**400])
def test_a_massive_quote_time_that_is_not_a_time_never_breaks_the_status(
    t: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The status (and the stale-quote upkeep that reads it) shows what came, never raises."""
    engine, source = MASSIVE.source(stale_quote_s=60)
    source.frame(engine, json.dumps([MASSIVE.quote_message("ABCD", 1.5, 1.6, t)]))
    assert "ABCD" in engine.last_quotes
    assert "(not a time)" in source.status().detail
    engine.tick()  # reads the status (stale quotes)
    assert not [r for r in caplog.records if "status could not be read" in r.getMessage()]


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@pytest.mark.parametrize("override", ["message", "decode"])
def test_a_subclass_that_overrides_message_or_decode_sees_every_message(
    vendor: Vendor, override: str
) -> None:
    """docs/sources.md: a vendor source's subclass that overrides ``message`` or ``decode``
    takes frames message by message, unless it sets ``stream_decode`` itself."""
    base = AlpacaSource if vendor is ALPACA else MassiveSource
    seen: list[Any] = []

    def message(self: Any, bot: Engine, item: dict[str, Any], now: datetime) -> None:
        seen.append(item[vendor.symbol])
        base.message(self, bot, item, now)

    def decode(self: Any, frame: str | bytes) -> Any:
        items = base.decode(self, frame)
        seen.extend(item[vendor.symbol] for item in items)
        return items

    methods = {override: message if override == "message" else decode}
    watching: type[AlpacaSource | MassiveSource] = type("Watching", (base,), methods)
    own_decode = {"stream_decode": base.stream_decode}
    keeps: type[AlpacaSource | MassiveSource] = type("Keeps", (watching,), own_decode)
    assert base.stream_decode is not None  # the vendor's own class is untouched
    assert vars(watching)["stream_decode"] is None
    assert keeps.stream_decode is base.stream_decode  # set by the subclass itself: kept

    engine, _ = vendor.source()
    source = watching(engine)
    t = vendor.times[0]
    source.frame(engine, json.dumps([vendor.quote_message("ABCD", 1.5, 1.6, t)]).encode())
    assert seen == ["ABCD"]
    assert "ABCD" in engine.last_quotes
