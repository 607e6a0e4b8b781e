"""Every message of the Massive stocks stream that MomoBot reads or writes, in one place.

Written from Massive's public WebSocket documentation (stocks: quotes, trades,
LULD; the status messages): the server sends JSON arrays of events, several
per frame; ``ev`` says what each is; times are Unix epoch milliseconds.

* server, on connect: ``[{"ev":"status","status":"connected","message":...}]``
* client: ``{"action":"auth","params":KEY}``
* server: ``[{"ev":"status","status":"auth_success",...}]`` or ``auth_failed``
* client: ``{"action":"subscribe","params":"Q.AAPL,T.AAPL,LULD.AAPL"}``
* server, per topic: ``[{"ev":"status","status":"success","message":"subscribed to: Q.AAPL"}]``
* quote ``{"ev":"Q","sym","bp","bs","ap","as","t"}``, trade ``{"ev":"T","sym","p","s","c":[ids],"t"}``,
  ``{"ev":"LULD","T":sym,"h","l","i":[indicators],"t"}``
* a second connection with the same key closes the older one with status ``max_connections``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from momobot_core.sources.stream import QuoteMessage, TradeMessage

_decode = msgspec.json.Decoder().decode


DEFAULT_URL = "wss://socket.massive.com/stocks"
DELAYED_URL = "wss://delayed.massive.com/stocks"
#: LULD indicators: a halt, and the resumption (Nasdaq-listed symbols).
HALTED = frozenset({17})
RESUMED = frozenset({18})
#: Trade condition ids (Massive's "Conditions and Indicators") of prints that do not set the last
#: sale price: average price, cash, derivatively priced, sold out of sequence, official open and
#: close, next day, price variation, prior reference price, seller, odd lot, corrected close,
#: contingent and qualified contingent trades.
IRREGULAR = frozenset({2, 7, 10, 13, 15, 16, 20, 21, 22, 29, 33, 37, 38, 52, 53})


def auth(key: str) -> str:
    return json.dumps({"action": "auth", "params": key})


def subscribe(symbols: list[str]) -> str:
    return json.dumps(
        {
            "action": "subscribe",
            "params": ",".join(f"{channel}.{s}" for s in symbols for channel in ("Q", "T", "LULD")),
        }
    )


def unsubscribe(symbols: list[str]) -> str:
    return json.dumps(
        {
            "action": "unsubscribe",
            "params": ",".join(f"{channel}.{s}" for s in symbols for channel in ("Q", "T", "LULD")),
        }
    )


def events(frame: str | bytes) -> list[dict[str, Any]]:
    data = _decode(frame)  # msgspec: half the time of json.loads (docs/PERFORMANCE.md)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("expected a JSON array of events")
    return [item for item in data if isinstance(item, dict)]


class Quote(
    QuoteMessage, tag_field="ev", tag="Q", rename={"symbol": "sym", "bid": "bp", "ask": "ap", "vendor": "t"}
):
    """``{"ev": "Q", "sym": ..., "bp": ..., "ap": ..., "t": ms}``, decoded as it is (other keys skipped)."""

    # Every field again: a rename applies to the fields a class itself declares.
    symbol: str
    bid: float
    ask: float
    vendor: Any = 0


class Trade(
    TradeMessage,
    tag_field="ev",
    tag="T",
    rename={"symbol": "sym", "price": "p", "vendor": "t", "conditions": "c"},
):
    """``{"ev": "T", "sym": ..., "p": ..., "c": [...], "t": ms}``."""

    symbol: str
    price: float
    vendor: Any = None
    conditions: Any = None


#: Frames of nothing but quotes and trades, straight into structs (``StreamSource.stream_decode``).
stream_decode = msgspec.json.Decoder(list[Quote | Trade]).decode


def regular(conditions: object) -> bool:
    if not isinstance(conditions, list):
        return True
    return not any(c in IRREGULAR for c in conditions if isinstance(c, int))


# -- what the fake server sends -----------------------------------------------------------


def status(state: str, message: str) -> dict[str, Any]:
    return {"ev": "status", "status": state, "message": message}


def quote(symbol: str, bid: float, ask: float, ms: int) -> dict[str, Any]:
    return {
        "ev": "Q",
        "sym": symbol,
        "bx": 19,
        "bp": bid,
        "bs": 1,
        "ax": 19,
        "ap": ask,
        "as": 1,
        "c": 1,
        "t": ms,
        "z": 3,
    }


def trade(symbol: str, price: float, ms: int, conditions: list[int] | None = None) -> dict[str, Any]:
    return {
        "ev": "T",
        "sym": symbol,
        "x": 4,
        "i": "1",
        "z": 3,
        "p": price,
        "s": 100,
        "c": conditions or [],
        "t": ms,
    }


def aggregate(
    channel: str, symbol: str, o: float, h: float, low: float, c: float, volume: int, start: int, end: int
) -> dict[str, Any]:
    """A second (``A``) or minute (``AM``) aggregate: open, high, low, close, volume, and its
    start ``s`` and end ``e`` in epoch milliseconds."""
    return {
        "ev": channel,
        "sym": symbol,
        "v": volume,
        "av": volume,
        "op": o,
        "vw": c,
        "o": o,
        "c": c,
        "h": h,
        "l": low,
        "a": c,
        "z": 100,
        "s": start,
        "e": end,
    }


def luld(
    symbol: str, indicators: list[int], ms: int, lower: float = 0.0, upper: float = 0.0
) -> dict[str, Any]:
    """A LULD event: ``h`` the upper and ``l`` the lower price band (floats), ``i`` indicators."""
    return {"ev": "LULD", "T": symbol, "h": upper, "l": lower, "i": indicators, "z": 3, "t": ms}
