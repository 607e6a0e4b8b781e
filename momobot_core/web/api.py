"""The HTTP API of ``momobot serve``: the engine and FastAPI on one event loop.

Every handler is ``async def`` and calls the engine without awaiting, so
requests and quotes are applied one at a time on the loop's thread: two close
requests for one symbol close it once, and nothing interleaves inside a trade
update. Plugins hear every event exactly as in a replay; a plugin doing network
I/O (hotkey_ws) defers it past the handler, so no response waits on it.

What is decided before a body is read (Host, Origin, token, size) is in
:mod:`momobot_core.web.guard`. Every error, unknown routes included, is JSON
``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import attrs
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from momobot_core import __version__
from momobot_core.engine import ALERTS_KEPT, MAX_PRICE, MAX_QTY, Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Arm, Close, Disarm, Kill, Leg, Open, Quote, Resume, Trade
from momobot_core.report import tradervue_csv
from momobot_core.web.chart import chart_data
from momobot_core.web.dashboard import Dashboard
from momobot_core.web.guard import SESSION_HOURS, RequestGuard, Sessions, client_key
from momobot_core.web.ticket import ticket

TOKEN_ENV = "MOMOBOT_API_TOKEN"
log = logging.getLogger("momobot.api")

Price = Annotated[float, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False)]
#: A ticker as brokers and feeds write them (BRK.B, BF-B, BRK/B): no spaces, controls or quotes.
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9./^+-]{0,31}$", examples=["ABCD"])]


class OpenTradeBody(BaseModel):
    # Exactly one of qty and risk, as the engine requires; neither may be null (leave it out).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["qty"]}, {"required": ["risk"]}]},
    )
    symbol: Symbol
    qty: int = Field(default=None, ge=1, le=MAX_QTY, strict=True, examples=[100])  # type: ignore[assignment]
    risk: float = Field(  # type: ignore[assignment]
        default=None,
        strict=True,
        gt=0,
        le=MAX_PRICE,
        allow_inf_nan=False,
        description="Dollars to lose at the stop, instead of qty: the engine sizes the entry.",
        examples=[50],
    )
    tp1: Price = Field(examples=[2.2])
    tp2: Price = Field(examples=[2.4])
    stop: Price = Field(examples=[1.9])


class SymbolBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: Symbol


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: Symbol
    exits_sent: bool = Field(  # type: ignore[assignment]
        default=None,
        strict=True,
        description=(
            "Only for a trade whose exit went out but could not be recorded: true if your broker"
            " shows it done (it is recorded as sent; nothing is sent), false if not (the trade"
            " resumes as before it). Leave it out otherwise."
        ),
    )


class ArmBody(BaseModel):
    # The strategy's own fields (level) and the arm's bracket overrides (qty, risk, tp1, tp2,
    # stop, tp1_r, tp2_r, entries, cooldown_s) sit beside these, as in a recording's arm event.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"symbol": "ABCD", "strategy": "level", "timeframe": "1m", "level": 5.2}]
        },
    )
    symbol: Symbol
    strategy: str = Field(min_length=1, max_length=64, examples=["pullback"])
    timeframe: str = Field(min_length=2, max_length=8, examples=["1m"])


class SignalBody(BaseModel):
    """An outside entry signal; a TradingView alert's JSON works as is (its other fields are
    ignored). ``ticker`` or ``symbol``; ``passphrase`` or ``secret``."""

    model_config = ConfigDict(extra="allow")
    secret: str | None = Field(default=None, max_length=256)
    passphrase: str | None = Field(default=None, max_length=256)
    ticker: Symbol | None = None
    symbol: Symbol | None = None
    id: StrictStr | StrictInt | None = Field(
        default=None, description="The alert's id (at most 128 characters): an id seen before is refused."
    )
    time: datetime | None = Field(default=None, description="When the alert fired; too old is refused.")
    action: str | None = Field(default=None, max_length=16, examples=["buy"])
    stop: Price | None = Field(default=None, description='The pattern\'s stop, for stop = "pattern".')


class WatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbols: list[Symbol] = Field(min_length=1, max_length=200, examples=[["ABCD", "WXYZ"]])


class QuoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: Symbol
    bid: Price
    ask: Price
    last: Price | None = None
    ts: datetime | None = Field(default=None, description="Event time; default: now (UTC).")
    last_at: datetime | None = Field(
        default=None,
        description=(
            "When the `last` print happened. Left out, a `last` equal to the symbol's previous"
            " quote's is the same print (a snapshot repeats the last trade), and a new one is"
            " printed at `ts`."
        ),
    )


def response_model(cls: type, name: str) -> type[BaseModel]:
    """The JSON shape of a domain value, read off its attrs fields: one definition, not two."""
    attrs.resolve_types(cls)
    fields: dict[str, Any] = {
        f.name: (f.type, ... if f.default is attrs.NOTHING else f.default) for f in attrs.fields(cls)
    }
    return create_model(name, __doc__=cls.__doc__, **fields)


TradeOut = response_model(Trade, "TradeOut")
LegOut = response_model(Leg, "LegOut")


class PositionOut(TradeOut):  # type: ignore[valid-type, misc]
    bid: float | None = Field(description="Last bid: what the remaining shares would sell at.")
    ask: float | None
    last: float | None
    quote_time: datetime | None
    unrealised_pnl: float | None = Field(description="(bid - entry price) x remaining.")


class QuoteOut(BaseModel):
    accepted: bool
    symbol: str
    ts: datetime


class Problem(BaseModel):
    error: str


class AlertOut(BaseModel):
    kind: str
    message: str
    symbol: str | None
    ts: datetime
    detail: dict[str, Any]


def _trade_out(trade: Trade) -> dict[str, Any]:
    # The response model keeps the fields it declares and drops the rest.
    return attrs.asdict(trade, recurse=False)


_STATUS = {
    "unknown_symbol": 404,
    "no_position": 404,
    "already_open": 409,
    "not_halted": 409,
    "halted": 409,
    # Levels that are sound on their own but not at the current ask: a conflict with the
    # market's state, as a quote's ts at odds with the clock is (the same body may pass later).
    "market": 409,
    # A confirm that needs the person's word on an exit that went out unrecorded.
    "lost_exit": 409,
    "not_armed": 409,
    "duplicate": 409,
    "invalid": 422,
    "journal": 503,
}


def _acted(action: Callable[[], object]) -> Any:
    """The trade an action returns, or the JSON error its refusal maps to."""
    try:
        trade = action()
    except TradeRefused as exc:
        return _refused(exc)
    assert isinstance(trade, Trade)
    return _trade_out(trade)


def _source_status(engine: Engine) -> dict[str, Any] | None:
    if engine.source is None:
        return None
    return {"name": engine.source.name, **attrs.asdict(engine.source.status())}


def _refused(exc: TradeRefused) -> JSONResponse:
    if exc.rule is not None:
        return JSONResponse(status_code=403, content={"error": str(exc), "rule": exc.rule})
    return _problem(_STATUS.get(exc.kind, 409), str(exc))


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def build_app(
    engine: Engine,
    journal: Journal,
    token: str | None = None,
    *,
    allowed_hosts: Iterable[str] = ("127.0.0.1", "localhost", "[::1]"),
    max_quote_skew_s: float = 2.0,
    session_hours: float = SESSION_HOURS,
    signal_secret: str | None = None,
    signal_max_age_s: float = 60.0,
) -> RequestGuard:
    """The API for one running engine, behind its request guard.

    The caller owns start-up and shutdown of the engine and the journal.
    """
    app = FastAPI(
        title="MomoBot", version=__version__, description="Bracket trades of the running MomoBot engine."
    )
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 422, 503)
    }

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(422, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {
            404: f"no such endpoint: {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, str(exc.detail))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Every method the path answers to (Starlette names only the first route's).
            methods = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path == request.url.path
                for method in route.methods or ()
            }
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=headers or None)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Still JSON, and logged with the traceback: a bug, never the user's fault.
        log.exception("%s %s failed", request.method, request.url.path)
        return _problem(500, f"internal error ({type(exc).__name__}); see the server's log")

    plugins = engine.hooks.pm.list_name_plugin() if engine.hooks is not None else []

    @app.get("/ping")
    async def ping() -> dict[str, Any]:
        """Health: mode, time, the journal, whether entries are halted, and plugins' link states."""
        # A plugin with a status() method (hotkey_ws: its links) shows it here.
        links = {}
        for name, plugin in plugins:
            status = getattr(plugin, "status", None)
            if callable(status):
                links[name] = status()
        return {
            "status": "ok",
            "mode": engine.mode,
            "time": datetime.now(UTC),
            "open_trades": len(engine.open_trades),
            "unconfirmed": sorted(t.symbol for t in engine.open_trades.values() if t.unconfirmed),
            "journal": engine.journal_state,
            "halted": engine.entries_halted,
            "risk": engine.risk_status(),
            "source": _source_status(engine),
            "market": engine.session_now(),
            "halted_symbols": dict(engine.halted_symbols),
            "held_exits": dict(engine.held_exits),
            "luld_bands": {s: {"lower": lo, "upper": up} for s, (lo, up) in engine.luld_bands.items()},
            "plugins": links,
        }

    @app.get("/alerts", response_model=list[AlertOut])
    async def alerts() -> list[dict[str, Any]]:
        """The day's alerts (the newest last): this run's, after earlier ones from the journal."""
        day = [*engine.earlier_alerts, *engine.alerts][-ALERTS_KEPT:]
        return [attrs.asdict(alert) for alert in day]

    @app.get("/positions", response_model=list[PositionOut])
    async def positions() -> list[dict[str, Any]]:
        """Open trades with the symbol's last quote and unrealised P&L at the bid."""
        rows = []
        for trade in engine.open_trades.values():
            quote = engine.last_quotes.get(trade.symbol)
            row = _trade_out(trade)
            row.update(
                bid=quote.bid if quote else None,
                ask=quote.ask if quote else None,
                last=quote.last if quote else None,
                quote_time=quote.ts if quote else None,
                unrealised_pnl=round((quote.bid - trade.entry_price) * trade.remaining, 6) if quote else None,
            )
            rows.append(row)
        return rows

    @app.post("/watch", responses=errors)
    async def watch(body: WatchBody) -> Any:
        """Have the live source stream these symbols too."""
        if engine.watchlist is None:
            return _problem(409, "no live source is running (momobot serve --source NAME)")
        added = [symbol for symbol in body.symbols if engine.watchlist.add(symbol)]
        return {"added": added, "watchlist": list(engine.watchlist)}

    @app.get("/candles", responses=errors)
    async def candles(symbol: Symbol, timeframe: Literal["10s", "1m", "5m"] = "1m") -> Any:
        """A symbol's candles for a chart (the last 500 and the one forming), and the lines to
        draw on it: its open trade's entry, TP1, TP2 and stop, and its arm's breakout level.
        Asking charts the symbol from now on (armed and traded symbols are charted already);
        the dashboard's event stream then sends its updates."""
        return chart_data(engine, symbol, timeframe)

    @app.get("/ticket", responses=errors)
    async def ticket_prefill(symbol: Symbol, strategy: str | None = None) -> Any:
        """An order ticket pre-filled from ``[bracket]`` (``strategy``: its own table) around the
        current ask, on the tick: quantity, TP1, TP2, stop, the entry's risk in dollars, and what
        today's ``max_daily_loss`` leaves (``budget``, null without the limit). 404 without a quote."""
        try:
            return ticket(engine, symbol, strategy)
        except TradeRefused as exc:
            return _refused(exc)

    @app.get("/arms")
    async def arms() -> list[dict[str, Any]]:
        """What is armed, and each arm's live state (current candle, level, entries used)."""
        return engine.arms

    @app.post("/arm", status_code=201, responses=errors)
    async def arm(body: ArmBody) -> Any:
        """Arm a symbol with a strategy at a timeframe (docs/strategies.md); arming it again
        replaces the arm. With a live source the symbol is added to the watchlist."""
        params = dict(body.model_extra or {})
        try:
            engine.apply(Arm(body.symbol, body.strategy, body.timeframe, engine.clock.now(), params))
        except TradeRefused as exc:
            return _refused(exc)
        if engine.watchlist is not None:
            engine.watchlist.add(body.symbol)
        return next(a for a in engine.arms if a["symbol"] == body.symbol)

    @app.post("/disarm", responses=errors)
    async def disarm(body: SymbolBody) -> Any:
        """Stop a symbol's strategy (an open trade keeps its exits)."""
        try:
            engine.apply(Disarm(body.symbol, engine.clock.now()))
        except TradeRefused as exc:
            return _refused(exc)
        return {"disarmed": body.symbol}

    @app.post("/signals", status_code=201, responses=errors)
    async def signals(body: SignalBody, request: Request) -> Any:
        """An entry signal from outside (a TradingView alert): the shared secret in the body
        (``[api] signal_secret``) instead of the API token. Refused with a reason: a wrong
        secret (401), a symbol not armed with ``signal``, an id seen before, an alert older
        than ``[api] signal_max_age_s`` (409), a sell (422)."""
        expected = signal_secret
        if expected is None:
            return _problem(403, "signals are off: set [api] signal_secret (or MOMOBOT_API_SIGNAL_SECRET)")
        # Wrong secrets count toward the same lockout as wrong tokens: a guesser waits.
        client = client_key(request.scope)
        locked = sessions.locked_for(client)
        wait = math.ceil(locked)
        if locked > 0:
            return JSONResponse(
                status_code=429,
                content={
                    "error": f"too many wrong secrets or tokens from this address: try again in {wait} s"
                },
                headers={"Retry-After": str(wait)},
            )
        given = body.secret if body.secret is not None else body.passphrase
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            sessions.failed(client)
            return _problem(401, "wrong or missing secret (the body's secret or passphrase)")
        sessions.succeeded(client)
        symbol = body.symbol or body.ticker or ""
        if not symbol:
            return _problem(422, "give the symbol (symbol or ticker)")
        if body.action is not None and body.action.lower() not in ("buy", "long", "enter"):
            return _problem(422, f"action {body.action!r}: signals open long entries only (buy)")
        now = datetime.now(UTC)
        if isinstance(body.id, str) and len(body.id) > 128:
            return _problem(422, "id: at most 128 characters")
        if body.time is not None:
            # A time without an offset is the exchange's, as in POST /quotes and recordings.
            fired = (
                body.time if body.time.tzinfo is not None else body.time.replace(tzinfo=engine.settings.tz)
            )
            age = (now - fired).total_seconds()
            if age < -max_quote_skew_s:
                return _problem(
                    409,
                    f"{symbol}: the alert's time {fired.isoformat()} is {-age:.0f} s in the future"
                    f" (more than [api] max_quote_skew_s {max_quote_skew_s:g} s): check its clock",
                )
            if age > signal_max_age_s:
                return _problem(
                    409,
                    f"{symbol}: the alert fired {age:.0f} s ago, more than [api] signal_max_age_s"
                    f" ({signal_max_age_s:g} s): a stale signal is not traded",
                )
        try:
            trade = engine.signal(
                symbol,
                stop=body.stop,
                alert_id=None if body.id is None else str(body.id),
                reason="POST /signals",
            )
        except TradeRefused as exc:
            return _refused(exc)
        if isinstance(trade, str):
            return JSONResponse(status_code=200, content={"taken": False, "reason": trade})
        return {"taken": True, "trade": _trade_out(trade)}

    @app.post("/trades", status_code=201, response_model=TradeOut, responses=errors)
    async def open_trade(body: OpenTradeBody) -> Any:
        """Open a bracket trade: an entry buy of qty at the symbol's current ask.

        With a live source, a symbol that has no quote yet is added to the
        watchlist and its first quote awaited (``[momobot] quote_wait_s``).
        """
        watchlist = engine.watchlist
        if watchlist is not None and body.symbol not in engine.last_quotes:
            watchlist.add(body.symbol)
            wait = engine.settings.quote_wait_s
            if not await engine.wait_for_quote(body.symbol, wait):
                return _problem(
                    404,
                    f"{body.symbol}: no quote from the live source within {wait:g} s"
                    " ([momobot] quote_wait_s): is the symbol right?",
                )
        return _acted(
            lambda: engine.apply(
                Open(body.symbol, body.qty, body.tp1, body.tp2, body.stop, engine.clock.now(), body.risk)
            )
        )

    @app.post("/kill", response_model=list[TradeOut], responses=errors)  # type: ignore[valid-type]
    async def kill() -> Any:
        """The kill switch: flatten every open trade at the bid; entries halt for the day.

        Answers the trades it flattened (none open: an empty list; the halt still holds).
        """
        try:
            trades = engine.apply(Kill(engine.clock.now()))
        except TradeRefused as exc:
            return _refused(exc)
        assert isinstance(trades, list)
        return [_trade_out(trade) for trade in trades]

    @app.post("/resume", responses=errors)
    async def resume() -> Any:
        """Allow entries again after the kill switch (not after the daily loss limit or a losing streak)."""
        try:
            engine.apply(Resume(engine.clock.now()))
        except TradeRefused as exc:
            return _refused(exc)
        return {"resumed": True, "risk": engine.risk_status()}

    @app.post(
        "/close-position",
        response_model=TradeOut,
        responses={
            **errors,
            202: {
                "model": TradeOut,
                "description": "The symbol is halted: the exit is held and goes out at the first"
                " quote after the resume; the trade, still open.",
            },
        },
    )
    async def close_position(body: SymbolBody) -> Any:
        """Manual close: sell what remains at the bid (held while the symbol is halted: 202)."""
        answer = _acted(lambda: engine.apply(Close(body.symbol, engine.clock.now())))
        if isinstance(answer, dict) and answer["closed_at"] is None and body.symbol in engine.held_exits:
            held = TradeOut.model_validate(answer).model_dump(mode="json")
            return JSONResponse(status_code=202, content=held)
        return answer

    @app.post("/confirm", response_model=TradeOut, responses=errors)
    async def confirm(body: ConfirmBody) -> Any:
        """A person checked the broker: watch (and mirror) an unconfirmed trade again."""
        return _acted(lambda: engine.confirm_trade(body.symbol, body.exits_sent))

    @app.post("/discard", response_model=TradeOut, responses=errors)
    async def discard(body: SymbolBody) -> Any:
        """An unconfirmed trade whose entry never reached the broker: close it in the journal and
        send nothing (``close-position`` would send a sell for shares the broker never bought)."""
        return _acted(lambda: engine.discard_trade(body.symbol))

    @app.post("/quotes", response_model=QuoteOut, responses=errors)
    async def post_quote(body: QuoteBody) -> Any:
        """Feed a quote from any source; it is acted on at once."""
        now = datetime.now(UTC)
        ts = body.ts or now
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=engine.settings.tz)  # the exchange's time, like recordings
        if engine.mode == "live" and abs((ts - now).total_seconds()) > max_quote_skew_s:
            # A client clock far ahead would let targets fire before min_hold_s has passed. A
            # well-formed quote at odds with the server's clock (its state): 409, as the schema says.
            return _problem(
                409,
                f"ts {ts.isoformat()} is {(ts - now).total_seconds():+.1f} s from the"
                f" server's clock: live quotes must be within {max_quote_skew_s:g} s"
                " ([api] max_quote_skew_s); leave ts out to use the server's time",
            )
        if not body.bid <= body.ask:
            engine.on_quote(Quote(body.symbol, ts, body.bid, body.ask, body.last))
            # rejected and counted like any malformed quote
            return _problem(422, f"bid {body.bid} is above ask {body.ask}")
        last_at = body.last_at
        if last_at is not None and last_at.tzinfo is None:
            last_at = last_at.replace(tzinfo=engine.settings.tz)
        if last_at is None and body.last is not None:
            before = engine.last_quotes.get(body.symbol)
            if before is not None and before.last == body.last:
                last_at = before.last_at or before.ts  # the same print, as old as it was
        engine.on_quote(Quote(body.symbol, ts, body.bid, body.ask, body.last, last_at))
        return {"accepted": True, "symbol": body.symbol, "ts": ts}

    @app.get(
        "/trades",
        response_model=list[LegOut],  # type: ignore[valid-type]
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def trades(format: Literal["json", "csv"] = "json") -> Any:
        """The journal's closed legs (JSON), or executions in TraderVue CSV (``?format=csv``)."""

        def read() -> Any:
            # A reader of its own, on a worker thread: a long journal never holds up a quote.
            with Journal(journal.path, readonly=True) as reader:
                if format == "csv":
                    return tradervue_csv(reader.executions())
                return [attrs.asdict(leg) for leg in reader.legs()]

        engine.settle_journal()  # the events of the last moment, folded before another reader looks
        if journal.in_memory:  # nothing else can open it; small by nature (a paced recording)
            data = (
                tradervue_csv(journal.executions())
                if format == "csv"
                else [attrs.asdict(leg) for leg in journal.legs()]
            )
        else:
            data = await asyncio.to_thread(read)
        if format == "csv":
            return PlainTextResponse(data, media_type="text/csv")
        return data

    sessions = Sessions(token, session_hours=session_hours)
    dashboard = Dashboard(engine, sessions)
    dashboard.routes(app)
    if engine.hooks is not None:
        engine.hooks.notify("register_routes", app=app, bot=engine)
    return RequestGuard(app, allowed_hosts=allowed_hosts, sessions=sessions)
