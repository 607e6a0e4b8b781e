"""MomoBot's DAS Trader Pro order plugin: real orders with their symbol, and the broker's fills back."""

__version__ = "0.1.0"
