"""``fastsnn.stcb``: the spike-train level conversion block (docs/stcb.md, a
**reconstruction** of paper C; the rule and its arithmetic are stated in
``fastsnn/reference/stcb.py``). Its input, the spike count, is ``fastsnn.spike_count``
(``fastsnn/ops/spike_count.py``).

The public function validates its arguments (the only validation pass), normalises them to
the kernel contract below and runs one backend. ``reference`` is plain autograd over
``fastsnn.reference.stcb``; the fast backends run the kernels declared in ``OP``
(``fastsnn::stcb_forward`` / ``stcb_backward``, or ``..._triton``;
``fastsnn/ops/_spine.py``) with the fake impls and autograd attached there, so they pass
``torch.library.opcheck`` and trace under ``torch.compile``.

Kernel contract (``csrc/torch/stcb.cpp`` and ``kernels/stcb.py``):

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

What the backward keeps: the packed mask only, **1 bit per element of A (E/8 bytes, rounded
up), whatever T**; nothing per time step (``saved_bytes``).

float16 / bfloat16 inputs are computed in float32 (converted before the kernel, the result
converted back; counts above 2048 / 256 are then rounded by the storage dtype).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Optional

import torch
from torch import Tensor

from ..reference.stcb import OUTPUTS, rounded, scales
from ..reference.stcb import stcb as reference_stcb
from . import _checks
from ._spine import Kernel, Op

MAX_COUNT = 2**24  # levels * T: counts and the train recursion stay exact in float32
_ALL = (torch.float32, torch.float16, torch.bfloat16)
DTYPES = {"reference": _ALL + (torch.float64,), "cpu": _ALL + (torch.float64,),
          "triton": _ALL, "cuda": _ALL}


def _forward_fake(a, T, levels, threshold, count_only, save_mask):
    E = a.shape[0]
    out = a.new_empty((E,) if count_only else (T, E))
    return out, a.new_empty(((E + 7) // 8 if save_mask else 0,), dtype=torch.uint8)


def _backward_fake(grad, mask, T, scale, count_only):
    return grad.new_empty((grad.shape[0] if count_only else grad.shape[1],))


OP = Op("stcb", triton_module="stcb", dtypes=DTYPES, kernels=(
    Kernel("stcb_forward", "(Tensor a, int T, int levels, float threshold, bool count_only, "
           "bool save_mask) -> (Tensor, Tensor)", _forward_fake),
    Kernel("stcb_backward", "(Tensor grad, Tensor mask, int T, float scale, bool count_only) "
           "-> Tensor", _backward_fake)))


def _setup_context(ctx, inputs, output):
    a, T, levels, threshold, count_only, save_mask = inputs
    ctx.save_for_backward(output[1])
    one, per_step = scales(T, threshold, a.dtype)
    ctx.scale = one if count_only else per_step
    ctx.T, ctx.count_only, ctx.save_mask = T, count_only, save_mask


def _autograd_backward(ctx, grad_out, _grad_mask):
    if not ctx.save_mask:
        raise RuntimeError("stcb: backward through a call made without grad enabled")
    (mask,) = ctx.saved_tensors
    ga = OP.kernel("stcb_backward", ctx.backend)(grad_out.contiguous(), mask, ctx.T, ctx.scale,
                                                 ctx.count_only)
    return ga, None, None, None, None, None


OP.autograd("stcb_forward", _autograd_backward, _setup_context)


def _check(a, T, levels, threshold, output, backend) -> None:
    _checks.tensor(a, "a")
    OP.check_dtype(a, "a", backend)
    if a.dim() < 1:
        raise ValueError(f"a must be [N, C, ...] with at least 1 dim(s), got shape "
                         f"{tuple(a.shape)}")
    _checks.integer(T, "T", 1)
    _checks.integer(levels, "levels", 1)
    if levels * T > MAX_COUNT:
        raise ValueError(f"levels * T must be <= 2**24 (counts exact in float32), got "
                         f"{levels} * {T}")
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise TypeError(f"threshold must be a float, got {type(threshold).__name__}")
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite float > 0, got {threshold!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


def work_dtype(x: Tensor) -> Tensor:
    """``x`` in the dtype the kernels take: float32 / float64 stay, 16-bit go to float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


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
    chosen = OP.choose(backend, a)
    _check(a, T, levels, threshold, output, chosen)
    work = work_dtype(a)
    vth = rounded(threshold, work.dtype)
    if chosen == "reference":
        return reference_stcb(work, T, levels, vth, output).to(a.dtype)
    count_only = output == "count"
    save_mask = torch.is_grad_enabled() and a.requires_grad
    out, _ = OP.kernel("stcb_forward", chosen)(work.reshape(-1).contiguous(), T, levels, vth,
                                               count_only, save_mask)
    shape = tuple(a.shape) if count_only else (T,) + tuple(a.shape)
    return out.reshape(shape).to(a.dtype)


def saved_bytes(numel: int) -> int:
    """Bytes ``stcb``'s backward keeps for a charge of ``numel`` elements (any T, output)."""
    return (numel + 7) // 8
