"""Binary convolution: the executable form of docs/binary_conv.md.

Every fast backend must reproduce ``binary_conv2d`` below bit for bit:

* weights are binarised to ``sign(W)`` with ``sign(0) = +1``, times ``alpha`` per output
  channel (``mean|W|`` over the filter, a given tensor, or none);
* the integer dot product ``sum x * sign(W)`` over the in-bounds taps is exact (computed
  here in float64 by ``F.conv2d``; zero padding means "no input", as in ``F.conv2d``);
* the result is ``float32(dot) * alpha + bias``, two float32 roundings (no fused
  multiply-add), in the kernels' epilogue order.

Bit packing (``bitpack``): values along one axis become int32 words, bit ``i`` of word
``j`` holding element ``32*j + i`` (least significant bit first), unused bits zero; with
``bits > 1`` a plane axis comes first, plane ``b`` holding bit ``b`` of every value. The
packed weight of the kernels is ``pack_weight(W)``: the sign bits ``W >= 0`` packed along
the input channels, shape ``[Cout, KH*KW, ceil(Cin/32)]`` (taps row-major).

Training uses the clipped straight-through estimator ``dL/dW = dL/dWb * alpha * 1[|W| <= 1]``
(``sign_ste``); ``alpha = mean|W|`` stays in the graph, so its own gradient also reaches
``W`` (as in XNOR-Net). Pass a detached ``alpha`` tensor to drop that path.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

AlphaSpec = Union[None, str, float, Tensor]
_WORD = 32


def sign(w: Tensor) -> Tensor:
    """``+1`` where ``w >= 0`` (so ``sign(0) = +1``), else ``-1``; dtype of ``w``."""
    return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)


class _SignSTE(torch.autograd.Function):
    """``sign`` forward, clipped straight-through backward: ``grad * 1[|w| <= 1]``.
    (``setup_context`` apart from ``forward``: what ``torch.func.grad`` needs. No ``jvp``:
    dynamo cannot trace a Function that has one.)"""

    @staticmethod
    def forward(w):
        return sign(w)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def sign_ste(w: Tensor) -> Tensor:
    """``sign(w)`` whose gradient is the clipped straight-through estimator."""
    return _SignSTE.apply(w)


def channel_alpha(weight: Tensor) -> Tensor:
    """``mean|W|`` over each output channel's filter: shape ``[Cout]``."""
    return weight.abs().mean(dim=tuple(range(1, weight.dim())))


def alpha_tensor(alpha: AlphaSpec, weight: Tensor) -> Optional[Tensor]:
    """``None`` | ``"channel"`` (mean|W|) | float | ``[Cout]`` tensor -> ``[Cout]`` or None."""
    if alpha is None:
        return None
    if isinstance(alpha, str):
        if alpha != "channel":
            raise ValueError(f"alpha must be None, 'channel', a float or a [Cout] tensor; "
                             f"got {alpha!r}")
        return channel_alpha(weight)
    if not isinstance(alpha, Tensor):
        return torch.full((weight.shape[0],), float(alpha), dtype=weight.dtype,
                          device=weight.device)
    return alpha.reshape(-1)


def binarize(weight: Tensor, alpha: AlphaSpec = "channel") -> Tensor:
    """``Wb = alpha * sign(W)`` with the straight-through gradient (docs/binary_conv.md)."""
    a = alpha_tensor(alpha, weight)
    s = sign_ste(weight)
    return s if a is None else s * a.reshape(-1, *([1] * (weight.dim() - 1)))


# ------------------------------------------------------------------------- bit packing

def bits_for_levels(levels: int) -> int:
    """Bit-planes of a spike value in 0..levels: ``ceil(log2(levels + 1))``."""
    return int(levels).bit_length()


def bitpack(x: Tensor, bits: int = 1, dim: int = 1) -> Tensor:
    """Integers ``0 <= x < 2**bits`` packed along ``dim`` into int32 words.

    Shape: ``dim`` of size n becomes ``ceil(n/32)`` words; with ``bits > 1`` a plane axis of
    size ``bits`` is inserted before it. Word bits beyond n are zero. Values are not checked
    here (``fastsnn.bitpack`` checks them).
    """
    dim = dim % x.dim()
    v = x.movedim(dim, -1).to(torch.uint8 if bits <= 8 else torch.int64)  # small = fast
    n = v.shape[-1]
    words = -(-n // _WORD)
    v = F.pad(v, (0, words * _WORD - n))
    planes = torch.stack([(v >> b) & 1 for b in range(bits)], dim=-2).to(torch.uint8)
    planes = planes.reshape(*planes.shape[:-1], words, 4, 8)
    byte_weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8,
                                device=x.device)
    packed_bytes = (planes * byte_weights).sum(-1, dtype=torch.uint8).to(torch.int64)
    word = (packed_bytes[..., 0] | packed_bytes[..., 1] << 8 | packed_bytes[..., 2] << 16
            | packed_bytes[..., 3] << 24)
    word = torch.where(word >= 2**31, word - 2**32, word).to(torch.int32)  # two's complement
    if bits == 1:
        return word.squeeze(-2).movedim(-1, dim)
    return word.movedim((-2, -1), (dim, dim + 1))


