"""``binary_conv2d`` on ``PackedSpikes`` input: the popcount convolution without packing.

``fastsnn.binary_conv2d`` sends a ``PackedSpikes`` here. The packed words
(``fastsnn/packed_spikes.py``, ``[T, N, H, W, bits, ceil(C/32)]``) are, per image, the bit
image the float-input kernel packs for itself, so the cpu kernel
(``fastsnn::binary_conv2d_packed_forward``, ``csrc/cpu/binary_conv_packed.cpp``) starts at
the gather; the cuda kernel (``csrc/cuda/binary_conv_packed.cuh``) likewise skips the
packing kernel and feeds the words to the GEMM kernels of ``binary_conv2d``. Result:
exactly ``binary_conv2d(x.unpack(), ...)`` (spike activation, levels of the input), in
``x.dtype``. ``reference`` unpacks and runs the reference. Inference only on
cpu and cuda: the input has no gradient, and a weight that needs one must go through ``reference``.

Kernel contract: ``x`` int32 contiguous ``[N, H, W, bits, ceil(cin/32)]`` (T folded into N);
``wpacked``, ``alpha``, ``bias``, ``stride``, ``padding``, ``dilation``, ``kh``, ``kw`` as
for ``binary_conv2d_forward`` (``fastsnn/ops/binary_conv.py``); ``cin`` the channel count;
returns float32 ``[N, Cout, Hout, Wout]``, ``float32(dot) * alpha + bias``.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from ..packed_spikes import PackedSpikes
from ..reference import binary_conv as ref
from ._spine import Kernel, Op
from .binary_conv import PackedBinaryWeight, _check_vector, _output_size, _pair, weight_args


def _fake(x, wpacked, alpha, bias, stride, padding, dilation, kh, kw, cin):
    hout = (x.shape[1] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wout = (x.shape[2] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return x.new_empty((x.shape[0], wpacked.shape[0], hout, wout), dtype=torch.float32)


OP = Op("binary_conv2d_packed", triton_module="packed_spikes", kernels=(
    Kernel("binary_conv2d_packed_forward",
           "(Tensor x, Tensor wpacked, Tensor? alpha, Tensor? bias, int[] stride, "
           "int[] padding, int[] dilation, int kh, int kw, int cin) -> Tensor", _fake),),
    dtypes=dict.fromkeys(("reference", "cpu", "triton", "cuda"),
                         (torch.float32, torch.float16, torch.bfloat16, torch.float64)))


def check_packed_input(x: PackedSpikes, name: str = "x") -> None:
    if len(x.shape) != 5 or min(x.shape[2:]) < 1:
        raise ValueError(f"{name} must hold [T, N, C, H, W] spikes with no empty channel, row "
                         f"or column, got shape {tuple(x.shape)}")


def binary_conv2d_packed(x: PackedSpikes, weight: Union[Tensor, PackedBinaryWeight],
                         alpha: ref.AlphaSpec = None, bias: Optional[Tensor] = None, *,
                         stride=1, padding=0, dilation=1, activation: str = "spike",
                         levels: Optional[int] = None, backend: Optional[str] = None) -> Tensor:
    """``binary_conv2d`` of packed spikes (module docstring); ``[T, N, Cout, Hout, Wout]``."""
    if activation != "spike":
        raise ValueError(f"activation must be 'spike' for PackedSpikes input, got "
                         f"{activation!r}")
    if levels is not None and levels != x.levels:
        raise ValueError(f"levels={levels!r} differs from the PackedSpikes' levels "
                         f"({x.levels}); leave it out")
    chosen = OP.choose(backend, x.words)
    check_packed_input(x)
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    cout, cin, kh, kw, a = weight_args(weight, alpha, x.device)
    if cin != x.shape[2]:
        raise ValueError(f"weight has {cin} input channels but x has {x.shape[2]}")
    a = _check_vector(a if a is None else a.to(x.device), "alpha", cout, x.device)
    bias = _check_vector(bias, "bias", cout, x.device)
    _output_size(torch.empty(x.shape, device="meta"), (kh, kw), stride, padding, dilation)
    if chosen == "reference":
        ws = weight.unpack() if isinstance(weight, PackedBinaryWeight) else ref.sign_ste(weight)
        return ref.binary_conv2d(x.unpack(), ws, a, bias, stride, padding, dilation)
    if isinstance(weight, Tensor) and weight.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"binary_conv2d on PackedSpikes is inference only on the {chosen} "
                           f"backend: the weight requires grad (use torch.no_grad(), a "
                           f"PackedBinaryWeight, or backend='reference')")
    wpacked = (weight.words if isinstance(weight, PackedBinaryWeight)
               else ref.pack_weight(weight.detach()))
    t, n = x.shape[:2]
    out = OP.kernel("binary_conv2d_packed_forward", chosen)(
        x.words.reshape(t * n, *x.words.shape[2:]), wpacked.contiguous(),
        None if a is None else a.detach().float().contiguous(),
        None if bias is None else bias.detach().float().contiguous(), list(stride),
        list(padding), list(dilation), kh, kw, cin)
    return out.to(x.dtype).reshape(t, n, *out.shape[1:])
