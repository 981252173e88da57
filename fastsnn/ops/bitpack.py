"""``fastsnn.bitpack``: integers packed into int32 words along one axis (docs/binary_conv.md).

Layout (the one the binary convolution kernels use, see ``fastsnn.reference.binary_conv``):
axis ``dim`` of size n becomes ``ceil(n/32)`` int32 words, bit ``i`` of word ``j`` holding
element ``32*j + i`` (least significant bit first; bit 31 is the sign bit of the int32),
bits beyond n zero. With ``bits > 1`` a plane axis of size ``bits`` is inserted before the
word axis: plane ``b`` holds bit ``b`` of every value (``x = sum_b 2**b * plane_b``).
``fastsnn.reference.binary_conv.bitunpack`` is the inverse.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..reference.binary_conv import bitpack as _bitpack
from . import _checks


def bitpack(x: Tensor, *, bits: int = 1, dim: int = 1) -> Tensor:
    """Pack integer values ``0 <= x < 2**bits`` along ``dim`` into int32 words.

    ``x`` may be bool, integer or floating (holding integers). Raises ``ValueError`` for
    values that are not integers in range, and for a bad ``bits`` or ``dim``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    bits = _checks.integer(bits, "bits", 1, 31)
    if x.dim() == 0:
        raise ValueError("x must have at least one dim to pack along")
    dim = _checks.integer(dim, "dim", -x.dim(), x.dim() - 1)
    if x.is_complex():
        raise TypeError(f"x must be bool, integer or floating, got {x.dtype}")
    if x.dtype != torch.bool and x.numel():
        top = 2**bits - 1
        ok = x >= 0
        # In a narrow integer dtype 2**bits may not exist (uint8 with bits=8 wraps to 0):
        # compare against the largest value only where the dtype can exceed it.
        if x.is_floating_point() or top < torch.iinfo(x.dtype).max:
            ok &= x <= top
        if x.is_floating_point():
            ok &= x == torch.round(x)
        if not _checks.values_hold(ok, lambda: f"x must hold integers in 0..{top} for "
                                   f"bits={bits}"):
            bad = x[~ok].reshape(-1)[0].item()
            raise ValueError(f"x must hold integers in 0..{2**bits - 1} for bits={bits}; "
                             f"found {bad!r}")
    return _bitpack(x, bits=bits, dim=dim)
