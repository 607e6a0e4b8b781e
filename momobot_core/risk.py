"""Account limits the engine consults before every entry (``[risk]``). Exits are never refused.

This release has the first of them: ``stale_quote_s``. The other limits of
DESIGN.md ("Risk limits and the kill switch") are refused as configuration
until they exist, so nobody trades believing a limit protects them.
"""

from __future__ import annotations

import attrs

from momobot_core.config import Config, ConfigError

#: The limits DESIGN.md names that this release does not enforce yet.
NOT_YET = (
    "max_daily_loss",
    "max_trades_per_day",
    "max_open_trades",
    "max_shares",
    "max_position_value",
    "trading_start",
    "trading_end",
    "loss_streak",
    "max_spread_pct",
    "loss_confirm_s",
)


@attrs.frozen
class RiskSettings:
    """The ``[risk]`` table."""

    #: A live source silent this long, or an open trade's symbol without a quote this long:
    #: an alert, and entries halt until quotes flow again. 0 turns it off.
    stale_quote_s: float = 10.0

    @classmethod
    def from_config(cls, config: Config) -> RiskSettings:
        section = config.section("risk", env_prefix="MOMOBOT_RISK_")
        for key in NOT_YET:
            if section.has(key):
                raise ConfigError(
                    f"[risk] {key}: this limit is not enforced in this release; remove it"
                    " rather than trade believing it protects you"
                )
        section.check_known({"stale_quote_s"})
        return cls(stale_quote_s=section.get_float("stale_quote_s", 10.0))
