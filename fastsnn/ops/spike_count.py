"""``fastsnn.spike_count``: spike counts over time, ``N = sum_t s[t]`` (docs/stcb.md:
the input of the spike-train level conversion block, ``fastsnn/ops/stcb.py``).

The public function validates its argument and runs one backend: ``reference`` is
``fastsnn.reference.stcb.spike_count``; the fast backends run the kernel declared in ``OP``
(``fastsnn::spike_count``, or ``..._triton``; ``fastsnn/ops/_spine.py``). Its kernels live
with stcb's (``csrc/cpu/stcb.cpp``, ``csrc/cuda/stcb.cu``, ``kernels/stcb.py``); the binding
is ``csrc/torch/spike_count.cpp``.

Kernel contract: ``spike_count(s) -> out``: ``s`` contiguous ``[T, ...]`` float32 (float64
on cpu); ``out`` ``s.shape[1:]``, the sum over time accumulated in time order in ``s``'s
dtype. The backward keeps nothing: it broadcasts the count gradient over T (an expanded
view, no copy).
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from ..reference.stcb import spike_count as reference_spike_count
from . import _checks
from ._spine import Kernel, Op
from .stcb import DTYPES, work_dtype


def _fake(s):
    return s.new_empty(s.shape[1:])


OP = Op("spike_count", triton_module="stcb", dtypes=DTYPES,
        kernels=(Kernel("spike_count", "(Tensor s) -> Tensor", _fake),))


def _setup_context(ctx, inputs, output):
    ctx.T = inputs[0].shape[0]


def _backward(ctx, grad):
    # N = sum_t s[t]: the count gradient broadcast over T, a view (no per-step memory).
    return grad.unsqueeze(0).expand((ctx.T,) + tuple(grad.shape))


OP.autograd("spike_count", _backward, _setup_context)


def spike_count(s: Tensor, *, backend: Optional[str] = None) -> Tensor:
    """Spike counts ``N = sum_t s[t]``: ``[T, N, ...]`` -> ``[N, ...]``, one fused pass.

    Summed in time order in float32 (float64 for float64 input), returned in ``s``'s dtype;
    the backward broadcasts the count gradient over T without saving anything.
    """
    chosen = OP.choose(backend, s)
    _checks.tensor(s, "s")
    OP.check_dtype(s, "s", chosen)
    if s.dim() < 2:
        raise ValueError(f"s must be [T, N, ...] with at least 2 dim(s), got shape "
                         f"{tuple(s.shape)}")
    if chosen == "reference":
        return reference_spike_count(s)
    return OP.kernel("spike_count", chosen)(work_dtype(s).contiguous()).to(s.dtype)
