"""The recorded source: CSV quote files and JSONL event files, merged in time order.

CSV files have the header ``ts,symbol,bid,ask,last`` (any column order;
``last`` may be absent or empty). JSONL files hold one event per line:
``{"type": "quote"|"open"|"close"|"kill"|"resume"|"arm"|"disarm"|"trading_halt"|"luld",
"ts": ..., ...}`` (``arm``: ``symbol``, ``strategy``, ``timeframe`` and the strategy's own
fields such as ``level``; ``disarm``: ``symbol``; docs/strategies.md; ``trading_halt``:
``symbol``, ``halted`` true or false, ``reason``; ``luld``: ``symbol``, ``lower``,
``upper``). ``ts`` is ISO 8601 or epoch seconds; an ISO time without an offset is in the exchange's time
zone (``[momobot] timezone``, default America/New_York).

Each file must be in time order; files are merged by timestamp, ties going to
the file named first, then to the earlier line. Anything that cannot be read
raises :class:`InputError` as ``FILE:LINE: what is wrong``. Prices that parse
but make no sense (NaN, negative, bid above ask) are not an input error: the
engine rejects and counts such quotes.

The CSV path is the replay's hot loop: one ``csv`` row, one timestamp, three
floats and one Quote per line, nothing else.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from operator import attrgetter
from pathlib import Path
from typing import Any

import attrs

from momobot_core.config import InputError
from momobot_core.models import Arm, Close, Disarm, Kill, Luld, Open, Quote, Resume, TradingHalt, new_quote

CSV_COLUMNS = ("ts", "symbol", "bid", "ask", "last")
CSV_SUFFIXES = {".csv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
#: Day files (``momobot record``, docs/backtest.md): read with pyarrow, the backtest extra.
DAY_SUFFIXES = {".parquet"}


Event = Quote | Open | Close | Kill | Resume | Arm | Disarm | TradingHalt | Luld


#: Times outside these years are refused as input: nothing real happened before 1970, and a
#: time near year 1 or 9999 cannot be converted between time zones.
MIN_YEAR, MAX_YEAR = 1970, 2999


def parse_ts(text: str | int | float, tz: tzinfo = UTC) -> datetime:
    """An aware datetime from ISO 8601 or epoch seconds; a time without an offset is in ``tz``.

    Raises ValueError.
    """
    if isinstance(text, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(text, int | float):
        seconds = float(text)
    elif not isinstance(text, str):
        raise ValueError("not a time")
    elif text[4:5] == "-":  # "2026-..." has its dash at index 4; epoch seconds never do.
        ts = datetime.fromisoformat(text)
        return _in_range(ts if ts.tzinfo is not None else ts.replace(tzinfo=tz))
    else:
        seconds = float(text)
    if not math.isfinite(seconds):
        raise ValueError("not a finite number of seconds")
    return _in_range(datetime.fromtimestamp(seconds, UTC))


def _in_range(ts: datetime) -> datetime:
    if not MIN_YEAR <= ts.year <= MAX_YEAR:
        raise ValueError(f"year {ts.year} is outside {MIN_YEAR} to {MAX_YEAR}")
    return ts


def check_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every path exists, is a file and has a known type; raises InputError otherwise."""
    result = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if not path.is_file():
            raise InputError(f"{path}: not a file")
        if path.suffix.lower() not in CSV_SUFFIXES | JSONL_SUFFIXES | DAY_SUFFIXES:
            raise InputError(
                f"{path}: unknown file type {path.suffix!r}: quotes go in .csv files, events in"
                " .jsonl files, recorded days in .parquet files"
            )
        result.append(path)
    return result


def read_events(paths: Iterable[str | os.PathLike[str]], tz: tzinfo = UTC) -> Iterator[Event]:
    """All events of all files, merged in time order; times without an offset are in ``tz``."""
    files = check_files(paths)
    streams = [read_file(path, tz) for path in files]
    if len(streams) == 1:
        return streams[0]
    # heapq.merge keeps the order of its inputs for equal keys: file order, then line order.
    return heapq.merge(*streams, key=attrgetter("ts"))


def read_file(path: Path, tz: tzinfo = UTC) -> Iterator[Event]:
    if path.suffix.lower() in CSV_SUFFIXES:
        return read_csv(path, tz)
    if path.suffix.lower() in DAY_SUFFIXES:
        from momobot_core.backtest import require_extra

        require_extra()
        from momobot_core.backtest.dayfile import read_day

        return read_day(path, tz)
    return read_jsonl(path, tz)


def _open_text(path: Path) -> Any:
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark.
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from None


