"""Every message of Alpaca's market data stream (v2, JSON) that MomoBot reads or writes, in one place.

Written from Alpaca's public documentation of the real-time stock stream
("Real-time Stock Data", "Websocket Streaming"): the server sends JSON arrays
of messages, several per frame; ``T`` says what each is.

* server, on connect: ``[{"T":"success","msg":"connected"}]``
* client: ``{"action":"auth","key":...,"secret":...}``
* server: ``[{"T":"success","msg":"authenticated"}]`` or
  ``[{"T":"error","code":402,"msg":"auth failed"}]``
* client: ``{"action":"subscribe","quotes":[...],"trades":[...],"statuses":[...],"lulds":[...]}``
* server: ``[{"T":"subscription","quotes":[...],"trades":[...],...}]``
* quote ``{"T":"q","S":sym,"bp":bid,"bs":..,"ap":ask,"as":..,"t":RFC 3339}``,
  trade ``{"T":"t","S":sym,"p":price,"s":size,"c":[conditions],"t":...}``,
  trading status ``{"T":"s","S":sym,"sc":code,"sm":message,...}``,
  limit-up/limit-down band ``{"T":"l","S":sym,"u":limit up,"d":limit down,"i":indicator,...}``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from momobot_core.sources.stream import QuoteMessage, TradeMessage

_decode = msgspec.json.Decoder().decode


DEFAULT_URL = "wss://stream.data.alpaca.markets/v2/{feed}"
FEEDS = ("iex", "sip", "delayed_sip", "test")
DELAYED_FEEDS = frozenset({"delayed_sip"})
#: ``feed = "test"`` streams only this symbol (Alpaca's test stream).
TEST_SYMBOL = "FAKEPACA"

#: The error codes the stream documents, and what each means for us.
ERRORS = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    408: "v2 not enabled",
    409: "insufficient subscription",
    500: "internal error",
}
#: Keys the account does not have, or may not use: before a first success this stops start-up.
AUTH_ERRORS = frozenset({401, 402, 404, 408, 409})
#: Another connection with these keys is open: wait long, never hammer.
CONNECTION_LIMIT = 406

#: Trade conditions (CTA/UTP sale condition codes) of prints that do not set the last sale price:
#: odd lots, out-of-sequence, average-price, cash, next-day, seller's option, derivatively priced,
#: qualified contingent, corrected close, price variation, official open/close, contingent,
#: prior reference price, bunched sold.
IRREGULAR = frozenset({"I", "Z", "U", "W", "C", "N", "R", "4", "7", "9", "H", "M", "Q", "V", "P", "G"})

#: Trading status codes: a halt or a volatility (limit-up/limit-down) pause begins, or trading resumes.
HALTED = frozenset({"2", "H", "P"})
RESUMED = frozenset({"3", "T"})


def auth(key: str, secret: str) -> str:
    return json.dumps({"action": "auth", "key": key, "secret": secret})


def subscribe(symbols: list[str]) -> str:
    return json.dumps(
        {"action": "subscribe", "quotes": symbols, "trades": symbols, "statuses": symbols, "lulds": symbols}
    )


def unsubscribe(symbols: list[str]) -> str:
    return json.dumps(
        {"action": "unsubscribe", "quotes": symbols, "trades": symbols, "statuses": symbols, "lulds": symbols}
    )


def messages(frame: str | bytes) -> list[dict[str, Any]]:
    """The messages of one frame (a JSON array of objects); raises ValueError for anything else."""
    data = _decode(frame)  # msgspec: half the time of json.loads (docs/PERFORMANCE.md)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("expected a JSON array of messages")
    return [item for item in data if isinstance(item, dict)]


class Quote(
    QuoteMessage, tag_field="T", tag="q", rename={"symbol": "S", "bid": "bp", "ask": "ap", "vendor": "t"}
):
    """``{"T": "q", "S": ..., "bp": ..., "ap": ..., "t": ...}``, decoded as it is (other keys skipped)."""

    # Every field again: a rename applies to the fields a class itself declares.
    symbol: str
    bid: float
    ask: float
    vendor: Any = ""


class Trade(
    TradeMessage,
    tag_field="T",
    tag="t",
    rename={"symbol": "S", "price": "p", "vendor": "t", "conditions": "c"},
):
    """``{"T": "t", "S": ..., "p": ..., "c": [...], "t": ...}``."""

    symbol: str
    price: float
    vendor: Any = None
    conditions: Any = None


#: Frames of nothing but quotes and trades, straight into structs (``StreamSource.stream_decode``).
stream_decode = msgspec.json.Decoder(list[Quote | Trade]).decode


def regular(conditions: object) -> bool:
    """A trade print that sets the last sale price (none of its conditions is irregular)."""
    if not isinstance(conditions, list):
        return True
    return not any(c in IRREGULAR for c in conditions if isinstance(c, str))


# -- what the fake server sends -----------------------------------------------------------


def success(msg: str) -> dict[str, Any]:
    return {"T": "success", "msg": msg}


def error(code: int) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": ERRORS.get(code, "error")}


def subscription(symbols: list[str]) -> dict[str, Any]:
    return {
        "T": "subscription",
        "trades": symbols,
        "quotes": symbols,
        "bars": [],
        "updatedBars": [],
        "dailyBars": [],
        "statuses": symbols,
        "lulds": symbols,
        "corrections": [],
        "cancelErrors": [],
    }


def quote(symbol: str, bid: float, ask: float, ts: str) -> dict[str, Any]:
    return {
        "T": "q",
        "S": symbol,
        "bx": "V",
        "bp": bid,
        "bs": 1,
        "ax": "V",
        "ap": ask,
        "as": 1,
        "c": ["R"],
        "z": "C",
        "t": ts,
    }


def trade(symbol: str, price: float, ts: str, conditions: list[str] | None = None) -> dict[str, Any]:
    return {
        "T": "t",
        "S": symbol,
        "i": 1,
        "x": "V",
        "p": price,
        "s": 100,
        "c": conditions or ["@"],
        "z": "C",
        "t": ts,
    }


def bar(
    symbol: str, o: float, h: float, low: float, c: float, volume: int, trades: int, ts: str
) -> dict[str, Any]:
    """A minute bar (``T`` ``b``): open, high, low, close, volume, trade count, VWAP, its start."""
    return {
        "T": "b",
        "S": symbol,
        "o": o,
        "h": h,
        "l": low,
        "c": c,
        "v": volume,
        "n": trades,
        "vw": c,
        "t": ts,
    }


def luld(symbol: str, lower: float, upper: float, ts: str) -> dict[str, Any]:
    """A limit-up/limit-down band message (``T`` ``l``: ``u`` the upper, ``d`` the lower)."""
    return {"T": "l", "S": symbol, "u": upper, "d": lower, "i": "B", "t": ts, "z": "C"}


def status(symbol: str, code: str, message: str, ts: str) -> dict[str, Any]:
    return {"T": "s", "S": symbol, "sc": code, "sm": message, "rc": "", "rm": "", "t": ts, "z": "C"}
