"""Modules built on the fastsnn ops."""

from .binary_conv import BinaryConv2d
from .binary_snn_block import BinarySNNBlock
from .lif import MultiThresholdLIF
from .spike_conv import SpikeConv2d, SpikeLinear, SpikeMaxPool2d, save_spikes_as_bits
from .stcb import STCB
from .synaptic import CausalTemporalConv, SynapticConvBlock

__all__ = ["STCB", "BinaryConv2d", "BinarySNNBlock", "CausalTemporalConv", "MultiThresholdLIF",
           "SpikeConv2d", "SpikeLinear", "SpikeMaxPool2d", "SynapticConvBlock",
           "save_spikes_as_bits"]
