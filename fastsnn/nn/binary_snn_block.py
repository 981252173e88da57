"""``BinarySNNBlock``: BinaryConv2d + BatchNorm2d + MultiThresholdLIF, fused after ``pack()``.

Modes (the conv's own modes, ``fastsnn.nn.BinaryConv2d``, decide the first three):

* **train**: conv (binarised by the straight-through estimator, or full precision), batch
  norm on batch statistics, LIF; float spikes.
* **eval, binarised**: the batch norm is folded into the convolution's per-channel affine,
  ``current = float32(dot) * scale + shift`` with ``scale = alpha * gamma / sqrt(var + eps)``
  and ``shift = beta - mean * gamma / sqrt(var + eps)`` (``folded()``; a conv bias folds
  into ``shift``), then the LIF; float spikes. This is the arithmetic the fused layer runs,
  so the two agree bit for bit.
* **eval, full precision**: conv, batch norm, LIF as in training but on running statistics.
* **packed** (after ``pack()``, inference only): ``fastsnn.binary_snn_layer`` on packed
  spikes, ``PackedSpikes`` in and out (float input is packed first, values checked).

A ``PackedSpikes`` input is unpacked by the unfused modes.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..ops.binary_conv import PackedBinaryWeight, binary_conv2d
from ..ops.binary_snn_layer import binary_snn_layer
from ..packed_spikes import PackedSpikes
from .binary_conv import BinaryConv2d
from .lif import MultiThresholdLIF


class BinarySNNBlock(nn.Module):
    """``[T, N, Cin, H, W]`` spikes -> ``[T, N, Cout, H', W']`` spikes (module docstring).

    ``in_levels`` (default ``levels``) is the input spikes' levels, ``levels`` the LIF's;
    ``lif_kw`` go to ``MultiThresholdLIF`` (decay / tau, threshold, reset, form, ...).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1,
                 padding=1, *, levels: int = 1, in_levels: Optional[int] = None,
                 alpha: Optional[str] = "channel", bias: bool = False,
                 backend: Optional[str] = None, **lif_kw):
        super().__init__()
        self.conv = BinaryConv2d(in_channels, out_channels, kernel_size, stride, padding,
                                 bias=bias, alpha=alpha, levels=in_levels or levels,
                                 backend=backend)
        self.bn = nn.BatchNorm2d(out_channels)
        self.lif = MultiThresholdLIF(levels=levels, **{"backend": backend, **lif_kw})
        self.fused = False

    # ----------------------------------------------------------------------- folding
    @torch.no_grad()
    def folded(self) -> tuple[PackedBinaryWeight, Tensor, Tensor]:
        """The packed sign bits (without alpha) and the folded ``scale``, ``shift``."""
        conv, bn = self.conv, self.bn
        weight = (conv._packed_weight() if conv.packed
                  else PackedBinaryWeight.from_float(conv.weight.detach(), conv.alpha_mode))
        alpha = weight.alpha
        gain = getattr(conv, "bwo_gain", None)  # fastsnn.albsnn.bwo: alpha_eff = alpha * gain
        if gain is not None:
            alpha = (alpha if alpha is not None else torch.ones_like(gain)) * gain.detach()
        inv = torch.rsqrt(bn.running_var.float() + bn.eps)
        if bn.weight is not None:
            inv = bn.weight.detach().float() * inv
        scale = inv if alpha is None else alpha.float() * inv
        mean = bn.running_mean.float()
        if conv.bias is not None:
            mean = mean - conv.bias.detach().float()
        shift = -mean * inv
        if bn.bias is not None:
            shift = shift + bn.bias.detach().float()
        bits = PackedBinaryWeight(weight.words, None, weight.in_channels, weight.kernel_size)
        return bits, scale.contiguous(), shift.contiguous()

    def _lif_options(self) -> dict:
        lif = self.lif
        if lif._syn() is not None:
            raise ValueError("the fused layer has no synaptic current: syn_decay must be None")
        if lif.v_reset != 0:
            raise ValueError(f"the fused layer's membrane rests at 0: v_reset must be 0, got "
                             f"{lif.v_reset!r}")
        return dict(threshold=lif.threshold, levels=lif.levels, decay=lif.decay.detach(),
                    reset=lif.reset, form=lif.form)

    @torch.no_grad()
    def pack(self) -> BinarySNNBlock:
        """Switch to the fused packed layer (inference only); the conv must be binarised."""
        if not self.conv.binarized:
            raise RuntimeError("pack() needs a binarised conv: call conv.set_binarized(True)")
        if self.fused:
            return self
        weight, scale, shift = self.folded()
        self._lif_options()  # fails here, not at the first call
        if not self.conv.packed:
            self.conv.pack()
        self.register_buffer("fused_scale", scale)
        self.register_buffer("fused_shift", shift)
        self.fused = True
        return self.eval()

    # ----------------------------------------------------------------------- forward
    def forward(self, x):
        if self.fused:
            return self._fused(x)
        if isinstance(x, PackedSpikes):
            x = x.unpack()
        if self.training or not self.conv.binarized:
            y = self.bn(self.conv(x).flatten(0, 1)).unflatten(0, x.shape[:2])
            return self.lif(y)
        weight, scale, shift = self.folded()
        conv = self.conv
        current = binary_conv2d(x, weight, scale, shift, stride=conv.stride,
                                padding=conv.padding, dilation=conv.dilation,
                                levels=conv.levels, backend=conv.backend)
        return self.lif(current)

    def _fused(self, x) -> PackedSpikes:
        if not isinstance(x, PackedSpikes):
            x = PackedSpikes.from_float(x, self.conv.levels)
        conv = self.conv
        weight = PackedBinaryWeight(conv.weight_packed, None, conv.in_channels,
                                    conv.kernel_size)
        return binary_snn_layer(x, weight, self.fused_scale, self.fused_shift,
                                stride=conv.stride, padding=conv.padding,
                                dilation=conv.dilation, backend=conv.backend,
                                **self._lif_options())

    def extra_repr(self) -> str:
        return f"fused={self.fused}"
