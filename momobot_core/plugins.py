"""Finding, loading, listing and calling plugins.

Plugins are pluggy plugins registered under the ``momobot`` entry-point group:
installing a distribution that declares one enables it, uninstalling it
disables it, and ``MOMOBOT_DISABLE_PLUGINS=name1,name2`` blocks entry points by
name before they are imported. A plugin that fails to import is reported and
skipped. The core's own plugins are registered the same way as external ones,
so ``momobot plugins --all`` can list them side by side.

Event hooks are called through :meth:`Hooks.notify`, not through pluggy's own
hook caller: pluggy stops at the first exception, and here one plugin's bug
must never keep the others from hearing about a trade or stop the trading.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable
from typing import Any

import attrs
import pluggy

from momobot_core import hookspecs

log = logging.getLogger("momobot.plugins")

ENTRY_POINT_GROUP = "momobot"
DISABLE_ENV = "MOMOBOT_DISABLE_PLUGINS"
BUILTIN_PLUGINS = ("momobot_core.eventlog",)


@attrs.frozen
class LoadFailure:
    name: str
    error: str


def blocked_plugin_names() -> set[str]:
    value = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in value.split(",") if name.strip()}


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Hooks:
    """The plugin manager of one run, with an isolating caller for event hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("momobot")
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[LoadFailure] = []
        self.versions: dict[str, str | None] = {}
        self.builtin: set[str] = set()
        self.errors = 0
        #: Called as ``on_error(plugin_name, hook_name, exception)`` after an isolated failure
        #: is logged (the testing kit collects them here).
        self.on_error: Callable[[str, str, Exception], None] | None = None
        self._callers: dict[str, list[tuple[str, Callable[..., Any], tuple[str, ...]]]] = {}

    # -- loading -----------------------------------------------------------------

    def load_builtins(self) -> None:
        for module_name in BUILTIN_PLUGINS:
            module = importlib.import_module(module_name)
            self.register(module, name=module_name)
            self.builtin.add(module_name)
            self.versions[module_name] = None

    def load_entry_points(self) -> None:
        """Import and register every installed plugin not blocked by name."""
        blocked = blocked_plugin_names()
        for name in blocked:
            self.pm.set_blocked(name)
        seen: set[str] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or ep.name in seen:
                continue
            seen.add(ep.name)
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the bot down
                log.error("plugin %r failed to load and is skipped: %s", ep.name, _short_error(exc))
                self.failures.append(LoadFailure(ep.name, _short_error(exc)))
                continue
            try:
                self.register(plugin, name=ep.name)
            except Exception as exc:
                log.error("plugin %r could not be registered and is skipped: %s",
                          ep.name, _short_error(exc))
                self.failures.append(LoadFailure(ep.name, _short_error(exc)))
                continue
            self.versions[ep.name] = ep.dist.version if ep.dist is not None else None

    def register(self, plugin: object, name: str | None = None) -> str:
        registered = self.pm.register(plugin, name=name)
        self._callers.clear()
        assert registered is not None
        return registered

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._callers.clear()

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- listing -----------------------------------------------------------------

    def describe(self, include_builtin: bool = False) -> list[dict[str, Any]]:
        """``[{name, version, hooks}]`` for every registered plugin."""
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None or (name in self.builtin and not include_builtin):
                continue  # None: blocked by name
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            rows.append({"name": name, "version": self.versions.get(name), "hooks": hooks})
        rows.sort(key=lambda row: (row["name"] in self.builtin, row["name"]))
        return rows

    # -- calling -----------------------------------------------------------------

    def _implementations(self, hook_name: str) -> list[tuple[str, Callable[..., Any], tuple[str, ...]]]:
        callers = self._callers.get(hook_name)
        if callers is None:
            caller = getattr(self.pm.hook, hook_name)
            # pluggy calls the last registered first; keep its order
            callers = [
                (impl.plugin_name, impl.function, tuple(impl.argnames))
                for impl in reversed(caller.get_hookimpls())
                if not (impl.hookwrapper or impl.wrapper)
            ]
            self._callers[hook_name] = callers
        return callers

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook; one raising never stops the rest."""
        for plugin_name, function, argnames in self._implementations(hook_name):
            try:
                function(*[kwargs[arg] for arg in argnames])
            except Exception as exc:
                self.errors += 1
                log.exception("plugin %r raised in %s; the other plugins and trading go on",
                              plugin_name, hook_name)
                if self.on_error is not None:
                    self.on_error(plugin_name, hook_name, exc)

    def has_implementations(self, hook_name: str) -> bool:
        return bool(self._implementations(hook_name))


def load_hooks(*, entry_points: bool = True, builtins: bool = True) -> Hooks:
    hooks = Hooks()
    if builtins:
        hooks.load_builtins()
    if entry_points:
        hooks.load_entry_points()
    return hooks
