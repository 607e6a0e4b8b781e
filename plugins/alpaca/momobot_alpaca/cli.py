"""``momobot alpaca fake-server``: play a recording as Alpaca's stream on this machine."""

from __future__ import annotations

import click

from momobot_alpaca.fake import FakeAlpacaServer
from momobot_core.sources.fakefeed import command_events, fake_server_options, serve_fake


@click.group()
def alpaca() -> None:
    """Alpaca's market data stream: a local fake for rehearsing with a recording."""


@alpaca.command("fake-server")
@fake_server_options(8766)
@click.option("--key", default="test-key", show_default=True, help="The key id clients must send.")
@click.option("--secret", default="test-secret", show_default=True, help="The secret clients must send.")
def fake_server(files: tuple[str, ...], host: str, port: int, speed: float, key: str, secret: str) -> None:
    """Serve recorded quotes, halts and LULD bands (.csv, .jsonl) as Alpaca's stream, restamped to now.

    Point the bot at it with [alpaca] url = "ws://127.0.0.1:8766" and the same key and secret
    (APCA_API_KEY_ID, APCA_API_SECRET_KEY).
    """
    server = FakeAlpacaServer(
        command_events(files),
        host=host,
        port=port,
        key=key,
        secret=secret,
        speed=speed,
        echo=lambda line: click.echo(line, err=True),
    )
    serve_fake(server, "Alpaca")
