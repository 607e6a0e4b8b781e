"""A testing kit for plugin authors: run a scripted session through the real engine.

::

    from momobot_core.testing import Script, run_script

    def test_my_plugin_hears_the_entry():
        script = (Script()
                  .quote("ABCD", bid=1.99, ask=2.00)
                  .open("ABCD", qty=100, tp1=2.20, tp2=2.40, stop=1.90)
                  .quote("ABCD", bid=2.20, ask=2.21)       # TP1
                  .close("ABCD"))                          # manual close
        result = run_script(script, plugins=[MyPlugin()], config={"my_plugin": {"level": 3}})
        assert result.hook_names() == ["on_startup", "on_order_submitted", "on_target_hit",
                                       "on_order_submitted", "on_order_submitted",
                                       "on_position_closed", "on_shutdown"]
        assert [leg.reason for leg in result.legs] == ["tp1", "manual"]

The engine, the journal (SQLite, in memory unless ``db`` is given), the hook
dispatch and the trade rules are the real ones; only the quote source is the
script. ``result.calls`` is every hook call in order, with its arguments;
``result.trades``, ``result.legs`` and ``result.counters`` are what the
journal and the engine hold at the end. A plugin that raises is isolated as in
production; with ``strict=True`` (the default) :func:`run_script` then raises
:class:`PluginError` so the test fails with the plugin's own traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from momobot_core import hookimpl
from momobot_core.config import Config
from momobot_core.engine import Counters, Engine, Event, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Close, Kill, Leg, Open, Quote, Resume, Trade
from momobot_core.plugins import Hooks

__all__ = ["HookCall", "PluginError", "Script", "ScriptResult", "run_script"]

START = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)


@attrs.frozen
class HookCall:
    """One hook call: its name and the arguments every plugin received."""

    name: str
    args: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


class PluginError(AssertionError):
    """A plugin raised inside a hook during :func:`run_script` (``strict=True``)."""


@attrs.frozen
class _Step:
    kind: str
    at: datetime
    data: Mapping[str, Any]


class Script:
    """Steps for the engine, one second apart unless ``at`` (seconds from the start) says otherwise."""

    def __init__(self, start: datetime = START) -> None:
        self.start = start
        self.steps: list[_Step] = []
        self._clock = start

    def _time(self, at: float | None) -> datetime:
        if at is not None:
            when = self.start + timedelta(seconds=at)
            if when < self._clock:
                raise ValueError(f"at={at}: steps must not go back in time")
            self._clock = when
        elif self.steps:
            self._clock += timedelta(seconds=1)
        return self._clock

    def quote(
        self,
        symbol: str,
        *,
        ask: float,
        bid: float | None = None,
        last: float | None = None,
        at: float | None = None,
    ) -> Script:
        """A quote; ``bid`` defaults to one cent under the ask."""
        bid = round(ask - 0.01, 6) if bid is None else bid
        self.steps.append(
            _Step("quote", self._time(at), {"symbol": symbol, "bid": bid, "ask": ask, "last": last})
        )
        return self

    def open(
        self,
        symbol: str,
        *,
        qty: int | None = None,
        tp1: float,
        tp2: float,
        stop: float,
        risk: float | None = None,
        at: float | None = None,
    ) -> Script:
        """Open a bracket trade at the symbol's current ask: ``qty`` shares, or sized by ``risk``."""
        data = {"symbol": symbol, "qty": qty, "tp1": tp1, "tp2": tp2, "stop": stop, "risk": risk}
        self.steps.append(_Step("open", self._time(at), data))
        return self

    def kill(self, *, at: float | None = None) -> Script:
        """Press the kill switch: flatten everything at the bid, halt entries for the day."""
        self.steps.append(_Step("kill", self._time(at), {}))
        return self

    def resume(self, *, at: float | None = None) -> Script:
        """Allow entries again after the kill switch."""
        self.steps.append(_Step("resume", self._time(at), {}))
        return self

    def close(self, symbol: str, *, at: float | None = None) -> Script:
        """Manual close at the bid."""
        self.steps.append(_Step("close", self._time(at), {"symbol": symbol}))
        return self


@attrs.frozen
class ScriptResult:
    calls: list[HookCall]
    trades: list[Trade]
    legs: list[Leg]
    counters: Counters
    refused: list[str]
    errors: list[tuple[str, str, Exception]]
    engine: Engine

    def hook_names(self) -> list[str]:
        return [call.name for call in self.calls]

    def calls_to(self, name: str) -> list[HookCall]:
        return [call for call in self.calls if call.name == name]


