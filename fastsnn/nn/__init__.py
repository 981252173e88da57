"""Modules built on the fastsnn ops."""

from .binary_conv import BinaryConv2d
from .lif import MultiThresholdLIF

__all__ = ["BinaryConv2d", "MultiThresholdLIF"]
