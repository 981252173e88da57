"""``STCNet``: paper B's network for compressed event input (reconstruction).

Input: T steps of synaptic current ``[T, N, P, H, W]`` (``fastsnn.events_to_current``,
docs/events_to_current.md). The first block is the synaptic convolutional block
(``fastsnn.nn.SynapticConvBlock``: conv -> BN -> multi-threshold LIF with a fused,
learnable first-order synaptic current, docs/mt_lif.md); every later neuron is a
``MultiThresholdLIF`` with a learnable membrane time constant (PLIF form, one per layer).
``synaptic=False`` replaces the first block by the same conv -> BN -> neuron without the
synaptic current (the ablation "with and without the synaptic current").

Layer lists are the PLIF paper's networks with MT neurons (the paper's
own lists were not available), plus a small one for ``digit-saccades``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import nn

from ..export import reference_when_traced
from ..nn import SynapticConvBlock
from ..nn.spike_conv import save_spikes_as_bits
from ._config import from_config
from .layers import (
    FeatureSpec,
    Readout,
    TimeDistributed,
    averaging_batch_norm,
    conv_stack,
    dense_stack,
    neuron_factory,
    output_features,
)

CONFIGS: dict[str, dict[str, Any]] = {
    # 34 -> 17 -> 8 -> 4.
    "digit-saccades": dict(features=(32, "M", 64, "M", 64, "M"), hidden=(256,), dropout=0.0),
    # PLIF's N-MNIST net: SCB(128C3)-MP2-128C3-MP2-FC2048: 34 -> 17 -> 8.
    "n-mnist": dict(features=(128, "M", 128, "M"), hidden=(2048,), dropout=0.5),
    # SCB(128C3)-MP2-{128C3-MP2}x3-FC512: 128 -> 8.
    "cifar10-dvs": dict(features=(128, "M", 128, "M", 128, "M", 128, "M"), hidden=(512,),
                        dropout=0.5),
    # SCB(128C3)-MP2-{128C3-MP2}x4-FC512: 128 -> 4.
    "dvs128-gesture": dict(features=(128, "M", 128, "M", 128, "M", 128, "M", 128, "M"),
                           hidden=(512,), dropout=0.5),
}


class STCNet(nn.Module):
    """Spiking CNN for ``[T, N, P, H, W]`` synaptic-current input (paper B, reconstruction).

    ``features[0]`` is the synaptic convolutional block's width; the rest are conv
    channel counts and ``"M"``/``"A"`` pooling. ``temporal`` ("filter" or "conv") picks the
    block's synaptic filter; ``fc_batch_norm`` puts batch norm between each hidden
    linear layer and its neurons. ``surrogate``, ``threshold`` and ``backend`` reach every
    neuron, ``reset``/``width``/``detach_reset`` all but the block's (which keeps
    ``SynapticConvBlock``'s defaults). ``forward(x) -> logits [N, num_classes]`` (mean over
    T). ``spike_convs`` (default on): convs on spikes are ``SpikeConv2d`` and training
    keeps spikes as bits for backward; same values and gradients, less memory.
    """

    input_time_major = True  # energy accounting: the batch is dim 1 of the input

    def __init__(self, in_channels: int, num_classes: int, input_size: Sequence[int],
                 features: FeatureSpec = (32, "M", 64, "M", 64, "M"),
                 hidden: Sequence[int] = (256,), levels: int = 3, synaptic: bool = True,
                 temporal: str = "filter", surrogate: str = "rect", threshold: float = 1.0,
                 reset: str = "hard", width: Optional[float] = None,
                 detach_reset: bool = False, dropout: float = 0.0,
                 fc_batch_norm: bool = True, backend: Optional[str] = None,
                 spike_convs: bool = True, recompute: bool = False):
        super().__init__()
        if not features or not isinstance(features[0], int):
            raise ValueError(f"features must start with a conv channel count, got {features!r}")
        self.levels, self.synaptic = levels, synaptic
        neuron = neuron_factory(levels, surrogate, threshold, 0.5, reset, width, detach_reset,
                                learnable=True, form="plif", backend=backend)
        first = features[0]
        self.block = (_synaptic_block(in_channels, first, levels, temporal, surrogate=surrogate,
                                      threshold=threshold, backend=backend) if synaptic
                      else _plain_block(in_channels, first, neuron))
        self.features, _ = conv_stack(first, features[1:], neuron,
                                      spike_levels=levels if spike_convs else None)
        body = nn.Sequential(self.block, self.features)
        flat = output_features(body, torch.zeros(1, 1, in_channels, *input_size))
        # PLIF neurons take (1 - decay) = 1/2 of their input at init: without batch norm
        # the wide FC layer on sparse event spikes starts silent (no gradient reaches it).
        self.hidden, width_out = dense_stack(flat, hidden, neuron, dropout, fc_batch_norm)
        self.readout = Readout(width_out, num_classes)
        averaging_batch_norm(self)  # eval statistics right after a short run too
        if spike_convs:  # training keeps spikes as bits for backward (same values)
            save_spikes_as_bits(self, recompute=recompute)

    @classmethod
    def from_dataset(cls, dataset: str, **overrides) -> STCNet:
        """The configuration for ``dataset`` (a key of ``CONFIGS``), options overridden."""
        return from_config(cls, CONFIGS, dataset, overrides)

    @reference_when_traced  # torch.jit.trace records plain torch ops
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"STCNet expects currents [T, N, P, H, W], got shape "
                             f"{tuple(x.shape)}")
        s = self.features(self.block(x))
        return self.readout(self.hidden(s.flatten(2)))


def _synaptic_block(in_channels: int, out_channels: int, levels: int, temporal: str,
                    **neuron) -> nn.Module:
    return SynapticConvBlock(in_channels, out_channels, kernel_size=3, levels=levels,
                             learnable_decay=True, learnable_syn=True, temporal=temporal,
                             **neuron)


def _plain_block(in_channels: int, out_channels: int, neuron) -> nn.Module:
    return nn.Sequential(
        TimeDistributed(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)),
        TimeDistributed(nn.BatchNorm2d(out_channels)), neuron())
