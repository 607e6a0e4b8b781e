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
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

import attrs
import pluggy

from momobot_core import hookspecs
from momobot_core.config import ENTRY_POINT_GROUP, ConfigError

log = logging.getLogger("momobot.plugins")

DISABLE_ENV = "MOMOBOT_DISABLE_PLUGINS"
BUILTIN_PLUGINS = ("momobot_core.default_plugins.eventlog", "momobot_core.default_plugins.strategies")
#: How long one plugin's on_shutdown may take before the process goes on without it.
SHUTDOWN_TIMEOUT = 5.0
#: An event hook call slower than this is logged with the plugin's name.
SLOW_HOOK_S = 0.005
#: The hooks that run on the trading path (timed, and held to "must not block").
EVENT_HOOKS = frozenset(
    {"on_order_submitted", "on_target_hit", "on_position_closed", "on_alert", "on_kill", "on_fill"}
)


class PluginStartError(ConfigError):
    """A plugin raised something other than ConfigError in ``on_startup`` (exit 2, named)."""


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
        self.slow_hook_s = SLOW_HOOK_S
        #: Slow event-hook calls per plugin (see :meth:`notify`).
        self.slow_calls: dict[str, int] = {}
        self._not_started: set[str] = set()

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
                log.error("plugin %r could not be registered and is skipped: %s", ep.name, _short_error(exc))
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

    def implementations(self, hook_name: str) -> list[tuple[str, Callable[..., Any], tuple[str, ...]]]:
        """``(plugin name, function, argument names)`` of every implementation, in calling order."""
        return list(self._implementations(hook_name))

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook; one raising never stops the rest.

        Any exception is isolated, ``SystemExit`` and ``KeyboardInterrupt``
        raised by a plugin included: a plugin must not be able to stop
        trading or leave an event half-announced. Each call is timed; one
        slower than :attr:`slow_hook_s` is logged with the plugin's name
        (hooks run on the trading path and must not block).
        """
        for plugin_name, function, argnames in self._implementations(hook_name):
            start = perf_counter()
            try:
                function(*[kwargs[arg] for arg in argnames])
            except BaseException as exc:
                self._isolated(plugin_name, hook_name, exc)
            elapsed = perf_counter() - start
            if elapsed > self.slow_hook_s and hook_name in EVENT_HOOKS:
                self._slow(plugin_name, hook_name, elapsed)

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation and return what each returned (None left out); isolated
        like :meth:`notify`, for hooks that answer (``dashboard_panels``)."""
        results = []
        for plugin_name, function, argnames in self._implementations(hook_name):
            try:
                result = function(*[kwargs[arg] for arg in argnames])
            except BaseException as exc:
                self._isolated(plugin_name, hook_name, exc)
                continue
            if result is not None:
                results.append(result)
        return results

    def _isolated(self, plugin_name: str, hook_name: str, exc: BaseException) -> None:
        self.errors += 1
        log.error(
            "plugin %r raised in %s; the other plugins and trading go on",
            plugin_name,
            hook_name,
            exc_info=exc,
        )
        if self.on_error is not None and isinstance(exc, Exception):
            self.on_error(plugin_name, hook_name, exc)

    def _slow(self, plugin_name: str, hook_name: str, elapsed: float) -> None:
        count = self.slow_calls[plugin_name] = self.slow_calls.get(plugin_name, 0) + 1
        if count == 1 or count % 100 == 0:
            log.warning(
                "plugin %r took %.1f ms in %s (slow call #%d): event hooks run on the trading"
                " path and must not block; hand I/O to a thread or a queue",
                plugin_name,
                elapsed * 1e3,
                hook_name,
                count,
            )

    # -- start-up and shutdown ---------------------------------------------------

    def start(self, bot: Any) -> None:
        """Call ``on_startup`` plugin by plugin.

        A plugin's ConfigError stops start-up with its own message; any other
        exception stops it with the plugin's name (exit 2, never a traceback).
        Either way the plugins that did start are shut down first.
        """
        self._not_started = {name for name, _, _ in self._implementations("on_startup")}
        for plugin_name, function, argnames in self._implementations("on_startup"):
            self._not_started.discard(plugin_name)
            try:
                function(*[{"bot": bot}[arg] for arg in argnames])
            except ConfigError:
                self.shutdown(bot)
                raise
            except Exception as exc:
                log.debug("plugin %r failed in on_startup", plugin_name, exc_info=True)
                self.shutdown(bot)
                raise PluginStartError(
                    f"plugin {plugin_name!r} failed to start: {_short_error(exc)}"
                ) from None

    def shutdown(
        self, bot: Any, timeout: float = SHUTDOWN_TIMEOUT, between: Callable[[], None] | None = None
    ) -> None:
        """Call ``on_shutdown`` of every plugin whose start-up ran, each within ``timeout`` seconds.

        A plugin still busy after its time is named in the log and left behind
        (its thread is a daemon): the process must be able to exit. ``between`` runs after
        each plugin's shutdown (the engine publishes the alerts it raised, so a plugin shut
        down later, such as notify, still hears of them).
        """
        for plugin_name, function, argnames in self._implementations("on_shutdown"):
            if plugin_name in self._not_started:
                continue
            errors: list[BaseException] = []

            def call(
                function: Callable[..., Any] = function,
                argnames: tuple[str, ...] = argnames,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    function(*[{"bot": bot}[arg] for arg in argnames])
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=call, name=f"shutdown-{plugin_name}", daemon=True)
            thread.start()
            thread.join(timeout)
            if thread.is_alive():
                log.error(
                    "plugin %r did not finish on_shutdown within %g s; going on without it",
                    plugin_name,
                    timeout,
                )
            elif errors:
                self._isolated(plugin_name, "on_shutdown", errors[0])
            if between is not None:
                try:
                    between()
                except Exception:
                    log.exception("publishing the alerts raised by %r's shutdown failed", plugin_name)
        self._not_started = {name for name, _, _ in self._implementations("on_shutdown")}


def load_hooks(*, entry_points: bool = True, builtins: bool = True) -> Hooks:
    hooks = Hooks()
    if builtins:
        hooks.load_builtins()
    if entry_points:
        hooks.load_entry_points()
    return hooks
