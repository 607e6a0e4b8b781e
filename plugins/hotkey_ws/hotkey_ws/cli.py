"""``momobot hotkey check|send|serve|demo``: added to the momobot CLI through ``register_commands``."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import click

from hotkey_ws.config import KNOWN_COMMANDS, HotkeyConfig, load_hotkey_config
from hotkey_ws.plugin import HotkeyPlugin
from hotkey_ws.server import HotkeyServer, KeyPresser, ServerThread, load_keymap
from momobot_core.config import ConfigError, InputError, load_config
from momobot_core.plugins import Hooks
from momobot_core.session import demo_session_path, run_recorded

log = logging.getLogger("momobot.hotkey")


def _fail(message: str) -> None:
    click.echo(f"momobot: error: {message}", err=True)
    sys.exit(2)


def _config(config_path: str | None, url: str | None) -> HotkeyConfig:
    try:
        config = load_hotkey_config(load_config(config_path))
        return config.with_urls(url) if url else config
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable


config_option = click.option(
    "--config",
    "config_path",
    metavar="PATH",
    default=None,
    help="TOML configuration file (default: $MOMOBOT_CONFIG).",
)
url_option = click.option(
    "--url", default=None, help="Hotkey server URL (default: [hotkey_ws] url, else ws://127.0.0.1:8765)."
)


@click.group()
def hotkey() -> None:
    """Hotkey commands over WebSocket: check the link, send by hand, serve, demo."""


def _connect(target: str, config: HotkeyConfig) -> Any:
    """A by-hand connection to one hotkey server (the CLI's, not the trading path's). Its close
    waits at most ``flush_timeout`` for the server's answer: a server that hangs never holds
    the command line past the verdict it already printed."""
    from websockets.sync.client import connect

    headers = {"Authorization": f"Bearer {config.token}"} if config.token else None
    return connect(
        target,
        open_timeout=config.open_timeout,
        close_timeout=config.flush_timeout,
        additional_headers=headers,
        ssl=config.ssl_context() if target.startswith("wss://") else None,
        compression=None,
        proxy=None,
        user_agent_header="momobot-hotkey-ws",
    )


@hotkey.command()
@url_option
@config_option
def check(url: str | None, config_path: str | None) -> None:
    """Connect to each hotkey server and measure a ping round trip. Sends no command."""

    config = _config(config_path, url)
    failed = False
    for target in config.urls:
        start = time.perf_counter()
        ws = None
        try:
            ws = _connect(target, config)
            connected = time.perf_counter()
            rtts = []
            for _ in range(5):
                sent = time.perf_counter()
                if not ws.ping().wait(config.ping_timeout):
                    raise TimeoutError(f"no answer to a ping within {config.ping_timeout:g} s")
                rtts.append(time.perf_counter() - sent)
            rtts.sort()
            click.echo(
                f"OK    {target}: connected in {(connected - start) * 1e3:.1f} ms, ping round"
                f" trip {rtts[len(rtts) // 2] * 1e3:.2f} ms (median of {len(rtts)})"
            )
        except Exception as exc:
            failed = True
            click.echo(f"FAIL  {target}: {_reason(exc)}")
        finally:
            _close(ws)  # after the verdict: at most flush_timeout
    sys.exit(1 if failed else 0)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: is the hotkey server running on that address?"
    return str(exc) or type(exc).__name__


def _close(ws: Any) -> None:
    if ws is not None:
        try:
            ws.close()
        except Exception as exc:
            log.debug("closing the hotkey connection: %s", exc)


@hotkey.command(epilog="The default commands: " + ", ".join(sorted(KNOWN_COMMANDS)) + ".")
@click.argument("actions", nargs=-1, required=True, metavar="ACTION...")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@url_option
@config_option
def send(actions: tuple[str, ...], yes: bool, url: str | None, config_path: str | None) -> None:
    """Send commands by hand, in order. They press real buttons: asks first unless --yes.

    With format = "json" the reference server answers each command (accepted,
    rejected, stale); a command it did not accept makes this exit 1.
    """
    config = _config(config_path, url)
    unknown = [
        a
        for a in actions
        if a not in KNOWN_COMMANDS and all(a not in cmds for cmds in config.commands.values())
    ]
    if unknown:
        click.echo(f"note: {', '.join(unknown)} is not one of the configured commands", err=True)
    if not yes:
        click.confirm(
            f"Send {', '.join(actions)} to {', '.join(config.urls)}? These press real"
            " buttons in your trading platform",
            abort=True,
        )
    failed = False
    for target in config.urls:
        failed = not _send_to(target, actions, config) or failed
    sys.exit(1 if failed else 0)


def _send_to(target: str, actions: tuple[str, ...], config: HotkeyConfig) -> bool:
    """Send the commands to one server, ``sequence_delay`` apart; say what became of each."""
    import json

    ws = None
    try:
        ws = _connect(target, config)
        if ws is not None:
            ok = True
            for n, action in enumerate(actions):
                if n:
                    time.sleep(config.sequence_delay)  # a person's command line, not the trading path
                if config.format != "json":
                    ws.send(action)
                    log.info("[Hotkey] Sent: %s (by hand)", action)
                    click.echo(
                        f"sent     {action} to {target} (a text-mode server does not answer;"
                        ' with format = "json" the reference server confirms each command)'
                    )
                    continue
                ws.send(
                    json.dumps(
                        {
                            "command": action,
                            "event": "manual_command",
                            "sent_at": int(time.time() * 1000),
                            "ttl_ms": int(config.ttl * 1000),
                        }
                    )
                )
                log.info("[Hotkey] Sent: %s (by hand)", action)
                answer = _answer(ws.recv(timeout=config.ttl))
                status = answer.get("status", "?")
                reason = f": {answer['reason']}" if answer.get("reason") else ""
                click.echo(f"{status:8} {action} at {target}{reason}")
                ok = ok and status == "accepted"
            return ok
    except TimeoutError:
        click.echo(f"FAIL     {target}: no answer within {config.ttl:g} s", err=True)
    except Exception as exc:
        reason = _reason(exc)
        log.error("[Hotkey] Failed to send %s: %s", ", ".join(f"'{a}'" for a in actions), reason)
        click.echo(f"FAIL     {target}: {reason}", err=True)
    finally:
        _close(ws)  # after the verdict: at most flush_timeout
    return False


def _answer(message: str | bytes) -> dict[str, object]:
    import json

    try:
        data = json.loads(message)
    except ValueError:
        return {"status": "?", "reason": f"not an answer: {str(message)[:60]!r}"}
    return data if isinstance(data, dict) else {"status": "?"}


@hotkey.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback needs --token.",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--token",
    envvar="MOMOBOT_HOTKEY_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' (default: $MOMOBOT_HOTKEY_TOKEN).",
)
@click.option(
    "--keymap",
    metavar="FILE",
    default=None,
    help='TOML file of command = "chord" lines: press those keys (needs the keys extra).',
)
@click.option("--allow", multiple=True, metavar="COMMAND", help="Accept one more command name.")
def serve(host: str, port: int, token: str | None, keymap: str | None, allow: tuple[str, ...]) -> None:
    """Run a reference hotkey server: prints each command; presses keys with --keymap."""
    try:
        keys = load_keymap(keymap) if keymap else {}
        presser = KeyPresser(keys) if keys else None
        server = HotkeyServer(
            host,
            port,
            token=token,
            commands={*KNOWN_COMMANDS, *keys, *allow},
            presser=presser,
            echo=click.echo,
        )
    except ConfigError as exc:
        _fail(str(exc))
        return

    def started(bound: int) -> None:
        mode = "pressing keys" if presser else "dry run: printing commands, pressing nothing"
        click.echo(f"hotkey server on ws://{host}:{bound} ({mode}); Ctrl-C stops it", err=True)

    try:
        asyncio.run(server.run(started=started))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@hotkey.command()
@click.option(
    "--sequence-delay",
    type=float,
    default=None,
    help="Seconds between the commands of a sequence (default: as configured, 0.1).",
)
@config_option
@click.pass_context
def demo(ctx: click.Context, sequence_delay: float | None, config_path: str | None) -> None:
    """Run the sample session through the plugin against a local dry-run server."""
    import attrs

    server = HotkeyServer("127.0.0.1", 0)
    thread = ServerThread(server)
    thread.start()
    try:
        core_config = load_config(config_path)
        config = load_hotkey_config(core_config)
        # Only the server started here: never the trader's configured one.
        config = attrs.evolve(config.with_urls(thread.url), token=None, ca_file=None)
        if sequence_delay is not None:
            config = attrs.evolve(config, sequence_delay=max(sequence_delay, 0.0))
        hooks = ctx.find_object(Hooks) or Hooks()
        if hooks.pm.has_plugin("hotkey_ws"):
            hooks.unregister("hotkey_ws")
        plugin = HotkeyPlugin(config, send_in_replay=True, record=True)
        hooks.register(plugin, name="hotkey_ws")
        click.echo(f"dry-run hotkey server listening on {thread.url}", err=True)
        result = run_recorded([demo_session_path()], hooks=hooks, config=core_config, mode="demo")
    except (ConfigError, InputError) as exc:
        thread.stop()
        _fail(str(exc))
        return
    time.sleep(0.05)  # let the server's loop take in the last frame
    thread.stop()
    click.echo(result.summary())
    click.echo("")
    click.echo(_timings(plugin, server))


def _timings(plugin: HotkeyPlugin, server: HotkeyServer) -> str:
    client_history = plugin.history
    rows: list[tuple[str, ...]] = [("event", "command", "on the wire", "received by server")]
    received = iter(server.received)
    total = 0
    for batch in client_history:
        for n, name in enumerate(batch.names):
            total += 1
            wire = "not sent"
            if n < len(batch.receipts):
                wire = f"+{(batch.receipts[n] - batch.fired_at) * 1e3:.3f} ms"
            got = next(received, None)
            if got is not None and got.command == name:
                seen = f"+{(got.monotonic_ns / 1e9 - batch.fired_at) * 1e3:.3f} ms"
            else:
                seen = "missing"
            rows.append((batch.label if n == 0 else "", name, wire, seen))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["Hotkey commands (times from the moment the hook fired):"]
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    in_order = [r.command for r in server.received] == [n for b in client_history for n in b.names]
    lines.append(
        f"The server received {len(server.received)} of {total} commands"
        f"{', in order' if in_order else ', NOT in the order they were sent'}."
    )
    lines.append(
        "The session replays as fast as the engine goes, so an event that comes while a"
        " sequence is going out waits for it: sequences never interleave."
    )
    return "\n".join(lines)
