"""``STCSNN``: paper C's VGG-style family of spike-train level SNNs built from ``STCB`` blocks.

A **reconstruction**: paper C's architectures were not available. The layer lists are the
VGG-style test harness we chose (see docs/training.md), not the paper's:

* ``"fmnist"``: 128C3-AP2-256C3-AP2-GAP-FC
* ``"vgg11"`` (CIFAR-10/100): 64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-GAP-FC

``cfg`` may also be any sequence of ints (an STCB with that many output channels) and
``"A"`` / ``"M"`` (2x2 average / max pooling).

Input: an analog image ``[N, C, H, W]`` with direct encoding (the same input at each of the
``T`` steps: counts ``T*x`` in count mode, ``x`` repeated in stepwise mode), or event frames /
a spike train ``[T, N, C, H, W]``. Both modes share every parameter.

* ``mode="count"``: every block works on counts (``output="count"``), one convolution per
  block; pooling acts on counts. Average pooling commutes with the sum over time, so it
  is exact; max pooling of counts approximates the count of max-pooled trains.
* ``mode="stepwise"``: every block runs its IF neuron step by step (``output="train"``),
  pooling per step.

Read-out: the last block's spike count divided by ``T`` (firing rate), global average
pooling, then a linear classifier: identical in both modes for identical counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..export import reference_when_traced
from ..nn.stcb import MODES, STCB
from ..ops.spike_count import spike_count
from .layers import averaging_batch_norm

CONFIGS = {
    "fmnist": (128, "A", 256, "A"),
    "vgg11": (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512),
}
POOLS = {"A": F.avg_pool2d, "M": F.max_pool2d}


class _Pool(nn.Module):
    """2x2 pooling of counts ``[N, C, H, W]`` or, per step, of a train ``[T, N, C, H, W]``."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = POOLS[self.kind]
        if x.dim() == 5:
            return pool(x.flatten(0, 1), 2).unflatten(0, x.shape[:2])
        return pool(x, 2)

    def extra_repr(self) -> str:
        return "avg" if self.kind == "A" else "max"


class STCSNN(nn.Module):
    """VGG-style network of STCBs (module docstring); ``forward`` returns logits ``[N, classes]``.

    ``levels``, ``threshold``, ``batch_norm`` and ``backend`` are passed to every ``STCB``.
    """

    def __init__(self, cfg: Union[str, Sequence] = "vgg11", in_channels: int = 3,
                 num_classes: int = 10, T: int = 4, levels: int = 1, threshold: float = 1.0,
                 mode: str = "count", batch_norm: bool = True, dropout: float = 0.0,
                 backend: Optional[str] = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        layers = CONFIGS[cfg] if isinstance(cfg, str) and cfg in CONFIGS else cfg
        if isinstance(layers, str) or not any(isinstance(v, int) for v in layers):
            raise ValueError(f"cfg must be one of {sorted(CONFIGS)} or a sequence of channel "
                             f"counts and 'A'/'M' pooling markers, got {cfg!r}")
        self.T, self.mode = T, mode
        blocks, channels = [], in_channels
        for item in layers:
            if item in POOLS:
                blocks.append(_Pool(item))
            elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
                blocks.append(STCB(channels, item, 3, T=T, levels=levels, threshold=threshold,
                                   batch_norm=batch_norm, mode=mode,
                                   output="count" if mode == "count" else "train",
                                   backend=backend))
                channels = item
            else:
                raise ValueError(f"cfg entries must be positive ints or 'A'/'M', got {item!r}")
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        self.backend = backend
        averaging_batch_norm(self)  # eval statistics right after a short run too

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The first block's input: counts (count mode) or a train (stepwise mode)."""
        if x.dim() == 5:
            if x.shape[0] != self.T:
                raise ValueError(f"input has {x.shape[0]} steps, the network T={self.T}")
            return x
        if x.dim() != 4:
            raise ValueError(f"input must be [N, C, H, W] or [T, N, C, H, W], got "
                             f"{tuple(x.shape)}")
        if self.mode == "count":
            return self.T * x
        return x.unsqueeze(0).expand((self.T,) + tuple(x.shape))

    @reference_when_traced  # torch.jit.trace records plain torch ops
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.encode(x))
        counts = spike_count(h, backend=self.backend) if h.dim() == 5 else h
        rate = counts.mean(dim=(2, 3)) / self.T
        return self.classifier(self.dropout(rate))
