"""A day file fed to an engine a batch at a time.

Most quotes of a day are for symbols the engine does nothing with (no open trade, no arm, no
chart): for those, all a quote does is become its symbol's last quote. So a batch is cut at
its actions; in each stretch of quotes between them, the quotes of symbols the engine acts on
(and any malformed quote) go through :meth:`Engine.on_quote` one by one, in order, and of the
others only each symbol's last is built and handed to :meth:`Engine.keep_quotes`, counted as
all of them. The journal, the trades and the counters come out as a replay quote by quote
gives (tests/test_backtest_columns.py checks it against the CSV replay of the same quotes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from momobot_core.backtest.dayfile import KINDS, DayFile, action_event, from_us
from momobot_core.brackets import MAX_PRICE
from momobot_core.config import InputError
from momobot_core.models import Quote, new_quote
from momobot_core.session import apply

if TYPE_CHECKING:
    from momobot_core.engine import Engine


def feed_day(
    engine: Engine,
    day: DayFile,
    tz: tzinfo = UTC,
    rewrite: Callable[[Any], Any] | None = None,
    refused: Callable[[Any, Exception], None] | None = None,
) -> int:
    """Feed every row of ``day`` to ``engine``, in order; returns the events taken. ``rewrite``
    turns each action into what is applied instead (None: left out): a backtest's arms;
    ``refused`` hears of each action the engine refused (it is logged either way)."""
    events = 0
    previous = -(2**62)
    row0 = 0
    for batch in day.batches():
        n = batch.num_rows
        if not n:
            continue
        ts = batch.column("ts").cast(pa.int64())
        if ts.null_count:
            bad = int(pc.index(pc.is_null(ts), True).as_py())
            raise InputError(f"{day.path}: row {row0 + bad + 1}: ts is missing")
        ts_np = ts.to_numpy()
        order = np.diff(ts_np, prepend=previous) < 0
        if order.any():
            bad = int(np.argmax(order))
            raise InputError(f"{day.path}: row {row0 + bad + 1}: ts is earlier than the row before")
        previous = int(ts_np[-1])
        kind = batch.column("kind")
        kinds = kind.dictionary.to_pylist()
        quote_code = kinds.index("quote") if "quote" in kinds else -1
        kind_codes = kind.indices.fill_null(-1).to_numpy()
        known = np.array([k in KINDS for k in kinds] + [False], dtype=bool)[kind_codes]
        if not known.all():
            bad = int(np.argmin(known))
            raise InputError(f"{day.path}: row {row0 + bad + 1}: kind {_kind(kinds, kind_codes[bad])}")
        is_quote = kind_codes == quote_code
        actions = np.flatnonzero(~is_quote)
        symbol = batch.column("symbol")
        names: list[str | None] = [name or None for name in symbol.dictionary.to_pylist()]
        named = np.array([name is not None for name in names] + [False], dtype=bool)
        codes = symbol.indices.fill_null(-1).to_numpy()
        bid_col, ask_col = batch.column("bid"), batch.column("ask")
        broken = is_quote & ~named[codes]
        if bid_col.null_count or ask_col.null_count:
            nulls = pc.or_(pc.is_null(bid_col), pc.is_null(ask_col)).to_numpy(zero_copy_only=False)
            broken |= is_quote & nulls
        if broken.any():
            bad = int(np.argmax(broken))
            raise InputError(f"{day.path}: row {row0 + bad + 1}: a quote without symbol, bid or ask")
        bid = bid_col.to_numpy(zero_copy_only=False)
        ask = ask_col.to_numpy(zero_copy_only=False)
        last_col = batch.column("last")
        last = last_col.to_numpy(zero_copy_only=False)
        has_last = pc.is_valid(last_col).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            valid = (bid > 0) & (bid <= ask) & (ask <= MAX_PRICE)
            valid &= ~has_last | ((last > 0) & (last <= MAX_PRICE))
        valid &= codes >= 0
        last_at_col = batch.column("last_at").cast(pa.int64())
        has_at = pc.is_valid(last_at_col).to_numpy(zero_copy_only=False)
        last_at = last_at_col.fill_null(0).to_numpy()
        cols = _Columns(names, codes, ts_np, bid, ask, last, has_last, last_at, has_at)
        start = 0
        for a in [*actions.tolist(), n]:
            if a > start:
                events += _stretch(engine, cols, valid, start, a)
            if a < n:
                events += _action(
                    engine,
                    batch,
                    int(a),
                    int(ts_np[a]),
                    kinds[kind_codes[a]],
                    day,
                    row0,
                    tz,
                    rewrite,
                    refused,
                )
            start = a + 1
        row0 += n
    return events


class _Columns:
    __slots__ = ("ask", "bid", "codes", "has_at", "has_last", "last", "last_at", "names", "ts")

    def __init__(
        self,
        names: list[str | None],
        codes: np.ndarray,
        ts: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        last: np.ndarray,
        has_last: np.ndarray,
        last_at: np.ndarray,
        has_at: np.ndarray,
    ) -> None:
        self.names = names
        self.codes = codes
        self.ts = ts
        self.bid = bid
        self.ask = ask
        self.last = last
        self.has_last = has_last
        self.has_at = has_at
        self.last_at = last_at

    def quotes(self, rows: np.ndarray) -> Iterator[Quote]:
        """The quotes of ``rows`` (a malformed one too: the engine counts and logs it)."""
        names = self.names
        has = self.has_last[rows].tolist()
        at_list = self.last_at[rows].tolist()
        has_at = self.has_at[rows].tolist()
        for code, us, bid, ask, last, has_last, at, timed in zip(
            self.codes[rows].tolist(),
            self.ts[rows].tolist(),
            self.bid[rows].tolist(),
            self.ask[rows].tolist(),
            self.last[rows].tolist(),
            has,
            at_list,
            has_at,
            strict=True,
        ):
            ts = from_us(us)
            yield new_quote(
                names[code] or "",
                ts,
                bid,
                ask,
                last if has_last else None,
                None if not timed else ts if at == us else from_us(at),
            )


def _kind(kinds: list[str | None], code: int) -> str:
    return (
        "is missing"
        if code < 0 or kinds[code] is None
        else f"{kinds[code]!r} is not one of {', '.join(KINDS)}"
    )


def _stretch(engine: Engine, cols: _Columns, valid: np.ndarray, start: int, end: int) -> int:
    """Quotes ``start:end`` of a batch (no action among them)."""
    codes = cols.codes[start:end]
    acts = np.fromiter(
        (name is not None and engine.acts_on(name) for name in cols.names), dtype=bool, count=len(cols.names)
    )
    # Every quote here has a symbol (checked for the whole batch): malformed prices, and the
    # symbols the engine acts on, go one by one.
    one_by_one = ~valid[start:end] | acts[codes]
    picked = np.flatnonzero(one_by_one) + start
    if picked.size:
        on_quote = engine.on_quote
        for quote in cols.quotes(picked):
            on_quote(quote)
    quiet = np.flatnonzero(~one_by_one)
    if quiet.size:
        quiet_codes = codes[quiet]
        # The last row of each symbol: unique over the reversed rows gives each first sighting.
        _, first_from_end = np.unique(quiet_codes[::-1], return_index=True)
        lasts = np.sort(quiet[quiet.size - 1 - first_from_end]) + start
        # The clock moves to the last quiet quote's time (a malformed quote never moves it).
        until = from_us(int(cols.ts[quiet[-1] + start]))
        engine.keep_quotes(list(cols.quotes(lasts)), int(quiet.size), until)
    return end - start


def _action(
    engine: Engine,
    batch: pa.RecordBatch,
    i: int,
    us: int,
    kind: str | None,
    day: DayFile,
    row0: int,
    tz: tzinfo,
    rewrite: Callable[[Any], Any] | None,
    refused: Callable[[Any, Exception], None] | None,
) -> int:
    text = batch.column("data")[i].as_py()
    where = f"{day.path}: row {row0 + i + 1}"
    if not isinstance(text, str):
        raise InputError(f"{where}: a {kind} row without its data")
    event = action_event(text, from_us(us), tz, where)
    if event is not None and rewrite is not None:
        event = rewrite(event)
    if event is None:
        return 0
    exc = apply(engine, event)  # type: ignore[arg-type]
    if exc is not None and refused is not None:
        refused(event, exc)
    return 1
