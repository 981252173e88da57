"""Public functional API: one module per op (autograd, fake impl, backend dispatch)."""

from .binary_conv import PackedBinaryWeight, binary_conv2d
from .bitpack import bitpack
from .mt_lif import mt_lif
from .stcb import spike_count, stcb

__all__ = ["PackedBinaryWeight", "binary_conv2d", "bitpack", "mt_lif", "spike_count", "stcb"]
