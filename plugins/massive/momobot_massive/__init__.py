"""MomoBot's Massive (formerly Polygon.io) stocks source (``momobot serve --source massive``)."""

__version__ = "0.1.0"
