"""The dashboard: ``GET /`` on ``momobot serve``, kept live over Server-Sent Events (``GET /events``).

Server-rendered (Jinja2) with htmx 2 and its SSE extension, both vendored
under ``static/`` (no CDN, no build step). The page is drawn once; after that
``/events`` pushes HTML fragments by name (``positions``, ``today``,
``source``, ``equity``) whenever what they show changes, and appends to the
event log (``log``). Plugin panels (``dashboard_panels``) are fragments the
page fetches every second. Buttons post forms to ``/ui/...``, behind the same
guard as the API (Origin checked; with a token, the session cookie the login
form gives, HttpOnly and SameSite=Strict).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import math
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio
import attrs
import jinja2
import pygal
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse, ServerSentEvent

from momobot_core import hookimpl
from momobot_core.candles import CHART_TIMEFRAMES
from momobot_core.engine import TradeRefused
from momobot_core.models import (
    Alert,
    Arm,
    Close,
    Disarm,
    Kill,
    Open,
    Order,
    Panel,
    Resume,
    Target,
    Trade,
    price_text,
)
from momobot_core.report import DayStats, day_stats, svg_of
from momobot_core.strategies import collect_strategies
from momobot_core.web.chart import chart_data, chart_markers, chart_update
from momobot_core.web.guard import LOGIN_PATH, LOGOUT_PATH, SESSION_COOKIE, Sessions, client_key

if TYPE_CHECKING:
    from momobot_core.engine import Engine
    from momobot_core.models import Quote

log = logging.getLogger("momobot.dashboard")

HERE = Path(__file__).parent
#: How often the P&L curve's "total now" is drawn again (a closed leg draws it at once).
EQUITY_REDRAW_S = 5
#: A ticker as the API takes one (BRK.B, BF-B): what the page's forms accept.
SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9./^+-]{0,31}")
WHOLE = re.compile(r"[0-9]{1,10}")
DECIMAL = re.compile(r"[0-9]{1,8}(\.[0-9]{1,6})?")
#: Pages whose chart choice is kept (the oldest forgotten first).
CHARTS_KEPT = 100
#: The most symbols the page's watchlist holds.
WATCH_MOST = 50
#: How often the event stream looks for something new to show (seconds).
REFRESH_S = 0.25
LOG_KEPT = 500
#: This process's run: log ids are ``<run>-<seq>``, so a page from before a restart asks for all.
BOOT = os.urandom(4).hex()

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def money(value: float | None) -> str:
    if value is None:
        return ""
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def price(value: float | None) -> str:
    return "" if value is None else price_text(value)


CHART_STYLE = pygal.style.Style(
    background="transparent",
    plot_background="transparent",
    foreground="#d8dee6",
    foreground_strong="#d8dee6",
    foreground_subtle="#2a323c",
    colors=("#58a6ff",),
    font_family="system-ui, sans-serif",
)

templates.filters["money"] = money
templates.filters["price"] = price


@attrs.frozen
class LogEntry:
    seq: int
    ts: datetime
    kind: str  # "event" or "alert"
    text: str
    symbol: str | None = None


class EventFeed:
    """A built-in plugin: remembers the day's trade events and alerts, and the equity curve."""

    def __init__(self, bot: Engine) -> None:
        self.bot = bot
        self.entries: collections.deque[LogEntry] = collections.deque(maxlen=LOG_KEPT)
        self._seq = itertools.count(1)
        self.equity: list[tuple[datetime, float]] = []  # (time, realised P&L) after each leg
        self.changed = asyncio.Event()

    def add(self, kind: str, text: str, symbol: str | None = None, ts: datetime | None = None) -> None:
        self.entries.append(LogEntry(next(self._seq), ts or datetime.now(UTC), kind, text, symbol))
        self.changed.set()

    def since(self, seq: int) -> list[LogEntry]:
        return [entry for entry in self.entries if entry.seq > seq]

    @hookimpl
    def on_order_submitted(self, order: Order, trade: Trade) -> None:
        if order.intent == "entry":
            self.add("event", f"{trade.symbol}: bought {order.qty} at {price(order.price)}", trade.symbol)
        else:
            self._point(order.ts)

    @hookimpl
    def on_target_hit(self, trade: Trade, target: Target, quote: Quote) -> None:
        what = {
            "tp1": f"TP1 at {price(quote.ask)}: sold {trade.qty // 2}, stop moved to break-even"
            f" {price(trade.entry_price)}",
            "tp2": f"TP2 at {price(quote.ask)}",
            "stop": f"stop at {price(quote.bid if quote.last is None else quote.last)}",
        }[target.value]
        self.add("event", f"{trade.symbol}: {what}", trade.symbol)

    @hookimpl
    def on_position_closed(self, trade: Trade, reason: str, price: float) -> None:
        self.add("event", f"{trade.symbol}: closed ({reason}) at {_price(price)}", trade.symbol)

    @hookimpl
    def on_kill(self, trades: list[Trade], reason: str) -> None:
        names = ", ".join(t.symbol for t in trades) or "nothing open"
        self.add("event", f"KILL ({reason.replace('_', ' ')}): flattening {names}")

    @hookimpl
    def on_alert(self, alert: Alert) -> None:
        self.add("alert", f"{alert.kind}: {alert.message}", alert.symbol, alert.ts)

    def _point(self, ts: datetime) -> None:
        self.equity.append((ts, self.bot.book.realised))


