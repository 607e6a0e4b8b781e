"""Hook specifications: every point where a plugin can take part in a run.

Argument names are part of the contract (pluggy passes arguments by name): a
plugin implements any subset of these hooks, and of each hook any subset of
its arguments.

The event hooks (``on_order_submitted``, ``on_target_hit``,
``on_position_closed``, ``on_kill``, ``on_alert``) run synchronously on the engine's thread,
in the middle of the trading path, *after* the event is committed to the
journal (so a plugin never hears of something the journal does not hold). An
implementation must return in microseconds: hand any I/O to a thread or a
queue of its own; a call slower than 5 ms is logged with the plugin's name. An
implementation that raises (anything, ``SystemExit`` included) is logged with
its plugin's name; the other plugins still receive the event and trading goes
on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    import click
    from fastapi import FastAPI

    from momobot_core.engine import Engine
    from momobot_core.models import Alert, Fill, Order, Panel, Quote, Target, Trade
    from momobot_core.sources import SourceFactory
    from momobot_core.strategies import StrategyFactory

hookspec = pluggy.HookspecMarker("momobot")


@hookspec
def on_startup(bot: Engine) -> None:
    """Called once after the configuration and the plugins are loaded, before the first quote.

    :param bot: The running engine. ``bot.config`` holds the configuration
        (``bot.config.table("my_plugin")`` is the plugin's own table),
        ``bot.mode`` is ``"live"`` (``momobot serve``), ``"replay"`` or
        ``"demo"``, ``bot.clock.now()`` is the current event time and
        ``bot.open_trades`` the trades open right now (restored from the
        journal on a restart).

    This is where a plugin reads and validates its configuration and starts
    its workers. Raise :class:`momobot_core.ConfigError` for invalid
    configuration: unlike the event hooks, this hook is not isolated, and
    start-up stops with the error's message and exit code 2 (any other
    exception stops it too, with the plugin's name). The plugins that did
    start are shut down first.
    """


@hookspec
def on_order_submitted(order: Order, trade: Trade) -> None:
    """Called for every order the engine submits: the entry buy and every exit sell.

    :param order: The order (``order.intent`` is ``"entry"``,
        ``"take_profit"``, ``"stop"`` or ``"manual"``).
    :param trade: The trade the order belongs to, as it stands after the order.

    Called right after the event is committed to the journal. Runs on the
    engine's thread: must not block.
    """


@hookspec
def on_target_hit(trade: Trade, target: Target, quote: Quote) -> None:
    """Called when a trade reaches TP1, TP2 or its stop, once per target per trade.

    :param trade: The trade as it stood when the target was reached (before
        the exit order; for TP1, before the stop moves to break-even).
    :param target: ``"tp1"``, ``"tp2"`` or ``"stop"``.
    :param quote: The quote that reached the target.

    Called after the exit is committed to the journal and before that exit's
    ``on_order_submitted``. Within one quote the order is TP1, TP2, then the
    stop. Runs on the engine's thread: must not block.
    """


@hookspec
def on_position_closed(trade: Trade, reason: str, price: float) -> None:
    """Called when a trade is fully closed.

    :param trade: The closed trade (``trade.remaining == 0``).
    :param reason: ``"tp2"``, ``"stop"``, ``"manual"`` or ``"kill"``.
    :param price: The price of the last exit.

    Called after the ``on_order_submitted`` of the closing order (the close
    is already in the journal). For ``"tp2"`` and ``"stop"``, ``on_target_hit``
    was called first; a manual close (API or replay ``close`` event) has no
    target, so this is its only event. ``"kill"``: the book's flatten (the kill
    switch, the daily loss limit), after one ``on_kill`` for the whole book.
    Runs on the engine's thread: must not block.
    """


@hookspec
def on_shutdown(bot: Engine) -> None:
    """Called once when the run ends, normally or on an error.

    :param bot: The engine, as in :func:`on_startup`.

    Flush and release what the plugin holds here, in bounded time (a few
    seconds at most): the process is waiting to exit. Called only for
    plugins whose ``on_startup`` ran. Isolated like the event hooks: one
    plugin raising does not stop the others' shutdown, and one still busy
    after 5 s is named in the log and left behind.
    """


@hookspec
def on_kill(trades: list[Trade], reason: str) -> None:
    """Called once when the book is flattened: the kill switch, or the daily loss limit.

    :param trades: The trades being flattened, as they stood before (``remaining`` is
        what each one still held); empty if none was open.
    :param reason: ``"kill_switch"`` (a person pressed it) or ``"max_daily_loss"``.

    Every flatten is already in the journal. Each trade's own
    ``on_order_submitted`` and ``on_position_closed(trade, "kill", price)``
    follow this call. A keystroke plugin acts here once (hotkey_ws sends
    ``cancel_all``, ``flatten_all``: one key for the whole account, where one
    ``sell_all_bid`` per trade would sell the active montage's symbol N
    times); an order plugin closes each trade by its symbol.

    A trade whose symbol was under a trading halt at the kill is not in
    ``trades``: its exit is held, and at the first quote after the resume this
    hook is called again with that trade alone (the same ``reason``), followed
    by its ``on_order_submitted`` and ``on_position_closed`` as above.
    """


@hookspec
def on_fill(fill: Fill, order: Order | None) -> None:
    """Called when a broker's fill of one of the engine's orders is recorded (once per execution).

    :param fill: What the broker filled (``qty``, ``price``, ``ts``, ``broker_ref``) of the
        engine's order ``fill.order_id``, reported by an order plugin.
    :param order: That order as the journal holds it (symbol, side, intent, the engine's model
        price), or None when it is not journaled yet (its order waits in the side file).

    The fill is journaled (or kept until the journal can take it) before this call. Runs on
    the engine's thread: must not block.
    """


@hookspec
def on_alert(alert: Alert) -> None:
    """Called when something needs a person now: a journal error, a hotkey link down, a cut sequence...

    :param alert: ``alert.kind`` (``journal_error``, ``link_down``,
        ``sequence_cut``, ``exit_pending``, ``exit_dropped``,
        ``unconfirmed_trade``, ``resumed``, ``risk_refused``, ``halted``,
        ``stale_quotes``, ``trading_halt``, ... or a plugin's own kind,
        prefixed with its name), ``alert.message`` (a sentence for a person),
        ``alert.symbol`` (or None), ``alert.ts`` and ``alert.detail`` (a dict).

    Raise one with ``bot.alert(kind, message, symbol=None, **detail)``, from
    any thread. Runs on the engine's thread: must not block.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Called while the ``momobot`` command line is built.

    :param cli: The top-level click group; add subcommands or groups to it
        with ``cli.add_command(...)`` or the ``@cli.command()`` decorator.
    """


@hookspec
def register_sources(register: Callable[[str, SourceFactory], None]) -> None:
    """Called at start: offer live quote sources.

    :param register: Call ``register(name, factory)`` for each source;
        ``factory(bot)`` returns a :class:`momobot_core.sources.QuoteSource`
        (read and check the plugin's configuration there: raise
        :class:`momobot_core.ConfigError` for bad values).

    ``momobot sources`` lists what is registered; ``momobot serve --source
    NAME`` (or ``[momobot] source = "NAME"``) runs one. Two plugins offering
    the same name is an error.
    """


@hookspec
def register_strategies(register: Callable[[str, StrategyFactory], None]) -> None:
    """Called at start: offer strategies that find entries (docs/strategies.md).

    :param register: Call ``register(name, factory)`` for each strategy;
        ``factory(spec)`` gets a :class:`momobot_core.strategies.ArmSpec` (the
        symbol, the timeframe, the strategy's own fields: raise ValueError
        naming a bad one) and returns an object with ``on_candle(candle)``,
        ``on_price(ts, price)``, ``entered()``, ``state()`` and ``restore(state)``
        (:class:`momobot_core.strategies.Strategy`).

    A symbol armed with the strategy (``[momobot] arm``, ``POST /arm``, a
    recording's ``arm`` event) feeds it that symbol's closed candles and prices;
    a :class:`momobot_core.strategies.Signal` it returns becomes an entry
    through ``Engine.apply(Open(...))``, under every risk limit. Two plugins
    offering the same name is an error.
    """


@hookspec
def register_routes(app: FastAPI, bot: Engine) -> None:
    """Called while ``momobot serve`` builds its web app: add HTTP routes.

    :param app: The FastAPI app. Routes go behind the same guard as the core's
        (allowed hosts, Origin, the token for anything that is not a GET).
    :param bot: The running engine. Handlers run on the engine's event loop:
        read its state freely, change it only through ``bot.apply(...)``.
    """


@hookspec
def dashboard_panels(bot: Engine) -> list[Panel]:
    """Called when the dashboard page is drawn: return the panels this plugin adds.

    :param bot: The running engine.
    :return: A list of :class:`momobot_core.models.Panel` (``title``, ``path``);
        ``path`` is a GET route (added with ``register_routes``) answering an HTML
        fragment, which the page fetches again every second.
    """
    return []