def read_csv(path: Path, tz: tzinfo = UTC) -> Iterator[Quote]:
    """Quotes from a CSV file, in file order (which must be time order)."""
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}:1: {exc}") from None
        if header is None:
            raise InputError(f"{path}:1: empty file: expected the header {','.join(CSV_COLUMNS)}")
        columns = [name.strip().lower() for name in header]
        missing = [name for name in CSV_COLUMNS[:4] if name not in columns]
        if missing:
            raise InputError(
                f"{path}:1: header lacks column(s) {', '.join(missing)} (expected {','.join(CSV_COLUMNS)})"
            )
        i_ts, i_sym, i_bid, i_ask = (columns.index(name) for name in CSV_COLUMNS[:4])
        i_last = columns.index("last") if "last" in columns else None
        width = len(columns)
        previous: datetime | None = None
        parse = parse_ts
        fromiso = datetime.fromisoformat
        prints: dict[str, tuple[float, datetime]] = {}
        row: list[str] = []
        try:
            for row in reader:
                if not row:
                    continue
                try:
                    text = row[i_ts]
                    # ISO 8601 is the common case: parse it directly, fall back for epoch seconds.
                    if text[4:5] == "-":
                        ts = fromiso(text)
                        if ts.tzinfo is None:
                            ts = ts.replace(tzinfo=tz)
                        if not MIN_YEAR <= ts.year <= MAX_YEAR:
                            raise ValueError
                    else:
                        ts = parse(text)
                    symbol = row[i_sym]
                    last_text = row[i_last] if i_last is not None else ""
                    last = float(last_text) if last_text else None
                    if last is None:
                        prints.pop(row[i_sym], None)  # a row without a print ends the chain
                    quote = new_quote(
                        symbol,
                        ts,
                        float(row[i_bid]),
                        float(row[i_ask]),
                        last,
                        None if last is None else printed_at(prints, symbol, last, ts),
                    )
                    if not symbol or len(row) != width:
                        raise ValueError
                except (ValueError, IndexError, TypeError, OverflowError, OSError):
                    raise InputError(f"{path}:{reader.line_num}: {_csv_problem(row, columns)}") from None
                if previous is not None and ts < previous:
                    raise InputError(
                        f"{path}:{reader.line_num}: ts {text} is earlier than the line"
                        " before: a file must be in time order"
                    )
                previous = ts
                yield quote
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}:{reader.line_num}: {exc}") from None


def _csv_problem(row: list[str], columns: list[str]) -> str:
    """Say which field of a bad CSV row is wrong (the slow path: only on errors)."""
    if len(row) != len(columns):
        return f"expected {len(columns)} fields ({','.join(columns)}), found {len(row)}"
    fields = dict(zip(columns, row, strict=True))
    if not fields["symbol"]:
        return "symbol is empty"
    try:
        parse_ts(fields["ts"])
    except (ValueError, TypeError, OverflowError, OSError):
        return (
            f"ts {fields['ts']!r} is neither ISO 8601 nor epoch seconds in the years {MIN_YEAR} to {MAX_YEAR}"
        )
    for name in ("bid", "ask", "last"):
        value = fields.get(name, "")
        if name == "last" and not value:
            continue
        try:
            float(value)
        except ValueError:
            return f"{name} {value!r} is not a number"
    return "unreadable line"


_FIELDS: dict[str, tuple[str, ...]] = {
    "quote": ("symbol", "bid", "ask"),
    "open": ("symbol", "tp1", "tp2", "stop"),  # and qty or risk
    "close": ("symbol",),
    "kill": (),
    "resume": (),
    "arm": ("symbol", "strategy", "timeframe"),
    "disarm": ("symbol",),
    "trading_halt": ("symbol", "halted"),
    "luld": ("symbol", "lower", "upper"),
}


def printed_at(prints: dict[str, tuple[float, datetime]], symbol: str, last: float, ts: datetime) -> datetime:
    """When a recording's ``last`` was printed: a row that repeats the row before's ``last``
    carries that print forward (as a feed sends a print once), so it is as old as its first row.
    (A stop moved after that first row is never triggered by it.)"""
    known = prints.get(symbol)
    if known is not None and known[0] == last:
        return known[1]
    prints[symbol] = (last, ts)
    return ts


def read_jsonl(path: Path, tz: tzinfo = UTC) -> Iterator[Event]:
    """Events from a JSONL file, in file order (which must be time order)."""
    with _open_text(path) as fh:
        previous: datetime | None = None
        prints: dict[str, tuple[float, datetime]] = {}
        lineno = 0
        while True:
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno + 1}: {exc}") from None
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                event = _jsonl_event(line, tz)
            except ValueError as exc:
                raise InputError(f"{path}:{lineno}: {exc}") from None
            if previous is not None and event.ts < previous:
                raise InputError(
                    f"{path}:{lineno}: ts {event.ts.isoformat()} is earlier than the"
                    f" line before ({previous.isoformat()}): a file must be in time order"
                )
            previous = event.ts
            if type(event) is Quote and event.last is not None:
                event = attrs.evolve(event, last_at=printed_at(prints, event.symbol, event.last, event.ts))
            elif type(event) is Quote:
                prints.pop(event.symbol, None)  # a row without a print ends the chain
            yield event


