"""What the notify plugin costs the trading path: the engine's whole event (an entry, TP1 and
TP2 through the hooks, with the journal) with no plugin, with notify sending to a local
webhook that answers, and with notify pointed at a URL that is down (every send fails and is
retried meanwhile). The same run, rounds interleaved; medians and ratios.

Not a test: ``python bench/notify_overhead.py``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

from momobot_core.config import Config
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote
from momobot_core.plugins import Hooks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def engine(url: str | None) -> Engine:
    hooks = Hooks()
    tables: dict[str, Any] = {"risk": {"stale_quote_s": 0}}
    if url is not None:
        from momobot_notify.plugin import NotifyPlugin

        hooks.register(NotifyPlugin(), name="notify")
        tables["notify"] = {"urls": [url], "min_interval_s": 1, "retry_s": 0.5, "retry_max_s": 1}
    bot = Engine(config=Config(tables=tables), hooks=hooks, journal=Journal(), mode="live")
    bot.start()
    return bot


def trades(bot: Engine, n: int) -> list[float]:
    """Per trade: entry, TP1 and TP2 on quotes, each through every hook; microseconds."""
    out = []
    t0 = datetime.now(UTC)
    for i in range(n):
        symbol = f"S{i % 50:02d}"
        ts = t0 + timedelta(milliseconds=i)
        bot.on_quote(Quote(symbol, ts, 1.99, 2.00, 2.00))
        start = time.perf_counter()
        bot.open_trade(symbol, 100, 2.10, 2.30, 1.90, ts=ts)
        bot.on_quote(Quote(symbol, ts, 2.10, 2.11, 2.10))
        bot.on_quote(Quote(symbol, ts, 2.30, 2.31, 2.30))
        out.append((time.perf_counter() - start) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
    Thread(target=server.serve_forever, daemon=True).start()
    cases = {
        "no plugin": None,
        "notify, webhook up": f"json://127.0.0.1:{port}/hook",
        "notify, webhook down": f"json://127.0.0.1:{free_port()}/hook",
    }
    medians: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, url in cases.items():
            bot = engine(url)
            medians[name].append(statistics.median(trades(bot, args.trades)))
            bot.shutdown()
    base = statistics.median(medians["no plugin"])
    print(f"{args.trades} trades (entry, TP1, TP2) x {args.rounds} rounds; median us per trade")
    print()
    print("| | median per trade | vs no plugin |")
    print("|---|---|---|")
    for name in cases:
        m = statistics.median(medians[name])
        print(f"| {name} | {m:.1f} us | x{m / base:.2f} ({m - base:+.1f} us) |")
    server.shutdown()


if __name__ == "__main__":
    main()
