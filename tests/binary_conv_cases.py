"""Shared by the binary_conv backend tests: packing weights by the kernel contract, random
inputs valid for each activation, and the exact expected output.

Contract (csrc/common/binary_conv.h): ``wpacked`` int32 ``[Cout, KH*KW, words]``,
``words = ceil(Cin / 32)``; bit ``i`` of word ``w`` at ``(o, kpos)`` is 1 iff
``W[o, 32*w + i, kh, kw] >= 0`` with ``kpos = kh*KW + kw``; unused bits are 0.
``out = alpha[o] * dot + bias[o]`` in float32, ``dot`` the exact integer
``F.conv2d(x, sign(W))`` (zero padding = no input) with ``sign(0) = +1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastsnn._enums import BinaryActivation

SPIKE, SIGN = int(BinaryActivation.SPIKE), int(BinaryActivation.SIGN)


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """int32 ``[Cout, KH*KW, words]`` sign bits of ``weight`` ``[Cout, Cin, KH, KW]``."""
    cout, cin, kh, kw = weight.shape
    words = (cin + 31) // 32
    bits = (weight >= 0).to(torch.int64).reshape(cout, cin, kh * kw).permute(0, 2, 1)
    bits = F.pad(bits, (0, words * 32 - cin)).reshape(cout, kh * kw, words, 32)
    packed = (bits << torch.arange(32)).sum(-1)  # < 2^32, exact in int64
    return torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32).contiguous()


def bits_for(levels: int) -> int:
    """Bit-planes of a spike value in 0..levels: ceil(log2(levels + 1))."""
    return max(1, int(levels).bit_length())


def random_input(shape, activation: int, levels: int, gen: torch.Generator) -> torch.Tensor:
    """float32 values valid for the activation: integers 0..levels, or -1/+1."""
    if activation == SIGN:
        return torch.randint(0, 2, shape, generator=gen).float() * 2 - 1
    return torch.randint(0, levels + 1, shape, generator=gen).float()


def random_weight(shape, gen: torch.Generator) -> torch.Tensor:
    """Latent float weights, some exactly 0 (sign(0) = +1 must hold)."""
    w = torch.randn(shape, generator=gen)
    return torch.where(torch.rand(shape, generator=gen) < 0.1, torch.zeros(()), w)


def expected(x, weight, alpha, bias, stride, padding, dilation) -> torch.Tensor:
    """alpha[o] * dot + bias[o] in float32 with the exact integer dot (float64 conv)."""
    sign = torch.where(weight >= 0, 1.0, -1.0).double()
    dot = F.conv2d(x.double(), sign, None, stride, padding, dilation)
    out = dot.float()
    if alpha is not None:
        out = alpha.view(1, -1, 1, 1) * out
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def float_conv(x, weight, alpha, bias, stride, padding, dilation) -> torch.Tensor:
    """The user-facing statement: F.conv2d(x, alpha * sign(W), bias) in float32."""
    wb = torch.where(weight >= 0, 1.0, -1.0)
    if alpha is not None:
        wb = wb * alpha.view(-1, 1, 1, 1)
    return F.conv2d(x, wb, bias, stride, padding, dilation)
