"""One test per hook (checked by test_docs.py), written with the plugin testing kit."""

from __future__ import annotations

import threading
from typing import Any

import click
import pytest
from click.testing import CliRunner

from momobot_core import ConfigError, hookimpl
from momobot_core.cli import build_cli
from momobot_core.plugins import Hooks
from momobot_core.testing import PluginError, Script, run_script


def bracket() -> Script:
    return (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", qty=100, tp1=2.20, tp2=2.40, stop=1.90)
        .quote("ABCD", ask=2.21)
        .quote("ABCD", ask=2.05, bid=1.99, last=1.99)
    )  # break-even stop


class Seen:
    def __init__(self) -> None:
        self.startup: list[Any] = []

    @hookimpl
    def on_startup(self, bot: Any) -> None:
        self.startup.append((bot.mode, dict(bot.config.table("seen")), list(bot.open_trades)))


def test_hook_on_startup_sees_mode_config_and_comes_first() -> None:
    seen = Seen()
    result = run_script(bracket(), [seen], config={"seen": {"level": 2}}, mode="demo")
    assert seen.startup == [("demo", {"level": 2}, [])]
    assert result.hook_names()[0] == "on_startup"


def test_hook_on_startup_config_error_stops_the_run() -> None:
    class Strict:
        @hookimpl
        def on_startup(self, bot: Any) -> None:
            raise ConfigError("[strict] level = 'x': must be a number")

    with pytest.raises(ConfigError, match="level = 'x'"):
        run_script(bracket(), [Strict()])


def test_hook_on_order_submitted_gets_every_order_with_intent_and_fill() -> None:
    result = run_script(bracket())
    orders = [
        (c["order"].intent, c["order"].side, c["order"].qty, c["order"].price)
        for c in result.calls_to("on_order_submitted")
    ]
    assert orders == [
        ("entry", "buy", 100, 2.00),
        ("take_profit", "sell", 50, 2.21),
        ("stop", "sell", 50, 1.99),
    ]
    after_tp1 = result.calls_to("on_order_submitted")[1]["trade"]
    assert after_tp1.remaining == 50 and after_tp1.stop == 2.00


def test_hook_on_target_hit_fires_once_per_target_before_the_exit() -> None:
    result = run_script(bracket().quote("ABCD", ask=2.30))
    names = result.hook_names()
    assert [c["target"] for c in result.calls_to("on_target_hit")] == ["tp1", "stop"]
    assert names.index("on_target_hit") < names.index("on_order_submitted", 2)
    assert result.calls_to("on_target_hit")[0]["trade"].stop == 1.90


def test_hook_on_position_closed_gives_reason_and_last_price() -> None:
    result = run_script(
        bracket().quote("EFGH", ask=5.0).open("EFGH", qty=10, tp1=5.5, tp2=6, stop=4.8).close("EFGH")
    )
    closes = [(c["trade"].symbol, c["reason"], c["price"]) for c in result.calls_to("on_position_closed")]
    assert closes == [("ABCD", "stop", 1.99), ("EFGH", "manual", 4.99)]
    assert all(c["trade"].remaining == 0 for c in result.calls_to("on_position_closed"))


def test_the_test_run_records_a_kill_its_closes_and_its_alert() -> None:
    # docs/plugins.md: result.calls holds every hook call in order, on_alert included.
    script = Script().quote("ABCD", ask=2.00).open("ABCD", qty=100, tp1=2.20, tp2=2.40, stop=1.90)
    result = run_script(script.quote("ABCD", ask=2.05).kill())
    names = result.hook_names()
    assert names.index("on_kill") < names.index("on_position_closed")
    assert [c["reason"] for c in result.calls_to("on_position_closed")] == ["kill"]
    assert "halted" in [c["alert"].kind for c in result.calls_to("on_alert")]


def test_hook_on_shutdown_runs_last_even_after_a_plugin_error() -> None:
    class Broken:
        @hookimpl
        def on_target_hit(self, trade: Any, target: Any, quote: Any) -> None:
            raise RuntimeError("bug")

    result = run_script(bracket(), [Broken()], strict=False)
    assert result.hook_names()[-1] == "on_shutdown"
    assert [(p, h) for p, h, _ in result.errors] == [("plugin-0", "on_target_hit")] * 2
    with pytest.raises(PluginError, match="'plugin-0' raised in on_target_hit"):
        run_script(bracket(), [Broken()])


def test_hook_on_alert_hears_alerts_from_any_thread_on_the_engine_thread() -> None:
    heard: list[tuple[str, str | None, Any, int]] = []

    class Listener:
        @hookimpl
        def on_alert(self, alert: Any) -> None:
            heard.append((alert.kind, alert.symbol, alert.detail, threading.get_ident()))

    class Raiser:
        @hookimpl
        def on_startup(self, bot: Any) -> None:
            bot.alert("raiser_direct", "said on the engine's thread", symbol="ABCD", n=1)
            thread = threading.Thread(target=bot.alert, args=("raiser_thread", "said elsewhere"))
            thread.start()
            thread.join()

    result = run_script(bracket(), [Listener(), Raiser()])
    engine_thread = threading.get_ident()
    assert [(k, s, d) for k, s, d, _ in heard] == [
        ("raiser_direct", "ABCD", {"n": 1}),
        ("raiser_thread", None, {}),
    ]
    assert {t for *_, t in heard} == {engine_thread}  # handed over, not called on the other thread
    assert [a.kind for a in result.engine.alerts] == ["raiser_direct", "raiser_thread"]


