"""indiebridge: a static blog that is also a fediverse actor."""

__version__ = "0.1.0"
