"""The day file: every quote and action of one trading day, in one Parquet file.

Layout (one row an event, in the order the engine took them; docs/backtest.md):

=========  ============================  ==================================================
column     type                          meaning
=========  ============================  ==================================================
ts         timestamp[us, UTC]            the event's time; never earlier than the row before
kind       string (dictionary)           quote, open, close, kill, resume, arm, disarm, fill
symbol     string (dictionary), null     the ticker (null for kill and resume)
bid, ask   float64, null                 a quote's prices (null for other kinds)
last       float64, null                 a quote's trade print, if it had one
last_at    timestamp[us, UTC], null      when that print happened
data       string, null                  an action as its JSONL line (null for a quote)
=========  ============================  ==================================================

Recording (:class:`DayRecorder`) never holds a day in memory and never writes on the
engine's thread: the engine hands each event over (a deque append), and a thread of the
recorder's writes what came each second as one record batch to an Arrow IPC stream, a
*segment* (``DIR/<day>.parts/<n>.arrows``), fsynced. A crash loses at most that last
second: a segment cut short is read up to its last whole batch. When the day ends (an event
of the next day, or the recorder closes), its segments are *sealed*: copied, a row group at
a time, after the rows of an earlier sealed file of that day, into ``<day>.parquet.partial``,
which is fsynced and renamed to ``<day>.parquet``. A closed day file is only ever replaced
whole, so it is never seen half-written. Segments left by a crash are sealed when a recorder
next starts in that folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc

from momobot_core.config import InputError
from momobot_core.models import (
    Arm,
    Close,
    Disarm,
    Fill,
    Kill,
    Luld,
    Open,
    Quote,
    Resume,
    TradingHalt,
    new_quote,
)
from momobot_core.sources.recorded import Event, _jsonl_event

log = logging.getLogger("momobot.record")

FORMAT = b"momobot-day/1"
SUFFIX = ".parquet"
KINDS = ("quote", "open", "close", "kill", "resume", "arm", "disarm", "fill", "trading_halt", "luld")
_UTC_US = pa.timestamp("us", tz="UTC")
#: What segments carry (plain strings); a sealed file dictionary-encodes kind and symbol.
SCHEMA = pa.schema(
    [
        ("ts", _UTC_US),
        ("kind", pa.string()),
        ("symbol", pa.string()),
        ("bid", pa.float64()),
        ("ask", pa.float64()),
        ("last", pa.float64()),
        ("last_at", _UTC_US),
        ("data", pa.string()),
    ],
    metadata={b"momobot": FORMAT},
)
COLUMNS = tuple(SCHEMA.names)
#: Rows per row group of a sealed file (and per batch its readers hand on).
ROW_GROUP = 65_536
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

Recordable = Event | Fill


def day_path(directory: Path, day: date) -> Path:
    return directory / f"{day.isoformat()}{SUFFIX}"


def _us(ts: datetime) -> int:
    return (ts - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def action_json(event: Recordable, ts: datetime) -> tuple[str, str | None, str]:
    """``(kind, symbol, JSONL line)`` of an action (its ``ts`` is the row's)."""
    data: dict[str, Any] = {"ts": ts.isoformat()}
    symbol: str | None = getattr(event, "symbol", None)
    if type(event) is Open:
        kind = "open"
        data.update(symbol=event.symbol, tp1=event.tp1, tp2=event.tp2, stop=event.stop)
        if event.risk is not None and event.qty is None:
            data["risk"] = event.risk
        else:
            data["qty"] = event.qty
    elif type(event) is Close:
        kind = "close"
        data["symbol"] = event.symbol
    elif type(event) is Kill:
        kind = "kill"
        data["reason"] = event.reason
    elif type(event) is Resume:
        kind = "resume"
    elif type(event) is Arm:
        kind = "arm"
        data.update(event.params)
        data.update(symbol=event.symbol, strategy=event.strategy, timeframe=event.timeframe)
    elif type(event) is Disarm:
        kind = "disarm"
        data["symbol"] = event.symbol
    elif type(event) is TradingHalt:
        kind = "trading_halt"
        data.update(symbol=event.symbol, halted=event.halted, reason=event.reason)
    elif type(event) is Luld:
        kind = "luld"
        data.update(symbol=event.symbol, lower=event.lower, upper=event.upper)
    elif type(event) is Fill:
        kind = "fill"
        data.update(
            order_id=event.order_id,
            qty=event.qty,
            price=event.price,
            broker_ts=event.ts.isoformat(),
            broker_ref=event.broker_ref,
        )
    else:
        raise TypeError(f"not a recordable event: {event!r}")
    data["type"] = kind
    return kind, symbol, json.dumps(data, separators=(",", ":"))


def rows_to_batch(events: Iterable[Recordable], floor_us: int) -> tuple[pa.RecordBatch, int]:
    """A record batch of ``events`` in their order; a time earlier than the row before (or than
    ``floor_us``) is raised to it. Returns the batch and the last row's time."""
    ts: list[int] = []
    kind: list[str] = []
    symbol: list[str | None] = []
    bid: list[float | None] = []
    ask: list[float | None] = []
    last: list[float | None] = []
    last_at: list[int | None] = []
    data: list[str | None] = []
    floor = floor_us
    for event in events:
        us = _us(event.ts) if type(event) is not Fill else floor
        us = max(us, floor)
        floor = us
        ts.append(us)
        if type(event) is Quote:
            kind.append("quote")
            symbol.append(event.symbol)
            bid.append(event.bid)
            ask.append(event.ask)
            last.append(event.last)
            last_at.append(None if event.last_at is None else _us(event.last_at))
            data.append(None)
        else:
            name, sym, line = action_json(event, from_us(us))
            kind.append(name)
            symbol.append(sym)
            bid.append(None)
            ask.append(None)
            last.append(None)
            last_at.append(None)
            data.append(line)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(ts, _UTC_US),
            pa.array(kind, pa.string()),
            pa.array(symbol, pa.string()),
            pa.array(bid, pa.float64()),
            pa.array(ask, pa.float64()),
            pa.array(last, pa.float64()),
            pa.array(last_at, _UTC_US),
            pa.array(data, pa.string()),
        ],
        schema=SCHEMA,
    )
    return batch, floor


