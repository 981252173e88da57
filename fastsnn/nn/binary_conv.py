"""``BinaryConv2d``: a convolution with binarised weights that trains and then runs packed."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.binary_conv import (
    ACTIVATIONS,
    PackedBinaryWeight,
    _check_levels,
    _pair,
    binary_conv2d,
    check_values,
)
from ..packed_spikes import PackedSpikes
from ..reference.binary_conv import float_path


class BinaryConv2d(nn.Module):
    """``Conv2d`` whose weights are ``alpha * sign(W)`` (docs/binary_conv.md), on spike or sign
    inputs (``[N, C, H, W]`` or ``[T, N, C, H, W]``).

    Modes:

    * **train** (``module.train()``, binarised): ``F.conv2d`` on the binarised latent float
      weights; gradients reach ``W`` through the clipped straight-through estimator (and
      ``alpha = mean|W|``, which stays in the graph).
    * **eval**: the packed popcount kernel (``fastsnn.binary_conv2d``) on the latent weights
      packed afresh at every call. No cache: an in-place edit of the weights (a fused
      optimizer step, ``weight.data.clamp_``) changes neither ``_version`` nor the data
      pointer, so no cheap key can tell that they changed, and a key read from ``data_ptr()``
      breaks ``torch.compile`` and ``torch.export``. Packing reads ``Cout*Cin*KH*KW`` weights
      once, small next to the convolution; call ``pack()`` for inference without it.
    * **full precision** (``set_binarized(False)``): ``F.conv2d`` on ``W`` itself, for
      layers that start in float and are binarised later (ALBSNN).
    * **packed** (after ``pack()``): the latent weights are dropped; the module holds the
      int32 sign bits ``weight_packed`` ``[Cout, KH*KW, ceil(Cin/32)]`` (32x smaller) and the
      ``alpha`` buffer, runs the kernel in any mode, and its ``state_dict`` holds exactly that
      (a fresh ``BinaryConv2d`` loads it and becomes packed).

    ``validate=True`` (default) checks the values of the first binarised call's input
    (integers ``0..levels`` for ``activation="spike"``, ``-1/+1`` for ``"sign"``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = False, alpha: Optional[str] = "channel",
                 activation: str = "spike", levels: int = 1, *, dilation=1,
                 backend: Optional[str] = None, validate: bool = True):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if alpha not in ("channel", None):
            raise ValueError(f"alpha must be 'channel' or None, got {alpha!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        _check_levels(levels, activation)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride, self.padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
        self.dilation = _pair(dilation, "dilation", 1)
        self.alpha_mode, self.activation, self.levels = alpha, activation, levels
        self.backend, self.validate = backend, validate
        self.binarized, self.packed = True, False
        self._validated = False
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:  # nn.Conv2d's initialisation
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    # ----------------------------------------------------------------------- modes
    def set_binarized(self, binarized: bool) -> BinaryConv2d:
        """Switch between the binarised weights (default) and the full-precision ones."""
        if self.packed and not binarized:
            raise RuntimeError("a packed BinaryConv2d has no full-precision weights")
        self.binarized = bool(binarized)
        return self

    @torch.no_grad()
    def pack(self) -> PackedBinaryWeight:
        """Drop the latent weights for their packed form (int32 sign bits + alpha buffer)."""
        if self.packed:
            return self._packed_weight()
        if not self.binarized:
            raise RuntimeError("pack() needs a binarised layer: call set_binarized(True)")
        packed = PackedBinaryWeight.from_float(self.weight, self.alpha_mode)
        self._become_packed(packed.words, packed.alpha)
        return packed

    def _become_packed(self, words: torch.Tensor, alpha: Optional[torch.Tensor]) -> None:
        del self.weight
        self.register_parameter("weight", None)
        self.register_buffer("weight_packed", words)
        self.register_buffer("alpha", alpha)
        self.packed = True

    def _packed_weight(self) -> PackedBinaryWeight:
        return PackedBinaryWeight(self.weight_packed, self.alpha, self.in_channels,
                                  self.kernel_size)

    def _packed_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of ``weight_packed`` and ``alpha`` for this layer's geometry."""
        kh, kw = self.kernel_size
        return (self.out_channels, kh * kw, -(-self.in_channels // 32)), (self.out_channels,)

    # ----------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = dict(stride=self.stride, padding=self.padding, dilation=self.dilation)
        if isinstance(x, PackedSpikes):  # inference on packed spikes: no repacking
            if self.binarized:
                return self._forward_packed_spikes(x, conv)
            x = x.unpack()  # full precision: a float convolution
        if not self.binarized:
            lead, x4 = x.shape[:-3], x.reshape(-1, *x.shape[-3:])
            out = F.conv2d(x4, self.weight, self.bias, **conv)
            return out.reshape(*lead, *out.shape[1:])
        if self.validate and not self._validated:
            check_values(x, self.activation, self.levels)
            self._validated = True
        if self.training and not self.packed:
            return float_path(x, self.weight, self.alpha_mode, self.bias, **conv)
        weight = (self._packed_weight() if self.packed
                  else PackedBinaryWeight.from_float(self.weight.detach(), self.alpha_mode))
        return binary_conv2d(x, weight, None, self.bias, activation=self.activation,
                             levels=self.levels, backend=self.backend, **conv)

    def _forward_packed_spikes(self, x: PackedSpikes, conv: dict) -> torch.Tensor:
        if self.activation != "spike" or x.levels != self.levels:
            raise ValueError(f"PackedSpikes input needs activation='spike' and levels="
                             f"{x.levels} (the input's); this layer has activation="
                             f"{self.activation!r}, levels={self.levels}")
        weight = (self._packed_weight() if self.packed
                  else PackedBinaryWeight.from_float(self.weight.detach(), self.alpha_mode))
        return binary_conv2d(x, weight, None, self.bias, backend=self.backend, **conv)

    # ----------------------------------------------------------------------- state
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        words = state_dict.get(prefix + "weight_packed")
        if words is not None and not self.packed:  # a packed state: become packed first
            # Buffers of this layer's own shapes, not the incoming ones: the base class then
            # reports a size mismatch for a state of another geometry, as nn.Conv2d does.
            words_shape, alpha_shape = self._packed_shapes()
            alpha = state_dict.get(prefix + "alpha")
            self._become_packed(
                torch.empty(words_shape, dtype=torch.int32, device=words.device),
                None if alpha is None else torch.empty(alpha_shape, dtype=alpha.dtype,
                                                       device=alpha.device))
        elif words is None and self.packed and prefix + "weight" in state_dict:
            error_msgs.append(f"{prefix}: a packed BinaryConv2d cannot load latent float "
                              f"weights; load them into an unpacked BinaryConv2d")
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"bias={self.bias is not None}, alpha={self.alpha_mode!r}, "
                f"activation={self.activation!r}, levels={self.levels}, "
                f"binarized={self.binarized}, packed={self.packed}")
