"""Pure-PyTorch references: the specification (SPEC.md) in code, one module per op."""

from .mt_lif import mt_lif
from .stcb import spike_count, stcb

__all__ = ["mt_lif", "spike_count", "stcb"]