# -- sealing -------------------------------------------------------------------------------


def _segments(parts: Path) -> list[Path]:
    return sorted(parts.glob("*.arrows"))  # named by their start time: in time order


def read_segment(path: Path) -> Iterator[pa.RecordBatch]:
    """The whole batches of a segment; one cut short by a crash ends at its last whole batch."""
    try:
        fh = pa.OSFile(str(path), "rb")
    except OSError as exc:
        log.warning("%s: cannot open the segment (%s): skipped", path, exc)
        return
    with fh:
        try:
            reader = ipc.open_stream(fh)
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning("%s: no whole batch in the segment (%s): skipped", path, exc)
            return
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError) as exc:
                log.warning("%s: cut short after its last whole batch (%s): the rest is lost", path, exc)
                return
            yield batch


def _sealed_schema() -> pa.Schema:
    fields = [
        pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in ("kind", "symbol") else f
        for f in SCHEMA
    ]
    return pa.schema(fields, metadata=SCHEMA.metadata)


#: The key of a sealed file's metadata that names the segments sealed into it (so a crash
#: between the rename and the segments' removal never seals them twice).
SEALED_KEY = b"momobot.segments"


def _sealed_names(path: Path) -> tuple[list[str], int | None]:
    """The segments an earlier seal put in ``path``, and its last row's time (µs);
    InputError naming the file if it cannot be read."""
    try:
        meta = pq.read_metadata(str(path))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: the day's sealed file cannot be read ({_why(exc)}): move it away; the new"
            f" segments are kept in {path.with_suffix('.parts')}"
        ) from None
    names = (meta.metadata or {}).get(SEALED_KEY, b"").decode()
    last = None
    column = meta.schema.names.index("ts") if "ts" in meta.schema.names else None
    if column is not None and meta.num_row_groups:
        stats = meta.row_group(meta.num_row_groups - 1).column(column).statistics
        if stats is not None and stats.has_min_max:
            last = _us(stats.max) if isinstance(stats.max, datetime) else int(stats.max)
    return [n for n in names.split(",") if n], last


