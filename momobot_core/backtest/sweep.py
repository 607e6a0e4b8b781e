"""The sweep: every (day, parameter set) an independent task, run on Dask distributed.

Days are independent (the risk day couples the symbols of one day, never two days), so a
task is one day file replayed through a new engine with one parameter set: the day's arms
re-armed with the strategy and the set's fields, the rest of the day's quotes as recorded.
A task returns plain data (its trades with their fills, or why the day failed); the driver
writes each into the results file as it comes (:mod:`momobot_core.backtest.results`).

Fills: the engine's model (an entry at the ask, an exit at its target or the bid), then
``latency_ms`` later (the first quote of the symbol at or after the order's time plus the
latency: its ask for a buy, its bid for a sell) and ``slippage`` dollars a share against the
trade. A trade still open when the day's quotes end is sold at the bid of the day's last
quote of its symbol (``end_of_day``).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from momobot_core.config import Config, ConfigError, InputError, load_config
from momobot_core.models import Arm, Close, Disarm, Kill, Open, Resume
from momobot_core.strategies.arms import field_value as arm_value

log = logging.getLogger("momobot.backtest")

#: Keys a grid may sweep besides the strategy's own fields.
SWEEP_KEYS = (
    "timeframe",
    "qty",
    "risk",
    "tp1",
    "tp2",
    "stop",
    "tp1_r",
    "tp2_r",
    "entries",
    "cooldown_s",
    "trail",
)
MAX_SETS = 10_000


def parse_value(text: str) -> object:
    """A grid value as ``momobot arm`` reads one (a whole number, a number, or a word such as
    ``pattern`` or ``candle``); ValueError for a number that is not finite."""
    value = arm_value(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_grid(items: Sequence[str]) -> list[dict[str, object]]:
    """``["tp1=0.05,0.10", "timeframe=1m,5m"]``: every combination, in the order given (the
    last key varies fastest). No items: one empty set. ValueError says what is wrong."""
    keys: list[str] = []
    values: list[list[object]] = []
    for item in items:
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not key or not rest.strip():
            raise ValueError(f"--grid {item!r}: give KEY=VALUE[,VALUE...], such as tp1=0.05,0.10")
        if not key.isidentifier():
            raise ValueError(f"--grid {item!r}: {key!r} is not a key")
        if key in keys:
            raise ValueError(f"--grid {item!r}: {key} is swept twice")
        parsed = [parse_value(v.strip()) for v in rest.split(",")]
        if any(v == "" for v in parsed):
            raise ValueError(f"--grid {item!r}: an empty value")
        if len(set(map(repr, parsed))) != len(parsed):
            raise ValueError(f"--grid {item!r}: a value is given twice")
        keys.append(key)
        values.append(parsed)
    sets = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    if len(sets) > MAX_SETS:
        raise ValueError(f"the grid makes {len(sets):,} parameter sets: at most {MAX_SETS:,}")
    return sets


@attrs.frozen
class Plan:
    """What one backtest run sweeps."""

    days: tuple[str, ...]
    sets: tuple[dict[str, object], ...]
    #: The strategy the day's arms are re-armed with; None: the day as recorded (its own arms,
    #: and the person's entries and closes).
    strategy: str | None = None
    #: ``recorded``: the symbols the day armed; ``all``: every symbol of the day; or a list.
    symbols: str | tuple[str, ...] = "recorded"
    config_path: str | None = None
    slippage: float = 0.0
    latency_ms: float = 0.0


@attrs.frozen
class Task:
    day: str
    set_id: int
    params: dict[str, object]
    plan: Plan


def check_plan(plan: Plan) -> None:
    """Every parameter set arms (the strategy exists, each key and value is one it takes);
    ValueError says what is wrong, before any task. (A bad day file fails its own tasks only.)"""
    from momobot_core.engine import Engine

    if plan.strategy is None and plan.symbols != "recorded":
        raise ValueError("--symbols other than 'recorded' needs --strategy: which strategy to arm them with")
    config = load_config(plan.config_path) if plan.config_path else Config()
    engine = Engine(config=config, hooks=None, strategy_hooks=_strategy_hooks(), charts=False)
    quiet = logging.getLogger("momobot.strategies")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the trial arms below are not news
    try:
        _check_sets(engine, plan)
    finally:
        quiet.setLevel(level)


def _check_sets(engine: Any, plan: Plan) -> None:
    from momobot_core.engine import TradeRefused

    if plan.strategy is not None and plan.strategy not in engine.strategy_names:
        raise ValueError(
            f"--strategy {plan.strategy}: no such strategy (installed: {', '.join(engine.strategy_names)})"
        )
    from momobot_core.candles import Timeframe
    from momobot_core.strategies.bracket import BRACKET_KEYS, BracketSettings

    for params in plan.sets:
        fields = {k: v for k, v in params.items() if k != "timeframe"}
        try:
            if plan.strategy is None:
                # The days' own strategies take the set: only what every strategy takes is
                # checked here; a field a recorded strategy refuses is told per day.
                Timeframe.parse(str(params.get("timeframe", "1m")))
                BracketSettings().merged({k: v for k, v in fields.items() if k in BRACKET_KEYS})
                continue
            arm = Arm(
                "CHECK",
                plan.strategy,
                str(params.get("timeframe", "1m")),
                datetime.now().astimezone(),
                fields,
            )
            engine.apply(arm)
        except (TradeRefused, ValueError) as exc:
            why = str(exc).removeprefix("CHECK: ")
            raise ValueError(f"--grid: the set {_label(params)} does not arm: {why}") from None


def _label(params: Mapping[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(as recorded)"


def tasks_of(plan: Plan) -> list[Task]:
    shared = attrs.evolve(plan, days=(), sets=())  # a task carries its own day and set only
    return [
        Task(day=day, set_id=i, params=params, plan=shared)
        for day in plan.days
        for i, params in enumerate(plan.sets)
    ]


def find_days(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Day files named or found (``*.parquet``) in the folders named, in day order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            days = sorted(path.glob("*.parquet"))
            if not days:
                raise InputError(f"{path}: no day files (*.parquet) in this folder")
            found.extend(days)
        elif path.is_file():
            if path.suffix.lower() != ".parquet":
                raise InputError(f"{path}: not a day file (.parquet): record one with momobot record")
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    unique = list(dict.fromkeys(str(p.resolve()) for p in found))
    names: dict[str, str] = {}
    for name in unique:
        other = names.setdefault(Path(name).name, name)
        if other != name:
            raise InputError(
                f"{Path(name).name} is named twice ({other} and {name}): a backtest runs each day once"
            )
    return sorted(unique, key=lambda p: (Path(p).name, p))


# -- one task ------------------------------------------------------------------------------

_HOOKS: dict[str, Any] = {}


def _strategy_hooks() -> Any:
    """The installed plugins, loaded once per worker: their strategies (nothing else runs)."""
    if "hooks" not in _HOOKS:
        from momobot_core.plugins import load_hooks

        _HOOKS["hooks"] = load_hooks()
    return _HOOKS["hooks"]


def _arm_for(event: Arm, plan: Plan, params: Mapping[str, object]) -> Arm:
    fields = dict(event.params) if plan.strategy is None else {}
    fields.update({k: v for k, v in params.items() if k != "timeframe"})
    return Arm(
        event.symbol,
        plan.strategy or event.strategy,
        str(params.get("timeframe", event.timeframe)),
        event.ts,
        fields,
        origin="recording",
    )


def _rewrite(plan: Plan, params: Mapping[str, object]) -> Callable[[Any], Any]:
    """What each recorded action becomes in this task (None: left out)."""
    chosen = set(plan.symbols) if not isinstance(plan.symbols, str) else None

    def rewrite(event: Any) -> Any:
        if type(event) is Arm:
            if plan.symbols == "all" or (chosen is not None and event.symbol not in chosen):
                return None  # armed at the start instead
            return _arm_for(event, plan, params)
        if plan.strategy is None:
            return event  # the day as recorded
        if type(event) is Disarm:
            return event
        if type(event) in (Open, Close, Kill, Resume):
            return None  # a strategy's backtest: a person's trades of that day are not its own
        return event

    return rewrite


def run_task(task: Task) -> dict[str, Any]:
    """One (day, parameter set): the trades with their fills, or why the day failed."""
    started = time.perf_counter()
    result: dict[str, Any] = {"day": task.day, "set_id": task.set_id, "trades": [], "error": None}
    try:
        trades, quotes, engine_s, warnings = _run(task)
        result.update(trades=trades, quotes=quotes, engine_start_s=engine_s, warnings=warnings)
    except (InputError, ConfigError, ValueError) as exc:
        result["error"] = str(exc)
    except Exception as exc:
        log.exception("backtest of %s failed", task.day)
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["seconds"] = time.perf_counter() - started
    return result


def _run(task: Task) -> tuple[list[dict[str, Any]], int, float, list[str]]:
    from momobot_core.backtest import require_extra

    require_extra()
    from momobot_core.backtest.columns import feed_day
    from momobot_core.backtest.dayfile import DayFile
    from momobot_core.engine import Engine
    from momobot_core.journal import open_journal
    from momobot_core.session import apply

    plan = task.plan
    config = load_config(plan.config_path) if plan.config_path else Config()
    day = DayFile(task.day)
    warnings: dict[str, int] = {}

    def warn(event: Any, exc: Exception) -> None:
        if type(event) is Arm:  # an arm refused: its symbol is not tested at all; say so
            text = f"arm of {event.symbol} refused: {exc}"
            warnings[text] = warnings.get(text, 0) + 1

    t0 = time.perf_counter()
    journal = open_journal(None)
    try:
        engine = Engine(
            config=config, hooks=None, strategy_hooks=_strategy_hooks(), journal=journal, charts=False
        )
        engine.start()
        engine_s = time.perf_counter() - t0
        try:
            first = day.first_time()
            if first is not None and plan.strategy is not None and not isinstance(plan.symbols, str):
                for symbol in plan.symbols:
                    engine.apply(_arm_for(Arm(symbol, plan.strategy, "1m", first), plan, task.params))
            elif first is not None and plan.symbols == "all":
                for symbol in day.symbols():
                    arm = Arm(symbol, plan.strategy or "pullback", "1m", first)
                    engine.apply(_arm_for(arm, plan, task.params))
            feed_day(engine, day, engine.settings.tz, rewrite=_rewrite(plan, task.params), refused=warn)
            last = engine.clock.current or datetime.now().astimezone()
            closed_at_end: set[str] = set()
            for trade in list(engine.open_trades.values()):
                if apply(engine, Close(trade.symbol, ts=last)) is None:  # a refusal is logged
                    closed_at_end.add(trade.id)
        finally:
            engine.shutdown()
        quotes = engine.counters.quotes
        trades = journal.trades()
        legs = journal.legs()
        # The manual leg of a trade the day's end closed is that close: end_of_day.
        end_of_day = {
            leg.order_id for leg in legs if leg.trade_id in closed_at_end and leg.reason == "manual"
        }
    finally:
        journal.close()
    lines = [text if n == 1 else f"{text} ({n} times)" for text, n in list(warnings.items())[:5]]
    if len(warnings) > 5:
        lines.append(f"and {len(warnings) - 5} more refusals")
    return _with_fills(task, trades, legs, end_of_day), quotes, engine_s, lines


def _with_fills(
    task: Task, trades: Sequence[Any], legs: Sequence[Any], end_of_day: set[str | None]
) -> list[dict[str, Any]]:
    plan = task.plan
    by_trade: dict[str, list[Any]] = {}
    for leg in legs:
        by_trade.setdefault(leg.trade_id, []).append(leg)
    fills = _LatencyFills(task.day, {t.symbol for t in trades}) if plan.latency_ms > 0 and trades else None
    out = []
    day_name = Path(task.day).stem
    for trade in sorted(trades, key=lambda t: (t.opened_at, t.symbol)):
        entry = trade.entry_price
        exits = sorted(by_trade.get(trade.id, []), key=lambda leg: leg.closed_at)
        if fills is not None:
            # A fill the latency puts at or after the first exit is not one: the model's price.
            before = exits[0].closed_at if exits else None
            entry = fills.price(
                trade.symbol, trade.opened_at, plan.latency_ms, buy=True, model=entry, before=before
            )
        entry += plan.slippage
        pnl = 0.0
        model_pnl = 0.0
        reasons = []
        for leg in exits:
            price = leg.exit_price
            if fills is not None:
                price = fills.price(trade.symbol, leg.closed_at, plan.latency_ms, buy=False, model=price)
            price -= plan.slippage
            pnl += (price - entry) * leg.qty
            model_pnl += leg.pnl
            reasons.append("end_of_day" if leg.order_id in end_of_day else leg.reason)
        risk = (
            (trade.entry_price - trade.initial_stop) * trade.qty if trade.initial_stop is not None else None
        )
        out.append(
            {
                "day": day_name,
                "symbol": trade.symbol,
                "strategy": trade.strategy,
                "timeframe": trade.timeframe,
                "opened_at": trade.opened_at.isoformat(),
                "closed_at": exits[-1].closed_at.isoformat() if exits else None,
                "qty": trade.qty,
                "entry_model": trade.entry_price,
                "entry_fill": round(entry, 6),
                "initial_stop": trade.initial_stop,
                "pnl_model": round(model_pnl, 6),
                "pnl": round(pnl, 6),
                "r": round(pnl / risk, 6) if risk and risk > 0 else None,
                "exits": ",".join(reasons),
            }
        )
    return out


class _LatencyFills:
    """The first quote of a symbol at or after a time, from the day file (traded symbols only)."""

    def __init__(self, path: str, symbols: set[str]) -> None:
        import numpy as np
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(
            path, columns=["ts", "kind", "symbol", "bid", "ask"], filters=[("symbol", "in", sorted(symbols))]
        )
        table = table.filter(pc.equal(table.column("kind").cast("string"), "quote"))
        self._np = np
        self._by: dict[str, tuple[Any, Any, Any]] = {}
        symbols_col = table.column("symbol").cast("string").to_numpy(zero_copy_only=False)
        ts = table.column("ts").cast("int64").to_numpy()
        bid = table.column("bid").to_numpy()
        ask = table.column("ask").to_numpy()
        for symbol in symbols:
            mask = symbols_col == symbol
            self._by[symbol] = (ts[mask], bid[mask], ask[mask])

    def price(
        self,
        symbol: str,
        at: datetime,
        latency_ms: float,
        *,
        buy: bool,
        model: float,
        before: datetime | None = None,
    ) -> float:
        from momobot_core.backtest.dayfile import _us

        ts, bid, ask = self._by.get(symbol, (None, None, None))
        if ts is None or not len(ts):
            return model
        i = int(self._np.searchsorted(ts, _us(at) + int(latency_ms * 1000), side="left"))
        if i >= len(ts) or (before is not None and ts[i] >= _us(before)):
            return model  # no quote that day in time: the model's price
        return float(ask[i] if buy else bid[i])


# -- the cluster ---------------------------------------------------------------------------


@attrs.define
class SweepResult:
    results: list[dict[str, Any]]
    #: From the tasks' submission to the last result (the cluster up already).
    seconds: float
    workers: int
    scheduler: str
    #: Starting the local cluster, or reaching the existing one.
    startup_s: float = 0.0


def sweep(
    plan: Plan,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every task of ``plan`` on Dask: a LocalCluster of ``workers`` processes (default:
    one per core) on 127.0.0.1, or the cluster at ``scheduler`` (``tcp://HOST:8786``)."""
    from dask.distributed import Client, as_completed

    tasks = tasks_of(plan)
    started = time.perf_counter()
    cluster = None
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler is None:
        cluster = local_cluster(workers or os.cpu_count() or 1)
        client = Client(cluster)
        address = cluster.scheduler_address
    else:
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise InputError(
                f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc}); give tcp://HOST:PORT"
            ) from None
        address = scheduler
    results: list[dict[str, Any]] = []
    try:
        if cluster is not None:
            client.wait_for_workers(len(cluster.workers))
        count = len(client.scheduler_info().get("workers", {}))
        startup_s = time.perf_counter() - started
        started = time.perf_counter()
        futures = client.map(run_task, tasks, pure=False)
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_result is not None:
                on_result(result)
            if progress is not None:
                progress(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    results.sort(key=lambda r: (Path(r["day"]).name, r["set_id"]))
    return SweepResult(results, time.perf_counter() - started, count, address, startup_s)


def local_cluster(workers: int) -> Any:
    """A Dask LocalCluster of ``workers`` processes of one thread each, on 127.0.0.1, with no
    dashboard (its caller closes it)."""
    from dask.distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )


def run_here(plan: Plan) -> Iterator[dict[str, Any]]:
    """Every task in this process, one after another (tests, and the bench's baseline)."""
    for task in tasks_of(plan):
        yield run_task(task)
