"""The das plugin against the fake DAS CMD API on 127.0.0.1: an engine, its journal, the plugin."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Alert, Quote, Trade
from momobot_core.plugins import Hooks
from momobot_das.config import DasConfig
from momobot_das.desk import Desk
from momobot_das.fake import FakeDas, FakeOrder
from momobot_das.plugin import DasPlugin


def das_config(fake: FakeDas, **overrides: Any) -> DasConfig:
    settings: dict[str, Any] = {
        "user": fake.user,
        "account": fake.account,
        "route": "SMAT",
        "password": fake.password,
        "port": fake.port,
        "exit_reprice_s": 0.3,
        "entry_ttl": 0.5,
        "reconnect_max_delay": 0.1,
        "connect_timeout": 5.0,
        **overrides,
    }
    return DasConfig(**settings)


class DasSession:
    """A live engine with a real SQLite journal and the das plugin, fed by hand."""

    def __init__(
        self,
        config: DasConfig,
        db: Path,
        *,
        mode: str = "live",
        wall: Callable[[], datetime] | None = None,
        start: bool = True,
    ) -> None:
        self.plugin = DasPlugin(config, wall=wall)
        hooks = Hooks()
        hooks.register(self.plugin, name="das")
        self.journal = Journal(db)
        self.engine = Engine(hooks=hooks, journal=self.journal, mode=mode)
        if start:
            self.engine.start()

    @property
    def desk(self) -> Desk:
        assert self.plugin.desk is not None
        return self.plugin.desk

    def quote(self, symbol: str, bid: float, ask: float) -> None:
        self.engine.apply(Quote(symbol, datetime.now(UTC), bid, ask))

    def open(self, symbol: str, qty: int, tp1: float, tp2: float, stop: float) -> Trade:
        return self.engine.open_trade(symbol, qty, tp1, tp2, stop)

    def entered(self, symbol: str = "ABCD", qty: int = 100) -> Trade:
        """A trade opened at ask 2.00 (tp1 2.20, tp2 2.40, stop 1.90), once its entry's fill is in."""
        self.quote(symbol, 1.99, 2.00)
        fills = self.engine.counters.fills
        trade = self.open(symbol, qty, 2.20, 2.40, 1.90)
        assert self.pump(lambda: self.engine.counters.fills > fills)
        return trade

    def pump(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Run the engine's upkeep (fills from the plugin land here) until ``predicate()``."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()  # never set: a poll interval; the condition is what is waited on
        while time.monotonic() < deadline:
            self.engine.tick()
            if predicate():
                return True
            pause.wait(0.005)
        self.engine.tick()
        return predicate()

    def alerts(self, kind: str) -> list[Alert]:
        self.engine.tick()
        return [a for a in self.engine.alerts if a.kind == kind]

    def close(self) -> None:
        self.engine.shutdown()
        self.journal.close()


@contextlib.contextmanager
def platform_down(tmp_path: Path, **config: Any) -> Iterator[tuple[FakeDas, DasSession]]:
    """A session whose platform is not up yet: ``fake.start()`` brings it up on the port
    the session keeps dialling."""
    from hotkey_helpers import free_port

    port = free_port()
    fake = FakeDas(port=port)
    session = DasSession(das_config(fake, port=port, **config), tmp_path / "journal.db")
    try:
        yield fake, session
    finally:
        session.close()
        fake.close()


def order_lines(fake: FakeDas) -> list[str]:
    """NEWORDER lines without their token: side, symbol, route, qty, price, TIF."""
    return [" ".join(line.split()[2:]) for line in fake.lines("NEWORDER")]


def platform_order(fake: FakeDas, session: DasSession, trade: Trade, intent: str) -> FakeOrder:
    """The fake's record of ``trade``'s order of ``intent`` (``"take_profit"``, ``"stop"``, ...),
    matched by the token the desk wrote it with, once that order has reached the fake.

    Never by position in the fake's list: its ids are text, and an order may still be on the
    socket when the action that sent it returns."""
    found: list[FakeOrder] = []

    def arrived() -> bool:
        with session.desk._lock:
            tokens = [
                w.token for w in session.desk.orders.values() if w.trade_id == trade.id and w.intent == intent
            ]
        with fake._lock:
            found[:] = [o for o in fake.orders.values() if o.token in tokens]
        return bool(found)

    assert session.pump(arrived), f"no {intent} order of trade {trade.id} reached the platform"
    assert len(found) == 1, f"{len(found)} {intent} orders of trade {trade.id}: {found}"
    return found[0]