def seal(directory: Path, day: date) -> Path | None:
    """Seal ``day``'s segments into ``<day>.parquet`` (after the rows of an earlier sealed
    file of that day); returns the file, or None if there was nothing to seal."""
    parts = directory / f"{day.isoformat()}.parts"
    target = day_path(directory, day)
    segments = _segments(parts) if parts.is_dir() else []
    done: list[str] = []
    if segments and target.exists():
        done, _ = _sealed_names(target)
        segments = [path for path in segments if path.name not in done]
    if not segments:
        if parts.is_dir():
            shutil.rmtree(parts, ignore_errors=True)
        return None
    partial = target.with_name(target.name + ".partial")
    schema = SCHEMA.with_metadata(
        {**SCHEMA.metadata, SEALED_KEY: ",".join([*done, *(p.name for p in segments)]).encode()}
    )
    writer = pq.ParquetWriter(str(partial), schema, compression="snappy", use_dictionary=["kind", "symbol"])
    rows = 0
    try:
        pending: list[pa.RecordBatch] = []
        size = 0

        def flush() -> None:
            nonlocal pending, size
            if pending:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=ROW_GROUP)
            pending, size = [], 0

        sources: list[Iterable[pa.RecordBatch]] = []
        if target.exists():
            sources.append(_plain_batches(target))
        sources.extend(read_segment(path) for path in segments)
        for source in sources:
            for batch in source:
                pending.append(batch.replace_schema_metadata(schema.metadata))
                size += batch.num_rows
                rows += batch.num_rows
                if size >= ROW_GROUP:
                    flush()
        flush()
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    writer.close()
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, target)
    _fsync_dir(directory)
    shutil.rmtree(parts, ignore_errors=True)
    log.info("%s: sealed %d segment(s), %d rows in all", target, len(segments), rows)
    return target


def _plain_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A sealed file's rows as segment batches (plain strings)."""
    try:
        for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=ROW_GROUP, columns=list(COLUMNS)):
            yield batch.cast(SCHEMA) if batch.schema != SCHEMA else batch
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: the day's sealed file cannot be read ({_why(exc)}): move it away"
        ) from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unsealed_days(directory: Path) -> list[date]:
    days = []
    for parts in directory.glob("*.parts"):
        try:
            days.append(date.fromisoformat(parts.name[: -len(".parts")]))
        except ValueError:
            continue
    return sorted(days)


# -- recording -----------------------------------------------------------------------------


