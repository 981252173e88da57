"""Spikes stored as bits: the compact form training keeps for the backward pass.

A spike tensor holds integers ``0..levels`` (``levels = K``), ``log2(K+1)`` bits of
information in a 32-bit float. ``pack(x, levels)`` stores it as ``bits = bits_for(levels)``
bit-planes (``ceil(log2(K+1))``: 1 for K = 1, 2 for K = 3) of ``ceil(n/8)`` bytes each, for
the ``n`` values of ``x`` in row-major order:

* ``data``: uint8 ``[bits, ceil(n/8)]``; bit ``j`` (least significant first) of byte ``i``
  of plane ``b`` is bit ``b`` of value ``8*i + j``, so ``x = sum_b 2**b * plane_b``;
  bits past ``n`` are zero.

``SpikeBits.unpack()`` is exact. On CPU both directions are vectorised torch ops (shifts
on uint8, a 256-entry table for unpacking); on CUDA the Triton kernels of
``fastsnn.kernels.spike_bits`` (same layout) run when Triton is available.

Any object with ``unpack() -> Tensor``, ``shape`` and ``levels`` (a future packed spike
format, for instance) can stand where a ``SpikeBits`` is kept; ``nbytes`` is what it
costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from . import _backends

BACKENDS = ("reference", "triton")


def bits_for(levels: int) -> int:
    """Bits per value for spikes ``0..levels``: ``ceil(log2(levels + 1))``."""
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 255:
        raise ValueError(f"levels must be an int in 1..255, got {levels!r}")
    return max(1, math.ceil(math.log2(levels + 1)))


def check_spikes(x: Tensor, levels: int, name: str = "input") -> None:
    """``ValueError`` naming ``name`` unless ``x`` holds only integers in ``0..levels``.

    Two passes over ``x``: the range (one ``aminmax``, NaN fails it) and integrality.
    """
    if x.numel() == 0:
        return
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor of spikes, got {x.dtype}")
    x = x.detach()  # a check, not part of the graph
    lo, hi = torch.aminmax(x)
    if not (bool(lo >= 0) and bool(hi <= levels)):
        bad = lo if not bool(lo >= 0) else hi
        raise ValueError(f"{name} must hold spikes: integers in 0..{levels} (levels="
                         f"{levels}); found {bad.item()!r}")
    frac = torch.frac(x)
    if bool(frac.any()):
        bad = x.reshape(-1)[frac.reshape(-1).nonzero()[0, 0]].item()
        raise ValueError(f"{name} must hold spikes: integers in 0..{levels} (levels="
                         f"{levels}); found {bad!r}")


@dataclass(eq=False)
class SpikeBits:
    """Spikes ``0..levels`` of a tensor of ``shape``/``dtype``, packed as bit-planes."""

    data: Tensor  # uint8 [bits, ceil(n/8)]
    shape: torch.Size
    dtype: torch.dtype
    levels: int

    @property
    def nbytes(self) -> int:
        return self.data.numel()

    def unpack(self, backend: Optional[str] = None) -> Tensor:
        """The spikes as a contiguous tensor of ``shape`` and ``dtype`` (exact)."""
        n = math.prod(self.shape)
        chosen = _choose(backend, self.data.device)
        if chosen == "triton":
            from .kernels.spike_bits import unpack as triton_unpack

            flat = triton_unpack(self.data, n, self.dtype)
        else:
            flat = _unpack_torch(self.data, n, self.dtype)
        return flat.view(self.shape)


def pack(x: Tensor, levels: int = 1, backend: Optional[str] = None) -> SpikeBits:
    """``x`` (integers ``0..levels``, any float dtype) as ``SpikeBits``. The values are not
    checked here (``check_spikes`` does); anything but spikes packs to unspecified bits."""
    bits = bits_for(levels)
    chosen = _choose(backend, x.device)
    flat = x.detach().reshape(-1)
    if chosen == "triton":
        from .kernels.spike_bits import pack as triton_pack

        data = triton_pack(flat.contiguous(), bits)
    else:
        data = _pack_torch(flat, bits)
    return SpikeBits(data, x.shape, x.dtype, levels)


def _choose(backend: Optional[str], device: torch.device) -> str:
    """Triton on CUDA when available, else the torch ops; a forced one must be able to run."""
    if backend is None:
        if device.type == "cuda" and not _backends.why_not("triton", "cuda"):
            return "triton"
        return "reference"
    return _backends.choose(backend, device, "spike_bits", BACKENDS)


_SHIFTS: dict[torch.device, Tensor] = {}
_TABLES: dict[tuple, Tensor] = {}


def _shifts(device: torch.device) -> Tensor:
    if device not in _SHIFTS:
        _SHIFTS[device] = torch.arange(8, dtype=torch.uint8, device=device)
    return _SHIFTS[device]


def _powers(device: torch.device, dtype: torch.dtype) -> Tensor:
    key = ("powers", device, dtype)
    if key not in _TABLES:
        _TABLES[key] = (2 ** torch.arange(8, device=device)).to(dtype)
    return _TABLES[key]


def _table(device: torch.device, dtype: torch.dtype) -> Tensor:
    """``[256, 8]``: the bits of each byte value, least significant first, as ``dtype``."""
    key = (device, dtype)
    if key not in _TABLES:
        byte = torch.arange(256, device=device)[:, None]
        _TABLES[key] = ((byte >> torch.arange(8, device=device)) & 1).to(dtype)
    return _TABLES[key]


def _pack_torch(flat: Tensor, bits: int) -> Tensor:
    n = flat.numel()
    nbytes = (n + 7) // 8
    if n % 8:  # zero bits past n
        flat = torch.cat([flat, flat.new_zeros(8 * nbytes - n)])
    if bits == 1 and flat.dtype in (torch.float32, torch.float64):
        # one read of x: each byte is the exact integer sum_j x[8i+j] * 2**j (<= 255)
        return torch.mv(flat.view(nbytes, 8), _powers(flat.device, flat.dtype)).to(
            torch.uint8).unsqueeze(0)
    codes = flat.to(torch.uint8).view(nbytes, 8)
    shifts = _shifts(flat.device)
    planes = []
    for b in range(bits):
        plane = codes if bits == 1 else (codes >> b) & 1
        planes.append((plane << shifts).sum(1, dtype=torch.uint8))
    return torch.stack(planes)


def _unpack_torch(data: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    table = _table(data.device, dtype)
    out = table.index_select(0, data[0].int())
    for b in range(1, data.shape[0]):
        out.add_(table.index_select(0, data[b].int()), alpha=2**b)
    return out.view(-1)[:n]
