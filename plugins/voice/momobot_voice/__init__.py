"""momobot-voice: speak MomoBot's trade events aloud."""

__version__ = "0.1.0"
