"""``momobot das check|fake-server``: added to the momobot CLI through ``register_commands``."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import click

from momobot_core.config import ConfigError, load_config
from momobot_das.config import PASSWORD_ENV, DasConfig, load_das_config
from momobot_das.protocol import (
    EOL,
    GET_BP,
    POSREFRESH,
    BuyingPower,
    LoginReply,
    Marker,
    PosLine,
    ProtocolError,
    login_line,
    parse,
)


def _fail(message: str) -> None:
    click.echo(f"momobot: error: {message}", err=True)
    sys.exit(2)


@click.group()
def das() -> None:
    """DAS Trader Pro's CMD API: check the login, or run a local fake of it."""


@das.command()
@click.option("--config", "config_path", metavar="PATH", default=None, help="TOML configuration file.")
def check(config_path: str | None) -> None:
    """Log in to DAS and report buying power and positions. Sends no order."""
    try:
        config = load_das_config(load_config(config_path))
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable
    started = time.perf_counter()
    try:
        sock = socket.create_connection((config.host, config.port), timeout=config.connect_timeout)
    except OSError as exc:
        _fail(
            f"DAS at {config.where}: cannot connect ({exc.strerror or exc}); is DAS Trader Pro running,"
            " logged in, with its CMD API enabled on that port?"
        )
        raise  # unreachable
    with sock:
        try:
            bp, positions = _check(sock, config)
        except (OSError, ProtocolError) as exc:
            _fail(f"DAS at {config.where}: {str(exc).replace(config.password, '***')}")
            raise  # unreachable
    elapsed = (time.perf_counter() - started) * 1e3
    click.echo(
        f"DAS at {config.where}: logged in as {config.user}, account {config.account} ({elapsed:.1f} ms)"
    )
    if bp is not None:
        overnight = f" (overnight {bp.overnight})" if bp.overnight is not None else ""
        click.echo(f"buying power: {bp.buying_power}{overnight}")
    else:
        click.echo("buying power: not reported")
    click.echo(f"positions: {len(positions)}")
    for symbol, qty in sorted(positions.items()):
        click.echo(f"  {symbol:<8} {qty:>8}")
    click.echo("no order was sent")


def _check(sock: socket.socket, config: DasConfig) -> tuple[BuyingPower | None, dict[str, int]]:
    """Log in, ask for buying power and positions, read until both came (or a timeout)."""
    sock.sendall(login_line(config.user, config.password, config.account).encode("ascii"))
    deadline = time.monotonic() + max(config.connect_timeout, 2.0)
    buffer = b""
    logged_in = False
    bp: BuyingPower | None = None
    positions: dict[str, int] = {}
    listing = False
    listed = False
    allowed = max(config.connect_timeout, 2.0)
    while not (logged_in and bp is not None and listed):
        left = deadline - time.monotonic()
        chunk = b""
        if left > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                left = 0
        if left <= 0:
            if logged_in and listed:
                break  # no BP line: report what came
            missing = (
                ["an answer to LOGIN"]
                if not logged_in
                else [
                    *([] if listed else [f"the position list ({POSREFRESH})"]),
                    *([] if bp is not None else [f"buying power ({GET_BP})"]),
                ]
            )
            raise OSError(
                f"waited {allowed:g} s for {' and '.join(missing)}, and none came"
                + (" (logged in)" if logged_in else "")
                + ": is the CMD API enabled, and is DAS Trader Pro responding?"
            )
        sock.settimeout(None)
        if not chunk:
            raise OSError(
                "the platform closed the connection" + ("" if logged_in else " without answering LOGIN")
            )
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            try:
                message = parse(raw.decode("ascii", "replace"))
            except ProtocolError:
                continue  # a line the check need not read (the plugin logs and skips them too)
            if type(message) is LoginReply:
                if not message.ok:
                    raise OSError(
                        f"login refused: {message.text} (check [das] user, account and {PASSWORD_ENV})"
                    )
                logged_in = True
                sock.sendall(f"{GET_BP}{EOL}{POSREFRESH}{EOL}".encode("ascii"))
            elif type(message) is BuyingPower:
                bp = message
            elif type(message) is Marker:
                if message.name == "#POS":
                    listing, positions = True, {}
                elif message.name == "#POSEND" and listing:
                    listing, listed = False, True
            elif type(message) is PosLine and listing:
                positions[message.symbol] = message.qty
    return bp, {s: q for s, q in positions.items() if q}


@das.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback).")
@click.option(
    "--port", default=9910, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free one."
)
@click.option("--user", default="trader", show_default=True, help="The user clients must log in as.")
@click.option("--account", default="TR1234", show_default=True, help="The account clients must name.")
def fake_server(host: str, port: int, user: str, account: str) -> None:
    """A fake DAS CMD API that fills every limit order at its price, to try the plugin without DAS.

    The password is $MOMOBOT_DAS_PASSWORD (else "secret"). Point the bot at it with
    [das] host, port, user, account and route = "SMAT".
    """
    from momobot_das.fake import FakeDas

    password = os.environ.get(PASSWORD_ENV) or "secret"
    fake = FakeDas(user=user, password=password, account=account, host=host, port=port)
    try:
        fake.start()
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    click.echo(
        f"fake DAS CMD API on {host}:{fake.port} (user {user}, account {account}); fills every limit"
        " order at its price; Ctrl-C stops it",
        err=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()
