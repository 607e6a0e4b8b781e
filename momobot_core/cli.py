"""The ``momobot`` command line.

Results a person reads (tables, summaries, JSON) go to stdout; logs go to
stderr. Exit codes: 0 success, 1 an unexpected failure, 2 bad input, bad
configuration or an unusable journal.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from momobot_core import __version__
from momobot_core.config import ConfigError, CoreSettings, InputError, load_config
from momobot_core.journal import Journal, JournalError
from momobot_core.plugins import Hooks, load_hooks
from momobot_core.report import by_strategy_json, legs_json, tradervue_csv
from momobot_core.session import demo_session_path, run_recorded

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "momobot.db"


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"momobot: error: {message}", err=True)
    sys.exit(code)


def config_option(function: F) -> F:
    return click.option(
        "--config",
        "config_path",
        metavar="PATH",
        default=None,
        help="TOML configuration file (default: $MOMOBOT_CONFIG, else built-in defaults).",
    )(function)


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("momobot").setLevel(level)
    # Library chatter (connection open/closed) only when asked for with -v.
    logging.getLogger("websockets").setLevel(logging.INFO if verbosity > 0 else logging.WARNING)
    if verbosity <= 0:
        # One line per trade event is detail; the summary already says it.
        logging.getLogger("momobot.trades").setLevel(logging.WARNING)


def hooks_of(ctx: click.Context) -> Hooks:
    hooks = ctx.find_object(Hooks)
    assert hooks is not None
    return hooks


def run_or_fail(function: Callable[[], Any]) -> Any:
    """Turn the core's expected errors into a clear message and exit code 2."""
    try:
        return function()
    except (ConfigError, InputError, JournalError) as exc:
        fail(str(exc))


