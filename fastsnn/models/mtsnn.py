"""``MTSNN``: paper A's network family, conv-BN-multi-threshold-LIF stacks at T = 1 or 2.

Paper A (arXiv 2112.07426) reports only its headline numbers; the layer lists below are
our harness (a reconstruction, not the paper's exact nets):
PLIF-style conv stacks with every neuron a ``MultiThresholdLIF`` (K = 3 levels by
default), direct analog input, and a non-spiking linear readout averaged over T.

The input is a static image ``[N, C, H, W]``. The first conv + batch norm runs once on it
and its output is repeated over the T steps (so the first layer costs one MAC pass,
``T_1 = 1`` in docs/energy.md); every later layer sees spikes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import nn

from ..export import reference_when_traced
from ..nn.spike_conv import save_spikes_as_bits
from ._config import from_config
from .layers import (
    FeatureSpec,
    Readout,
    averaging_batch_norm,
    conv_stack,
    dense_stack,
    neuron_factory,
    output_features,
)

# Architectures per dataset (channels / "M" pooling, hidden widths, dropout).
CONFIGS: dict[str, dict[str, Any]] = {
    # 8x8 digits: 8 -> 4 -> 2, a few thousand neurons.
    "digits": dict(features=(32, 32, "M", 64, "M"), hidden=(128,), dropout=0.0),
    # PLIF's MNIST net with MT neurons: 28 -> 14 -> 7.
    "mnist": dict(features=(128, "M", 128, "M"), hidden=(2048,), dropout=0.5),
    "fashion-mnist": dict(features=(128, "M", 128, "M"), hidden=(2048,), dropout=0.5),
    # PLIF's CIFAR-10 net: {256C3}x3 - MP2 - {256C3}x3 - MP2 - FC2048: 32 -> 16 -> 8.
    "cifar10": dict(features=(256, 256, 256, "M", 256, 256, 256, "M"), hidden=(2048,),
                    dropout=0.5),
    "cifar100": dict(features=(256, 256, 256, "M", 256, 256, 256, "M"), hidden=(2048,),
                     dropout=0.5),
}


class MTSNN(nn.Module):
    """Multi-threshold spiking CNN on static images (paper A, reconstruction).

    ``features``: conv channel counts and ``"M"``/``"A"`` 2x2 pooling (the first entry must
    be a conv); ``hidden``: spiking fully connected widths; neurons are ``MultiThresholdLIF``
    with ``levels`` thresholds, fixed ``decay``, ``reset`` and one of the three surrogates.
    ``spike_convs`` (default on): convs on spikes are ``SpikeConv2d`` and training keeps
    spikes as bits for backward (``fastsnn.nn.save_spikes_as_bits``); same values and
    gradients, less memory. ``recompute`` (default off) also drops the spike convs'
    outputs that the batch norms would keep, recomputed in backward (one more
    convolution per layer, about half the saved memory again).
    ``forward(x [N, C, H, W]) -> logits [N, num_classes]`` (mean over the T steps).
    """

    input_time_major = False  # energy accounting: the batch is dim 0 of the input

    def __init__(self, in_channels: int, num_classes: int, input_size: Sequence[int],
                 features: FeatureSpec = (32, 32, "M", 64, "M"), hidden: Sequence[int] = (128,),
                 T: int = 2, levels: int = 3, surrogate: str = "rect", threshold: float = 1.0,
                 decay: float = 0.5, reset: str = "hard", width: Optional[float] = None,
                 detach_reset: bool = False, dropout: float = 0.0,
                 backend: Optional[str] = None, spike_convs: bool = True,
                 recompute: bool = False):
        super().__init__()
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be an int >= 1, got {T!r}")
        if not features or not isinstance(features[0], int):
            raise ValueError(f"features must start with a conv channel count, got {features!r}")
        self.T, self.levels, self.surrogate = T, levels, surrogate
        neuron = neuron_factory(levels, surrogate, threshold, decay, reset, width,
                                detach_reset, learnable=False, form="stbp", backend=backend)
        first = features[0]
        # The encoder sees the analog image once; its output current is repeated over T.
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, first, 3, padding=1, bias=False),
                                     nn.BatchNorm2d(first))
        self.encoder_neuron = neuron()
        self.features, _ = conv_stack(first, features[1:], neuron,
                                      spike_levels=levels if spike_convs else None)
        flat = output_features(self.features, torch.zeros(1, 1, first, *input_size))
        self.hidden, width_out = dense_stack(flat, hidden, neuron, dropout)
        self.readout = Readout(width_out, num_classes)
        averaging_batch_norm(self)  # eval statistics right after a short run too
        if spike_convs:  # training keeps spikes as bits for backward (same values)
            save_spikes_as_bits(self, recompute=recompute)

    @classmethod
    def from_dataset(cls, dataset: str, **overrides) -> MTSNN:
        """The configuration for ``dataset`` (a key of ``CONFIGS``), options overridden."""
        return from_config(cls, CONFIGS, dataset, overrides)

    @reference_when_traced  # torch.jit.trace records plain torch ops
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"MTSNN expects a static image batch [N, C, H, W], got shape "
                             f"{tuple(x.shape)}")
        current = self.encoder(x)
        s = self.encoder_neuron(current.unsqueeze(0).expand(self.T, *current.shape))
        s = self.features(s)
        return self.readout(self.hidden(s.flatten(2)))

