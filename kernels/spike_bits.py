"""Triton pack / unpack of spikes as bit-planes (layout: ``fastsnn/spike_bits.py``).

``data`` uint8 ``[bits, ceil(n/8)]``: bit ``j`` of byte ``i`` of plane ``b`` is bit ``b`` of
value ``8*i + j`` of the flat input; bits past ``n`` are zero.

* ``_pack_kernel``: a program packs ``BLOCK`` bytes of every plane from a ``[BLOCK, 8]``
  tile of values (codes = the values truncated to int32; spikes are small integers).
* ``_unpack_kernel``: a program rebuilds ``BLOCK * 8`` values, summing ``2**b`` times the
  bits of each plane, and stores them in the output dtype.

Distinct bits never carry, so their sum is their OR.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 128  # bytes per program (1024 values)


@triton.jit
def _pack_kernel(x_ptr, out_ptr, N, NBYTES, BITS: tl.constexpr, BLOCK: tl.constexpr):
    byte = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    lane = tl.arange(0, 8)
    idx = byte[:, None] * 8 + lane[None, :]
    v = tl.load(x_ptr + idx, mask=idx < N, other=0.0)
    code = v.to(tl.int32)
    for b in tl.static_range(BITS):
        packed = tl.sum(((code >> b) & 1) << lane[None, :], axis=1)
        tl.store(out_ptr + b * NBYTES + byte, packed.to(tl.uint8), mask=byte < NBYTES)


@triton.jit
def _unpack_kernel(data_ptr, out_ptr, N, NBYTES, BITS: tl.constexpr, BLOCK: tl.constexpr):
    byte = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    lane = tl.arange(0, 8)
    ok = byte < NBYTES
    value = tl.zeros((BLOCK, 8), dtype=tl.int32)
    for b in tl.static_range(BITS):
        d = tl.load(data_ptr + b * NBYTES + byte, mask=ok, other=0).to(tl.int32)
        value += ((d[:, None] >> lane[None, :]) & 1) << b
    idx = byte[:, None] * 8 + lane[None, :]
    # through float32: the interpreter's direct int32 -> bfloat16 cast is wrong, and the
    # values 0..2^BITS-1 are exact in every float dtype either way
    tl.store(out_ptr + idx, value.to(tl.float32).to(out_ptr.dtype.element_ty), mask=idx < N)


def pack(flat: torch.Tensor, bits: int) -> torch.Tensor:
    """Contiguous 1-D float ``flat`` -> uint8 ``[bits, ceil(n/8)]``."""
    if flat.dim() != 1 or not flat.is_contiguous() or not flat.is_floating_point():
        raise TypeError("flat must be a contiguous 1-D floating tensor")
    n = flat.numel()
    nbytes = (n + 7) // 8
    out = torch.empty(bits, nbytes, dtype=torch.uint8, device=flat.device)
    if nbytes:
        _pack_kernel[(triton.cdiv(nbytes, BLOCK),)](flat, out, n, nbytes, BITS=bits,
                                                    BLOCK=BLOCK)
    return out


def unpack(data: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``[bits, ceil(n/8)]`` -> 1-D ``dtype`` tensor of the ``n`` values."""
    if data.dtype != torch.uint8 or data.dim() != 2 or not data.is_contiguous():
        raise TypeError("data must be a contiguous uint8 [bits, bytes] tensor")
    if data.shape[1] != (n + 7) // 8:
        raise ValueError(f"data holds {data.shape[1]} bytes per plane, n={n} needs "
                         f"{(n + 7) // 8}")
    out = torch.empty(n, dtype=dtype, device=data.device)
    if n:
        _unpack_kernel[(triton.cdiv(data.shape[1], BLOCK),)](data, out, n, data.shape[1],
                                                            BITS=data.shape[0], BLOCK=BLOCK)
    return out
