"""momobot-notify: MomoBot's alerts, fills, closed trades, kills and the day's summary, sent to
your phone or inbox through apprise."""

__version__ = "0.1.0"
