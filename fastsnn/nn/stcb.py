"""``STCB``: the spike-train level conversion block as a module (docs/stcb.md).

A **reconstruction** of paper C's block (the paper's method section was not available; see
``fastsnn.reference.stcb``). It replaces "conv + ReLU" of a CNN and comes in two modes that
share their parameters (a model trained in one mode loads in the other):

``mode="count"`` (the block's rule, one convolution per block whatever T)
    input: counts ``[N, C, H, W]`` (spikes summed over the block's ``T`` steps; for analog
    input with direct encoding that is ``T * x``) or a train ``[T, N, C, H, W]`` (reduced with
    ``fastsnn.spike_count`` first; its length must equal ``T``).
    ``A = Conv(N_in) + T*b``, optional ``BN(A)``, then ``fastsnn.stcb(A, T)``: counts
    ``[N, C', H', W']`` for ``output="count"`` or the evenly spaced train ``[T, N, C', H',
    W']`` for ``output="train"``. The backward keeps the conv/BN inputs and a 1-bit mask:
    nothing grows with T.
``mode="stepwise"`` (the comparison: a real IF neuron, surrogate BPTT)
    input: a train ``[T, N, C, H, W]`` (per-step currents work too); counts cannot be
    unrolled into steps and raise ``ValueError``.
    ``I[t] = Conv(S_in[t]) + b`` for every step, optional BN, then an IF neuron with soft
    reset over T (``fastsnn.mt_lif`` with ``decay=1``, ``reset="soft"``, ``levels=K``,
    surrogate BPTT): spikes ``[T, N, C', H', W']`` for ``output="train"`` or their count
    ``[N, C', H', W']`` for ``output="count"``.

Blocks chain: in count mode use ``output="count"`` between blocks; in stepwise mode use
``output="train"`` (a stepwise block needs a train). Either mode accepts a train.

BN in stepwise mode normalises the per-step charge estimate ``T*I[t]`` with the same
``BatchNorm2d`` (so its statistics live in the units of ``A``) and scales back by ``1/T``:
``I'[t] = BN(T*I[t]) / T``. For a train that is constant over time, ``T*I[t] = A``, so the
IF neuron is driven by exactly the count mode's constant current ``BN(A)/T``; the two modes
then differ only by the IF loop's float rounding. With time-varying input they differ (the
gap the stepwise mode exists to measure).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.mt_lif import mt_lif
from ..ops.spike_count import spike_count
from ..ops.stcb import stcb

MODES = ("count", "stepwise")
OUTPUTS = ("count", "train")


class STCB(nn.Module):
    """Spike-train level conversion block: conv (+ ``T*b``, optional BN) -> ``stcb``.

    See the module docstring for what each mode takes and returns. ``levels`` K is the
    number of spikes a neuron may emit per step, ``threshold`` its firing threshold.
    ``surrogate`` is the stepwise mode's surrogate (``fastsnn.mt_lif``), ``backend`` forces
    a backend of the ops.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, T: int = 4,
                 levels: int = 1, threshold: float = 1.0, stride: int = 1, padding: int = 1,
                 batch_norm: bool = True, mode: str = "count", output: str = "count",
                 surrogate: str = "rect", backend: Optional[str] = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        for name, value in (("T", T), ("levels", levels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.T, self.levels, self.threshold = T, levels, float(threshold)
        self.mode, self.output, self.surrogate, self.backend = mode, output, surrogate, backend
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() not in (4, 5):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"STCB input must be counts [N, C, H, W] or a train "
                             f"[T, N, C, H, W], got {shape}")
        if x.dim() == 5 and x.shape[0] != self.T:
            raise ValueError(f"STCB input train has {x.shape[0]} steps, the block T={self.T}")
        if x.shape[-3] != self.conv.in_channels:
            raise ValueError(f"STCB input has {x.shape[-3]} channels, expected "
                             f"{self.conv.in_channels}")
        return self._count(x) if self.mode == "count" else self._stepwise(x)

    def _count(self, x: torch.Tensor) -> torch.Tensor:
        n = spike_count(x, backend=self.backend) if x.dim() == 5 else x
        conv = self.conv
        a = F.conv2d(n, conv.weight, self.T * conv.bias, conv.stride, conv.padding)
        if self.bn is not None:
            a = self.bn(a)
        return stcb(a, self.T, levels=self.levels, threshold=self.threshold,
                    output=self.output, backend=self.backend)

    def _stepwise(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError("mode='stepwise' needs a spike train [T, N, C, H, W]; counts "
                             f"{tuple(x.shape)} cannot be unrolled into time steps")
        T, N = x.shape[:2]
        current = self.conv(x.flatten(0, 1))
        if self.bn is not None:
            current = self.bn(T * current) / T  # BN in the units of A (module docstring)
        s = mt_lif(current.unflatten(0, (T, N)), 1.0, threshold=self.threshold,
                   levels=self.levels, reset="soft", surrogate=self.surrogate,
                   backend=self.backend)
        return s if self.output == "train" else spike_count(s, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"T={self.T}, levels={self.levels}, threshold={self.threshold}, "
                f"mode={self.mode}, output={self.output}")
