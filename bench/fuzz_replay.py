"""Fuzz ``momobot replay`` with generated bad input: no traceback, no hang, no wrong exit code.

Each input is a valid recorded session mutated at random (a field replaced by
a list, an object, a huge or non-finite number, a year-1 or year-9999 time,
deep nesting, a byte-order mark, a NUL, a cut line, a hand-written CSV
row...). Every input is replayed through the real command line in this
process, half of them into a real SQLite journal. A run must end with exit
0 (input that reads, whatever it holds) or exit 2 with ``FILE:LINE: ...``
(input that cannot be read); anything else is counted:

* traceback: an exception escaped the command line;
* wrong exit: an exit code other than 0 or 2, or 2 without a message;
* hang: one input took more than ``--hang-after`` seconds.

    python bench/fuzz_replay.py                  # 10,000 inputs, seed 1
    python bench/fuzz_replay.py -n 20000 --seed 7

Exits 1 if anything was counted. Not a test (it takes minutes); the suite has
a bounded hypothesis version in tests/test_fuzz_input.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from momobot_core.cli import build_cli
from momobot_core.plugins import load_hooks

SEED_JSONL: list[dict[str, Any]] = [
    {"type": "quote", "ts": "2026-11-24T14:30:00Z", "symbol": "ABCD", "bid": 1.99, "ask": 2.00},
    {
        "type": "open",
        "ts": "2026-11-24T14:30:01Z",
        "symbol": "ABCD",
        "qty": 100,
        "tp1": 2.2,
        "tp2": 2.4,
        "stop": 1.9,
    },
    {"type": "quote", "ts": "2026-11-24T14:30:02Z", "symbol": "ABCD", "bid": 2.20, "ask": 2.21, "last": 2.2},
    {"type": "quote", "ts": "2026-11-24T14:30:03Z", "symbol": "ABCD", "bid": 2.40, "ask": 2.41},
    {
        "type": "open",
        "ts": "2026-11-24T14:30:04Z",
        "symbol": "WXYZ",
        "qty": 1,
        "tp1": 9,
        "tp2": 10,
        "stop": 1,
    },
    {"type": "close", "ts": "2026-11-24T14:30:05Z", "symbol": "WXYZ"},
]
SEED_CSV = [
    "ts,symbol,bid,ask,last",
    "2026-11-24T14:30:00Z,ABCD,1.99,2.00,2.00",
    "2026-11-24T14:30:01Z,ABCD,2.20,2.21,",
    "1764000000,ABCD,2.40,2.41,2.4",
]

WEIRD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    2**64,
    10**400,
    -(10**30),
    1e308,
    1.5e-320,
    float("nan"),
    float("inf"),
    "",
    " ",
    "100",
    "NaN",
    "1e999",
    "x" * 5000,
    "\u0000",
    "\ud7ff",
    [],
    [1],
    {},
    {"a": 1},
    [[[[[]]]]],
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-05:00",
    "1-1-1",
    -62135596800,
    253402300800,
    1e20,
    "2026-13-45T25:61:61Z",
    "2026-11-24T14:30:00+25:00",
    "quote",
    "open",
]


PRICES = {"bid", "ask", "last", "tp1", "tp2", "stop", "qty"}
ODD_NUMBERS: list[Any] = [
    0,
    -1,
    1e308,
    1.5e-320,
    2**63,
    10_000_000.01,
    9_999_999.99,
    0.0001,
    3,
    1e9,
    10**9 + 1,
]


def mutate_jsonl(rng: random.Random) -> bytes:
    events = [dict(e) for e in SEED_JSONL]
    for _ in range(rng.randint(1, 3)):
        event = rng.choice(events)
        action = rng.random()
        key = rng.choice([*event, "type", "ts", "extra"])
        if key in PRICES and action < 0.3:
            event[key] = rng.choice(ODD_NUMBERS)  # still a number: the input reads, the engine judges
        elif action < 0.55:
            event[key] = rng.choice(WEIRD)
        elif action < 0.7:
            event.pop(key, None)
        elif action < 0.8:
            event[key] = _nested(rng.randint(50, 3000))
        else:
            event["ts"] = rng.choice(["2026-11-24T14:29:00Z", 0, 1e12, "2026-11-24 14:30"])
    lines = []
    for event in events:
        try:
            lines.append(json.dumps(event, allow_nan=True))
        except (ValueError, RecursionError):
            lines.append('{"type": "quote"')
    text = "\n".join(lines) + "\n"
    return _byte_noise(rng, text.encode("utf-8", "surrogatepass"))


def mutate_csv(rng: random.Random) -> bytes:
    rows = list(SEED_CSV)
    for _ in range(rng.randint(1, 3)):
        n = rng.randrange(len(rows))
        fields = rows[n].split(",")
        action = rng.random()
        if action < 0.5:
            fields[rng.randrange(len(fields))] = str(rng.choice(WEIRD))
        elif action < 0.7:
            fields.pop(rng.randrange(len(fields)))
        elif action < 0.85:
            fields.append(str(rng.choice(WEIRD)))
        else:
            fields = ['"' + ",".join(fields)]
        rows[n] = ",".join(fields)
    return _byte_noise(rng, ("\n".join(rows) + "\n").encode("utf-8", "surrogatepass"))


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _byte_noise(rng: random.Random, data: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.08:
        return b"\xef\xbb\xbf" + data
    if roll < 0.14:
        at = rng.randrange(len(data))
        return data[:at] + bytes([rng.randrange(256)]) + data[at:]
    if roll < 0.18:
        return data[: rng.randrange(len(data))]
    if roll < 0.2:
        return b"\0" + data
    return data


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000, help="how many inputs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hang-after", type=float, default=10.0, help="seconds one input may take")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cli = build_cli(load_hooks(entry_points=False))
    logging.disable(logging.CRITICAL)  # refused actions log warnings; only the outcome counts here
    signal.signal(signal.SIGALRM, _alarm)
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    slowest = 0.0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.n):
            csv = rng.random() < 0.35
            path = Path(tmp) / f"input{n}.{'csv' if csv else 'jsonl'}"
            path.write_bytes(mutate_csv(rng) if csv else mutate_jsonl(rng))
            argv = ["replay", str(path), "--no-progress"]
            if n % 2:
                argv += ["--db", str(Path(tmp) / f"journal{n}.db")]
            err = io.StringIO()
            began = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, args.hang_after)
            code: int | str = 0
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    cli.main(argv, prog_name="momobot", standalone_mode=True)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Hang:
                code = "hang"
            except BaseException:
                code = "traceback"
                problems.append(f"input {n} ({path.suffix}): {traceback.format_exc(limit=3)}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            slowest = max(slowest, time.perf_counter() - began)
            if code == "hang":
                outcomes["hang"] += 1
                problems.append(f"input {n}: hang ({path.read_bytes()[:200]!r})")
            elif code == "traceback":
                outcomes["traceback"] += 1
            elif code == 0:
                outcomes["exit 0 (read; bad values refused or rejected)"] += 1
            elif code == 2 and "momobot: error:" in err.getvalue():
                outcomes["exit 2 with FILE:LINE"] += 1
            else:
                outcomes["wrong exit"] += 1
                problems.append(f"input {n}: exit {code}: {err.getvalue()[-300:]}")
            path.unlink()
    elapsed = time.perf_counter() - start
    print(
        f"fuzz_replay: {args.n:,} inputs, seed {args.seed}, {elapsed:.1f} s"
        f" ({args.n / elapsed:,.0f} inputs/s), slowest input {slowest * 1e3:.0f} ms"
    )
    for name in (
        "exit 0 (read; bad values refused or rejected)",
        "exit 2 with FILE:LINE",
        "traceback",
        "hang",
        "wrong exit",
    ):
        print(f"  {name:48} {outcomes[name]:>7,}")
    for problem in problems[:10]:
        print("\n" + problem, file=sys.stderr)
    return 1 if outcomes["traceback"] or outcomes["hang"] or outcomes["wrong exit"] else 0


if __name__ == "__main__":
    sys.exit(main())
