"""Modules built on the fastsnn ops."""

from .binary_conv import BinaryConv2d
from .lif import MultiThresholdLIF
from .stcb import STCB
from .synaptic import CausalTemporalConv, SynapticConvBlock

__all__ = ["STCB", "BinaryConv2d", "CausalTemporalConv", "MultiThresholdLIF",
           "SynapticConvBlock"]