def bitunpack(words: Tensor, n: int, bits: int = 1, dim: int = 1) -> Tensor:
    """Inverse of ``bitpack(x, bits=bits, dim=dim)``: int64 values, ``n`` along ``dim``."""
    dim = dim % (words.dim() - (bits > 1))  # dim counts in the unpacked tensor's dims
    w = words.to(torch.int64) & 0xFFFFFFFF
    w = w.movedim(dim, -1) if bits == 1 else w.movedim((dim, dim + 1), (-2, -1))
    if bits == 1:
        w = w.unsqueeze(-2)
    shifts = torch.arange(_WORD, device=words.device)
    bit = (w.unsqueeze(-1) >> shifts) & 1                     # [..., bits, words, 32]
    bit = bit.reshape(*bit.shape[:-2], -1)[..., :n]            # [..., bits, n]
    planes = torch.arange(bits, device=words.device).reshape(-1, 1)
    return (bit << planes).sum(-2).movedim(-1, dim)


def pack_weight(weight: Tensor) -> Tensor:
    """Sign bits of ``W [Cout, Cin, KH, KW]`` as the kernels' int32 ``[Cout, KH*KW, words]``."""
    cout, cin, kh, kw = weight.shape
    bits = (weight >= 0).permute(0, 2, 3, 1).reshape(cout, kh * kw, cin)
    return bitpack(bits, bits=1, dim=2)


def unpack_weight(wpacked: Tensor, in_channels: int, kernel_size: tuple[int, int],
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """``pack_weight``'s inverse: the ``+1 / -1`` weights ``[Cout, Cin, KH, KW]``."""
    kh, kw = kernel_size
    bits = bitunpack(wpacked, in_channels, bits=1, dim=2)       # [Cout, KK, Cin]
    s = (2 * bits - 1).to(dtype)
    return s.reshape(wpacked.shape[0], kh, kw, in_channels).permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------- convolution

def sign_input(x: Tensor) -> Tensor:
    """Inputs of ``activation="sign"`` as the kernels read them: ``+1`` where ``x >= 0`` (so
    ``sign(0) = +1``, the weights' rule), else ``-1`` (NaN too); values that are already
    ``+-1`` pass unchanged, and so does the gradient (straight through)."""
    return x + (sign(x) - x).detach()


def binary_conv2d(x: Tensor, weight_sign: Tensor, alpha: Optional[Tensor] = None,
                  bias: Optional[Tensor] = None, stride=1, padding=0, dilation=1) -> Tensor:
    """``float32(dot) * alpha + bias`` with ``dot`` the exact ``F.conv2d(x, weight_sign)``.

    ``x`` is ``[N, C, H, W]`` or ``[T, N, C, H, W]`` (folded over T); ``weight_sign`` holds
    ``+1 / -1`` (e.g. ``sign_ste(W)`` or ``unpack_weight(...)``). Differentiable: the
    gradients are those of the float convolution on ``alpha * weight_sign``.
    """
    lead = x.shape[:-3]
    x4 = x.reshape(-1, *x.shape[-3:])
    exact = _dot_dtype(weight_sign)
    dot = F.conv2d(x4.to(exact), weight_sign.to(exact), None, stride, padding, dilation)
    out = dot.float()
    if alpha is not None:
        out = out * alpha.float().reshape(-1, 1, 1)
    if bias is not None:
        out = out + bias.float().reshape(-1, 1, 1)
    return out.to(x.dtype).reshape(*lead, *out.shape[1:])


# Largest |value| of a valid input (spike levels are at most 255, sign values are 1).
_MAX_INPUT = 255


def _dot_dtype(weight_sign: Tensor) -> torch.dtype:
    """The dtype in which the convolution computes the integer dot product exactly.

    float64 everywhere, except while exporting to ONNX: onnxruntime has no float64 ``Conv``,
    and float32 is exact too when every partial sum is an integer below 2^24 in magnitude,
    which ``255 * Cin * KH * KW < 2^24`` guarantees for valid inputs (|x| <= 255, weights
    +1 / -1) in any summation order. Outside export float64 stays: a float32 convolution may
    run in TF32 or through Winograd on some devices, neither exact.
    """
    terms = weight_sign[0].numel()
    if torch.onnx.is_in_onnx_export() and _MAX_INPUT * terms < 2 ** 24:
        return torch.float32
    return torch.float64


def float_path(x: Tensor, weight: Tensor, alpha: AlphaSpec = "channel",
               bias: Optional[Tensor] = None, stride=1, padding=0, dilation=1) -> Tensor:
    """``F.conv2d(x, alpha * sign_ste(W), bias)`` in x's dtype: what training runs."""
    lead = x.shape[:-3]
    x4 = x.reshape(-1, *x.shape[-3:])
    wb = binarize(weight, alpha).to(x.dtype)
    out = F.conv2d(x4, wb, None if bias is None else bias.to(x.dtype), stride, padding,
                   dilation)
    return out.reshape(*lead, *out.shape[1:])
