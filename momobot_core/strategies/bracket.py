"""The bracket of a strategy's entry (``[bracket]``), and an arm's limits.

The seed's defaults: TP1 entry +0.10, TP2 entry +0.30, stop entry -0.10, 100 shares. Or R
multiples of the pattern's stop (``stop = "pattern"``, ``tp1_r``, ``tp2_r``), with ``risk``
sizing. ``[bracket.<strategy>]`` overrides it for one strategy, an arm's own fields for that
arm. Prices are rounded to the tick: $0.01 at $1 and above, $0.0001 below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from momobot_core.brackets import MAX_PRICE, MAX_QTY
from momobot_core.config import Config, ConfigError

__all__ = ["BRACKET_KEYS", "BracketSettings", "bracket_settings", "on_tick", "size_for"]

#: The keys of ``[bracket]``, of ``[bracket.<strategy>]`` and of an arm's overrides.
BRACKET_KEYS = ("qty", "risk", "tp1", "tp2", "stop", "tp1_r", "tp2_r", "entries", "cooldown_s", "trail")


#: The stop's distance below the entry when ``stop = "pattern"`` but the pattern gave none.
DEFAULT_STOP = 0.10


def on_tick(price: float) -> float:
    """``price`` rounded to the tick a US exchange quotes it at."""
    return round(price, 2) if price >= 1 else round(price, 4)


def size_for(risk: float, ask: float, stop: float) -> int:
    """Shares that lose ``risk`` dollars at ``stop`` from ``ask`` (at least 0; the engine's own
    sizing also applies ``[risk]`` max_shares and max_position_value)."""
    if not stop < ask or risk <= 0:
        return 0
    return int(risk / (ask - stop) + 1e-9)


def _number(key: str, value: object, *, whole: bool = False, maximum: float = MAX_PRICE) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (whole and not isinstance(value, int))
    ):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{key} = {value!r}: must be {kind}")
    if not 0 < value <= maximum:
        raise ValueError(f"{key} = {value!r}: must be above 0 and at most {maximum:g}")
    return value


@attrs.frozen
class BracketSettings:
    """How a strategy's entry is sized and bracketed, and how often an arm may enter."""

    qty: int | None = 100
    risk: float | None = None  # dollars lost at the stop: the engine sizes the entry (qty None)
    tp1: float = 0.10  # dollars above the entry
    tp2: float = 0.30
    stop: float | None = 0.10  # dollars below the entry; None: the pattern's stop ("pattern")
    tp1_r: float = 1.0  # with the pattern's stop: TP1 this many R above the entry
    tp2_r: float = 3.0
    entries: int = 1  # entries an arm may make
    cooldown_s: float = 0.0  # after an arm's trade closed, before it may enter again
    #: After TP1: None (the stop rests at break-even), dollars below the highest price since TP1,
    #: or "candle" (a tick under each closed candle's low). Never below break-even.
    trail: float | str | None = None

    def merged(self, values: Mapping[str, object]) -> BracketSettings:
        """These settings with ``values`` over them; ValueError names a bad key or value."""
        unknown = sorted(set(values) - set(BRACKET_KEYS))
        if unknown:
            raise ValueError(f"{unknown[0]}: not a bracket key (the keys: {', '.join(BRACKET_KEYS)})")
        if "qty" in values and "risk" in values:
            raise ValueError("give qty (shares) or risk (dollars at the stop), not both")
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key == "trail":
                if value == "candle" or value is None:
                    changes["trail"] = value
                elif isinstance(value, str):
                    raise ValueError(f'trail = {value!r}: dollars below the high since TP1, or "candle"')
                else:
                    changes["trail"] = float(_number(key, value, maximum=1000.0))
            elif key == "stop" and value == "pattern":
                changes["stop"] = None
            elif key in ("qty", "entries"):
                changes[key] = _number(key, value, whole=True, maximum=MAX_QTY)
            elif key == "cooldown_s":
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86_400:
                    raise ValueError(f"cooldown_s = {value!r}: must be seconds from 0 to 86400")
                changes[key] = float(value)
            elif key == "stop" and isinstance(value, str):
                raise ValueError(f'stop = {value!r}: dollars below the entry, or "pattern"')
            else:
                changes[key] = float(_number(key, value))
        if "qty" in changes:
            changes["risk"] = None
        elif "risk" in changes:
            changes["qty"] = None
        merged = attrs.evolve(self, **changes)
        if merged.tp2 < merged.tp1:
            raise ValueError(f"tp2 {merged.tp2:g} must be at or above tp1 {merged.tp1:g}")
        if merged.tp2_r < merged.tp1_r:
            raise ValueError(f"tp2_r {merged.tp2_r:g} must be at or above tp1_r {merged.tp1_r:g}")
        return merged

    def levels(self, ask: float, pattern_stop: float | None) -> tuple[float, float, float]:
        """``(tp1, tp2, stop)`` for an entry at ``ask``. With ``stop = "pattern"`` and a pattern
        that gave a stop, the targets are R multiples of it (ValueError if it is not below the
        ask); else the fixed offsets (a pattern without a stop: 0.10 below)."""
        if self.stop is None and pattern_stop is not None:
            if not pattern_stop < ask:
                raise ValueError(f"the pattern's stop {pattern_stop:g} is not below the ask {ask:g}")
            stop = on_tick(pattern_stop)
            risk = ask - stop
            return on_tick(ask + self.tp1_r * risk), on_tick(ask + self.tp2_r * risk), stop
        below = self.stop if self.stop is not None else DEFAULT_STOP
        return on_tick(ask + self.tp1), on_tick(ask + self.tp2), on_tick(ask - below)

    @property
    def trail_text(self) -> str | None:
        """The trail as a trade keeps it: ``"0.05"``, ``"candle"`` or None."""
        if self.trail is None or isinstance(self.trail, str):
            return self.trail
        return f"{self.trail:g}"

    def as_dict(self) -> dict[str, object]:
        values = attrs.asdict(self)
        if self.stop is None:
            values["stop"] = "pattern"
        return values


def bracket_settings(config: Config) -> tuple[BracketSettings, dict[str, BracketSettings]]:
    """``[bracket]`` and each ``[bracket.<strategy>]`` over it; ConfigError names a bad key."""
    table = config.table("bracket")
    own = {k: v for k, v in table.items() if not isinstance(v, dict)}
    try:
        base = BracketSettings().merged(own)
    except ValueError as exc:
        raise ConfigError(f"[bracket] {exc}") from None
    per_strategy = {}
    for name, values in table.items():
        if isinstance(values, dict):
            try:
                per_strategy[name] = base.merged(values)
            except ValueError as exc:
                raise ConfigError(f"[bracket.{name}] {exc}") from None
    return base, per_strategy
