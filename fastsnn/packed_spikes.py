"""``fastsnn.PackedSpikes``: spikes as bit-planes packed along channels (docs/packed_spikes.md).

A spike tensor ``s`` of shape ``[T, N, C, *rest]`` (``rest`` = ``(H, W)`` for images, empty
for ``[T, N, C]``) holding integers ``0..levels`` is stored as

* ``words``: int32 ``[T, N, *rest, bits, ceil(C/32)]``, contiguous, ``bits =
  ceil(log2(levels + 1))``; bit ``i`` of word ``w`` of plane ``b`` at ``(t, n, *pos)`` is
  bit ``b`` of ``s[t, n, 32*w + i, *pos]`` (least significant bit first; bit 31 is the
  int32's sign bit); bits past ``C`` are zero.

This is the one home of the layout. It is channels-last and is, for each ``(t, n)``, exactly
the bit image the binary convolution kernels build from float input (``[H, W, bits, W32]``
per image; ``csrc/cpu/binary_conv.cpp``), so ``binary_conv2d`` reads it without repacking,
and the fused ``binary_snn_layer`` writes it. ``mt_lif(..., packed=True)`` writes it too.

A ``PackedSpikes`` is not a tensor: torch functions and arithmetic on it raise
``TypeError`` naming the operation (call ``.unpack()`` for float spikes).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from .reference.binary_conv import bitpack, bits_for_levels, bitunpack

WORD = 32
MAX_LEVELS = 255


def words_per_pixel(channels: int) -> int:
    """int32 words of one plane of one pixel: ``ceil(C / 32)``."""
    return -(-channels // WORD)


def packed_shape(shape, levels: int) -> tuple[int, ...]:
    """Shape of ``words`` for spikes of ``shape`` ``[T, N, C, *rest]``."""
    t, n, c, *rest = shape
    return (t, n, *rest, bits_for_levels(levels), words_per_pixel(c))


def _check_levels(levels) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be an int in 1..{MAX_LEVELS}, got {levels!r}")
    return levels


class PackedSpikes:
    """Spikes ``0..levels`` of a ``[T, N, C, ...]`` tensor, packed (module docstring)."""

    __slots__ = ("words", "levels", "shape", "dtype")

    def __init__(self, words: Tensor, levels: int, shape, dtype: torch.dtype = torch.float32):
        _check_levels(levels)
        shape = torch.Size(shape)
        if len(shape) < 3:
            raise ValueError(f"shape must be [T, N, C, ...], got {tuple(shape)}")
        if not isinstance(words, Tensor) or words.dtype != torch.int32:
            raise TypeError(f"words must be an int32 tensor, got "
                            f"{getattr(words, 'dtype', type(words).__name__)}")
        if tuple(words.shape) != packed_shape(shape, levels):
            raise ValueError(f"words must have shape {packed_shape(shape, levels)} for spikes "
                             f"of shape {tuple(shape)} with levels={levels}, got "
                             f"{tuple(words.shape)}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.words = words.contiguous()
        self.levels = levels
        self.shape = shape
        self.dtype = dtype

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_float(cls, spikes: Tensor, levels: int = 1) -> PackedSpikes:
        """Pack a ``[T, N, C, ...]`` tensor of integers ``0..levels`` (checked)."""
        _check_levels(levels)
        if not isinstance(spikes, Tensor):
            raise TypeError(f"spikes must be a tensor, got {type(spikes).__name__}")
        if not spikes.is_floating_point():
            raise TypeError(f"spikes must be a floating tensor, got {spikes.dtype}")
        if spikes.dim() < 3:
            raise ValueError(f"spikes must be [T, N, C, ...] with at least 3 dims, got shape "
                             f"{tuple(spikes.shape)}")
        if spikes.numel():
            s = spikes.detach()
            ok = (s >= 0) & (s <= levels) & (s == torch.round(s))
            if not bool(ok.all()):
                bad = s[~ok].reshape(-1)[0].item()
                raise ValueError(f"spikes must hold integers in 0..{levels} (levels={levels}); "
                                 f"found {bad!r}")
        return cls(pack_channels(spikes.detach(), levels), levels, spikes.shape, spikes.dtype)

    # -- the unpacked form -------------------------------------------------------------------

    @property
    def bits(self) -> int:
        return int(self.words.shape[-2])

    @property
    def device(self) -> torch.device:
        return self.words.device

    @property
    def nbytes(self) -> int:
        return self.words.nbytes

    def numel(self) -> int:
        """Elements of the unpacked tensor."""
        return math.prod(self.shape)

    def unpack(self, dtype: Optional[torch.dtype] = None) -> Tensor:
        """The spikes as a ``shape`` tensor of ``dtype`` (default ``self.dtype``); exact."""
        words = self.words.squeeze(-2) if self.bits == 1 else self.words
        values = bitunpack(words, self.shape[2], bits=self.bits, dim=-1)  # [T, N, *rest, C]
        return values.movedim(-1, 2).to(dtype or self.dtype).contiguous()

    def to(self, device) -> PackedSpikes:
        return PackedSpikes(self.words.to(device), self.levels, self.shape, self.dtype)

    def __repr__(self) -> str:
        return (f"PackedSpikes(shape={tuple(self.shape)}, levels={self.levels}, "
                f"dtype={self.dtype}, device={self.device}, nbytes={self.nbytes})")

    # -- not a tensor --------------------------------------------------------------------------

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", repr(func))
        raise TypeError(f"{name} is not defined on PackedSpikes: it holds packed bits, not "
                        f"floats; call .unpack() first (only binary_conv2d, "
                        f"binary_snn_layer and BinaryConv2d take it as is)")

    def _not_a_tensor(self, *_):
        raise TypeError("arithmetic is not defined on PackedSpikes: it holds packed bits, not "
                        "floats; call .unpack() first")


for _op in ("add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "mod", "and", "or",
            "xor", "lt", "le", "gt", "ge"):
    setattr(PackedSpikes, f"__{_op}__", PackedSpikes._not_a_tensor)
    if _op not in ("lt", "le", "gt", "ge"):
        setattr(PackedSpikes, f"__r{_op}__", PackedSpikes._not_a_tensor)
for _op in ("neg", "abs", "float", "int", "bool", "len", "iter", "array"):
    setattr(PackedSpikes, f"__{_op}__", PackedSpikes._not_a_tensor)


def pack_channels(spikes: Tensor, levels: int) -> Tensor:
    """``words`` of ``spikes`` ``[T, N, C, *rest]`` (no checks; reference implementation)."""
    moved = spikes.movedim(2, -1)
    words = bitpack(moved, bits=bits_for_levels(levels), dim=-1)
    if words.dim() == moved.dim():  # one plane: bitpack inserts no plane axis
        words = words.unsqueeze(-2)
    return words.contiguous()


def max_pool2d(x: PackedSpikes, kernel_size: int = 2) -> PackedSpikes:
    """``F.max_pool2d(kernel_size)`` (stride = kernel, floor) over each step of image spikes.

    For ``levels == 1`` the maximum is the OR of the bits, taken on the words; otherwise
    the spikes are unpacked, pooled and packed again (exact, not fast).
    """
    if len(x.shape) != 5:
        raise ValueError(f"x must hold [T, N, C, H, W] spikes, got shape {tuple(x.shape)}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size must be an int >= 1, got {kernel_size!r}")
    k = kernel_size
    t, n, c, h, w = x.shape
    if x.levels > 1:
        s = x.unpack(torch.float32).flatten(0, 1)
        pooled = torch.nn.functional.max_pool2d(s, k).unflatten(0, (t, n))
        return PackedSpikes(pack_channels(pooled, x.levels), x.levels, pooled.shape, x.dtype)
    ho, wo = h // k, w // k
    words = x.words[:, :, :ho * k, :wo * k]
    words = words.reshape(t, n, ho, k, wo, k, *words.shape[-2:])
    out = words[:, :, :, 0, :, 0]
    for i in range(k):
        for j in range(k):
            if i or j:
                out = out | words[:, :, :, i, :, j]
    return PackedSpikes(out.contiguous(), 1, (t, n, c, ho, wo), x.dtype)
