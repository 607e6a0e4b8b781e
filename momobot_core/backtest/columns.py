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

from momobot_core.backtest.dayfile import DayFile, action_event, from_us
from momobot_core.brackets import MAX_PRICE
from momobot_core.config import InputError
from momobot_core.models import Quote
from momobot_core.session import apply

if TYPE_CHECKING:
    from momobot_core.engine import Engine


def feed_day(
    engine: Engine, day: DayFile, tz: tzinfo = UTC, rewrite: Callable[[Any], Any] | None = None
) -> int:
    """Feed every row of ``day`` to ``engine``, in order; returns the events taken. ``rewrite``
    turns each action into what is applied instead (None: left out): a backtest's arms."""
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
        is_quote = kind_codes == quote_code
        actions = np.flatnonzero(~is_quote)
        symbol = batch.column("symbol")
        names: list[str | None] = symbol.dictionary.to_pylist()
        codes = symbol.indices.fill_null(-1).to_numpy()
        bid = batch.column("bid").to_numpy(zero_copy_only=False)
        ask = batch.column("ask").to_numpy(zero_copy_only=False)
        last_col = batch.column("last")
        last = last_col.to_numpy(zero_copy_only=False)
        has_last = pc.is_valid(last_col).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            valid = (bid > 0) & (bid <= ask) & (ask <= MAX_PRICE)
            valid &= ~has_last | ((last > 0) & (last <= MAX_PRICE))
        valid &= codes >= 0
        last_at = batch.column("last_at").cast(pa.int64()).fill_null(-1).to_numpy()
        cols = _Columns(names, codes, ts_np, bid, ask, last, has_last, last_at)
        start = 0
        for a in [*actions.tolist(), n]:
            if a > start:
                events += _stretch(engine, cols, valid, start, a, day, row0)
            if a < n:
                events += _action(
                    engine, batch, int(a), int(ts_np[a]), kinds[kind_codes[a]], day, row0, tz, rewrite
                )
            start = a + 1
        row0 += n
    return events


class _Columns:
    __slots__ = ("ask", "bid", "codes", "has_last", "last", "last_at", "names", "ts")

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
    ) -> None:
        self.names = names
        self.codes = codes
        self.ts = ts
        self.bid = bid
        self.ask = ask
        self.last = last
        self.has_last = has_last
        self.last_at = last_at

    def quotes(self, rows: np.ndarray) -> Iterator[Quote]:
        """The quotes of ``rows`` (a malformed one too: the engine counts and logs it)."""
        names = self.names
        has = self.has_last[rows].tolist()
        at_list = self.last_at[rows].tolist()
        for code, us, bid, ask, last, has_last, at in zip(
            self.codes[rows].tolist(),
            self.ts[rows].tolist(),
            self.bid[rows].tolist(),
            self.ask[rows].tolist(),
            self.last[rows].tolist(),
            has,
            at_list,
            strict=True,
        ):
            ts = from_us(us)
            yield Quote(
                (names[code] or "") if code >= 0 else "",
                ts,
                bid,
                ask,
                last if has_last else None,
                None if not has_last or at < 0 else ts if at == us else from_us(at),
            )


def _stretch(
    engine: Engine, cols: _Columns, valid: np.ndarray, start: int, end: int, day: DayFile, row0: int
) -> int:
    """Quotes ``start:end`` of a batch (no action among them)."""
    codes = cols.codes[start:end]
    acts = np.fromiter(
        (name is not None and engine.acts_on(name) for name in cols.names), dtype=bool, count=len(cols.names)
    )
    ok = valid[start:end]
    missing = ok & (codes < 0)
    if missing.any():
        raise InputError(
            f"{day.path}: row {row0 + start + int(np.argmax(missing)) + 1}: a quote without a symbol"
        )
    one_by_one = ~ok | acts[np.where(codes >= 0, codes, 0)]
    picked = np.flatnonzero(one_by_one) + start
    if picked.size:
        on_quote = engine.on_quote
        for j, quote in zip(picked.tolist(), cols.quotes(picked), strict=True):
            if not valid[j] and cols.codes[j] < 0:
                raise InputError(f"{day.path}: row {row0 + j + 1}: a quote without a symbol")
            on_quote(quote)
    quiet = np.flatnonzero(~one_by_one)
    if quiet.size:
        quiet_codes = codes[quiet]
        # The last row of each symbol: unique over the reversed rows gives each first sighting.
        _, first_from_end = np.unique(quiet_codes[::-1], return_index=True)
        lasts = np.sort(quiet[quiet.size - 1 - first_from_end]) + start
        engine.keep_quotes(list(cols.quotes(lasts)), int(quiet.size), from_us(int(cols.ts[end - 1])))
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
    apply(engine, event)  # type: ignore[arg-type]
    return 1
