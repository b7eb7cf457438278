"""The local provider: the whole app on your machine, behaving like the cloud."""

__version__ = "0.1.0"
