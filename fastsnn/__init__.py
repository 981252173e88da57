"""fastsnn: fused, tested kernels for spiking neural networks as PyTorch ops.

Every op has a pure-PyTorch reference (``fastsnn.reference``) and fast backends (C++ CPU,
Triton, CUDA) checked against it; ``fastsnn.backends()`` says which are available here.
"""

from . import data, models, nn, ops, reference
from ._backends import BACKENDS
from ._backends import backends as _backend_report
from .data import ToCurrent
from .ops import binary_conv2d, bitpack, events_to_current, mt_lif, spike_count, stcb

__version__ = "0.1.0"


def backends() -> dict[str, dict[str, str]]:
    """``{backend: {"cpu": reason, "cuda": reason}}``; an empty reason means available."""
    return _backend_report()


__all__ = ["BACKENDS", "ToCurrent", "backends", "binary_conv2d", "bitpack", "data",
           "events_to_current", "models", "mt_lif", "nn", "ops", "reference", "spike_count",
           "stcb", "__version__"]
