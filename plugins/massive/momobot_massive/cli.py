"""``momobot massive fake-server``: play a recording as Massive's stocks stream on this machine."""

from __future__ import annotations

import sys

import click

from momobot_core.config import InputError
from momobot_core.sources.fakefeed import market_events, serve_fake
from momobot_massive.fake import FakeMassiveServer


@click.group()
def massive() -> None:
    """Massive's stocks stream: a local fake for rehearsing with a recording."""


@massive.command("fake-server")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback).")
@click.option(
    "--port",
    default=8767,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How many times faster than recorded (0: as fast as it goes).",
)
@click.option("--key", default="test-key", show_default=True, help="The API key clients must send.")
def fake_server(files: tuple[str, ...], host: str, port: int, speed: float, key: str) -> None:
    """Serve recorded quotes, halts and LULD bands (.csv, .jsonl) as Massive's stocks stream,
    restamped to now.

    Point the bot at it with [massive] url = "ws://127.0.0.1:8767/stocks" and the same key
    (MASSIVE_API_KEY).
    """
    try:
        events = market_events(files)
    except InputError as exc:
        click.echo(f"momobot: error: {exc}", err=True)
        sys.exit(2)
    server = FakeMassiveServer(
        events, host=host, port=port, key=key, speed=speed, echo=lambda line: click.echo(line, err=True)
    )
    serve_fake(server, "Massive", "/stocks")
