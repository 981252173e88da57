"""Pure-PyTorch references: the specification (docs/) in code, one module per op."""

from .binary_conv import binary_conv2d
from .mt_lif import mt_lif
from .stcb import spike_count, stcb

__all__ = ["binary_conv2d", "mt_lif", "spike_count", "stcb"]
