"""What the dashboard costs the engine's event loop: one draw of its live fragments.

The page's event stream draws the positions, today, the source and the P&L curve on the
engine's own loop, so a draw is time a quote could wait. Measured in-process against the
real engine (in-memory journal) with N open positions, against a baseline in the same
run: the same positions as ``GET /positions`` JSON (what a script polling the API costs).

    python bench/dashboard_draw.py                 # 20 and 100 positions, 500 draws each
    python bench/dashboard_draw.py --positions 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

import attrs

from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Open, Quote
from momobot_core.plugins import Hooks
from momobot_core.web.dashboard import Dashboard
from momobot_core.web.guard import Sessions


def bot_with(positions: int) -> Engine:
    bot = Engine(mode="live", journal=Journal(), hooks=Hooks())
    bot.start()
    for n in range(positions):
        symbol = f"S{n:03d}"
        bot.apply(Quote(symbol, datetime.now(UTC), 1.99, 2.00))
        bot.apply(Open(symbol, 100, 2.2, 2.4, 1.9, datetime.now(UTC)))
    return bot


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

        draw = timed(dashboard.fragments, args.rounds)
        base = timed(as_json, args.rounds)
        p50, p99, b50 = statistics.median(draw), draw[int(len(draw) * 0.99)], statistics.median(base)
        print(
            f"| {count} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | {b50 * 1e3:.3f} ms | {p50 / b50:.1f}x |"
        )


if __name__ == "__main__":
    main()
