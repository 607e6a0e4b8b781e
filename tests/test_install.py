"""Installing the plugin enables it, uninstalling it disables it: a real pip in a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from collections.abc import Iterable
from pathlib import Path

import pytest

from hotkey_helpers import HotkeyTestServer

ROOT = Path(__file__).resolve().parent.parent
DEMO_SYMBOLS = {
    event["symbol"]
    for event in map(
        json.loads, (ROOT / "momobot_core" / "data" / "demo_session.jsonl").read_text().splitlines()
    )
    if event["type"] == "open"
}


def ordered(lines: Iterable[str]) -> set[tuple[str, str]]:
    """(side, symbol) of each NEWORDER line: what was ordered, whatever the number of lines."""
    return {(parts[2], parts[3]) for parts in (line.split() for line in lines)}


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with only momobot-core installed from this checkout."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip(env_dir, "install", "--quiet", str(ROOT))
    return env_dir


def code_block(docs: str, marker: str, language: str) -> str:
    """The first ``language`` code block after ``marker`` in a doc: what a reader copies."""
    import re

    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(docs, docs.index(marker))
    assert match is not None
    return match.group(1)


def install_docs_example(env_dir: Path, tmp_path: Path, doc: str, module: str) -> None:
    """pip install the example package a doc shows (its pyproject.toml, setup.cfg and module),
    copied from the doc as a reader would."""
    docs = (ROOT / "docs" / doc).read_text()
    project = tmp_path / module.replace("_", "-")
    project.mkdir()
    for name, language in (("pyproject.toml", "toml"), ("setup.cfg", "ini"), (f"{module}.py", "python")):
        (project / name).write_text(code_block(docs, f"`{name}`:", language))
    pip(env_dir, "install", "--quiet", str(project))


def pip(env_dir: Path, *args: str) -> None:
    result = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", *args, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def momobot(env_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MOMOBOT_", "PYTHON", "VIRTUAL_ENV"))}
    clean.update(env or {})
    return subprocess.run(
        [str(env_dir / "bin" / "momobot"), *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        check=False,
    )


def plugin_names(env_dir: Path) -> list[str]:
    result = momobot(env_dir, "plugins")
    assert result.returncode == 0, result.stderr
    return [row["name"] for row in json.loads(result.stdout)]


def test_pip_install_enables_the_plugin_and_uninstall_disables_it(fresh_env: Path) -> None:
    assert plugin_names(fresh_env) == []
    # Without the api extra, serve says what to install: one line, exit 2, no traceback.
    serve = momobot(fresh_env, "serve")
    assert serve.returncode == 2 and "Traceback" not in serve.stderr
    assert "momobot serve needs fastapi and uvicorn" in serve.stderr and "'./[api]'" in serve.stderr

    pip(fresh_env, "install", "--quiet", str(ROOT / "plugins" / "hotkey_ws"))
    assert plugin_names(fresh_env) == ["hotkey_ws"]
    assert momobot(fresh_env, "hotkey", "--help").returncode == 0
    with HotkeyTestServer() as server:
        env = {"MOMOBOT_HOTKEY_URL": server.url, "MOMOBOT_HOTKEY_REPLAY": "1"}
        result = momobot(fresh_env, "demo", env=env)
        assert result.returncode == 0, result.stderr
        assert len(server.wait_for(14)) == 14
        assert server.messages[0] == "buy_ask"

        pip(fresh_env, "uninstall", "--yes", "momobot-hotkey-ws")
        assert plugin_names(fresh_env) == []
        assert momobot(fresh_env, "hotkey", "--help").returncode == 2  # no such command
        before = momobot(fresh_env, "demo", env=env)
        assert before.returncode == 0, before.stderr
        assert "Realised P&L: +17.50" in before.stdout
    assert len(server.messages) == 14 and server.connections == 1  # nothing after the uninstall


def test_both_plugins_work_side_by_side_and_either_uninstalls_alone(fresh_env: Path, tmp_path: Path) -> None:
    pip(fresh_env, "install", "--quiet", str(ROOT / "plugins" / "hotkey_ws"), str(ROOT / "plugins" / "voice"))
    assert plugin_names(fresh_env) == ["hotkey_ws", "voice"]
    spoken = tmp_path / "spoken.txt"
    speech = tmp_path / "fake-tts"  # a speech engine that writes down what it is asked to say
    speech.write_text(f'#!/bin/sh\necho "$@" >> {spoken}\n')
    speech.chmod(0o755)

    def demo(server: HotkeyTestServer) -> list[str]:
        spoken.unlink(missing_ok=True)
        env = {
            "MOMOBOT_HOTKEY_URL": server.url,
            "MOMOBOT_HOTKEY_REPLAY": "1",
            "MOMOBOT_VOICE_COMMAND": str(speech),
        }
        result = momobot(fresh_env, "demo", env=env)
        assert result.returncode == 0, result.stderr
        return spoken.read_text().splitlines() if spoken.exists() else []

    with HotkeyTestServer() as server:
        said = demo(server)
        assert len(server.wait_for(14)) == 14
        assert len(said) == 10 and said[0] == "New trade taken for MNOP at 3.00"

    pip(fresh_env, "uninstall", "--yes", "momobot-voice")
    assert plugin_names(fresh_env) == ["hotkey_ws"]
    with HotkeyTestServer() as server:
        assert demo(server) == []
        assert len(server.wait_for(14)) == 14

    pip(fresh_env, "install", "--quiet", str(ROOT / "plugins" / "voice"))
    pip(fresh_env, "uninstall", "--yes", "momobot-hotkey-ws")
    assert plugin_names(fresh_env) == ["voice"]
    with HotkeyTestServer() as server:
        assert len(demo(server)) == 10
    assert server.connections == 0


def test_the_docs_example_plugin_installs_and_lists(fresh_env: Path, tmp_path: Path) -> None:
    install_docs_example(fresh_env, tmp_path, "plugins.md", "momobot_tradelog")
    rows = {row["name"]: row for row in json.loads(momobot(fresh_env, "plugins").stdout)}
    assert rows["tradelog"]["hooks"] == ["on_position_closed", "on_shutdown", "on_startup"]
    result = subprocess.run(
        [str(fresh_env / "bin" / "momobot"), "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "trades.csv").read_text().splitlines()) == 4
    pip(fresh_env, "uninstall", "--yes", "momobot-tradelog")


def test_das_runs_beside_hotkey_ws_or_instead_of_it(fresh_env: Path) -> None:
    from momobot_das.fake import FakeDas

    pip(fresh_env, "uninstall", "--yes", "momobot-voice")  # whatever the tests before left
    pip(fresh_env, "install", "--quiet", str(ROOT / "plugins" / "hotkey_ws"), str(ROOT / "plugins" / "das"))
    assert plugin_names(fresh_env) == ["das", "hotkey_ws"]
    assert momobot(fresh_env, "das", "--help").returncode == 0
    with FakeDas() as fake, HotkeyTestServer() as server:
        env = {
            "MOMOBOT_HOTKEY_URL": server.url,
            "MOMOBOT_HOTKEY_REPLAY": "1",
            "MOMOBOT_DAS_USER": fake.user,
            "MOMOBOT_DAS_ACCOUNT": fake.account,
            "MOMOBOT_DAS_ROUTE": "SMAT",
            "MOMOBOT_DAS_PORT": str(fake.port),
            "MOMOBOT_DAS_PASSWORD": fake.password,
            "MOMOBOT_DAS_REPLAY": "1",
        }
        # Each demo buys and sells every symbol of the sample session; how many sell lines an
        # exit takes depends on timing (re-pricing), so the demos are compared by what they
        # ordered, never by how many lines.
        every_trade = {(side, symbol) for symbol in DEMO_SYMBOLS for side in ("B", "S")}
        both = momobot(fresh_env, "demo", env=env)
        assert both.returncode == 0, both.stderr
        assert len(server.wait_for(14)) == 14
        assert fake.wait_for(lambda: ordered(fake.lines("NEWORDER")) == every_trade), fake.lines("NEWORDER")
        first_login = len(fake.lines("LOGIN"))

        pip(fresh_env, "uninstall", "--yes", "momobot-hotkey-ws")  # das instead of hotkey_ws
        assert plugin_names(fresh_env) == ["das"]
        alone = momobot(fresh_env, "demo", env=env)
        assert alone.returncode == 0, alone.stderr
        assert fake.wait_for(lambda: len(fake.lines("LOGIN")) > first_login)
        with fake._lock:
            second_login = [i for i, (_, line) in enumerate(fake.received) if line.startswith("LOGIN")][
                first_login
            ]

        def second_demo() -> set[tuple[str, str]]:
            return ordered(line for _, line in fake.received[second_login:] if line.startswith("NEWORDER"))

        assert fake.wait_for(lambda: second_demo() == every_trade), second_demo()
        assert len(server.messages) == 14  # nothing more reached the hotkey server

        pip(fresh_env, "uninstall", "--yes", "momobot-das")
        assert plugin_names(fresh_env) == []
        assert momobot(fresh_env, "das", "--help").returncode == 2


def test_a_pip_installed_strategy_trades_a_recorded_day_and_goes_with_uninstall(
    fresh_env: Path, tmp_path: Path
) -> None:
    install_docs_example(fresh_env, tmp_path, "strategies.md", "momobot_orb")
    listed = momobot(fresh_env, "strategies")
    assert listed.returncode == 0, listed.stderr
    assert {"name": "orb", "plugin": "orb"} in json.loads(listed.stdout)
    day = tmp_path / "orb.jsonl"
    events = [
        {"type": "arm", "ts": "2026-11-24T09:30:00", "symbol": "ABCD", "strategy": "orb", "timeframe": "1m"},
        *(
            {
                "type": "quote",
                "ts": f"2026-11-24T09:{m}",
                "symbol": "ABCD",
                "bid": p - 0.01,
                "ask": p,
                "last": p,
            }
            for m, p in (("30:00", 2.00), ("30:40", 2.10), ("30:50", 1.95), ("31:10", 2.05), ("31:20", 2.11))
        ),
    ]
    day.write_text("".join(json.dumps(event) + "\n" for event in events))
    replayed = momobot(fresh_env, "replay", str(day), "--db", str(tmp_path / "orb.db"))
    assert replayed.returncode == 0, replayed.stderr
    assert "ABCD" in replayed.stdout and "1 opened" in replayed.stdout  # above the range's 2.10
    pip(fresh_env, "uninstall", "--yes", "momobot-orb")
    gone = momobot(fresh_env, "replay", str(day), "--db", str(tmp_path / "gone.db"))
    assert gone.returncode == 0 and "0 opened" in gone.stdout
    assert "no strategy 'orb' (installed: level, pullback, signal)" in gone.stderr


def test_pip_install_notify_sends_the_demos_trades_and_uninstall_stops_it(fresh_env: Path) -> None:
    from notify_helpers import Webhook

    pip(fresh_env, "install", "--quiet", str(ROOT / "plugins" / "notify"))
    assert "notify" in plugin_names(fresh_env)
    assert momobot(fresh_env, "notify", "--help").returncode == 0
    with Webhook() as hook:
        env = {
            "MOMOBOT_NOTIFY_URLS": hook.url(),
            "MOMOBOT_NOTIFY_REPLAY": "1",
            "MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,das",
        }
        demo = momobot(fresh_env, "demo", env=env)
        assert demo.returncode == 0, demo.stderr
        text = "\n".join(hook.bodies())  # shutdown flushes what waited before the process ends
        assert "Closed " in text and "Summary: Day " in text and "realised P&L +$17.50" in text
        pip(fresh_env, "uninstall", "--yes", "momobot-notify")
        assert "notify" not in plugin_names(fresh_env)
        assert momobot(fresh_env, "notify", "--help").returncode == 2
        sent = len(hook.received)
        again = momobot(fresh_env, "demo", env=env)
        assert again.returncode == 0, again.stderr
        assert len(hook.received) == sent  # nothing after the uninstall
