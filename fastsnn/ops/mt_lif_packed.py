"""``mt_lif(..., packed=True)``: the LIF's spikes written as ``PackedSpikes`` (inference).

``fastsnn.mt_lif`` sends a ``packed=True`` call here after validating it. The spikes are those
of ``mt_lif`` on the same input, bit for bit (the cpu kernel runs the per-step arithmetic of
``csrc/cpu/mt_lif_step.h``), packed along the channels (``fastsnn/packed_spikes.py``) by the
kernel: no float spike tensor is materialised. The cuda kernel (``csrc/cuda/packed_lif.cuh``)
runs the per-step arithmetic of ``csrc/cuda/mt_lif_step.cuh`` (mt_lif's CUDA kernel), one
thread per (image, position, 32-channel word). Forward only: a call that needs a gradient
raises. Options: decay (shared or per channel), threshold, levels (<= 255), reset and form;
no synaptic current and no ``v0`` (the membrane starts at 0).

Kernel contract (``fastsnn::mt_lif_packed_forward``, ``csrc/torch/packed_spikes.cpp``):
``x`` float32 contiguous ``[T, N, C, R]``; ``decay`` float32 ``[1]`` or ``[C]``;
``threshold`` already rounded to float32; ``reset``/``form`` enums of ``fastsnn._enums``;
returns int32 ``[T, N, R, bits, ceil(C/32)]``, the packed layout.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._enums import Form, Reset, parse
from ..packed_spikes import MAX_LEVELS, PackedSpikes, pack_channels
from ..reference.mt_lif import mt_lif as reference_mt_lif
from ._spine import Kernel, Op


def _fake(x, decay, threshold, levels, reset, form):
    return x.new_empty((x.shape[0], x.shape[1], x.shape[3], int(levels).bit_length(),
                        -(-x.shape[2] // 32)), dtype=torch.int32)


OP = Op("mt_lif_packed", triton_module="packed_spikes", kernels=(
    Kernel("mt_lif_packed_forward",
           "(Tensor x, Tensor decay, float threshold, int levels, int reset, int form) "
           "-> Tensor", _fake),),
    dtypes=dict.fromkeys(("reference", "cpu", "triton", "cuda"),
                         (torch.float32, torch.float16, torch.bfloat16)))


def check_packed_call(x: Tensor, tensors, syn_decay, v0, levels: int) -> None:
    """The limits of a packed call, each with the argument named."""
    if x.dim() < 3:
        raise ValueError(f"x must be [T, N, C, ...] for packed=True (spikes pack along C), got "
                         f"shape {tuple(x.shape)}")
    if x.dtype not in OP.dtypes["cpu"]:
        raise TypeError(f"packed=True computes in float32: x dtype {x.dtype} is not supported "
                        f"(supported: {OP.dtypes['cpu']})")
    if levels > MAX_LEVELS:
        raise ValueError(f"levels must be <= {MAX_LEVELS} for packed=True, got {levels}")
    if syn_decay is not None or v0 is not None:
        raise ValueError("packed=True supports neither syn_decay nor v0 (the membrane starts "
                         "at 0)")
    if torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad
                                       for t in tensors):
        raise RuntimeError("mt_lif(packed=True) is inference only and a gradient is required "
                           "(x or decay requires grad): run under torch.no_grad() or use "
                           "float spikes (packed=False) for training")


def mt_lif_packed(x: Tensor, decay: Tensor, *, threshold: float, levels: int, reset: str,
                  form: str, backend=None) -> PackedSpikes:
    """Packed spikes of ``mt_lif(x, decay, ...)``; arguments already validated by mt_lif
    (``decay`` float32 ``[1]`` or ``[C]``, ``threshold`` rounded to float32)."""
    chosen = OP.choose(backend, x)
    shape = x.shape
    x4 = x.float().reshape(shape[0], shape[1], shape[2], math.prod(shape[3:])).contiguous()
    decay = decay.detach().float().contiguous()
    if chosen == "reference":
        s = reference_mt_lif(x4, decay if decay.numel() > 1 else decay.reshape(()),
                             threshold=threshold, levels=levels, reset=reset, form=form)
        words = pack_channels(torch.nan_to_num(s, nan=0.0), levels)  # the kernel's NaN rule
    else:
        words = OP.kernel("mt_lif_packed_forward", chosen)(
            x4, decay, threshold, levels, int(parse(Reset, reset, "reset")),
            int(parse(Form, form, "form")))
    bits, w32 = words.shape[-2:]
    return PackedSpikes(words.reshape(*shape[:2], *shape[3:], bits, w32), levels, shape,
                        x.dtype)
