"""``fastsnn.stcb`` and ``fastsnn.spike_count``: the spike-train level conversion block
(docs/stcb.md, a **reconstruction** of paper C; the rule and its arithmetic are stated in
``fastsnn/reference/stcb.py``).

The public functions validate their arguments, normalise them to the kernel contract below
and run one backend. ``reference`` is plain autograd over ``fastsnn.reference.stcb``; the fast
backends run inside the custom ops ``fastsnn::stcb_forward`` / ``fastsnn::stcb_backward`` /
``fastsnn::spike_count`` (fake impls and autograd registered here, so they pass
``torch.library.opcheck`` and trace under ``torch.compile``).

Kernel contract (C++ ``fastsnn_C::stcb_forward/stcb_backward/spike_count`` and
``kernels/stcb.py``):

* ``stcb_forward(a, T, levels, threshold, count_only, save_mask) -> (out, mask)``:
  ``a`` contiguous ``[E]`` float32 (float64 on cpu); ``threshold`` already rounded to ``a``'s
  dtype; ``1 <= T``, ``1 <= levels``, ``levels*T <= 2**24``. ``out`` is the train ``[T, E]``
  or, with ``count_only``, the counts ``[E]``, in ``a``'s dtype, every element written once.
  ``mask`` is uint8 ``[ceil(E/8)]`` with bit ``j`` of byte ``i`` = ``1[0 < A/vth < K*T]`` of
  element ``8*i + j`` (unused high bits 0) when ``save_mask``, else ``[0]``.
* ``stcb_backward(grad, mask, T, scale, count_only) -> ga``: ``grad`` contiguous ``[E]``
  (count) or ``[T, E]`` (train) in ``a``'s dtype; ``ga[e] = bit e ? scale * g : 0`` with ``g``
  the gradient, or its sum over ``t = 0..T-1`` accumulated in time order; ``scale`` is
  ``1/vth`` (count) or ``1/(T*vth)`` (train) rounded to the dtype (``reference.stcb.scales``).
* ``spike_count(s) -> out``: ``s`` contiguous ``[T, ...]`` float32 (float64 on cpu); ``out``
  ``s.shape[1:]``, the sum over time accumulated in time order in ``s``'s dtype.

What the backward keeps: the packed mask only, **1 bit per element of A (E/8 bytes, rounded
up), whatever T**; nothing per time step (``saved_bytes``). ``spike_count``'s backward keeps
nothing: it broadcasts the count gradient over T (an expanded view, no copy).

float16 / bfloat16 inputs are computed in float32 (converted before the kernel, the result
converted back; counts above 2048 / 256 are then rounded by the storage dtype).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Optional

import torch
from torch import Tensor

from .. import _backends
from ..reference.stcb import OUTPUTS, rounded, scales
from ..reference.stcb import spike_count as reference_spike_count
from ..reference.stcb import stcb as reference_stcb

KERNEL = "stcb_forward"
COUNT_KERNEL = "spike_count"
MAX_COUNT = 2**24  # levels * T: counts and the train recursion stay exact in float32
_ALL = (torch.float32, torch.float16, torch.bfloat16)
DTYPES = {
    "reference": _ALL + (torch.float64,),
    "cpu": _ALL + (torch.float64,),
    "triton": _ALL,
    "cuda": _ALL,
}


def _kernels(backend: str):
    """The module implementing the contract for ``backend``."""
    if backend == "triton":
        from ..kernels import stcb as triton_stcb

        return triton_stcb
    import fastsnn._C  # noqa: F401  (registers torch.ops.fastsnn_C)

    return torch.ops.fastsnn_C


# ---- custom ops --------------------------------------------------------------------------


@torch.library.custom_op("fastsnn::stcb_forward", mutates_args=())
def _forward(a: Tensor, T: int, levels: int, threshold: float, count_only: bool,
             save_mask: bool, backend: str) -> tuple[Tensor, Tensor]:
    out, mask = _kernels(backend).stcb_forward(a, T, levels, threshold, count_only, save_mask)
    return out, mask


@_forward.register_fake
def _(a, T, levels, threshold, count_only, save_mask, backend):
    E = a.shape[0]
    out = a.new_empty((E,) if count_only else (T, E))
    return out, a.new_empty(((E + 7) // 8 if save_mask else 0,), dtype=torch.uint8)


@torch.library.custom_op("fastsnn::stcb_backward", mutates_args=())
def _backward(grad: Tensor, mask: Tensor, T: int, scale: float, count_only: bool,
              backend: str) -> Tensor:
    return _kernels(backend).stcb_backward(grad, mask, T, scale, count_only)


@_backward.register_fake
def _(grad, mask, T, scale, count_only, backend):
    return grad.new_empty((grad.shape[0] if count_only else grad.shape[1],))


def _setup_context(ctx, inputs, output):
    a, T, levels, threshold, count_only, save_mask, backend = inputs
    ctx.save_for_backward(output[1])
    one, per_step = scales(T, threshold, a.dtype)
    ctx.scale = one if count_only else per_step
    ctx.T, ctx.count_only, ctx.save_mask, ctx.backend = T, count_only, save_mask, backend


def _autograd_backward(ctx, grad_out, _grad_mask):
    if not ctx.save_mask:
        raise RuntimeError("stcb: backward through a call made without grad enabled")
    (mask,) = ctx.saved_tensors
    ga = _backward(grad_out.contiguous(), mask, ctx.T, ctx.scale, ctx.count_only, ctx.backend)
    return ga, None, None, None, None, None, None


_forward.register_autograd(_autograd_backward, setup_context=_setup_context)


@torch.library.custom_op("fastsnn::spike_count", mutates_args=())
def _spike_count(s: Tensor, backend: str) -> Tensor:
    return _kernels(backend).spike_count(s)


@_spike_count.register_fake
def _(s, backend):
    return s.new_empty(s.shape[1:])


def _count_setup_context(ctx, inputs, output):
    ctx.T = inputs[0].shape[0]


def _count_backward(ctx, grad):
    # N = sum_t s[t]: the count gradient broadcast over T, a view (no per-step memory).
    return grad.unsqueeze(0).expand((ctx.T,) + tuple(grad.shape)), None


_spike_count.register_autograd(_count_backward, setup_context=_count_setup_context)


# ---- validation --------------------------------------------------------------------------


def _check_int(value, name: str, at_least: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise ValueError(f"{name} must be an int >= {at_least}, got {value!r}")


def _check_tensor(x, name: str, backend: str, min_dim: int, layout: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dtype not in DTYPES[backend]:
        raise TypeError(f"{name} dtype {x.dtype} is not supported by the {backend} backend "
                        f"(supported: {DTYPES[backend]})")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must be {layout} with at least {min_dim} dim(s), got shape "
                         f"{tuple(x.shape)}")


def _check(a, T, levels, threshold, output, backend) -> None:
    _check_tensor(a, "a", backend, 1, "[N, C, ...]")
    _check_int(T, "T")
    _check_int(levels, "levels")
    if levels * T > MAX_COUNT:
        raise ValueError(f"levels * T must be <= 2**24 (counts exact in float32), got "
                         f"{levels} * {T}")
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise TypeError(f"threshold must be a float, got {type(threshold).__name__}")
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite float > 0, got {threshold!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


@torch.compiler.assume_constant_result  # torch.compile: decided once, while tracing
def _choose(backend: Optional[str], device_type: str, kernel: str) -> str:
    return _backends.choose(backend, torch.device(device_type), kernel)


def _device_type(x) -> str:
    return x.device.type if isinstance(x, Tensor) else "cpu"


def _work(x: Tensor) -> Tensor:
    """``x`` in the dtype the kernels take: float32 / float64 stay, 16-bit go to float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# ---- public API --------------------------------------------------------------------------


