"""Paper B's synaptic convolutional block (docs/mt_lif.md, a reconstruction)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .lif import MultiThresholdLIF

TEMPORAL = ("filter", "conv")


class CausalTemporalConv(nn.Module):
    """Depth-wise causal convolution over time of ``[T, N, C, ...]``:
    ``y[t, c] = sum_k w[c, k] * x[t - (K-1) + k, c]`` with zeros before the first step.

    Initialised as the first-order synaptic filter truncated to K taps,
    ``y[t] = x[t] + a*x[t-1] + a^2*x[t-2]`` with ``a = init_decay``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, init_decay: float = 0.5):
        super().__init__()
        taps = torch.tensor([init_decay ** k for k in reversed(range(kernel_size))])
        self.weight = nn.Parameter(taps.repeat(channels, 1).unsqueeze(1))  # [C, 1, K]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, N, C = x.shape[:3]
        K = self.weight.shape[-1]
        seq = x.reshape(T, N, C, -1).permute(1, 3, 2, 0).reshape(-1, C, T)  # [N*R, C, T]
        y = F.conv1d(F.pad(seq, (K - 1, 0)), self.weight, groups=C)
        return y.reshape(N, -1, C, T).permute(3, 0, 2, 1).reshape(x.shape)


class SynapticConvBlock(nn.Module):
    """Conv (shared over time) -> BatchNorm -> multi-threshold PLIF neuron, on ``[T, N, C, H, W]``.

    ``temporal="filter"`` (paper B): the neuron integrates the first-order synaptic current
    ``j[t] = alpha*j[t-1] + x[t]`` fused into the ``mt_lif`` kernel, ``alpha = sigmoid(v)``
    (learnable with ``learnable_syn``, init 0.5), which smooths the sharp changes between
    adjacent compressed time steps. ``temporal="conv"``: a depth-wise causal convolution over
    T (kernel 3, ``CausalTemporalConv``) replaces the filter and the neuron has no synaptic
    current. The neuron is ``form="plif"`` with ``decay = sigmoid(w)`` (learnable with
    ``learnable_decay``, init tau = 2), ``levels`` thresholds; ``per_channel`` makes decay
    and alpha per output channel.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 levels: int = 3, learnable_decay: bool = True, learnable_syn: bool = True,
                 temporal: str = "filter", *, stride: int = 1, threshold: float = 1.0,
                 per_channel: bool = False, surrogate: str = "rect",
                 backend: Optional[str] = None):
        super().__init__()
        if temporal not in TEMPORAL:
            raise ValueError(f"temporal must be one of {TEMPORAL}, got {temporal!r}")
        self.temporal = temporal
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        synaptic = temporal == "filter"
        self.temporal_conv = None if synaptic else CausalTemporalConv(out_channels)
        self.neuron = MultiThresholdLIF(
            levels=levels, threshold=threshold, decay=0.5, learnable_decay=learnable_decay,
            per_channel=out_channels if per_channel else None, form="plif",
            surrogate=surrogate, syn_decay=0.5 if synaptic else None,
            learnable_syn=learnable_syn and synaptic, backend=backend, step_rank=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"SynapticConvBlock expects [T, N, C, H, W], got {tuple(x.shape)}")
        T, N = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))
        y = y.reshape(T, N, *y.shape[1:])
        if self.temporal_conv is not None:
            y = self.temporal_conv(y)
        return self.neuron(y)
