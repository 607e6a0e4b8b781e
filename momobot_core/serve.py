"""``momobot serve``: the engine, the journal and the HTTP API on one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from momobot_core.config import Config, ConfigError, CoreSettings
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Quote
from momobot_core.session import apply, refuse_older_than_journal
from momobot_core.sources import SourceError, Watchlist, collect_sources
from momobot_core.sources.recorded import Event, paced, read_events
from momobot_core.web.guard import SESSION_HOURS

if TYPE_CHECKING:
    from momobot_core.plugins import Hooks

log = logging.getLogger("momobot.serve")


def _session_hours(section: Any) -> float:
    hours: float = section.get_float("session_hours", SESSION_HOURS, strictly_positive=True)
    if hours > 168:
        raise ConfigError(
            f"[api] session_hours = {hours:g}{section.source('session_hours')}: must be at most 168"
        )
    return hours


@attrs.frozen
class ApiSettings:
    """The ``[api]`` table; ``MOMOBOT_API_<KEY>`` overrides each key."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = attrs.field(default=None, repr=False)
    #: Host names the API answers to (None: loopback names and the bound address).
    allowed_hosts: tuple[str, ...] | None = None
    max_quote_skew_s: float = 2.0
    #: How long a dashboard sign-in lasts.
    session_hours: float = SESSION_HOURS
    #: The shared secret of ``POST /signals`` (None: signals are off).
    signal_secret: str | None = attrs.field(default=None, repr=False)
    #: An outside signal older than this (its ``time``) is refused.
    signal_max_age_s: float = 60.0

    @classmethod
    def from_config(cls, config: Config) -> ApiSettings:
        section = config.section("api", env_prefix="MOMOBOT_API_")
        section.check_known(
            {
                "host",
                "port",
                "token",
                "allowed_hosts",
                "max_quote_skew_s",
                "session_hours",
                "signal_secret",
                "signal_max_age_s",
            }
        )
        host = section.get_str("host", "127.0.0.1")
        port = section.get_int("port", 8000, minimum=0)
        if port > 65535:
            raise ConfigError(f"[api] port = {port}{section.source('port')}: must be at most 65535")
        token = section.get_str("token", None) or None
        assert host is not None
        allowed = section.get_str_list("allowed_hosts", []) if section.has("allowed_hosts") else None
        return cls(
            host=host,
            port=port,
            token=token,
            allowed_hosts=tuple(allowed) if allowed is not None else None,
            max_quote_skew_s=section.get_float("max_quote_skew_s", 2.0, strictly_positive=True),
            session_hours=_session_hours(section),
            signal_secret=section.get_str("signal_secret", None) or None,
            signal_max_age_s=section.get_float("signal_max_age_s", 60.0, strictly_positive=True),
        )

    def hosts_for(self, host: str) -> tuple[str, ...]:
        """The Host names allowed when serving on ``host``."""
        if self.allowed_hosts is not None:
            return (*self.allowed_hosts, host)
        if host in WILDCARDS:
            raise ConfigError(
                f"serving on {host} answers to any name: list the names you reach the"
                " bot by in [api] allowed_hosts (MOMOBOT_API_ALLOWED_HOSTS), so a web"
                " page cannot reach the API through DNS rebinding"
            )
        return ("127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host)


WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def check_binding(host: str, token: str | None) -> None:
    from momobot_core.net import is_loopback

    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve the API on {host} without a token: anyone who can"
            " reach it could trade your account (set MOMOBOT_API_TOKEN, or bind"
            " 127.0.0.1)"
        )


async def pace(engine: Engine, events: Sequence[Event], speed: float) -> None:
    """Feed recorded events at their recorded pace, ``speed`` times faster."""
    async for event in paced(events, speed):
        if type(event) is Quote:
            engine.apply(event)
        else:
            apply(engine, event)  # type: ignore[arg-type]
    log.info("paced replay finished: %d events; the API stays up", len(events))


def start_recording(engine: Engine, directory: str | None) -> Any:
    """``[momobot] record``: every quote and action into day files (the backtest extra)."""
    if not directory:
        return None
    from momobot_core.backtest import require_extra

    require_extra()
    from momobot_core.backtest.dayfile import attach

    return attach(engine, directory)


def stop_recording(engine: Engine, recorder: Any) -> None:
    from momobot_core.backtest.dayfile import detach

    detach(engine, recorder)


class _Stopped(Exception):
    """SIGTERM, after uvicorn's graceful shutdown."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped


def listen(host: str, port: int) -> socket.socket:
    """Bind the API's socket first, so a busy port is one clear error before anything starts."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port}: must be from 0 to 65535")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


#: How often serve's loop does the engine's upkeep (alerts from other threads, the side file).
TICK_S = 0.5


async def _upkeep(engine: Engine) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        try:
            engine.tick()
        except Exception:  # the upkeep must outlive any one failure: it retries the side file
            log.exception("engine upkeep failed; trying again in %g s", TICK_S)


#: How long a live source that failed unexpectedly rests before it is started again.
SOURCE_RESTART_S = 1.0


