"""Modules built on the fastsnn ops."""

from .binary_conv import BinaryConv2d
from .lif import MultiThresholdLIF
from .stcb import STCB

__all__ = ["STCB", "BinaryConv2d", "MultiThresholdLIF"]