def _price(value: float) -> str:
    return price(value)


def positions(bot: Engine) -> list[dict[str, Any]]:
    now = bot.clock.now()
    rows = []
    for trade in sorted(bot.open_trades.values(), key=lambda t: t.opened_at):
        quote = bot.last_quotes.get(trade.symbol)
        held = now - trade.opened_at
        rows.append(
            {
                "trade": trade,
                "halted": bot.halted_symbols.get(trade.symbol),
                "exit_held": bot.held_exits.get(trade.symbol),
                "lost": " and ".join(bot.lost_exits(trade.id)) if trade.unconfirmed else "",
                "bid": quote.bid if quote else None,
                "ask": quote.ask if quote else None,
                "pnl": (quote.bid - trade.entry_price) * trade.remaining if quote else None,
                "held": f"{int(held.total_seconds()) // 60}m {int(held.total_seconds()) % 60:02d}s",
            }
        )
    return rows


def render(name: str, **context: Any) -> str:
    return templates.get_template(name).render(**context)


class Dashboard:
    """The page, its fragments, its event stream and its buttons, for one engine."""

    def __init__(self, bot: Engine, sessions: Sessions) -> None:
        self.bot = bot
        self.sessions = sessions
        self.feed = EventFeed(bot)
        if bot.hooks is not None:
            bot.hooks.register(self.feed, name="momobot.dashboard")
        self.feed.equity.extend(_equity_from_journal(bot))
        _seed_log(self.feed, bot)
        self._equity_key: tuple[object, ...] = ()
        self._drawn_state: tuple[object, ...] = ()
        self._drawn: dict[str, str] = {}
        self._equity_svg = ""
        #: The symbol and timeframe each page's chart shows (``POST /ui/chart``), by page id.
        self.charts: collections.OrderedDict[str, tuple[str, str]] = collections.OrderedDict()
        #: The page's watchlist (symbols, in the order added), and each one's first price seen.
        self.watch: list[str] = []
        self._first: dict[str, float] = {}
        #: The strategies the arm form offers.
        self.strategies = sorted(collect_strategies(bot.hooks))
        self._day_key: tuple[object, ...] = ()
        #: Each part's last drawing and the fingerprint it was drawn for.
        self._parts: dict[str, tuple[object, str]] = {}
        self._day: DayStats | None = None

    # -- fragments ----------------------------------------------------------------------

    def fragments(self) -> dict[str, str]:
        """Every part of the page, each drawn again only when what it shows changed (its own
        fingerprint): a quote on a watched symbol redraws the watchlist, not the day."""
        bot = self.bot
        quotes = bot.last_quotes
        traded = tuple((t, quotes.get(t.symbol)) for t in bot.open_trades.values())
        held = int(time.monotonic()) if bot.open_trades else 0  # the time in trade, per second
        arms = bot.arms_fingerprint
        source = bot.source.status() if bot.source is not None else None
        parts: dict[str, tuple[object, Callable[[], str]]] = {
            "positions": (
                (traded, held, tuple(bot.halted_symbols.items()), tuple(bot.held_exits.items())),
                lambda: render("_positions.html", rows=positions(bot)),
            ),
            "today": (
                (
                    traded,
                    bot.book.realised,
                    bot.book.entries,
                    bot.book.streak,
                    bot.book.halt,
                    bot.journal_pending,
                    bot.stale_quotes,
                    tuple(bot.counters.refused_by_rule.items()),
                    bot.book.day,
                    bot.market.session_at(bot.clock.now()),
                ),
                lambda: render("_today.html", risk=bot.risk_status(), bot=bot),
            ),
            "source": (source, lambda: render("_source.html", source=_source(bot))),
            "equity": (None, self.equity_svg),  # cached by its own key
            "arms": (arms, lambda: render("_arms.html", arms=bot.arms)),
            "watch": (
                (
                    tuple(self.watch),
                    tuple(quotes.get(s) for s in self.watch),
                    arms,
                    tuple(bot.halted_symbols.items()),
                    tuple(bot.luld_bands.get(s) for s in self.watch),
                ),
                lambda: render("_watch.html", rows=self.watch_rows()),
            ),
            "day": (
                (bot.counters.trades_closed, bot.book.day, bot.journal_unfolded == 0),
                self._render_day,
            ),
        }
        drawn = {}
        for name, (key, draw) in parts.items():
            cached = self._parts.get(name)
            if key is not None and cached is not None and cached[0] == key:
                drawn[name] = cached[1]
            else:
                html = draw()
                self._parts[name] = (key, html)
                drawn[name] = html
        return drawn

    def watch_rows(self) -> list[dict[str, Any]]:
        """The watchlist's rows: the last quote, the change since the first price seen today
        (the sources give no previous close), and the symbol's arm."""
        bot = self.bot
        arms = {a["symbol"]: a for a in bot.arms}
        rows = []
        for symbol in self.watch:
            quote = bot.last_quotes.get(symbol)
            now = (
                None
                if quote is None
                else (quote.last if quote.last is not None else (quote.bid + quote.ask) / 2)
            )
            first = self._first.setdefault(symbol, now) if now is not None else None
            arm = arms.get(symbol)
            rows.append(
                {
                    "symbol": symbol,
                    "bid": quote.bid if quote else None,
                    "ask": quote.ask if quote else None,
                    "last": quote.last if quote else None,
                    "change": None if now is None or first is None else now - first,
                    "change_pct": None if now is None or not first else (now - first) / first * 100,
                    "band": bot.luld_bands.get(symbol),
                    "halted": bot.halted_symbols.get(symbol),
                    "arm": ""
                    if arm is None
                    else f"{arm['strategy']} {arm['timeframe']} ({arm['entries']}/{arm['entries_allowed']})",
                }
            )
        return rows

    def _render_day(self) -> str:
        day = self.day()
        exits: dict[str, float] = {}
        if day is not None:  # each trade's exit: its legs' prices, weighted by their shares
            sold: dict[str, list[float]] = {}
            for leg in day.legs:
                total = sold.setdefault(leg.trade_id, [0.0, 0.0])
                total[0] += leg.exit_price * leg.qty
                total[1] += leg.qty
            exits = {trade_id: value / qty for trade_id, (value, qty) in sold.items() if qty}
        return render("_day.html", day=day, day_exits=exits, tz=self.bot.settings.tz)

    def day(self) -> DayStats | None:
        """Today's closed trades with their P&L and R, by strategy: read from the journal only
        when a trade closed since (never per quote)."""
        bot = self.bot
        key = (bot.counters.trades_closed, bot.book.day, bot.journal_unfolded == 0)
        if key != self._day_key:
            self._day_key = key
            journal = bot.journal
            self._day = None
            if journal is not None and bot.book.day is not None:
                day = bot.book.day.isoformat()
                self._day = day_stats(journal.trades(), journal.legs(), day, bot.settings.tz)
        return self._day

    def equity_svg(self) -> str:
        """The day's P&L curve: realised after each leg, then the total now. Drawn again when a
        leg closes, and every EQUITY_REDRAW_S for the total now, so the stream does not resend it."""
        status = self.bot.risk_status()
        now = self.bot.clock.now()  # a paced replay draws on its own time
        total = float(status["total"])  # type: ignore[arg-type]
        # A leg closed, or EQUITY_REDRAW_S passed: never per quote (a pygal drawing costs about
        # 2 ms of the engine's loop; the open trades' P&L moves with every quote).
        key = (len(self.feed.equity), int(time.monotonic() // EQUITY_REDRAW_S), self.bot.book.day)
        if key == self._equity_key:
            return self._equity_svg
        book = self.bot.book
        today = [p for p in self.feed.equity if book.day is None or book.trading_day(p[0]) == book.day]
        points = [*today, (now, total)]
        chart = pygal.DateTimeLine(
            width=640,
            height=220,
            show_legend=False,
            show_dots=False,
            x_label_rotation=0,
            x_value_formatter=lambda t: t.astimezone(self.bot.settings.tz).strftime("%H:%M:%S"),
            js=[],
            disable_xml_declaration=True,
            style=CHART_STYLE,
            value_formatter=money,
            title=None,
        )
        chart.add("P&L", points if len(points) > 1 else [points[0], points[0]])
        self._equity_key, self._equity_svg = key, svg_of(chart)
        return self._equity_svg

    def panels(self) -> list[Panel]:
        if self.bot.hooks is None:
            return []
        panels: list[Panel] = []
        for result in self.bot.hooks.collect("dashboard_panels", bot=self.bot):
            panels.extend(p for p in result if isinstance(p, Panel))
        return panels

    def _state(self) -> tuple[object, ...]:
        """A cheap fingerprint of what the fragments show (the clock's second while positions run)."""
        bot = self.bot
        source = bot.source.status() if bot.source is not None else None
        return (
            bot.counters.quotes,
            bot.counters.rejected_quotes,
            bot.counters.orders,
            len(bot.open_trades),
            tuple(t.unconfirmed for t in bot.open_trades.values()),
            bot.book.halt,
            bot.book.day,
            bot.journal_unfolded == 0,
            tuple(self.watch),
            tuple(bot.last_quotes[s] for s in self.watch if s in bot.last_quotes),
            bot.arms_fingerprint,
            bot.journal_pending,
            bot.stale_quotes,
            int(time.monotonic()) if bot.open_trades or source is not None else 0,
            None if source is None else (source.connected, source.symbols, source.messages, source.detail),
            int(time.time() // 60),  # the equity curve's "now"
        )

    async def stream(
        self, request: Request, seen: int, closing: anyio.Event | None = None, page: str = ""
    ) -> AsyncIterator[ServerSentEvent]:
        """Fragments as they change, and log entries after ``seen`` (what the page already shows)."""
        last: dict[str, str] = {}
        drawn: tuple[object, ...] = ()
        charted: tuple[object, ...] = ()  # what this page's chart was last sent (its fingerprint)
        charted_orders: tuple[object, ...] = ()
        headers = {k.lower(): v for k, v in request.headers.raw}
        while not await request.is_disconnected() and not (closing is not None and closing.is_set()):
            if not self.sessions.allows(headers):
                return  # signed out, or the session expired: the stream ends with it
            # Drawing takes about 0.5 ms of the engine's loop (20 positions): only when something
            # it shows may have moved.
            state = self._state()
            if state != drawn:
                drawn = state
                if state != self._drawn_state:  # one draw for every connected page
                    self._drawn_state, self._drawn = state, self.fragments()
                for name, html in self._drawn.items():
                    if last.get(name) != html:
                        last[name] = html
                        yield ServerSentEvent(data=html, event=name)
            chart = self.charts.get(page)
            if chart is not None:
                # At most once per look (REFRESH_S), never per quote: the symbol's version moves
                # with every price, the lines with its trade and its arm.
                update = chart_update(self.bot, *chart)
                bot = self.bot
                mark: tuple[object, ...] = (
                    chart,
                    bot.charts.version(chart[0]),
                    tuple(update["lines"].items()),
                )
                orders = (bot.counters.orders, bot.journal_unfolded == 0)
                if orders != charted_orders:  # an order was journaled: the markers anew
                    charted_orders = orders
                    first = bot.charts.last(chart[0], chart[1], 1)
                    since = bot.charts.candles(chart[0], chart[1])[0].start if first else None
                    update["markers"] = chart_markers(bot, chart[0], chart[1], since)
                    mark = (*mark, orders)
                if mark != charted:
                    charted = mark
                    # Escaped: it is swapped into the page as text, and read back as JSON.
                    yield ServerSentEvent(data=escape(json.dumps(update)), event="chart")
            new = self.feed.since(seen)
            if new:
                seen = new[-1].seq
                html = render("_log.html", entries=reversed(new), tz=self.bot.settings.tz)
                # The id comes back as Last-Event-ID when the browser reconnects by itself.
                yield ServerSentEvent(data=html, event="log", id=f"{BOOT}-{seen}")
            self.feed.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH_S):  # not wait_for: it can lose a cancel (3.11)
                    await self.feed.changed.wait()

    # -- routes ---------------------------------------------------------------------------

    def routes(self, app: FastAPI) -> None:
        app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
        sessions = self.sessions

        def allowed(request: Request) -> bool:
            return sessions.allows({k.lower(): v for k, v in request.headers.raw})

        @app.get("/", response_class=HTMLResponse, include_in_schema=False)
        async def page(request: Request) -> Response:
            if not allowed(request):
                return RedirectResponse(LOGIN_PATH, status_code=303)
            return HTMLResponse(
                render(
                    "dashboard.html",
                    bot=self.bot,
                    fragments=self.fragments(),
                    entries=list(reversed(self.feed.entries)),
                    since=f"{BOOT}-{self.feed.entries[-1].seq if self.feed.entries else 0}",
                    panels=self.panels(),
                    tz=self.bot.settings.tz,
                    signed_in=sessions.required,
                    strategies=self.strategies,
                    page_id=secrets.token_hex(8),
                )
            )

        @app.get(LOGIN_PATH, response_class=HTMLResponse, include_in_schema=False)
        async def login_page() -> Response:
            if not sessions.required:
                return RedirectResponse("/", status_code=303)
            return HTMLResponse(render("login.html", error=None))

        @app.post(LOGIN_PATH, response_class=HTMLResponse, include_in_schema=False)
        async def login(request: Request) -> Response:
            token = await _field(request, "token")
            if not sessions.required:
                return RedirectResponse("/", status_code=303)
            client = client_key(request.scope)
            locked = sessions.locked_for(client)
            if locked > 0:
                # Checked again here, the body read: many sign-ins sent at once all passed the
                # check made on their headers before the first of them was counted.
                return HTMLResponse(
                    render("login.html", error="Too many wrong tokens: try again shortly."),
                    status_code=429,
                    headers={"Retry-After": str(math.ceil(locked))},
                )
            if not sessions.token_matches(token):
                if token:  # an empty form is no guess
                    sessions.failed(client)
                return HTMLResponse(render("login.html", error="That is not the API token."), status_code=401)
            sessions.succeeded(client)
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(SESSION_COOKIE, sessions.open(), httponly=True, samesite="strict", path="/")
            return response

        @app.post(LOGOUT_PATH, include_in_schema=False)
        async def logout(request: Request) -> Response:
            """Sign out: this browser's session ends now; the token is asked for again."""
            sessions.close(request.headers.get("cookie"))
            response = RedirectResponse(LOGIN_PATH if sessions.required else "/", status_code=303)
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
            return response

        @app.get("/events", include_in_schema=False)
        async def events(request: Request, since: str = "", page: str = "") -> Response:
            """Server-Sent Events: the dashboard's fragments, as they change (``page``: the page's
            id, for what its own chart shows)."""
            # On shutdown the library sets the event and the stream ends its response cleanly.
            closing = anyio.Event()
            return EventSourceResponse(
                self.stream(request, _since(request, since), closing, page[:32]),
                ping=15,
                shutdown_event=closing,
                shutdown_grace_period=2,
            )

        @app.post("/ui/close", response_class=HTMLResponse, include_in_schema=False)
        async def close(request: Request) -> Response:
            symbol = await _field(request, "symbol")
            response = self._act(
                lambda: self.bot.apply(Close(symbol, self.bot.clock.now())), f"{symbol} closed"
            )
            if symbol in self.bot.held_exits and symbol in self.bot.open_trades:
                text = f"{symbol} is halted: the close is held; it goes at the first quote after the resume"
                return HTMLResponse(render("_said.html", ok=True, text=text))
            return response

        @app.post("/ui/confirm", response_class=HTMLResponse, include_in_schema=False)
        async def confirm(request: Request) -> Response:
            symbol = await _field(request, "symbol")
            sent = {"yes": True, "no": False}.get(await _field(request, "exits_sent"))
            return self._act(lambda: self.bot.confirm_trade(symbol, sent), f"{symbol} confirmed")

        @app.post("/ui/discard", response_class=HTMLResponse, include_in_schema=False)
        async def discard(request: Request) -> Response:
            symbol = await _field(request, "symbol")
            return self._act(lambda: self.bot.discard_trade(symbol), f"{symbol} discarded, nothing sent")

        @app.post("/ui/chart", include_in_schema=False)
        async def chart(request: Request) -> Response:
            """The chart's symbol and timeframe: its candles now (as ``GET /candles``), its updates
            then over the event stream."""
            fields = await _fields(request)
            symbol, timeframe, page = (
                fields.get("symbol", ""),
                fields.get("timeframe") or "1m",
                fields.get("page", ""),
            )
            if not SYMBOL.fullmatch(symbol):
                return JSONResponse(status_code=422, content={"error": f"symbol {symbol!r} is not a ticker"})
            if timeframe not in CHART_TIMEFRAMES:
                return JSONResponse(
                    status_code=422,
                    content={"error": f"timeframe {timeframe!r}: one of {', '.join(CHART_TIMEFRAMES)}"},
                )
            self.charts[page[:32]] = (symbol, timeframe)
            self.charts.move_to_end(page[:32])
            while len(self.charts) > CHARTS_KEPT:  # pages long gone
                self.charts.popitem(last=False)
            self.feed.changed.set()
            return JSONResponse(chart_data(self.bot, symbol, timeframe))

        @app.post("/ui/watch", response_class=HTMLResponse, include_in_schema=False)
        async def watch(request: Request) -> Response:
            """Add a symbol to the page's watchlist (and to a live source's, subscribed at once)."""
            symbol = await _field(request, "symbol")
            if not SYMBOL.fullmatch(symbol):
                return HTMLResponse(render("_said.html", ok=False, text=f"{symbol!r} is not a symbol"))
            if symbol not in self.watch:
                if len(self.watch) >= WATCH_MOST:
                    return HTMLResponse(render("_said.html", ok=False, text=f"at most {WATCH_MOST} symbols"))
                self.watch.append(symbol)
            if self.bot.watchlist is not None:
                self.bot.watchlist.add(symbol)
            self.feed.changed.set()
            return HTMLResponse(render("_said.html", ok=True, text=f"{symbol}: watched"))

        @app.post("/ui/unwatch", response_class=HTMLResponse, include_in_schema=False)
        async def unwatch(request: Request) -> Response:
            symbol = await _field(request, "symbol")
            if symbol in self.watch:
                self.watch.remove(symbol)
            self.bot.unwatch(symbol)  # the live source stops it, unless a trade or an arm needs it
            self.feed.changed.set()
            return HTMLResponse(render("_said.html", ok=True, text=f"{symbol}: no longer watched"))

        @app.post("/ui/trade", response_class=HTMLResponse, include_in_schema=False)
        async def trade(request: Request) -> Response:
            """The order ticket: an entry as POST /trades makes it (every limit applies)."""
            fields = await _fields(request)
            symbol = fields.get("symbol", "")
            if not SYMBOL.fullmatch(symbol):
                return HTMLResponse(render("_said.html", ok=False, text=f"{symbol!r} is not a symbol"))
            try:
                # Plain digits only: int() and float() also read "1_000" and other scripts' digits,
                # which would buy what the ticket does not show.
                qty = int(_plain(fields.get("qty", ""), whole=True)) if fields.get("qty") else None
                risk = float(_plain(fields["risk"])) if fields.get("risk") and qty is None else None
                tp1, tp2, stop = (float(_plain(fields.get(k, ""))) for k in ("tp1", "tp2", "stop"))
            except ValueError:
                return HTMLResponse(
                    render("_said.html", ok=False, text="qty, TP1, TP2 and stop must be numbers")
                )
            order = Open(symbol, qty, tp1, tp2, stop, self.bot.clock.now(), risk)
            if self.bot.watchlist is not None:
                self.bot.watchlist.add(symbol)
            return self._act(lambda: self.bot.apply(order), f"{symbol}: entry sent")

        @app.post("/ui/arm", response_class=HTMLResponse, include_in_schema=False)
        async def arm(request: Request) -> Response:
            fields = await _fields(request)
            symbol, strategy, timeframe = (fields.get(k, "") for k in ("symbol", "strategy", "timeframe"))
            if not SYMBOL.fullmatch(symbol):
                return HTMLResponse(render("_said.html", ok=False, text=f"{symbol!r} is not a symbol"))
            if self.bot.watchlist is not None:
                self.bot.watchlist.add(symbol)  # a live source streams it at once, as POST /arm does
            params: dict[str, object] = {}
            if fields.get("level"):
                try:
                    params["level"] = float(fields["level"])
                except ValueError:
                    return HTMLResponse(render("_said.html", ok=False, text="level must be a price"))
            event = Arm(symbol, strategy, timeframe, self.bot.clock.now(), params)
            return self._act(lambda: self.bot.apply(event), f"{symbol}: armed with {strategy} {timeframe}")

        @app.post("/ui/disarm", response_class=HTMLResponse, include_in_schema=False)
        async def disarm(request: Request) -> Response:
            symbol = await _field(request, "symbol")
            return self._act(
                lambda: self.bot.apply(Disarm(symbol, self.bot.clock.now())), f"{symbol}: disarmed"
            )

        @app.post("/ui/kill", response_class=HTMLResponse, include_in_schema=False)
        async def kill() -> Response:
            return self._act(lambda: self.bot.apply(Kill(self.bot.clock.now())), "kill switch pressed")

        @app.post("/ui/resume", response_class=HTMLResponse, include_in_schema=False)
        async def resume() -> Response:
            return self._act(lambda: self.bot.apply(Resume(self.bot.clock.now())), "entries allowed again")

    def _act(self, action: Any, done: str) -> Response:
        try:
            action()
        except TradeRefused as exc:
            text = f"{exc} (refused by {exc.rule})" if exc.rule else str(exc)
            return HTMLResponse(render("_said.html", ok=False, text=text))
        self.feed.changed.set()
        return HTMLResponse(render("_said.html", ok=True, text=done))


def _since(request: Request, since: str) -> int:
    """The last log entry the page has: Last-Event-ID on a reconnect, else ``?since=``; one from
    another run of the server (a restart) counts as none."""
    mark = request.headers.get("last-event-id") or since
    run, _, seq = mark.partition("-")
    if run != BOOT or not seq.isdigit():
        return 0
    return int(seq)


def _plain(text: str, *, whole: bool = False) -> str:
    """``text`` if it is a plain number (ASCII digits, a dot for a price); ValueError otherwise."""
    if not (WHOLE if whole else DECIMAL).fullmatch(text):
        raise ValueError(text)
    return text


async def _fields(request: Request) -> dict[str, str]:
    """Every field of a posted form, trimmed (the first value of each)."""
    body = (await request.body()).decode("utf-8", "replace")
    return {name: values[0].strip() for name, values in parse_qs(body).items()}


async def _field(request: Request, name: str) -> str:
    """One field of a posted form (``application/x-www-form-urlencoded``, as htmx and browsers send)."""
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qs(body).get(name, [""])[0].strip()


def _source(bot: Engine) -> dict[str, Any] | None:
    if bot.source is None:
        return None
    return {"name": bot.source.name, **attrs.asdict(bot.source.status())}


def _seed_log(feed: EventFeed, bot: Engine) -> None:
    """The day's events and alerts from before a restart, oldest first, marked as such."""
    journal = bot.journal
    if journal is None or journal.in_memory or bot.book.day is None:
        return
    day, book = bot.book.day, bot.book
    earlier: list[tuple[datetime, str, str, str | None]] = []
    for trade in journal.trades():
        if book.trading_day(trade.opened_at) == day:
            text = f"{trade.symbol}: bought {trade.qty} at {price(trade.entry_price)}"
            earlier.append((trade.opened_at, "event", text, trade.symbol))
    for leg in journal.legs():
        if book.trading_day(leg.closed_at) == day:
            text = f"{leg.symbol}: sold {leg.qty} at {price(leg.exit_price)} ({leg.reason}, {money(leg.pnl)})"
            earlier.append((leg.closed_at, "event", text, leg.symbol))
    for alert in bot.earlier_alerts:
        earlier.append((alert.ts, "alert", f"{alert.kind}: {alert.message}", alert.symbol))
    for ts, kind, text, symbol in sorted(earlier, key=lambda e: e[0]):
        feed.add(kind, text + " (before the restart)", symbol, ts)


def _equity_from_journal(bot: Engine) -> list[tuple[datetime, float]]:
    """Today's realised P&L after each leg already in the journal (a restart mid-day)."""
    journal = bot.journal
    if journal is None or bot.book.day is None:
        return []
    day = bot.book.day
    legs = sorted(
        (leg for leg in journal.legs() if bot.book.trading_day(leg.closed_at) == day),
        key=lambda leg: leg.closed_at,
    )
    total = 0.0
    points = []
    for leg in legs:
        total += leg.pnl
        points.append((leg.closed_at, round(total, 6)))
    return points