def require_api_extra() -> None:
    """``momobot serve`` needs the ``api`` extra: say how to get it, never a traceback."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        fail(
            f"momobot serve needs {' and '.join(missing)}, which are not installed: from a MomoBot"
            " checkout run  python -m pip install './[api]'  (see README.md)"
        )


def build_cli(hooks: Hooks) -> click.Group:
    """The command line, with every plugin's commands added through ``register_commands``."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="momobot")
    @click.option("-v", "--verbose", count=True, help="More log detail (-vv for debug).")
    @click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
    @click.pass_context
    def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
        """MomoBot: momentum bracket trades, with plugins."""
        setup_logging(-1 if quiet else verbose)
        ctx.obj = hooks

    from momobot_core.backtest.cli import add_commands as add_backtest_commands
    from momobot_core.strategies.cli import add_commands

    add_commands(cli)
    add_backtest_commands(cli, hooks_of)

    @cli.command()
    @click.argument("files", nargs=-1, required=True, metavar="FILE...")
    @click.option(
        "--db",
        metavar="PATH",
        default=None,
        help="SQLite journal file (default: in memory, discarded at exit).",
    )
    @config_option
    @click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress bar (default: on a terminal, for long inputs).",
    )
    @click.pass_context
    def replay(
        ctx: click.Context,
        files: tuple[str, ...],
        db: str | None,
        config_path: str | None,
        progress: bool | None,
    ) -> None:
        """Run the engine over recorded quotes (.csv) and events (.jsonl)."""
        result = run_or_fail(
            lambda: run_recorded(
                files,
                hooks=hooks_of(ctx),
                config=load_config(config_path),
                db=db,
                mode="replay",
                progress=progress,
            )
        )
        click.echo(result.summary())

    @cli.command()
    @click.option("--db", metavar="PATH", default=None, help="SQLite journal file (default: in memory).")
    @config_option
    @click.pass_context
    def demo(ctx: click.Context, db: str | None, config_path: str | None) -> None:
        """Run the bundled sample session: TP1, TP2, stop, break-even stop and a manual close."""
        result = run_or_fail(
            lambda: run_recorded(
                [demo_session_path()],
                hooks=hooks_of(ctx),
                config=load_config(config_path),
                db=db,
                mode="demo",
                progress=False,
            )
        )
        click.echo(result.summary())

    @cli.command()
    @click.option("--all", "include_builtin", is_flag=True, help="Include the core's built-in plugins.")
    @click.pass_context
    def plugins(ctx: click.Context, include_builtin: bool) -> None:
        """List the loaded plugins and the hooks each implements (JSON)."""
        h = hooks_of(ctx)
        rows: list[dict[str, Any]] = h.describe(include_builtin=include_builtin)
        for failure in h.failures:
            rows.append({"name": failure.name, "version": None, "hooks": [], "error": failure.error})
        click.echo(json.dumps(rows, indent=2))

    @cli.command()
    @click.pass_context
    def sources(ctx: click.Context) -> None:
        """List the live quote sources installed plugins offer (JSON)."""
        from momobot_core.sources import collect_sources

        found = run_or_fail(lambda: collect_sources(hooks_of(ctx)))
        click.echo(
            json.dumps(
                [{"name": name, "plugin": plugin} for name, (plugin, _) in sorted(found.items())], indent=2
            )
        )

    @cli.command()
    @click.option("--db", metavar="PATH", default=DEFAULT_DB, show_default=True, help="SQLite journal file.")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["json", "csv"]),
        default="json",
        show_default=True,
        help="json: closed legs; csv: executions for TraderVue.",
    )
    @click.option("--by-strategy", is_flag=True, help="P&L, trades, wins and losses per strategy (JSON).")
    def trades(db: str, fmt: str, by_strategy: bool) -> None:
        """Show the journal: closed legs as JSON (each with its strategy), or executions as
        TraderVue CSV, or P&L per strategy."""
        from pathlib import Path

        if not Path(db).is_file():
            fail(
                f"{db}: no such journal file (give one with --db; a replay keeps its journal only"
                " when given --db)"
            )
        journal = run_or_fail(lambda: Journal(db, readonly=True))
        with journal:
            if by_strategy:
                click.echo(by_strategy_json(journal.trades(), journal.legs()))
            elif fmt == "json":
                strategies = {t.id: t.strategy or "manual" for t in journal.trades()}
                entries = {
                    str(row["trade_id"]): str(row["order_id"])
                    for row in journal.executions()
                    if row["intent"] == "entry"
                }
                click.echo(legs_json(journal.legs(), journal.fills(), entries, strategies))
            else:
                click.echo(tradervue_csv(journal.executions()), nl=False)

    @cli.command()
    @click.option("--db", metavar="PATH", default=DEFAULT_DB, show_default=True, help="SQLite journal file.")
    @click.option(
        "--day",
        metavar="YYYY-MM-DD",
        default=None,
        help="The trading day ([momobot] timezone); default: the last day a trade closed.",
    )
    @click.option("--out", metavar="FILE", required=True, help="Where to write the HTML report.")
    @config_option
    def report(db: str, day: str | None, out: str, config_path: str | None) -> None:
        """One trading day as a self-contained HTML file: statistics, trades, pictures."""
        import datetime as dt
        from pathlib import Path

        from momobot_core.report import day_report_html, day_stats, trading_days

        settings = run_or_fail(lambda: CoreSettings.from_config(load_config(config_path)))
        if day is not None:
            try:
                if len(day) != 10 or day[4] != "-" or day[7] != "-":
                    raise ValueError(day)
                dt.date.fromisoformat(day)
            except ValueError:
                fail(f"--day {day!r}: give a date as YYYY-MM-DD, such as 2026-11-24")
        if not Path(db).is_file():
            fail(f"{db}: no such journal file (give one with --db)")
        journal = run_or_fail(lambda: Journal(db, readonly=True))
        with journal:
            trades, legs = journal.trades(), journal.legs()
        days = trading_days(legs, settings.tz)
        if day is None:
            if not days:
                fail(f"{db}: no trade has closed yet: nothing to report")
            day = days[-1]
        stats = day_stats(trades, legs, day, settings.tz)
        try:
            Path(out).write_text(day_report_html(stats, settings.tz), encoding="utf-8")
        except OSError as exc:
            fail(f"--out {out}: cannot write it: {exc.strerror or exc}")
        click.echo(
            f"{out}: {day}, {len(stats.trades)} trade(s), realised {stats.total:+,.2f}"
            + ("" if stats.trades else f" (days with trades: {', '.join(days[-5:]) or 'none'})")
        )

    @cli.command()
    @click.argument("files", nargs=-1, metavar="[FILE...]")
    @click.option("--host", default=None, help="Address to bind (default: [api] host, 127.0.0.1).")
    @click.option(
        "--port", default=None, type=click.IntRange(0, 65535), help="Port (default: [api] port, 8000)."
    )
    @click.option(
        "--db",
        metavar="PATH",
        default=None,
        help="SQLite journal file: open trades are restored from it at start"
        f" (default: {DEFAULT_DB}; with --replay, in memory).",
    )
    @config_option
    @click.option(
        "--replay", is_flag=True, help="Pace the recorded FILEs (quotes .csv, events .jsonl) in real time."
    )
    @click.option(
        "--source",
        "source_name",
        default=None,
        metavar="NAME",
        help="Stream quotes from a live source (momobot sources lists them; default: [momobot] source).",
    )
    @click.option(
        "--speed",
        default=1.0,
        show_default=True,
        type=click.FloatRange(min=0, min_open=True),
        help="With --replay: how many times faster than recorded.",
    )
    @click.pass_context
    def serve(
        ctx: click.Context,
        files: tuple[str, ...],
        host: str | None,
        port: int | None,
        db: str | None,
        config_path: str | None,
        replay: bool,
        source_name: str | None,
        speed: float,
    ) -> None:
        """Run the engine and the HTTP API (token: $MOMOBOT_API_TOKEN).

        With --replay, pace recorded FILEs through it instead of trading live:
        momobot serve --replay session.jsonl quotes.csv --speed 10
        """
        if files and not replay:
            fail(f"{files[0]}: files are only read with --replay (momobot serve --replay FILE...)")
        if replay and not files:
            fail("--replay needs the recorded files: momobot serve --replay FILE...")
        require_api_extra()
        from momobot_core.serve import ApiSettings
        from momobot_core.serve import serve as run_server

        def start() -> None:
            config = load_config(config_path)
            settings = ApiSettings.from_config(config)
            run_server(
                hooks=hooks_of(ctx),
                config=config,
                host=host or settings.host,
                port=settings.port if port is None else port,
                # A paced recording must not land in the live journal unless asked to.
                db=db or (":memory:" if files else DEFAULT_DB),
                token=settings.token,
                replay=files,
                speed=speed,
                settings=settings,
                source=source_name,
            )

        run_or_fail(start)

    @cli.command()
    @click.argument("symbol")
    @click.option("--db", metavar="PATH", default=DEFAULT_DB, show_default=True, help="SQLite journal file.")
    def discard(symbol: str, db: str) -> None:
        """Discard an unconfirmed trade whose entry never reached the broker: close it in the
        journal and send nothing. While serve runs, use POST /discard or the dashboard."""
        from pathlib import Path

        from momobot_core.engine import Engine, TradeRefused

        if not Path(db).is_file():
            fail(f"{db}: no such journal (give --db the journal serve writes)")
        journal = run_or_fail(lambda: Journal(db))
        try:
            engine = Engine(journal=journal, mode="live")  # no plugins: nothing can be sent
            try:
                trade = engine.discard_trade(symbol.upper())
            except TradeRefused as exc:
                fail(str(exc))
            click.echo(f"{trade.symbol}: trade {trade.id} discarded: closed in the journal, nothing sent")
        finally:
            journal.close()

    hooks.notify("register_commands", cli=cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    hooks = load_hooks()
    build_cli(hooks)(args=argv, prog_name="momobot")


if __name__ == "__main__":  # pragma: no cover
    main()
