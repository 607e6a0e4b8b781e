"""Plugins: loading by entry point, blocking by name, listing, and isolation of failures.

The plugins here are real: installed distributions (a ``dist-info`` folder on
the path, which is what ``pip install`` leaves) found through the ``momobot``
entry-point group by a real ``momobot`` process.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from momobot_core import hookimpl
from momobot_core.config import load_config
from momobot_core.session import demo_session_path, run_recorded

from conftest import Recorder, install_fake_dist, make_hooks, momobot

GOOD = """
    from momobot_core import hookimpl

    @hookimpl
    def on_position_closed(trade, reason, price):
        print(f"GOOD heard {trade.symbol} closed: {reason}", flush=True)
"""

BROKEN = """
    raise ImportError("this plugin's dependency is missing")
"""

BAD_CONFIG = """
    from momobot_core import ConfigError, hookimpl

    @hookimpl
    def on_startup(bot):
        raise ConfigError("[strict] level = 'x': must be a number")
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "momobot-good", "momobot_good", GOOD, "good")
    install_fake_dist(site, "momobot-broken", "momobot_broken", BROKEN, "broken")
    return site


def test_plugins_lists_installed_plugins_with_version_and_hooks(site: Path) -> None:
    result = momobot("plugins", site=site)
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["good"]["version"] == "1.2.3"
    assert rows["good"]["hooks"] == ["on_position_closed"]
    assert "momobot_core.default_plugins.eventlog" not in rows


def test_plugins_all_adds_the_core_builtins(site: Path) -> None:
    rows = {row["name"]: row for row in json.loads(momobot("plugins", "--all", site=site).stdout)}
    assert "on_order_submitted" in rows["momobot_core.default_plugins.eventlog"]["hooks"]


def test_plugin_that_fails_to_import_is_reported_by_name_and_skipped(site: Path) -> None:
    result = momobot("demo", site=site)
    assert result.returncode == 0, result.stderr
    assert "plugin 'broken' failed to load" in result.stderr
    assert "dependency is missing" in result.stderr
    assert "GOOD heard ABCD closed: tp2" in result.stdout
    rows = {row["name"]: row for row in json.loads(momobot("plugins", site=site).stdout)}
    assert "dependency is missing" in rows["broken"]["error"]


def test_disable_plugins_blocks_entry_points_by_name(site: Path) -> None:
    result = momobot("demo", env={"MOMOBOT_DISABLE_PLUGINS": "broken, good"}, site=site)
    assert result.returncode == 0
    assert "broken" not in result.stderr
    assert "GOOD heard" not in result.stdout
    names = [
        row["name"]
        for row in json.loads(momobot("plugins", env={"MOMOBOT_DISABLE_PLUGINS": "good"}, site=site).stdout)
    ]
    assert "good" not in names and "broken" in names


def test_plugin_config_error_at_startup_stops_with_exit_2(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dist(site, "momobot-strict", "momobot_strict", BAD_CONFIG, "strict")
    result = momobot("demo", site=site)
    assert result.returncode == 2
    assert "[strict] level = 'x': must be a number" in result.stderr
    assert "Realised P&L" not in result.stdout


class Boom:
    """A plugin with a bug in every event hook."""

    @hookimpl
    def on_order_submitted(self, order: Any, trade: Any) -> None:
        raise RuntimeError("boom in order")

    @hookimpl
    def on_target_hit(self, trade: Any, target: Any, quote: Any) -> None:
        raise RuntimeError("boom in target")

    @hookimpl
    def on_position_closed(self, trade: Any, reason: str, price: float) -> None:
        raise RuntimeError("boom in close")

    @hookimpl
    def on_shutdown(self, bot: Any) -> None:
        raise RuntimeError("boom in shutdown")


def test_plugin_raising_in_event_hooks_never_stops_other_plugins_or_trading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Registered on both sides of the recorder, so it runs both before and after it.
    before, after, recorder = Boom(), Boom(), Recorder()
    hooks = make_hooks(before, recorder, after)
    clean = run_recorded([demo_session_path()], hooks=make_hooks(Recorder()), config=load_config(None))
    with caplog.at_level(logging.ERROR, logger="momobot.plugins"):
        result = run_recorded([demo_session_path()], hooks=hooks, config=load_config(None))
    assert recorder.names()[-1] == "on_shutdown"
    assert recorder.events().count("closed tp2") == 1
    assert [(leg.symbol, leg.reason, leg.qty) for leg in result.legs] == [
        (leg.symbol, leg.reason, leg.qty) for leg in clean.legs
    ]
    assert result.plugin_errors == hooks.errors > 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("'test-plugin-0' raised in on_target_hit" in m for m in messages)
    assert any("'test-plugin-2' raised in on_shutdown" in m for m in messages)


def test_event_hooks_receive_only_the_arguments_they_name() -> None:
    heard: list[str] = []

    class Partial:
        @hookimpl
        def on_position_closed(self, reason: str) -> None:
            heard.append(reason)

    run_recorded([demo_session_path()], hooks=make_hooks(Partial()), config=load_config(None))
    assert sorted(heard) == ["manual", "stop", "stop", "tp2"]
