"""The HTTP API of ``momobot serve``: the engine and FastAPI on one event loop.

Every handler is ``async def`` and calls the engine without awaiting, so
requests and quotes are applied one at a time on the loop's thread: two close
requests for one symbol close it once, and nothing interleaves inside a trade
update. Plugins hear every event exactly as in a replay; a plugin doing network
I/O (hotkey_ws) defers it past the handler, so no response waits on it.

With ``MOMOBOT_API_TOKEN`` set, every mutating endpoint needs
``Authorization: Bearer <token>`` (compared in constant time).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

import attrs
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from momobot_core import __version__
from momobot_core.engine import Engine, TradeRefused
from momobot_core.journal import Journal
from momobot_core.models import Quote, Trade
from momobot_core.report import tradervue_csv

TOKEN_ENV = "MOMOBOT_API_TOKEN"

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class OpenTradeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(min_length=1, max_length=32, examples=["ABCD"])
    qty: int = Field(ge=1, examples=[100])
    tp1: Price = Field(examples=[2.2])
    tp2: Price = Field(examples=[2.4])
    stop: Price = Field(examples=[1.9])


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(min_length=1, max_length=32, examples=["ABCD"])


class QuoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(min_length=1, max_length=32, examples=["ABCD"])
    bid: Price
    ask: Price
    last: Price | None = None
    ts: datetime | None = Field(default=None, description="Event time; default: now (UTC).")


class TradeOut(BaseModel):
    id: str
    symbol: str
    qty: int
    remaining: int
    entry_price: float
    tp1: float
    tp2: float
    stop: float
    tp1_hit: bool
    opened_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None


class PositionOut(TradeOut):
    bid: float | None = Field(description="Last bid: what the remaining shares would sell at.")
    ask: float | None
    last: float | None
    quote_time: datetime | None
    unrealised_pnl: float | None = Field(description="(bid - entry price) x remaining.")


class QuoteOut(BaseModel):
    accepted: bool
    symbol: str
    ts: datetime


class LegOut(BaseModel):
    trade_id: str
    symbol: str
    qty: int
    entry_price: float
    exit_price: float
    pnl: float
    reason: str
    opened_at: datetime
    closed_at: datetime


class Problem(BaseModel):
    error: str


def _trade_out(trade: Trade) -> dict[str, Any]:
    # The response model keeps the fields it declares and drops the rest.
    return attrs.asdict(trade, recurse=False)


_STATUS = {"unknown_symbol": 404, "no_position": 404, "already_open": 409, "invalid": 422}


def _refused(exc: TradeRefused) -> JSONResponse:
    return _problem(_STATUS.get(exc.kind, 409), str(exc))


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def build_app(engine: Engine, journal: Journal, token: str | None = None) -> FastAPI:
    """The API for one running engine. The caller owns start-up and shutdown of both."""
    app = FastAPI(title="MomoBot", version=__version__,
                  description="Bracket trades of the running MomoBot engine.")
    errors: dict[int | str, dict[str, Any]] = {400: {"model": Problem}, 401: {"model": Problem},
                                                404: {"model": Problem}, 409: {"model": Problem},
                                                422: {"model": Problem}}

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(422, _describe_validation(exc))

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        given = (authorization or "").encode()
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            raise _Unauthorised

    @app.exception_handler(_Unauthorised)
    async def unauthorised(request: Request, exc: _Unauthorised) -> JSONResponse:
        return JSONResponse(status_code=401, content={"error": "missing or wrong API token"},
                            headers={"WWW-Authenticate": "Bearer"})

    mutating = [Depends(authorised)]

    @app.get("/ping")
    async def ping() -> dict[str, Any]:
        """Liveness, mode and time."""
        return {"status": "ok", "mode": engine.mode, "time": datetime.now(UTC),
                "open_trades": len(engine.open_trades)}

    @app.get("/positions", response_model=list[PositionOut])
    async def positions() -> list[dict[str, Any]]:
        """Open trades with the symbol's last quote and unrealised P&L at the bid."""
        rows = []
        for trade in engine.open_trades.values():
            quote = engine.last_quotes.get(trade.symbol)
            row = _trade_out(trade)
            row.update(bid=quote.bid if quote else None, ask=quote.ask if quote else None,
                       last=quote.last if quote else None, quote_time=quote.ts if quote else None,
                       unrealised_pnl=round((quote.bid - trade.entry_price) * trade.remaining, 6)
                       if quote else None)
            rows.append(row)
        return rows

    @app.post("/trades", status_code=201, response_model=TradeOut, dependencies=mutating,
              responses=errors)
    async def open_trade(body: OpenTradeBody) -> Any:
        """Open a bracket trade: an entry buy of qty at the symbol's current ask."""
        try:
            trade = engine.open_trade(body.symbol, body.qty, body.tp1, body.tp2, body.stop)
        except TradeRefused as exc:
            return _refused(exc)
        return _trade_out(trade)

    @app.post("/close-position", response_model=TradeOut, dependencies=mutating, responses=errors)
    async def close_position(body: CloseBody) -> Any:
        """Manual close: sell what remains at the bid."""
        try:
            trade = engine.close_trade(body.symbol)
        except TradeRefused as exc:
            return _refused(exc)
        return _trade_out(trade)

    @app.post("/quotes", response_model=QuoteOut, dependencies=mutating, responses=errors)
    async def post_quote(body: QuoteBody) -> Any:
        """Feed a quote from any source; it is acted on at once."""
        if not body.bid <= body.ask:
            engine.on_quote(Quote(body.symbol, body.ts or datetime.now(UTC), body.bid, body.ask,
                                  body.last))  # rejected and counted like any malformed quote
            return _problem(422, f"bid {body.bid} is above ask {body.ask}")
        ts = body.ts or datetime.now(UTC)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        engine.on_quote(Quote(body.symbol, ts, body.bid, body.ask, body.last))
        return {"accepted": True, "symbol": body.symbol, "ts": ts}

    @app.get("/trades", response_model=list[LegOut],
             responses={200: {"content": {"text/csv": {}}}})
    async def trades(format: str = "json") -> Any:
        """The journal's closed legs (JSON), or executions in TraderVue CSV (``?format=csv``)."""
        if format == "csv":
            return PlainTextResponse(tradervue_csv(journal.executions()), media_type="text/csv")
        if format != "json":
            return _problem(400, f"format {format!r}: use json or csv")
        return [attrs.asdict(leg) for leg in journal.legs()]

    return app


class _Unauthorised(Exception):
    pass