def stcb(a: Tensor, T: int, *, levels: int = 1, threshold: float = 1.0,
         output: str = "train", backend: Optional[str] = None) -> Tensor:
    """Convert a block charge ``a`` ``[N, C, ...]`` into a spike train or its count.

    ``output="train"``: ``S_out`` ``[T, N, C, ...]``, the evenly spaced train an IF neuron
    with soft reset emits for the constant current ``a/T`` (``levels`` K spikes at most per
    step); ``output="count"``: ``N_out = clamp(floor(a/threshold), 0, K*T)`` ``[N, C, ...]``.
    Same dtype as ``a``. The gradient is the equivalent gradient of docs/stcb.md
    (``mask/threshold`` for counts, ``mask/(T*threshold)`` per step for trains, mask
    ``1[0 < a/threshold < K*T]``); the backward keeps 1 bit per element of ``a``, nothing per
    step. The block rule is a reconstruction of paper C (see ``fastsnn.reference.stcb``).
    """
    chosen = _choose(backend, _device_type(a), KERNEL)
    _check(a, T, levels, threshold, output, chosen)
    work = _work(a)
    vth = rounded(threshold, work.dtype)
    if chosen == "reference":
        return reference_stcb(work, T, levels, vth, output).to(a.dtype)
    count_only = output == "count"
    save_mask = torch.is_grad_enabled() and a.requires_grad
    out, _ = _forward(work.reshape(-1).contiguous(), T, levels, vth, count_only, save_mask,
                      chosen)
    shape = tuple(a.shape) if count_only else (T,) + tuple(a.shape)
    return out.reshape(shape).to(a.dtype)


def spike_count(s: Tensor, *, backend: Optional[str] = None) -> Tensor:
    """Spike counts ``N = sum_t s[t]``: ``[T, N, ...]`` -> ``[N, ...]``, one fused pass.

    Summed in time order in float32 (float64 for float64 input), returned in ``s``'s dtype;
    the backward broadcasts the count gradient over T without saving anything.
    """
    chosen = _choose(backend, _device_type(s), COUNT_KERNEL)
    _check_tensor(s, "s", chosen, 2, "[T, N, ...]")
    if chosen == "reference":
        return reference_spike_count(s)
    return _spike_count(_work(s).contiguous(), chosen).to(s.dtype)


def saved_bytes(numel: int) -> int:
    """Bytes ``stcb``'s backward keeps for a charge of ``numel`` elements (any T, output)."""
    return (numel + 7) // 8
