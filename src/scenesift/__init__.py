"""scenesift: which driving frames to label next, and why."""

__version__ = "0.1.0"
