"""Installing the plugin enables it, uninstalling it disables it: a real pip in a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

from hotkey_helpers import HotkeyTestServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with only momobot-core installed from this checkout."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip(env_dir, "install", "--quiet", str(ROOT))
    return env_dir


def pip(env_dir: Path, *args: str) -> None:
    result = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", *args,
                             "--disable-pip-version-check"], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr


def momobot(env_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("MOMOBOT_", "PYTHON", "VIRTUAL_ENV"))}
    clean.update(env or {})
    return subprocess.run([str(env_dir / "bin" / "momobot"), *args], capture_output=True, text=True,
                          env=clean, timeout=120, check=False)


def plugin_names(env_dir: Path) -> list[str]:
    result = momobot(env_dir, "plugins")
    assert result.returncode == 0, result.stderr
    return [row["name"] for row in json.loads(result.stdout)]


def test_pip_install_enables_the_plugin_and_uninstall_disables_it(fresh_env: Path) -> None:
    assert plugin_names(fresh_env) == []

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
        assert momobot(fresh_env, "hotkey", "--help").returncode == 2   # no such command
        before = momobot(fresh_env, "demo", env=env)
        assert before.returncode == 0, before.stderr
        assert "Realised P&L: +17.50" in before.stdout
    assert len(server.messages) == 14 and server.connections == 1  # nothing after the uninstall

