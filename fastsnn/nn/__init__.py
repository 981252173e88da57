"""Modules built on the fastsnn ops."""

from .lif import MultiThresholdLIF
from .stcb import STCB

__all__ = ["STCB", "MultiThresholdLIF"]
