"""``momobot massive fake-server``: play a recording as Massive's stocks stream on this machine."""

from __future__ import annotations

import click

from momobot_core.sources.fakefeed import command_events, fake_server_options, serve_fake
from momobot_massive.fake import FakeMassiveServer


@click.group()
def massive() -> None:
    """Massive's stocks stream: a local fake for rehearsing with a recording."""


@massive.command("fake-server")
@fake_server_options(8767)
@click.option("--key", default="test-key", show_default=True, help="The API key clients must send.")
def fake_server(files: tuple[str, ...], host: str, port: int, speed: float, key: str) -> None:
    """Serve recorded quotes, halts and LULD bands (.csv, .jsonl) as Massive's stocks stream,
    restamped to now.

    Point the bot at it with [massive] url = "ws://127.0.0.1:8767/stocks" and the same key
    (MASSIVE_API_KEY).
    """
    server = FakeMassiveServer(
        command_events(files),
        host=host,
        port=port,
        key=key,
        speed=speed,
        echo=lambda line: click.echo(line, err=True),
    )
    serve_fake(server, "Massive", "/stocks")
