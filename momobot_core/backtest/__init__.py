"""Backtests at scale: columnar day files (record, read), the Dask sweep, results and report.

Parts, each tested on its own (docs/backtest.md):

- :mod:`~momobot_core.backtest.dayfile`: the day file's layout, the recorder that writes it
  (segments sealed into one Parquet file per trading day) and the readers;
- :mod:`~momobot_core.backtest.columns`: a day file fed to an engine batch by batch, the
  quotes the engine does nothing with kept as each symbol's last quote;
- :mod:`~momobot_core.backtest.synthetic`: synthetic momentum days to try it on;
- :mod:`~momobot_core.backtest.sweep`: the grid, one task per (day, parameter set), on Dask;
- :mod:`~momobot_core.backtest.results`: the results file (SQLite) and its statistics;
- :mod:`~momobot_core.backtest.html`: ``momobot backtest report``'s page.

Needs the ``backtest`` extra (``pip install 'momobot-core[backtest]'``: pyarrow, dask).
"""

from __future__ import annotations

from momobot_core.config import InputError


def require_extra() -> None:
    """InputError naming the extra when pyarrow or dask is not installed."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("day files need pyarrow: pip install 'momobot-core[backtest]'") from None