def _jsonl_event(line: str, tz: tzinfo) -> Event:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ValueError(f"type {_short(kind)} is not one of {', '.join(_FIELDS)}")
    for name in ("ts", *_FIELDS[kind]):
        if name not in data:
            raise ValueError(f"{kind} event lacks field {name!r}")
    try:
        ts = parse_ts(data["ts"], tz)
    except (ValueError, TypeError, OverflowError, OSError):
        raise ValueError(
            f"ts {_short(data['ts'])} is neither ISO 8601 nor epoch seconds in the years"
            f" {MIN_YEAR} to {MAX_YEAR}"
        ) from None
    if kind == "kill":
        return Kill(ts)
    if kind == "resume":
        return Resume(ts)
    symbol = data["symbol"]
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol {_short(symbol)} must be a non-empty string")
    if not symbol.isprintable() or not symbol.isascii() or len(symbol) > 32:
        raise ValueError(f"symbol {_short(symbol)} is not a ticker (printable ASCII, at most 32)")
    if kind == "quote":
        last = data.get("last")
        return Quote(
            symbol,
            ts,
            _number(data, "bid"),
            _number(data, "ask"),
            None if last is None or last == "" else _number(data, "last"),
        )
    if kind == "open":
        if ("qty" in data) == ("risk" in data):
            raise ValueError(
                "open event needs qty (shares) or risk (dollars), not "
                + ("both" if "qty" in data else "neither")
            )
        risk = _number(data, "risk") if "risk" in data else None
        qty = data.get("qty")
        if isinstance(qty, str):
            raise ValueError(f"qty {_short(qty)} is a string: write the number without quotes")
        if qty is not None and (isinstance(qty, bool) or not isinstance(qty, int)):
            raise ValueError(f"qty {_short(qty)} must be a whole number")
        return Open(symbol, qty, _number(data, "tp1"), _number(data, "tp2"), _number(data, "stop"), ts, risk)
    if kind == "arm":
        for name in ("strategy", "timeframe"):
            if not isinstance(data[name], str) or not data[name]:
                raise ValueError(f"{name} {_short(data[name])} must be a non-empty string")
        params = {k: v for k, v in data.items() if k not in ("type", "ts", "symbol", "strategy", "timeframe")}
        return Arm(symbol, data["strategy"], data["timeframe"], ts, params, origin="recording")
    if kind == "disarm":
        return Disarm(symbol, ts)
    if kind == "trading_halt":
        halted, reason = data["halted"], data.get("reason", "")
        if not isinstance(halted, bool):
            raise ValueError(f"halted {_short(halted)} must be true or false")
        if not isinstance(reason, str):
            raise ValueError(f"reason {_short(reason)} must be a string")
        return TradingHalt(symbol, halted, reason or ("halted" if halted else "resumed"), ts)
    if kind == "luld":
        lower, upper = _number(data, "lower"), _number(data, "upper")
        if not math.isfinite(upper):
            raise ValueError(f"upper {_short(data['upper'])} must be a finite number")
        if not 0 < lower < upper:
            raise ValueError(f"the band {lower:g} to {upper:g}: give 0 < lower < upper")
        return Luld(symbol, lower, upper, ts)
    return Close(symbol, ts)


def _number(data: dict[str, Any], name: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} {_short(value)} must be a number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} {_short(value)} is too large for a price") from None


def _short(value: Any) -> str:
    """A value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def estimate_events(paths: Iterable[Path]) -> int:
    """A quick estimate of the number of lines in the files (for a progress bar)."""
    total = 0
    for path in paths:
        if path.suffix.lower() in DAY_SUFFIXES:
            from momobot_core.backtest.dayfile import DayFile

            total += DayFile(path).rows
            continue
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                sample = fh.read(65536)
        except OSError as exc:
            raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from None
        lines = sample.count(b"\n")
        total += int(size * lines / len(sample)) if lines else 1
    return total


async def paced(events: Sequence[Event], speed: float) -> AsyncIterator[Event]:
    """The events at their recorded pace, ``speed`` times faster (0: as fast as they come)."""
    import asyncio

    if not events:
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = events[0].ts
    for event in events:
        if speed > 0:
            delay = start + (event.ts - first).total_seconds() / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        yield event
