"""Public functional API: one module per op (autograd, fake impl, backend dispatch)."""

from .binary_conv import PackedBinaryWeight, binary_conv2d
from .bitpack import bitpack
from .events import events_to_current
from .mt_lif import mt_lif
from .stcb import spike_count, stcb

__all__ = ["PackedBinaryWeight", "binary_conv2d", "bitpack", "events_to_current", "mt_lif",
           "spike_count", "stcb"]
