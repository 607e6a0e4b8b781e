"""The engine's own work per call, counted in CPU instructions rather than timed.

Timed figures on these machines move by 20 to 100% from one day to the next, before any change
(docs/PERFORMANCE.md); a count of the instructions a call runs does not, so a change of a few
percent in the engine's own work shows in one run. valgrind's callgrind tool counts every
instruction a process runs in user space (not the kernel's work in a system call, nor the time
a cache miss costs: a cold call takes longer than its count says). Each case runs twice in a
child process under it, with the same set-up: once making no measured call, once making N.
The difference divided by N is one call's count. The quotes' times are fixed and so is the
hash seed. A count holds for one ``--calls``: what is done once in a while (a dict grown, ids
drawn 512 at a time) is spread over the calls, so compare counts made with the same number
(the default, 200).

The calls run on an asyncio loop, as ``momobot serve`` runs the engine, with no plugin. The
child ends right after its calls: the fold into SQLite, 20 ms after an event's hooks, is not
counted (it is off the path); the side file's write before the hooks is. The quotes are built
before the counted part, so a quote's count is the engine's work on it, not its making.

Cases: ``open_trade``; the quote that reaches TP1; the quote that stops the rest out at
break-even after TP1; a quote for a symbol with an open trade that reaches no level; a quote
for a symbol with no trade. Baseline in the same run: the same calls with no journal.

    python bench/engine_instructions.py              # 200 calls a case

Needs valgrind (Debian's ``valgrind`` package). A count is this interpreter's: CPython 3.11 and
3.12 differ, as do two builds of one version.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta

from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote

CASES = ("open_trade", "TP1", "stop", "quote, open trade", "quote, no trade")
WARM = 50  # whole trades run first, so the first counted call finds nothing to set up
T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def child(case: str, calls: int, total: int, journal: bool, directory: str) -> None:
    """Set up the same day whatever ``calls`` is, make ``calls`` calls of ``case``, and end."""
    engine = Engine(journal=Journal(f"{directory}/bench.db") if journal else None, mode="live")
    engine.start()
    symbols = [f"E{n:05d}" for n in range(WARM + 2 * total)]
    at = iter(T0 + timedelta(microseconds=n) for n in range(10**9))

    def quote(symbol: str, bid: float, ask: float) -> Quote:
        return Quote(symbol, next(at), bid, ask, None)

    for symbol in symbols:
        engine.apply(quote(symbol, 1.99, 2.00))
    warm, counted, idle = symbols[:WARM], symbols[WARM : WARM + total], symbols[WARM + total :]

    async def main() -> None:
        for symbol in warm:
            engine.open_trade(symbol, 100, 2.2, 2.4, 1.9)
            for bid, ask in ((2.10, 2.11), (2.20, 2.21), (2.10, 2.11), (1.99, 2.00)):
                engine.apply(quote(symbol, bid, ask))
        await asyncio.sleep(0.05)  # the warm-up's fold
        if case != "open_trade" and case != "quote, no trade":
            for symbol in counted:
                engine.open_trade(symbol, 100, 2.2, 2.4, 1.9)
                engine.apply(quote(symbol, 2.10, 2.11))  # its candles begin
            if case == "stop":
                for symbol in counted:
                    engine.apply(quote(symbol, 2.20, 2.21))  # TP1: the stop at break-even
                    engine.apply(quote(symbol, 2.10, 2.11))
            await asyncio.sleep(0.05)
        prices = {"TP1": (2.20, 2.21), "stop": (1.99, 2.00)}.get(case, (2.11, 2.12))
        quotes = [quote(symbol, *prices) for symbol in (idle if case == "quote, no trade" else counted)]
        if case == "open_trade":
            for symbol in counted[:calls]:
                engine.open_trade(symbol, 100, 2.2, 2.4, 1.9)
        else:
            for each in quotes[:calls]:
                engine.apply(each)
        os._exit(0)  # no fold, no shutdown: the same for both runs of a case

    asyncio.run(main())


def count(case: str, calls: int, total: int, journal: bool) -> int:
    """Instructions the child ran in all (under callgrind). The child's journal lives in a folder
    made and removed here: the child ends without cleaning up."""
    with tempfile.TemporaryDirectory() as directory:
        return _count(case, calls, total, journal, directory)


def _count(case: str, calls: int, total: int, journal: bool, directory: str) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        case,
        "--calls",
        str(calls),
        "--total",
        str(total),
        "--dir",
        directory,
    ]
    if not journal:
        command.append("--no-journal")
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{case}: the child failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--no-journal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls, args.total, not args.no_journal, args.dir or tempfile.mkdtemp())
        return
    if shutil.which("valgrind") is None:
        sys.exit("this bench counts instructions with valgrind: install it (apt-get install valgrind)")
    print(
        f"instructions per call (callgrind; {args.calls} calls a case on an asyncio loop, no plugin;"
        f" Python {sys.version.split()[0]})"
    )
    print()
    print("| call | journal on disk | no journal | the record's part |")
    print("|---|---|---|---|")
    for case in CASES:
        per_call = {}
        for journal in (True, False):
            none = count(case, 0, args.calls, journal)
            some = count(case, args.calls, args.calls, journal)
            per_call[journal] = (some - none) / args.calls
        print(
            f"| {case} | {per_call[True]:,.0f} | {per_call[False]:,.0f} |"
            f" {per_call[True] - per_call[False]:+,.0f} |"
        )


if __name__ == "__main__":
    main()
