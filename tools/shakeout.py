"""Shake the suite out before CI does: run it several times while every core is busy.

CI runs on a busy 2-core machine, where a test that reads a fake, a receiver or a log right
after an action can lose the race that an idle laptop always wins. This runs the py3 suite
``--runs`` times (default 5) with one CPU-burning process per core beside it, and lists every
test that failed at least once, with how often and its first failure. Exit 0 when every run
was green, 1 when any test failed, 2 when a run could not be read at all.

    .venv/bin/python -m tox run -e shakeout                 # the whole suite, 5 runs
    .venv/bin/python -m tox run -e shakeout -- --runs 2 -- tests/test_das.py

Arguments after a second ``--`` go to pytest as they are. The junit XML of each run is kept
in ``--out`` (default ``.shakeout/``) for a closer look.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BURN = "while True:\n    pass\n"


@dataclass
class Failure:
    test: str
    runs: list[int] = field(default_factory=list)
    first: str = ""


@dataclass
class Run:
    number: int
    seconds: float
    tests: int
    failed: int
    skipped: int
    exit_code: int


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes that each keep one core busy until the block ends (even on Ctrl-C)."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN], start_new_session=True) for _ in range(count)]
    try:
        yield burners
    finally:
        for burner in burners:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(burner.pid, signal.SIGKILL)
            burner.wait()


def read_junit(path: Path) -> tuple[int, int, list[tuple[str, str]]]:
    """(tests, skipped, [(test id, failure text)]) from a pytest junit XML file."""
    root = ET.parse(path).getroot()
    tests = skipped = 0
    failures: list[tuple[str, str]] = []
    for case in root.iter("testcase"):
        tests += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for child in case:
            if child.tag == "skipped":
                skipped += 1
            elif child.tag in ("failure", "error"):
                text = (child.get("message") or "") + "\n" + (child.text or "")
                failures.append((f"{name} ({child.tag})" if child.tag == "error" else name, text.strip()))
    return tests, skipped, failures


def shake(runs: int, busy: int, out: Path, pytest_args: Sequence[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: dict[str, Failure] = {}
    done: list[Run] = []
    unreadable = False
    print(
        f"shake-out: {runs} runs of the suite, {busy} busy process(es) beside it, reports in {out}/",
        flush=True,
    )
    with busy_cores(busy):
        for number in range(1, runs + 1):
            report = out / f"run-{number}.xml"
            report.unlink(missing_ok=True)
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
            started = time.monotonic()
            with (out / f"run-{number}.log").open("w") as log:
                code = subprocess.call(
                    [*command, *pytest_args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
            seconds = time.monotonic() - started
            if not report.exists():
                print(f"run {number}: pytest exited {code} and wrote no report (see {out}/run-{number}.log)")
                unreadable = True
                continue
            tests, skipped, failed = read_junit(report)
            done.append(Run(number, seconds, tests, len(failed), skipped, code))
            for test, text in failed:
                entry = failures.setdefault(test, Failure(test, first=text))
                entry.runs.append(number)
            status = "green" if not failed and code == 0 else f"{len(failed)} failed (exit {code})"
            print(f"run {number}: {tests} tests, {skipped} skipped, {status}, {seconds:.0f} s", flush=True)
    print()
    if not failures:
        green = sum(1 for r in done if r.failed == 0 and r.exit_code == 0)
        print(f"shake-out: {green} of {runs} runs green with every core busy; no test failed.")
        return 2 if unreadable or green < runs else 0
    print(f"shake-out: {len(failures)} test(s) failed at least once in {runs} runs with every core busy:")
    for entry in sorted(failures.values(), key=lambda f: (-len(f.runs), f.test)):
        which = ", ".join(map(str, entry.runs))
        print(f"\n- {entry.test}: failed in {len(entry.runs)} of {runs} (runs {which})")
        lines = entry.first.splitlines()
        shown = [*lines[:4], "...", *lines[-8:]] if len(lines) > 14 else lines
        for line in shown:
            print(f"    {line}")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, pytest_args = args[:at], args[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="how many times to run the suite (default 5)")
    parser.add_argument(
        "--busy",
        type=int,
        default=os.cpu_count() or 1,
        help="CPU-burning processes beside the suite (default: one per core)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".shakeout", help="where the run reports go")
    options = parser.parse_args(args)
    if options.runs < 1 or options.busy < 0:
        parser.error("--runs must be at least 1 and --busy at least 0")
    return shake(options.runs, options.busy, options.out, pytest_args)


if __name__ == "__main__":
    sys.exit(main())
