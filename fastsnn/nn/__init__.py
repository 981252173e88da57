"""Modules built on the fastsnn ops."""

from .lif import MultiThresholdLIF

__all__ = ["MultiThresholdLIF"]
