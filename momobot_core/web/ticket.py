"""The order ticket's pre-fill (``GET /ticket``): ``[bracket]`` around the current ask, on the
tick, with the entry's risk in dollars and what today's loss budget leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from momobot_core.errors import TradeRefused
from momobot_core.strategies.bracket import size_for

if TYPE_CHECKING:
    from momobot_core.engine import Engine


def ticket(engine: Engine, symbol: str, strategy: str | None = None) -> dict[str, Any]:
    """The ticket for ``symbol`` (``strategy``: with its ``[bracket.<strategy>]``); TradeRefused
    (``unknown_symbol``) without a quote."""
    quote = engine.last_quotes.get(symbol)
    if quote is None:
        raise TradeRefused(
            f"{symbol}: no quote yet, so there is no ask to price a ticket at", "unknown_symbol"
        )
    if strategy is not None and strategy not in engine.strategy_names:
        raise TradeRefused(f"no strategy {strategy!r} (installed: {', '.join(engine.strategy_names)})")
    bracket = engine.bracket_for(strategy)
    tp1, tp2, stop = bracket.levels(quote.ask, None)
    qty = bracket.qty if bracket.qty is not None else size_for(bracket.risk or 0.0, quote.ask, stop)
    return {
        "symbol": symbol,
        "bid": quote.bid,
        "ask": quote.ask,
        "qty": qty,
        "risk": bracket.risk,
        "tp1": tp1,
        "tp2": tp2,
        "stop": stop,
        "risk_dollars": round(qty * (quote.ask - stop), 2),
        "budget": engine.loss_budget(),
        "bracket": bracket.as_dict(),
    }
