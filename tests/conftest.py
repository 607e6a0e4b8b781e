from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from momobot_core import hookimpl
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote
from momobot_core.plugins import Hooks

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)

# Hypothesis's own clocks (an example's deadline, how long generating data took) are luck on a
# busy CI machine: the properties are what is tested, never their speed.
settings.register_profile("momobot", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("momobot")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def quote(
    symbol: str, ask: float, *, bid: float | None = None, last: float | None = None, t: float = 0.0
) -> Quote:
    return Quote(symbol, at(t), round(ask - 0.01, 4) if bid is None else bid, ask, last)


class Recorder:
    """A plugin that writes down every event it hears, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def on_startup(self, bot: Engine) -> None:
        self.calls.append(("on_startup", {"mode": bot.mode}))

    @hookimpl
    def on_order_submitted(self, order: Any, trade: Any) -> None:
        self.calls.append(("on_order_submitted", {"order": order, "trade": trade}))

    @hookimpl
    def on_target_hit(self, trade: Any, target: Any, quote: Any) -> None:
        self.calls.append(("on_target_hit", {"trade": trade, "target": target, "quote": quote}))

    @hookimpl
    def on_position_closed(self, trade: Any, reason: str, price: float) -> None:
        self.calls.append(("on_position_closed", {"trade": trade, "reason": reason, "price": price}))

    @hookimpl
    def on_shutdown(self, bot: Engine) -> None:
        self.calls.append(("on_shutdown", {}))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def events(self) -> list[str]:
        """A compact trace: 'order entry buy 100', 'target tp1', 'closed tp2'."""
        out = []
        for name, kw in self.calls:
            if name == "on_order_submitted":
                o = kw["order"]
                out.append(f"order {o.intent} {o.side} {o.qty}")
            elif name == "on_target_hit":
                out.append(f"target {kw['target']}")
            elif name == "on_position_closed":
                out.append(f"closed {kw['reason']}")
        return out


def make_hooks(*plugins: object) -> Hooks:
    hooks = Hooks()
    for n, plugin in enumerate(plugins):
        hooks.register(plugin, name=f"test-plugin-{n}")
    return hooks


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(recorder: Recorder) -> Engine:
    e = Engine(hooks=make_hooks(recorder), journal=Journal(), mode="replay")
    e.start()
    return e


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def momobot(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    site: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the ``momobot`` command line in a child process, with no MOMOBOT_* from the test's env.

    ``site`` is put on PYTHONPATH (fake installed distributions).
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    if site is not None:
        full_env["PYTHONPATH"] = str(site)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "momobot_core.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        input=stdin,
        timeout=timeout,
        check=False,
    )


def install_fake_dist(site: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    """Lay out an installed distribution with one ``momobot`` entry point, as pip would."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[momobot]\n{ep_name} = {module}\n")


def side_file(db: Path) -> list[str]:
    """The records the side file ``<db>.pending`` holds (it keeps its room when empty)."""
    from momobot_core.sidefile import read_side_file

    records, lost = read_side_file(Path(f"{db}.pending"))
    return [line for line, _ in records + lost]


class SqliteLocker:
    """Another process holding SQLite's write lock on a journal until told to let go."""

    def __init__(self, db: Path) -> None:
        code = textwrap.dedent("""
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            sys.stdin.readline()
            db.execute("COMMIT")
        """)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.returncode is None:  # once: a test may let go before its own clean-up does
            self.proc.communicate("go\n", timeout=10)
        assert self.proc.returncode == 0
