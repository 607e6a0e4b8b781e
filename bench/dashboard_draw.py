"""What the dashboard costs the engine's event loop: one draw of its live fragments.

The page's event stream draws the positions, today, the source and the P&L curve on the
engine's own loop, so a draw is time a quote could wait. Measured in-process against the
real engine (in-memory journal) with N open positions, against a baseline in the same
run: the same positions as ``GET /positions`` JSON (what a script polling the API costs).

    python bench/dashboard_draw.py                 # 20 and 100 positions, 500 draws each
    python bench/dashboard_draw.py --positions 50

Then the cockpit's case: the page with 20 symbols on its watchlist, 10 positions and a chart,
against the page before the cockpit with the same 10 positions (its four parts drawn whole,
and its P&L curve drawn again whenever the total moved, as it did), each draw after one quote
on a position's symbol (what makes a page draw).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Open, Quote
from momobot_core.plugins import Hooks
from momobot_core.web.chart import chart_update
from momobot_core.web.dashboard import Dashboard, _source, positions, render
from momobot_core.web.guard import Sessions


def bot_with(positions: int) -> Engine:
    bot = Engine(mode="live", journal=Journal(), hooks=Hooks())
    bot.start()
    for n in range(positions):
        symbol = f"S{n:03d}"
        bot.apply(Quote(symbol, datetime.now(UTC), 1.99, 2.00))
        bot.apply(Open(symbol, 100, 2.2, 2.4, 1.9, datetime.now(UTC)))
    return bot


def mover(bot: Engine, count: int) -> Callable[[Callable[[], object]], Callable[[], None]]:
    """``function`` after one quote on a position's symbol: what makes a page draw."""
    tick = itertools.count(1)

    def wrap(function: Callable[[], object]) -> Callable[[], None]:
        def call() -> None:
            n = next(tick)
            ask = 2.00 + n % 7 / 100
            bot.apply(Quote(f"S{n % count:03d}", datetime.now(UTC), round(ask - 0.01, 2), ask))
            function()

        return call

    return wrap


def timed(function: object, rounds: int) -> list[float]:
    assert callable(function)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, nargs="*", default=[20, 100])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    print("| positions | dashboard draw p50 | p99 | GET /positions JSON p50 | ratio |")
    print("|---|---|---|---|---|")
    for count in args.positions:
        bot = bot_with(count)
        dashboard = Dashboard(bot, Sessions(None))

        def as_json(bot: Engine = bot) -> str:
            rows = []
            for trade in bot.open_trades.values():
                quote = bot.last_quotes[trade.symbol]
                row = attrs.asdict(trade, recurse=False)
                row.update(
                    bid=quote.bid,
                    ask=quote.ask,
                    unrealised_pnl=(quote.bid - trade.entry_price) * trade.remaining,
                )
                rows.append(row)
            return json.dumps(rows, default=str)

        moved = mover(bot, count)
        draw = timed(moved(dashboard.fragments), args.rounds)
        base = timed(moved(as_json), args.rounds)
        p50, p99, b50 = statistics.median(draw), draw[int(len(draw) * 0.99)], statistics.median(base)
        print(
            f"| {count} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | {b50 * 1e3:.3f} ms | {p50 / b50:.1f}x |"
        )
    cockpit_case(args.rounds)


def cockpit_case(rounds: int) -> None:
    bot = bot_with(10)
    for n in range(20):
        bot.apply(Quote(f"W{n:03d}", datetime.now(UTC), 2.99, 3.00))
    dashboard = Dashboard(bot, Sessions(None))
    dashboard.watch = [f"W{n:03d}" for n in range(20)]
    dashboard.charts["bench"] = ("S000", "1m")
    tick = [0]

    def move() -> None:  # one quote on a position's symbol: what makes a page draw
        tick[0] += 1
        n = tick[0]
        bot.apply(Quote(f"S{n % 10:03d}", datetime.now(UTC), 1.99 + n % 7 / 100, 2.00 + n % 7 / 100))

    def before() -> None:  # the page before the cockpit: its four parts, drawn whole
        move()
        render("_positions.html", rows=positions(bot))
        render("_today.html", risk=bot.risk_status(), bot=bot)
        render("_source.html", source=_source(bot))
        dashboard._equity_key = ()  # it drew the curve again whenever the total moved
        dashboard.equity_svg()

    def cockpit() -> None:
        move()
        dashboard.fragments()
        chart_update(bot, *dashboard.charts["bench"])

    old, new = [], []
    for _ in range(5):  # interleaved: both see the same machine
        old.extend(timed(before, max(1, rounds // 5)))
        new.extend(timed(cockpit, max(1, rounds // 5)))
    old.sort()
    new.sort()
    o50, n50 = statistics.median(old), statistics.median(new)
    print()
    print("| page | draw p50 | p99 |")
    print("|---|---|---|")
    o99, n99 = old[int(len(old) * 0.99)], new[int(len(new) * 0.99)]
    print(f"| before the cockpit, 10 positions | {o50 * 1e3:.2f} ms | {o99 * 1e3:.2f} ms |")
    print(f"| the cockpit: 10 positions, 20 watched, a chart | {n50 * 1e3:.2f} ms | {n99 * 1e3:.2f} ms |")
    print(f"cockpit / before: {n50 / o50:.2f}x")


if __name__ == "__main__":
    main()
