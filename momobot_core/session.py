"""Running recorded events through the engine: the loop behind replay, demo and the testing kit."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

from momobot_core import report
from momobot_core.config import Config, CoreSettings, InputError
from momobot_core.engine import Counters, Engine, TradeRefused
from momobot_core.journal import Journal, open_journal
from momobot_core.models import Arm, Close, Disarm, Kill, Leg, Luld, Open, Quote, Resume, Trade, TradingHalt
from momobot_core.sources.recorded import (
    DAY_SUFFIXES,
    Event,
    check_files,
    estimate_events,
    read_events,
)

if TYPE_CHECKING:
    from momobot_core.plugins import Hooks

log = logging.getLogger("momobot.replay")

PROGRESS_EVERY = 65536


@attrs.define
class RunStats:
    events: int = 0
    seconds: float = 0.0


def apply(
    engine: Engine, event: Open | Close | Kill | Resume | Arm | Disarm | TradingHalt | Luld
) -> TradeRefused | None:
    """Carry out a recorded action; a refused one is logged and counted (and returned), and the
    run goes on."""
    try:
        engine.apply(event)
    except TradeRefused as exc:
        log.warning("refused %s at %s: %s", type(event).__name__.lower(), event.ts.isoformat(), exc)
        return exc
    return None


def run_events(
    engine: Engine, events: Iterable[Event], progress: Callable[[int], None] | None = None
) -> RunStats:
    """Feed every event to the engine, as fast as it goes."""
    stats = RunStats()
    start = time.perf_counter()
    if progress is not None:
        events = _counting(events, progress, stats)
    on_quote = engine.on_quote
    before = engine.counters.quotes + engine.counters.rejected_quotes
    actions = 0
    for event in events:
        if type(event) is Quote:
            on_quote(event)
        else:
            actions += 1
            apply(engine, event)  # type: ignore[arg-type]
    stats.events = engine.counters.quotes + engine.counters.rejected_quotes - before + actions
    stats.seconds = time.perf_counter() - start
    return stats


def _counting(events: Iterable[Event], progress: Callable[[int], None], stats: RunStats) -> Iterator[Event]:
    n = 0
    for n, event in enumerate(events, 1):
        yield event
        if not n % PROGRESS_EVERY:
            progress(PROGRESS_EVERY)
    progress(n % PROGRESS_EVERY)


def refuse_older_than_journal(first: datetime, journal: Journal, files: Sequence[Path | str]) -> None:
    """Input that starts at or before the journal's last event is refused (InputError).

    Replaying it would double the journal or close a restored trade before it opened.
    """
    last = journal.last_event_time()
    if last is not None and first <= last:
        names = ", ".join(str(f) for f in files)
        raise InputError(
            f"{names}: the input starts at {first.isoformat()}, at or before the"
            f" journal's last event ({last.isoformat()}) in {journal.path}: a replay only"
            " appends newer events (replaying the same file twice would double the"
            " journal); use another --db"
        )


def _newer_than_journal(events: Iterator[Event], journal: Journal, files: Sequence[Path]) -> Iterator[Event]:
    """The events, once the first is known to be newer than the journal's last event."""
    first = next(events, None)
    if first is None:
        return
    refuse_older_than_journal(first.ts, journal, files)
    yield first
    yield from events


def demo_session_path() -> Path:
    """The bundled sample session (JSONL)."""
    return Path(str(resources.files("momobot_core") / "data" / "demo_session.jsonl"))


def want_progress(setting: bool | None, estimated_events: int) -> bool:
    """A progress bar for long inputs on a terminal, unless asked otherwise."""
    if setting is not None:
        return setting
    return estimated_events >= 200_000 and sys.stderr.isatty()


@attrs.frozen
class SessionResult:
    """What a finished run leaves: the journal's trades and legs, and the engine's counters."""

    trades: list[Trade]
    legs: list[Leg]
    counters: Counters
    plugin_errors: int
    stats: RunStats
    tz: tzinfo = UTC
    kept_in_memory: bool = False

    def summary(self) -> str:
        text = report.summary(
            self.trades, self.legs, self.counters, self.plugin_errors, self.stats.seconds, self.tz
        )
        if self.kept_in_memory and self.trades:
            text += (
                "\nThe journal was kept in memory and is gone: replay with --db momobot.db to keep"
                " it (then: momobot trades)"
            )
        return text


def run_recorded(
    paths: Sequence[str | Path],
    *,
    hooks: Hooks | None,
    config: Config,
    db: str | Path | None = None,
    mode: str = "replay",
    progress: bool | None = None,
) -> SessionResult:
    """Replay recorded files through a new engine, from start-up to shutdown.

    Raises InputError for unreadable input (the journal is then left as it
    was: the whole replay is one transaction), ConfigError for bad
    configuration, JournalError for a journal file that cannot be used.
    """
    files = check_files(paths)
    journal = open_journal(db, CoreSettings.from_config(config).journal_wait_s)
    try:
        # No page draws a replay's charts: only a stop trailing by candles needs them.
        engine = Engine(config=config, hooks=hooks, journal=journal, mode=mode, charts=False)
        try:
            engine.start()  # inside: plugins that did start are shut down if another fails
            with journal.batch():
                if len(files) == 1 and files[0].suffix.lower() in DAY_SUFFIXES:
                    stats = run_day(engine, files[0], journal if db is not None else None)
                else:
                    stats = _run_files(engine, journal, files, db is not None, progress)
        finally:
            engine.shutdown()
        return _result(engine, journal, hooks, stats, db, mode)
    finally:
        journal.close()


def _run_files(
    engine: Engine, journal: Journal, files: list[Path], check_journal: bool, progress: bool | None
) -> RunStats:
    events = read_events(files, engine.settings.tz)
    if check_journal:
        events = _newer_than_journal(events, journal, files)
    estimate = estimate_events(files) if progress is not False else 0
    if want_progress(progress, estimate):
        with click.progressbar(length=estimate, file=sys.stderr, label="replaying", show_pos=True) as bar:
            stats = run_events(engine, events, progress=bar.update)
            bar.update(max(estimate - bar.pos, 0))  # the length was an estimate
    else:
        stats = run_events(engine, events)
    return stats


def _result(
    engine: Engine, journal: Journal, hooks: Hooks | None, stats: RunStats, db: object, mode: str
) -> SessionResult:
    return SessionResult(
        trades=journal.trades(),
        legs=journal.legs(),
        counters=engine.counters,
        plugin_errors=hooks.errors if hooks is not None else 0,
        stats=stats,
        tz=engine.settings.tz,
        kept_in_memory=db is None and mode == "replay",
    )


def run_day(engine: Engine, path: Path, journal: Journal | None = None) -> RunStats:
    """A day file fed batch by batch (:mod:`momobot_core.backtest.columns`); with a journal,
    refused if it starts at or before the journal's last event."""
    from momobot_core.backtest import require_extra

    require_extra()
    from momobot_core.backtest.columns import feed_day
    from momobot_core.backtest.dayfile import DayFile

    day = DayFile(path)
    if journal is not None:
        first = day.first_time()
        if first is not None:
            refuse_older_than_journal(first, journal, [path])
    start = time.perf_counter()
    events = feed_day(engine, day, engine.settings.tz)
    return RunStats(events=events, seconds=time.perf_counter() - start)
