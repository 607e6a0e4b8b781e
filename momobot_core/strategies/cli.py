"""``momobot arm``, ``momobot disarm`` and ``momobot arms``: against a running ``momobot serve``.

They speak its HTTP API (``POST /arm``, ``POST /disarm``, ``GET /arms``) at ``--url``
(default ``http://127.0.0.1:<[api] port>``, or ``MOMOBOT_API_URL``) with ``--token`` (default
``MOMOBOT_API_TOKEN``, or ``[api] token``). Standard library only: no extra to install.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import click

from momobot_core.config import ConfigError, load_config
from momobot_core.strategies.arms import parse_arm


def _where(url: str | None, token: str | None, config_path: str | None) -> tuple[str, str | None]:
    try:
        config = load_config(config_path, check_tables=False)
        api = config.section("api", env_prefix="MOMOBOT_API_")
        port = api.get_int("port", 8000, minimum=1)
        token = token or api.get_str("token", None) or None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return (url or os.environ.get("MOMOBOT_API_URL") or f"http://127.0.0.1:{port}").rstrip("/"), token


def _call(url: str, token: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise click.ClickException(f"{method} {path}: {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(
            f"no momobot serve answers at {url} ({reason}): start one, or give --url"
        ) from None


_url = click.option(
    "--url", default=None, help="The running serve (default: MOMOBOT_API_URL, else [api] port)."
)
_token = click.option(
    "--token", default=None, envvar="MOMOBOT_API_TOKEN", help="The API token ([api] token)."
)
_config = click.option("--config", "config_path", default=None, metavar="FILE", help="Config file ([api]).")


def add_commands(cli: click.Group) -> None:
    @cli.command()
    @click.pass_context
    def strategies(ctx: click.Context) -> None:
        """The strategies installed (built in and from plugins), with the plugin of each."""
        from momobot_core.strategies import collect_strategies

        try:
            found = collect_strategies(ctx.obj)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps([{"name": n, "plugin": p} for n, (p, _) in sorted(found.items())], indent=2))

    @cli.command()
    @click.argument("symbol")
    @click.argument("strategy")
    @click.argument("timeframe")
    @click.argument("fields", nargs=-1, metavar="[KEY=VALUE]...")
    @_url
    @_token
    @_config
    def arm(
        symbol: str,
        strategy: str,
        timeframe: str,
        fields: tuple[str, ...],
        url: str | None,
        token: str | None,
        config_path: str | None,
    ) -> None:
        """Arm SYMBOL with STRATEGY at TIMEFRAME (e.g. ABCD level 1m level=5.20) in a running serve."""
        from datetime import UTC, datetime

        for name, word in (("SYMBOL", symbol), ("STRATEGY", strategy), ("TIMEFRAME", timeframe)):
            if not word or any(c.isspace() for c in word):
                raise click.ClickException(f"{name} {word!r}: one word, no spaces")
        try:
            event = parse_arm(" ".join((symbol, strategy, timeframe, *fields)), datetime.now(UTC))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        where, token = _where(url, token, config_path)
        body = {
            "symbol": event.symbol,
            "strategy": event.strategy,
            "timeframe": event.timeframe,
            **event.params,
        }
        armed = _call(where, token, "POST", "/arm", body)
        click.echo(f"{armed['symbol']}: armed with {armed['strategy']} {armed['timeframe']}")

    @cli.command()
    @click.argument("symbol")
    @_url
    @_token
    @_config
    def disarm(symbol: str, url: str | None, token: str | None, config_path: str | None) -> None:
        """Stop SYMBOL's strategy in a running serve (an open trade keeps its exits)."""
        where, token = _where(url, token, config_path)
        _call(where, token, "POST", "/disarm", {"symbol": symbol})
        click.echo(f"{symbol}: disarmed")

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="The whole state of each arm, as JSON.")
    @_url
    @_token
    @_config
    def arms(as_json: bool, url: str | None, token: str | None, config_path: str | None) -> None:
        """What a running serve has armed, and each arm's live state."""
        where, token = _where(url, token, config_path)
        listed = _call(where, token, "GET", "/arms")
        if as_json:
            click.echo(json.dumps(listed, indent=2))
            return
        if not listed:
            click.echo("nothing is armed")
            return
        for arm_state in listed:
            level = arm_state["state"].get("level")
            candle = arm_state["candle"]
            ohlc = (
                "-" if candle is None else "/".join(str(candle[k]) for k in ("open", "high", "low", "close"))
            )
            last = arm_state["last_price"]
            click.echo(
                f"{arm_state['symbol']:<8} {arm_state['strategy']:<10} {arm_state['timeframe']:<4}"
                f" entries {arm_state['entries']}/{arm_state['entries_allowed']}"
                f"  level {'-' if level is None else level}  candle {ohlc}"
                f"  last {'-' if last is None else last}"
            )
