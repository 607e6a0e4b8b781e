"""Docs stay true: every hook documented under its exact signature and tested; the example runs."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

from momobot_core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DOCS = (ROOT / "docs" / "plugins.md").read_text()


def hook_signatures() -> dict[str, str]:
    result = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, "momobot_spec"):
            params = ", ".join(inspect.signature(function).parameters)
            result[name] = f"{name}({params})"
    return result


def test_there_are_hooks_to_check() -> None:
    assert set(hook_signatures()) == {
        "on_startup",
        "on_order_submitted",
        "on_target_hit",
        "on_position_closed",
        "on_shutdown",
        "register_commands",
        "on_alert",
        "on_kill",
        "on_fill",
        "register_sources",
        "register_strategies",
        "register_routes",
        "dashboard_panels",
    }


@pytest.mark.parametrize("name", sorted(hook_signatures()))
def test_plugin_hooks_are_documented(name: str) -> None:
    assert f"### `{hook_signatures()[name]}`" in PLUGIN_DOCS


def test_no_documented_hook_is_missing_from_the_specs() -> None:
    documented = set(re.findall(r"^### `(\w+)\(", PLUGIN_DOCS, flags=re.MULTILINE))
    assert documented == set(hook_signatures())


@pytest.mark.parametrize("name", sorted(hook_signatures()))
def test_plugin_hooks_have_tests(name: str) -> None:
    tests = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    assert f"def test_hook_{name}" in tests


def code_block_after(marker: str, language: str) -> str:
    start = PLUGIN_DOCS.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(PLUGIN_DOCS, start)
    assert match is not None
    return match.group(1)


def test_the_minimal_plugin_in_the_docs_works_with_its_own_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "momobot_tradelog.py").write_text(code_block_after("`momobot_tradelog.py`:", "python"))
    test_source = code_block_after("## Testing your plugin", "python")
    (tmp_path / "doc_example_test.py").write_text(test_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("momobot_tradelog", None)
    module = importlib.import_module("doc_example_test")
    try:
        module.test_closed_trades_are_written(tmp_path)
    finally:
        sys.modules.pop("doc_example_test", None)
        sys.modules.pop("momobot_tradelog", None)


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    command = (
        "python3 -m venv .venv && .venv/bin/python -m pip install --quiet tox && .venv/bin/python -m tox run"
    )
    assert command in readme
    assert command in (ROOT / ".ci" / "run").read_text()
