"""``momobot record`` and ``momobot backtest`` (``run``, ``report``, ``sample``)."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from momobot_core.config import ConfigError, CoreSettings, InputError, load_config

if TYPE_CHECKING:
    from momobot_core.plugins import Hooks


class _Refused(click.ClickException):
    exit_code = 2  # bad input or settings, as everywhere in the CLI


def _fail(exc: Exception) -> click.ClickException:
    return _Refused(str(exc))


def _need_extra() -> None:
    from momobot_core.backtest import require_extra

    try:
        require_extra()
        import dask.distributed  # noqa: F401
    except InputError as exc:
        raise _fail(exc) from None
    except ImportError:
        raise _fail(InputError("backtests need dask: pip install 'momobot-core[backtest]'")) from None


#: A ticker as the API takes one (BRK.B, BF-B, BRK/B).
TICKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9./^+-]{0,31}")


def tickers(text: str, option: str) -> list[str]:
    """``SYM,SYM`` as upper-case tickers; InputError names a word that is not one."""
    words = [word.strip() for word in text.split(",")]
    bad = [word for word in words if not TICKER.fullmatch(word)]
    if bad or not words:
        raise InputError(f"{option} {text!r}: {bad[0]!r} is not a ticker (give SYM,SYM such as ABCD,BRK.B)")
    return [word.upper() for word in words]


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value}: give a finite number")
    return value


class _DefaultRun(click.Group):
    """``momobot backtest DIR ...`` is ``momobot backtest run DIR ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def add_commands(cli: click.Group, hooks_of: Any) -> None:
    @cli.command()
    @click.argument("directory", metavar="DIR")
    @click.option(
        "--from",
        "sources",
        multiple=True,
        metavar="FILE",
        help="Write recorded CSV/JSONL FILEs as day files instead of recording live (repeatable).",
    )
    @click.option(
        "--source",
        "source_name",
        default=None,
        metavar="NAME",
        help="The live source (default: [momobot] source).",
    )
    @click.option(
        "--watchlist",
        default=None,
        metavar="SYM,SYM",
        help="Symbols to stream (besides [momobot] watchlist).",
    )
    @click.option("--config", "config_path", metavar="PATH", default=None, help="Config file (TOML).")
    @click.pass_context
    def record(
        ctx: click.Context,
        directory: str,
        sources: tuple[str, ...],
        source_name: str | None,
        watchlist: str | None,
        config_path: str | None,
    ) -> None:
        """Record every quote and print of a live source into DIR, a day file per trading day
        (Parquet), until stopped (Ctrl-C). `serve` records too with [momobot] record = DIR."""
        from momobot_core.backtest import require_extra

        try:
            require_extra()
            config = load_config(config_path)
            core = CoreSettings.from_config(config)
            if sources:
                from momobot_core.backtest.dayfile import convert

                for path in convert(sources, directory, core.tz):
                    click.echo(str(path))
                return
            symbols = tickers(watchlist, "--watchlist") if watchlist else []
            record_live(hooks_of(ctx), config, directory, source_name, symbols)
        except (InputError, ConfigError) as exc:
            raise _fail(exc) from None

    @cli.group(cls=_DefaultRun)
    def backtest() -> None:
        """Sweep a strategy's settings over recorded days, on Dask (docs/backtest.md).

        momobot backtest DIR --strategy pullback --grid tp1=0.05,0.10 --grid timeframe=1m,5m
        """

    @backtest.command("run")
    @click.argument("paths", nargs=-1, required=True, metavar="DIR|FILE...")
    @click.option(
        "--strategy", default=None, help="Re-arm the days' arms with this strategy (default: as recorded)."
    )
    @click.option(
        "--grid",
        multiple=True,
        metavar="KEY=V,V",
        help="A setting to sweep (repeatable): tp1, tp2, stop, timeframe, a strategy's field...",
    )
    @click.option(
        "--symbols",
        default="recorded",
        show_default=True,
        metavar="recorded|all|SYM,SYM",
        help="Which symbols are armed: those each day armed, every symbol of the day, or these.",
    )
    @click.option(
        "--workers", type=click.IntRange(1, 512), default=None, help="Local workers (default: one per core)."
    )
    @click.option(
        "--scheduler", default=None, metavar="tcp://HOST:8786", help="An existing Dask cluster instead."
    )
    @click.option(
        "--slippage",
        type=click.FloatRange(0, 100),
        default=0.0,
        show_default=True,
        callback=_finite,
        help="Dollars a share against each fill.",
    )
    @click.option(
        "--latency-ms",
        type=click.FloatRange(0, 600_000),
        default=0.0,
        show_default=True,
        callback=_finite,
        help="Fill at the quote this long after each order.",
    )
    @click.option(
        "--out", default="backtest.db", show_default=True, metavar="PATH", help="The results file (SQLite)."
    )
    @click.option("--replace", is_flag=True, help="Overwrite --out if it exists.")
    @click.option(
        "--config",
        "config_path",
        metavar="PATH",
        default=None,
        help="Config file (TOML): [bracket], [risk]...",
    )
    @click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
    def run(
        paths: tuple[str, ...],
        strategy: str | None,
        grid: tuple[str, ...],
        symbols: str,
        workers: int | None,
        scheduler: str | None,
        slippage: float,
        latency_ms: float,
        out: str,
        replace: bool,
        config_path: str | None,
        progress: bool | None,
    ) -> None:
        """Backtest recorded days (DIR: its *.parquet) over every set of the --grid."""
        _need_extra()
        from momobot_core.backtest.results import ResultsFile, summary
        from momobot_core.backtest.sweep import Plan, check_plan, find_days, parse_grid, sweep, tasks_of

        try:
            days = find_days(paths)
            sets = parse_grid(grid)
            chosen: str | tuple[str, ...] = symbols
            if symbols not in ("recorded", "all"):
                chosen = tuple(tickers(symbols, "--symbols"))
            plan = Plan(
                days=tuple(days),
                sets=tuple(sets),
                strategy=strategy,
                symbols=chosen,
                config_path=config_path,
                slippage=slippage,
                latency_ms=latency_ms,
            )
            check_plan(plan)
            results = ResultsFile(out, replace=replace)
        except (InputError, ConfigError, ValueError) as exc:
            raise _fail(exc) from None
        meta = {
            "strategy": strategy,
            "grid": list(grid),
            "symbols": symbols,
            "days": [Path(d).stem for d in days],
            "slippage": slippage,
            "latency_ms": latency_ms,
            "fills": "the engine's model (entry at the ask, exits at the target or the bid)"
            + (f", then the quote {latency_ms:g} ms later" if latency_ms else "")
            + (f", {slippage:g} $/share against each fill" if slippage else ""),
        }
        total = len(tasks_of(plan))
        results.start({**meta, "tasks_planned": total}, sets)
        show = progress if progress is not None else sys.stderr.isatty()
        try:
            with (
                click.progressbar(length=total, label="backtest", file=sys.stderr, show_pos=True)
                if show
                else _Null() as bar
            ):
                done = sweep(
                    plan, workers=workers, scheduler=scheduler, progress=bar.update, on_result=results.add
                )
            results.finish(
                {
                    "seconds": round(done.seconds, 3),
                    "startup_s": round(done.startup_s, 3),
                    "workers": done.workers,
                    "tasks": total,
                }
            )
            click.echo(
                f"{total} task(s) ({len(days)} day(s) x {len(sets)} set(s)) on {done.workers} worker(s)"
                f" in {done.seconds:.1f} s (+{done.startup_s:.1f} s to start them); results in {out}"
            )
            click.echo(summary(results.db))
            click.echo(f"report: momobot backtest report {out}")
            if done.results and all(r["error"] for r in done.results):
                raise InputError(f"every task failed: {done.results[0]['error']}")
        except (InputError, ConfigError) as exc:
            results.close()
            if not results.added and results.path.exists():
                results.path.unlink(missing_ok=True)  # nothing ran: no results file to mislead
            raise _fail(exc) from None
        finally:
            results.close()

    @backtest.command("report")
    @click.argument("results_path", metavar="RESULTS")
    @click.option("--out", default=None, metavar="PATH", help="The HTML page (default: RESULTS with .html).")
    @click.option(
        "--top",
        type=click.IntRange(1, 50),
        default=5,
        show_default=True,
        help="Equity curves of this many best sets.",
    )
    def report(results_path: str, out: str | None, top: int) -> None:
        """Write a self-contained HTML page of a backtest's results."""
        from momobot_core.backtest.html import write_report

        target = Path(out) if out else Path(results_path).with_suffix(".html")
        try:
            if target.resolve() == Path(results_path).resolve():
                raise InputError(f"{target}: that is the results file itself: give --out another name")
            write_report(results_path, target, top=top)
        except InputError as exc:
            raise _fail(exc) from None
        click.echo(str(target))

    @backtest.command("sample")
    @click.argument("directory", metavar="DIR")
    @click.option("--days", type=click.IntRange(1, 260), default=5, show_default=True)
    @click.option("--symbols", type=click.IntRange(1, 20_000), default=500, show_default=True)
    @click.option(
        "--gappers",
        type=click.IntRange(0, 1000),
        default=10,
        show_default=True,
        help="Symbols with momentum, armed at the open.",
    )
    @click.option(
        "--quotes",
        type=click.IntRange(1, 100_000_000),
        default=200_000,
        show_default=True,
        help="Quotes a day.",
    )
    @click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=1, show_default=True)
    @click.option("--replace", is_flag=True, help="Overwrite day files of the same days in DIR.")
    @click.option("--first", default="2026-11-02", show_default=True, metavar="YYYY-MM-DD")
    def sample(
        directory: str,
        days: int,
        symbols: int,
        gappers: int,
        quotes: int,
        seed: int,
        replace: bool,
        first: str,
    ) -> None:
        """Write synthetic momentum days into DIR to try a backtest on."""
        from momobot_core.backtest import require_extra

        try:
            require_extra()
            start = date.fromisoformat(first)
            if start.year > 2900:
                raise ValueError
        except InputError as exc:
            raise _fail(exc) from None
        except ValueError:
            raise _fail(InputError(f"--first {first!r}: give a date as YYYY-MM-DD before 2900")) from None
        from momobot_core.backtest.synthetic import generate, trading_days

        folder = Path(directory)
        there = [d for d in trading_days(start, days) if (folder / f"{d.isoformat()}.parquet").exists()]
        if there and not replace:
            raise _fail(
                InputError(
                    f"{folder / (there[0].isoformat() + '.parquet')}: a day file is there already"
                    " (a recorded day?): give another folder, or --replace"
                )
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _fail(InputError(f"{folder}: cannot make the folder: {exc.strerror or exc}")) from None
        for path in generate(
            directory, days=days, first=start, symbols=symbols, gappers=gappers, quotes=quotes, seed=seed
        ):
            click.echo(str(path))


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def record_live(
    hooks: Hooks, config: Any, directory: str, source_name: str | None, symbols: list[str]
) -> None:
    """Run a live source with no plugins and record it until SIGINT or SIGTERM."""
    from momobot_core.backtest.dayfile import attach, detach
    from momobot_core.engine import Engine
    from momobot_core.journal import open_journal
    from momobot_core.serve import _upkeep
    from momobot_core.sources import SourceError, Watchlist, collect_sources

    core = CoreSettings.from_config(config)
    name = source_name or core.source
    factories = collect_sources(hooks)
    if not name:
        raise ConfigError("give --source NAME (or [momobot] source): momobot sources lists them")
    if name not in factories:
        known = ", ".join(sorted(factories)) or "none: install a source plugin such as momobot-alpaca"
        raise ConfigError(f"source {name!r} is not installed (installed sources: {known})")
    watch = [*core.watchlist, *symbols]
    if not watch:
        raise ConfigError("give the symbols to record: --watchlist SYM,SYM (or [momobot] watchlist)")
    journal = open_journal(None)
    engine = Engine(config=config, hooks=None, journal=journal, mode="live")  # nothing is sent
    engine.start()
    recorder = attach(engine, directory)
    try:
        engine.source = factories[name][1](engine)
        engine.watchlist = Watchlist(watch)

        async def main() -> None:
            engine.loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                engine.loop.add_signal_handler(signum, stop.set)
            assert engine.source is not None and engine.watchlist is not None
            feed = asyncio.create_task(engine.source.run(engine, engine.watchlist))
            upkeep = asyncio.create_task(_upkeep(engine))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({feed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (feed, upkeep, stopped):
                task.cancel()
            results = await asyncio.gather(feed, return_exceptions=True)
            if isinstance(results[0], SourceError):
                raise results[0]

        click.echo(f"recording {', '.join(watch)} from {name} into {directory} (Ctrl-C stops)", err=True)
        asyncio.run(main())
    except SourceError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        detach(engine, recorder)
        engine.shutdown()
        journal.close()
        click.echo(f"recorded {recorder.rows_written:,} row(s) into {directory}", err=True)
        if recorder.error:
            raise InputError(recorder.error)