def test_hook_on_kill_fires_once_with_the_open_trades_before_their_closes() -> None:
    calls: list[tuple[str, Any]] = []

    class Book:
        @hookimpl
        def on_kill(self, trades: Any, reason: str) -> None:
            calls.append(("kill", (reason, [(t.symbol, t.remaining, t.is_open) for t in trades])))

        @hookimpl
        def on_position_closed(self, trade: Any, reason: str, price: float) -> None:
            calls.append(("closed", (trade.symbol, reason, price)))

    script = (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", qty=100, tp1=2.20, tp2=2.40, stop=1.90)
        .quote("ABCD", ask=2.21, bid=2.20)  # TP1: 50 left
        .quote("EFGH", ask=5.00)
        .open("EFGH", qty=10, tp1=5.5, tp2=6.0, stop=4.8)
        .quote("EFGH", ask=5.10, bid=5.05)
        .kill()
        .kill()  # nothing open: still once more, the broker may hold what the bot does not know
    )
    result = run_script(script, [Book()])
    assert calls == [
        ("kill", ("kill_switch", [("ABCD", 50, True), ("EFGH", 10, True)])),
        ("closed", ("ABCD", "kill", 2.20)),
        ("closed", ("EFGH", "kill", 5.05)),
        ("kill", ("kill_switch", [])),
    ]
    assert [(leg.symbol, leg.reason, leg.exit_price) for leg in result.legs] == [
        ("ABCD", "tp1", 2.21),
        ("ABCD", "kill", 2.20),
        ("EFGH", "kill", 5.05),
    ]


def test_hook_register_sources_offers_a_source_that_serve_can_run() -> None:
    from momobot_core.sources import SourceStatus, Watchlist, collect_sources

    class Ticks:
        name = "ticks"

        def __init__(self, bot: Any) -> None:
            self.sent = 0

        async def run(self, bot: Any, watchlist: Watchlist) -> None:
            from datetime import UTC, datetime

            from momobot_core.models import Quote

            for symbol in watchlist:
                bot.apply(Quote(symbol, datetime.now(UTC), 1.99, 2.00))
                self.sent += 1

        def status(self) -> SourceStatus:
            return SourceStatus(
                connected=True, symbols=1, last_message_age_s=0.0, messages=self.sent, errors=0
            )

    class Offers:
        @hookimpl
        def register_sources(self, register: Any) -> None:
            register("ticks", Ticks)

    hooks = Hooks()
    hooks.register(Offers(), name="offers")
    found = collect_sources(hooks)
    assert list(found) == ["ticks"] and found["ticks"][0] == "offers"
    from momobot_core.engine import Engine

    engine = Engine(hooks=hooks, mode="live")
    source = found["ticks"][1](engine)
    import asyncio

    asyncio.run(source.run(engine, Watchlist(["abcd"])))
    assert engine.last_quotes["ABCD"].ask == 2.00 and source.status().messages == 1
    hooks.register(Offers(), name="again")
    with pytest.raises(ConfigError, match="source 'ticks' is offered by both"):
        collect_sources(hooks)


def test_hook_register_commands_adds_a_subcommand() -> None:
    class WithCommand:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command()
            def hello() -> None:
                """Say hello."""
                click.echo("hello from a plugin")

    hooks = Hooks()
    hooks.register(WithCommand(), name="with-command")
    result = CliRunner().invoke(build_cli(hooks), ["hello"])
    assert result.exit_code == 0 and result.output == "hello from a plugin\n"


def test_kit_lists_refused_actions_and_runs_without_plugins() -> None:
    result = run_script(Script().open("ZZZZ", qty=1, tp1=2, tp2=3, stop=1).quote("ZZZZ", ask=1.5))
    assert result.refused == ["ZZZZ: unknown symbol: no quote yet, so there is no ask to buy at"]
    assert result.trades == [] and result.counters.quotes == 1


def test_kit_steps_cannot_go_back_in_time() -> None:
    with pytest.raises(ValueError, match="back in time"):
        Script().quote("A", ask=1, at=5).quote("A", ask=1, at=4)


def test_hook_register_strategies_offers_a_strategy_an_arm_trades() -> None:
    from datetime import UTC, datetime, timedelta

    from momobot_core.config import ConfigError
    from momobot_core.engine import Engine
    from momobot_core.models import Arm, Quote
    from momobot_core.strategies import Signal, collect_strategies

    class Tens:
        """Enter on the first price at a round ten cents."""

        def __init__(self, spec: Any) -> None:
            self.done = False

        def on_candle(self, candle: Any) -> None:
            return None

        def on_price(self, ts: Any, price: float) -> Signal | None:
            return None if self.done or round(price * 100) % 10 else Signal(reason="a round price")

        def entered(self) -> None:
            self.done = True

        def state(self) -> dict[str, Any]:
            return {"done": self.done}

        def restore(self, state: Any) -> None:
            self.done = state["done"]

    class Offers:
        @hookimpl
        def register_strategies(self, register: Any) -> None:
            register("tens", Tens)

    hooks = Hooks()
    hooks.load_builtins()
    hooks.register(Offers(), name="offers")
    found = collect_strategies(hooks)
    assert sorted(found) == ["level", "pullback", "signal", "tens"] and found["tens"][0] == "offers"
    engine = Engine(hooks=hooks)
    engine.start()
    t0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    engine.apply(Arm("ABCD", "tens", "1m", t0))
    engine.apply(Quote("ABCD", t0, 2.04, 2.05, 2.05))
    engine.apply(Quote("ABCD", t0 + timedelta(seconds=1), 2.09, 2.10, 2.10))
    trade = engine.open_trades["ABCD"]
    assert (trade.entry_price, trade.strategy, trade.tp1) == (2.10, "tens", 2.2)
    hooks.register(Offers(), name="again")
    with pytest.raises(ConfigError, match="offered by both"):
        collect_strategies(hooks)