class DayRecorder:
    """Writes every event handed to it into the day files of ``directory``.

    :meth:`add` is all the engine's thread does (a deque append); a thread of the recorder's
    writes a batch each ``flush_s`` seconds. Start with :meth:`start`; :meth:`close` writes
    what is left and seals the day.
    """

    def __init__(
        self,
        directory: Path | str,
        tz: tzinfo,
        *,
        flush_s: float = 1.0,
        on_error: Callable[[str], None] | None = None,
        append: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.on_error = on_error
        #: A day whose file exists is appended to (live: rows from its last time on); False
        #: (a conversion): refused, as rows from elsewhere would not follow in time.
        self.append = append
        self._lock: int | None = None
        self.tz = tz
        self.flush_s = flush_s
        #: Handed over, not yet written: appended on the engine's thread, taken on the writer's
        #: (a deque: both ends are safe from two threads without a lock).
        self._rows: deque[Recordable] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._day: date | None = None
        self._day_end_us = 0
        self._floor_us = 0
        self._sink: Any = None
        self._stream: Any = None
        self.rows_written = 0
        self.error: str | None = None
        #: The trading days written to.
        self.days: set[date] = set()

    def add(self, event: Recordable) -> None:
        """Hand over one event (any thread; never blocks, never raises)."""
        self._rows.append(event)

    def start(self) -> None:
        self.start_here()
        self._thread = threading.Thread(target=self._run, name="momobot-record", daemon=True)
        self._thread.start()

    def start_here(self) -> None:
        """Start without a thread: :meth:`flush` writes (a conversion, tests). Seals the
        segments a run that did not close left; InputError if the folder cannot be written."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"{self.directory}: cannot make the record folder: {exc.strerror or exc}"
            ) from None
        if not os.access(self.directory, os.W_OK):
            raise InputError(f"{self.directory}: the record folder is not writable")
        from momobot_core.errors import JournalError
        from momobot_core.writer_lock import take_lock

        try:
            self._lock = take_lock(str(self.directory / ".record"))
        except JournalError:
            try:
                holder = (self.directory / ".record.lock").read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise InputError(
                f"{self.directory}: another recorder (PID {holder}) is writing into this folder:"
                " one recorder a folder"
            ) from None
        try:
            for day in unsealed_days(self.directory):
                seal(self.directory, day)
        except BaseException:
            self._unlock()
            raise

    def abandon(self) -> None:
        """Stop and remove every day this recorder began (a conversion that failed)."""
        self._rows.clear()
        if self._day is not None:
            with contextlib.suppress(Exception):  # going anyway
                self._stream.close()
            self._sink.close()
            self._day = None
        for day in self.days:
            shutil.rmtree(self.directory / f"{day.isoformat()}.parts", ignore_errors=True)
            day_path(self.directory, day).unlink(missing_ok=True)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            from momobot_core.writer_lock import release_lock

            release_lock(str(self.directory / ".record"), self._lock)
            self._lock = None

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        try:
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            else:
                self._write_pending()
                self._end_day()
        finally:
            self._unlock()

    def flush(self) -> None:
        """Write what was handed over so far (tests; the thread does it each ``flush_s``)."""
        if self._thread is None:
            self._write_pending()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_s)
            self._write_pending()
        self._write_pending()
        self._end_day()

    def _write_pending(self) -> None:
        if not self._rows:
            return
        take = self._rows.popleft
        rows = [take() for _ in range(len(self._rows))]
        try:
            start = 0
            while start < len(rows):
                start = self._write_day(rows, start)
        except Exception as exc:
            if isinstance(exc, InputError) and not self.append:
                raise  # a conversion stops at once; the caller removes what it wrote
            self._failed(
                f"recording to {self.directory} failed ({type(exc).__name__}: {exc}):"
                f" {len(rows)} event(s) not recorded"
            )

    def _write_day(self, rows: list[Recordable], start: int) -> int:
        """Write the rows from ``start`` that fall in one trading day; returns where it stopped."""
        first = rows[start]
        first_us = max(_us(first.ts) if type(first) is not Fill else self._floor_us, self._floor_us)
        if self._day is None or first_us >= self._day_end_us:
            self._end_day()
            self._begin_day(from_us(first_us))
        end = start
        limit = self._day_end_us
        while end < len(rows):
            event = rows[end]
            if type(event) is not Fill and _us(event.ts) >= limit:
                break
            end += 1
        batch, self._floor_us = rows_to_batch(rows[start:end], self._floor_us)
        self._stream.write_batch(batch)
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self.rows_written += batch.num_rows
        return end

    def _begin_day(self, ts: datetime) -> None:
        local = ts.astimezone(self.tz)
        day = local.date()
        existing = day_path(self.directory, day)
        if existing.exists():
            if not self.append:
                raise InputError(
                    f"{existing}: this folder has a day file for {day} already: write into another"
                    " folder, or move it away"
                )
            _, last = _sealed_names(existing)
            if last is not None:
                self._floor_us = max(self._floor_us, last)  # rows go on from the sealed ones
        self._day = day
        self.days.add(self._day)
        midnight = datetime.combine(self._day + timedelta(days=1), clock_time(0), self.tz)
        self._day_end_us = _us(midnight.astimezone(UTC))
        parts = self.directory / f"{self._day.isoformat()}.parts"
        parts.mkdir(exist_ok=True)
        # A name no earlier segment had: a seal lists the names it took (SEALED_KEY).
        name = f"{time.time_ns():020d}-{os.getpid()}.arrows"
        self._sink = open(parts / name, "wb")  # noqa: SIM115 - closed in _end_day
        self._stream = ipc.new_stream(self._sink, SCHEMA)

    def _end_day(self) -> None:
        if self._day is None:
            return
        day, self._day = self._day, None
        try:
            self._stream.close()
            self._sink.close()
            seal(self.directory, day)
        except Exception as exc:
            self._failed(
                f"sealing {day} in {self.directory} failed ({type(exc).__name__}: {exc}): its segments are"
                " kept and sealed when a recorder next starts there"
            )

    def _failed(self, message: str) -> None:
        self.error = message
        log.error("%s", message)
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:
                log.exception("telling of a recording failure failed")


def convert(paths: Iterable[str | os.PathLike[str]], directory: Path | str, tz: tzinfo) -> list[Path]:
    """Recorded CSV and JSONL files (merged in time order) written as day files in
    ``directory``; returns the day files written. InputError for unreadable input."""
    from momobot_core.sources.recorded import read_events

    recorder = DayRecorder(directory, tz, append=False)
    recorder.start_here()
    try:
        for n, event in enumerate(read_events(paths, tz), 1):
            recorder.add(event)
            if not n % ROW_GROUP:
                recorder.flush()
        recorder.close()
        if recorder.error is not None:
            raise InputError(f"{directory}: {recorder.error}")
    except BaseException:
        recorder.abandon()  # nothing half-converted is left: each day it began was new
        raise
    return [day_path(Path(directory), day) for day in sorted(recorder.days)]


def attach(engine: Any, directory: Path | str) -> DayRecorder:
    """Record everything ``engine`` takes from now on into ``directory`` (``[momobot] record``):
    its arms as they stand first, then every quote and action. A failure to write is an alert
    (``record_failed``), never a stop."""
    recorder = DayRecorder(
        directory,
        engine.settings.tz,
        on_error=lambda message: engine.alert("record_failed", message),
    )
    recorder.start()
    now = engine.clock.now()
    for arm in engine.arms:
        recorder.add(
            Arm(
                arm["symbol"],
                arm["strategy"],
                arm["timeframe"],
                now,
                dict(arm.get("params") or {}),
                "recording",
            )
        )
    engine.recorder = recorder
    log.info("recording every quote and action into %s", recorder.directory)
    return recorder


def detach(engine: Any, recorder: DayRecorder) -> None:
    engine.recorder = None
    recorder.close()


# -- reading -------------------------------------------------------------------------------


class DayFile:
    """A sealed day file opened for reading; InputError names the file if it is not one."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            schema = pq.read_schema(str(self.path))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable day file ({_why(exc)})") from None
        missing = [name for name in COLUMNS if name not in schema.names]
        if missing:
            raise InputError(f"{self.path}: not a day file: it lacks column(s) {', '.join(missing)}")
        for name in ("kind", "symbol", "data"):
            kind = schema.field(name).type
            if kind != pa.string() and not (pa.types.is_dictionary(kind) and kind.value_type == pa.string()):
                raise InputError(f"{self.path}: column {name} is {kind}, not string")
        try:
            self._file = pq.ParquetFile(str(self.path), read_dictionary=["kind", "symbol"])
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable day file ({_why(exc)})") from None
        for name in ("ts", "last_at"):
            if schema.field(name).type != _UTC_US:
                raise InputError(f"{self.path}: column {name} is {schema.field(name).type}, not {_UTC_US}")
        for name in ("bid", "ask", "last"):
            if schema.field(name).type != pa.float64():
                raise InputError(f"{self.path}: column {name} is {schema.field(name).type}, not double")
        self.rows = self._file.metadata.num_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, a row group at a time (one row group in memory, whatever the file's size);
        InputError names the file if it is damaged."""
        try:
            for group in range(self._file.metadata.num_row_groups):
                table = self._file.read_row_group(group, columns=list(COLUMNS))
                yield from table.combine_chunks().to_batches(max_chunksize=max(table.num_rows, 1))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: damaged day file ({_why(exc)})") from None

    def first_time(self) -> datetime | None:
        for batch in self.batches():
            if batch.num_rows:
                us = batch.column("ts").cast(pa.int64())[0].as_py()
                return None if us is None else from_us(us)
        return None

    def symbols(self) -> list[str]:
        """Every symbol with a row (reads the symbol column only)."""
        seen: set[str] = set()
        try:
            for batch in self._file.iter_batches(batch_size=ROW_GROUP, columns=["symbol"]):
                column = batch.column(0)
                seen.update(s for s in column.dictionary.to_pylist() if s is not None)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: damaged day file ({_why(exc)})") from None
        return sorted(seen)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def action_event(line: str, ts: datetime, tz: tzinfo, where: str) -> Event | None:
    """The event of a ``data`` cell (None for a fill: the broker's, not the engine's input)."""
    try:
        if '"type":"fill"' in line:
            return None
        event = _jsonl_event(line, tz)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None
    if type(event) is Kill:
        reason = json.loads(line).get("reason")
        if isinstance(reason, str) and reason:
            return Kill(ts, reason)
    return attrs.evolve(event, ts=ts)  # the row's time is the event's: the rows' order is time


def read_day(path: Path | str, tz: tzinfo = UTC) -> Iterator[Event]:
    """Every event of a day file, one at a time (the merge with other files uses this; a
    replay of the file alone is fed batch by batch: :mod:`momobot_core.backtest.columns`)."""
    day = DayFile(path)
    row = 0
    previous = -(2**62)
    for batch in day.batches():
        ts_us = batch.column("ts").cast(pa.int64()).to_pylist()
        kinds = batch.column("kind").to_pylist()
        symbols = batch.column("symbol").to_pylist()
        bids = batch.column("bid").to_pylist()
        asks = batch.column("ask").to_pylist()
        lasts = batch.column("last").to_pylist()
        last_ats = batch.column("last_at").cast(pa.int64()).to_pylist()
        datas = batch.column("data").to_pylist()
        for i, us in enumerate(ts_us):
            row += 1
            if us is None or us < previous:
                raise InputError(f"{day.path}: row {row}: ts is missing or earlier than the row before")
            previous = us
            ts = from_us(us)
            if kinds[i] not in KINDS:
                what = "is missing" if kinds[i] is None else f"{kinds[i]!r} is not one of {', '.join(KINDS)}"
                raise InputError(f"{day.path}: row {row}: kind {what}")
            if kinds[i] == "quote":
                bid, ask, symbol = bids[i], asks[i], symbols[i]
                if bid is None or ask is None or not symbol:
                    raise InputError(f"{day.path}: row {row}: a quote without symbol, bid or ask")
                at = last_ats[i]
                yield new_quote(symbol, ts, bid, ask, lasts[i], None if at is None else from_us(at))
            else:
                text = datas[i]
                if not isinstance(text, str):
                    raise InputError(f"{day.path}: row {row}: a {kinds[i]} row without its data")
                event = action_event(text, ts, tz, f"{day.path}: row {row}")
                if event is not None:
                    yield event