class _Recorder:
    """Registered first, so it is called last: it sees each call as the plugins did."""

    def __init__(self) -> None:
        self.calls: list[HookCall] = []

    @hookimpl(trylast=True)
    def on_startup(self, bot: Engine) -> None:
        self.calls.append(HookCall("on_startup", {"bot": bot}))

    @hookimpl(trylast=True)
    def on_order_submitted(self, order: Any, trade: Any) -> None:
        self.calls.append(HookCall("on_order_submitted", {"order": order, "trade": trade}))

    @hookimpl(trylast=True)
    def on_target_hit(self, trade: Any, target: Any, quote: Any) -> None:
        self.calls.append(HookCall("on_target_hit", {"trade": trade, "target": target, "quote": quote}))

    @hookimpl(trylast=True)
    def on_position_closed(self, trade: Any, reason: str, price: float) -> None:
        self.calls.append(HookCall("on_position_closed", {"trade": trade, "reason": reason, "price": price}))

    @hookimpl(trylast=True)
    def on_kill(self, trades: Any, reason: str) -> None:
        self.calls.append(HookCall("on_kill", {"trades": trades, "reason": reason}))

    @hookimpl(trylast=True)
    def on_fill(self, fill: Any, order: Any) -> None:
        self.calls.append(HookCall("on_fill", {"fill": fill, "order": order}))

    @hookimpl(trylast=True)
    def on_alert(self, alert: Any) -> None:
        self.calls.append(HookCall("on_alert", {"alert": alert}))

    @hookimpl(trylast=True)
    def on_shutdown(self, bot: Engine) -> None:
        self.calls.append(HookCall("on_shutdown", {"bot": bot}))


def run_script(
    script: Script,
    plugins: Iterable[object] = (),
    *,
    config: Mapping[str, Mapping[str, Any]] | Config | None = None,
    mode: str = "replay",
    db: str | Path | None = None,
    strict: bool = True,
) -> ScriptResult:
    """Run ``script`` through a real engine with ``plugins`` registered; return what happened.

    ``config`` is the TOML tables as a dict (``{"my_plugin": {...}}``) or a
    :class:`~momobot_core.config.Config`. ``mode`` is what ``bot.mode`` says
    (``"replay"``, ``"demo"`` or ``"live"``). Refused actions (an open without
    a quote, ...) do not raise: they are listed in ``result.refused``.
    """
    hooks = Hooks()
    recorder = _Recorder()
    hooks.register(recorder, name="momobot.testing.recorder")
    for n, plugin in enumerate(plugins):
        hooks.register(plugin, name=getattr(plugin, "__name__", None) or f"plugin-{n}")
    errors: list[tuple[str, str, Exception]] = []
    hooks.on_error = lambda plugin, hook, exc: errors.append((plugin, hook, exc))
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        config = Config(tables={name: dict(table) for name, table in config.items()})

    journal = Journal(":memory:" if db is None else db)
    refused: list[str] = []
    try:
        engine = Engine(config=config, hooks=hooks, journal=journal, mode=mode)
        try:
            engine.start()
            for step in script.steps:
                data = step.data
                event: Event
                if step.kind == "quote":
                    event = Quote(data["symbol"], step.at, data["bid"], data["ask"], data["last"])
                elif step.kind == "open":
                    event = Open(
                        data["symbol"],
                        data["qty"],
                        data["tp1"],
                        data["tp2"],
                        data["stop"],
                        step.at,
                        data["risk"],
                    )
                elif step.kind == "kill":
                    event = Kill(step.at)
                elif step.kind == "resume":
                    event = Resume(step.at)
                else:
                    event = Close(data["symbol"], step.at)
                try:
                    engine.apply(event)  # the one way in, as every front end uses it
                except TradeRefused as exc:
                    refused.append(str(exc))
        finally:
            engine.shutdown()
        result = ScriptResult(
            calls=recorder.calls,
            trades=journal.trades(),
            legs=journal.legs(),
            counters=engine.counters,
            refused=refused,
            errors=errors,
            engine=engine,
        )
    finally:
        journal.close()
    if strict and errors:
        plugin, hook, error = errors[0]
        raise PluginError(f"plugin {plugin!r} raised in {hook}: {error!r}") from error
    return result
