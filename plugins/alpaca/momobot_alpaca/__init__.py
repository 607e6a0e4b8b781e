"""MomoBot's Alpaca market data source (``momobot serve --source alpaca``)."""

__version__ = "0.1.0"
