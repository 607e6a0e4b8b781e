"""``momobot notify test``: one message to every configured URL, and which worked."""

from __future__ import annotations

import sys

import click

from momobot_core.config import ConfigError, load_config
from momobot_notify.channel import send_once
from momobot_notify.config import load_notify_config
from momobot_notify.secrets import shown


@click.group()
def notify() -> None:
    """Notifications through apprise ([notify] urls)."""


@notify.command("test")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    default=None,
    help="TOML configuration file (default: $MOMOBOT_CONFIG).",
)
@click.option(
    "--message",
    default="MomoBot test notification: if you read this, alerts reach you here.",
    show_default=True,
)
def test(config_path: str | None, message: str) -> None:
    """Send one message to every [notify] URL now and say which worked (exit 1 if one failed)."""
    try:
        config = load_notify_config(load_config(config_path))
    except ConfigError as exc:
        click.echo(f"momobot: error: {exc}", err=True)
        sys.exit(2)
    if not config.urls:
        click.echo("momobot: error: no [notify] urls configured (or MOMOBOT_NOTIFY_URLS)", err=True)
        sys.exit(2)
    failed = 0
    for url in config.urls:
        ok, why = send_once(url, f"{config.title}: test", message)
        if ok:
            click.echo(f"ok      {shown(url)}")
        else:
            failed += 1
            click.echo(f"FAILED  {shown(url)}: {why}")
    click.echo(f"{len(config.urls) - failed} of {len(config.urls)} worked")
    sys.exit(1 if failed else 0)
