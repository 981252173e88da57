"""fastsnn: fused, tested kernels for spiking neural networks as PyTorch ops.

Every op has a pure-PyTorch reference (``fastsnn.reference``) and fast backends (C++ CPU,
Triton, CUDA) checked against it; ``fastsnn.backends()`` says which are available here.
"""

from . import albsnn, compat, data, energy, export, memory, models, nn, ops, reference
from ._backends import BACKENDS
from ._backends import backends as _backend_report
from ._version import __version__
from .checkpoint import from_checkpoint
from .data.transforms import ToCurrent
from .ops._spine import available as _available
from .ops.binary_conv import binary_conv2d
from .ops.binary_snn_layer import binary_snn_layer
from .ops.bitpack import bitpack
from .ops.events_to_current import events_to_current
from .ops.mt_lif import mt_lif
from .ops.spike_count import spike_count
from .ops.stcb import stcb
from .packed_spikes import PackedSpikes


def backends() -> dict[str, dict[str, str]]:
    """``{backend: {"cpu": reason, "cuda": reason}}``; an empty reason means available."""
    return _backend_report()


def available_backends(op: str, device="cpu") -> tuple[str, ...]:
    """The backends that can run ``op`` (e.g. ``"mt_lif"``) on ``device`` ("cpu" or
    "cuda") here, in the order the automatic choice prefers them: the first is what
    ``backend=None`` picks (triton on CPU tensors, interpreted, comes after reference)."""
    return _available(op, device)


__all__ = ["BACKENDS", "PackedSpikes", "ToCurrent", "albsnn", "available_backends", "backends",
           "compat", "binary_conv2d", "binary_snn_layer", "bitpack", "data", "energy",
           "events_to_current", "export", "from_checkpoint", "memory", "models", "mt_lif",
           "nn", "ops", "reference", "spike_count", "stcb", "__version__"]