async def _run_source(engine: Engine, server: Any, fatal: list[BaseException]) -> None:
    """Run the live source for the server's life: it reconnects by itself; if it still ends, restart it.

    A SourceError (keys refused before the first connection, a delayed feed not
    allowed) stops the server: exit 2 with its message. Anything else is an
    alert and a restart: a bot with open positions never exits on its own.
    """
    source, watchlist = engine.source, engine.watchlist
    assert source is not None and watchlist is not None
    while True:
        try:
            await source.run(engine, watchlist)
            log.warning("source %s stopped by itself; starting it again", source.name)
        except asyncio.CancelledError:
            raise
        except SourceError as exc:
            fatal.append(exc)
            server.should_exit = True
            return
        except Exception as exc:
            log.exception("source %s failed", source.name)
            engine.alert(
                "stale_quotes",
                f"the {source.name} source failed ({type(exc).__name__}: {exc});"
                f" starting it again in {SOURCE_RESTART_S:g} s",
            )
        await asyncio.sleep(SOURCE_RESTART_S)


def serve(
    *,
    hooks: Hooks | None,
    config: Config,
    host: str,
    port: int,
    db: str | Path,
    token: str | None,
    replay: Sequence[str] = (),
    speed: float = 1.0,
    settings: ApiSettings | None = None,
    source: str | None = None,
) -> None:
    """Run until SIGINT or SIGTERM; then finish requests, shut plugins down, close the journal."""
    import uvicorn

    from momobot_core.web.api import build_app

    settings = settings or ApiSettings()
    check_binding(host, token)
    allowed_hosts = settings.hosts_for(host)
    if speed <= 0:
        raise ConfigError(f"--speed {speed}: must be above 0")
    core = CoreSettings.from_config(config)
    source_name = source or core.source
    if source_name and replay:
        raise ConfigError("--replay and a live source cannot run together: choose one")
    factories = collect_sources(hooks)
    if source_name and source_name not in factories:
        known = ", ".join(sorted(factories)) or "none: install a source plugin such as momobot-alpaca"
        raise ConfigError(f"source {source_name!r} is not installed (installed sources: {known})")
    events = list(read_events(replay, core.tz)) if replay else []  # bad input stops here, before serving
    sock = listen(host, port)
    port = sock.getsockname()[1]
    try:
        journal = Journal(db, pending_wait_s=core.journal_wait_s)
    except BaseException:
        sock.close()
        raise
    journal.checkpoint_in_background()  # never inside a fold on the engine's loop
    try:
        if events and not journal.in_memory:
            refuse_older_than_journal(events[0].ts, journal, replay)
        # A paced recording is a replay, not live trading: plugins see mode "replay".
        engine = Engine(config=config, hooks=hooks, journal=journal, mode="replay" if replay else "live")
        recorder = None
        try:
            engine.start()  # inside: plugins that did start are shut down if another fails
            recorder = start_recording(engine, core.record)
            if source_name:
                engine.source = factories[source_name][1](engine)  # ConfigError: bad settings, exit 2
                armed = [arm["symbol"] for arm in engine.arms]
                engine.watchlist = Watchlist([*core.watchlist, *engine.open_trades, *armed])
            app = build_app(
                engine,
                journal,
                token,
                allowed_hosts=allowed_hosts,
                max_quote_skew_s=settings.max_quote_skew_s,
                session_hours=settings.session_hours,
                signal_secret=settings.signal_secret,
                signal_max_age_s=settings.signal_max_age_s,
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=10,
                    # The client's address is the socket's: a local program must not pick the
                    # address the sign-in lockout counts by (X-Forwarded-For).
                    proxy_headers=False,
                )
            )

            fatal: list[BaseException] = []

            async def main() -> None:
                engine.loop = asyncio.get_running_loop()
                pacer = asyncio.create_task(pace(engine, events, speed)) if events else None
                upkeep = asyncio.create_task(_upkeep(engine))
                feed = asyncio.create_task(_run_source(engine, server, fatal)) if engine.source else None
                try:
                    await server.serve(sockets=[sock])
                finally:
                    for task in (upkeep, pacer, feed):
                        if task is not None:
                            task.cancel()
                    if feed is not None:
                        await asyncio.gather(feed, return_exceptions=True)
                    engine.loop = None

            log.info(
                "API on http://%s:%d (%s mode, journal %s%s)",
                host,
                port,
                engine.mode,
                db,
                ", token required for changes" if token else "",
            )
            # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again;
            # turn that into an exception so the plugins' shutdown and the journal close still run.
            previous = signal.signal(signal.SIGTERM, _raise_stopped)
            try:
                asyncio.run(main())
            except (KeyboardInterrupt, _Stopped):
                log.info("stopped by signal: requests finished, shutting plugins down")
            finally:
                signal.signal(signal.SIGTERM, previous)
            if fatal:
                raise fatal[0]  # the source could not start (bad keys): exit 2 with its message
        finally:
            if recorder is not None:
                stop_recording(engine, recorder)
            engine.shutdown()
    finally:
        sock.close()
        journal.close()
