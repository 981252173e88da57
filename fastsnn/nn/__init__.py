"""Modules built on the fastsnn ops."""

from .lif import MultiThresholdLIF
from .synaptic import CausalTemporalConv, SynapticConvBlock

__all__ = ["CausalTemporalConv", "MultiThresholdLIF", "SynapticConvBlock"]
