"""Public functional API: one module per op (autograd, fake impl, backend dispatch)."""

from .mt_lif import mt_lif
from .stcb import spike_count, stcb

__all__ = ["mt_lif", "spike_count", "stcb"]
