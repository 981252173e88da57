"""ALBSNN (paper D): a conv SNN whose layers ALBSNN may binarise, with a GAP head.

No fully connected layers: the last conv maps to ``num_classes`` channels, global average
pooling gives per-step logits, averaged over T (docs/albsnn.md). Every conv is a
``BinaryConv2d`` that starts in full precision; ``fastsnn.albsnn.LayerSelector`` switches
the chosen ones to binarised mode. Static images are repeated over T (direct encoding), so
the first conv sees analog input and stays full precision by default.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..export import reference_when_traced
from ..nn.binary_conv import BinaryConv2d
from ..nn.lif import MultiThresholdLIF
from ..nn.spike_conv import save_spikes_as_bits
from ._config import from_config
from .layers import averaging_batch_norm


class _ConvBNLIF(nn.Module):
    def __init__(self, cin, cout, levels, pool, lif_kw):
        super().__init__()
        self.conv = BinaryConv2d(cin, cout, 3, padding=1, bias=False, levels=levels)
        self.conv.set_binarized(False)
        self.bn = nn.BatchNorm2d(cout)
        self.lif = MultiThresholdLIF(levels=levels, **lif_kw)
        # max pooling keeps spike values integral, so the next conv can run packed
        self.pool = nn.MaxPool2d(2) if pool else None

    def forward(self, x):  # [T, N, C, H, W]
        y = self.bn(self.conv(x).flatten(0, 1)).unflatten(0, x.shape[:2])
        s = self.lif(y)
        if self.pool is None:
            return s
        return self.pool(s.flatten(0, 1)).unflatten(0, s.shape[:2])


CONFIGS = {
    "digits": dict(widths=(32, 64, 64), pool_after=(0,)),
    "fashion-mnist": dict(widths=(32, 64, 128), pool_after=(0, 1)),
    "cifar10": dict(widths=(128, 256, 256, 512, 512, 1024), pool_after=(1, 3, 5)),
    "cifar100": dict(widths=(128, 256, 256, 512, 512, 1024), pool_after=(1, 3, 5)),
}


class ALBSNN(nn.Module):
    """``widths`` conv stages (3x3, BN, multi-threshold LIF), the stages listed in
    ``pool_after`` followed by 2x2 max pooling, then a 1x1 classifier conv + GAP, averaged
    over T. Every conv after the first sees spikes, so each can run packed; with
    ``spike_convs`` (default) training keeps those spikes as bits for backward."""

    def __init__(self, num_classes: int, in_channels: int = 1, widths=(32, 64, 128),
                 pool_after=(0, 1), T: int = 1, levels: int = 1, spike_convs: bool = True,
                 **lif_kw):
        super().__init__()
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T!r}")
        self.T = T
        lif_kw = {"threshold": 1.0, "decay": 0.5, "reset": "soft", "surrogate": "rect",
                  **lif_kw}
        stages, cin = [], in_channels
        for i, w in enumerate(widths):
            stages.append(_ConvBNLIF(cin, w, levels, i in pool_after, lif_kw))
            cin = w
        self.features = nn.Sequential(*stages)
        self.classifier = BinaryConv2d(cin, num_classes, 1, bias=True, levels=levels)
        self.classifier.set_binarized(False)
        averaging_batch_norm(self)  # eval statistics right after a short run too
        if spike_convs:  # training keeps spikes (the convs' inputs) as bits for backward
            save_spikes_as_bits(self)

    @classmethod
    def from_dataset(cls, dataset: str, **overrides) -> ALBSNN:
        """The configuration for ``dataset`` (a key of ``CONFIGS``; the layer lists follow
        the proposed harness in the paper notes, not the paper), options overridden."""
        return from_config(cls, CONFIGS, dataset, overrides, input_size=False)

    @reference_when_traced  # torch.jit.trace records plain torch ops
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # static image: repeat over T (direct encoding)
            x = x.unsqueeze(0).expand(self.T, *x.shape)
        y = self.classifier(self.features(x))  # [T, N, classes, H, W]
        return y.mean(dim=(0, 3, 4))

    def export_packed(self) -> nn.Module:
        """An inference copy whose binarised layers hold packed weights and run the packed
        ``binary_conv2d`` kernel; full-precision layers are unchanged."""
        model = copy.deepcopy(self).eval()
        for module in model.modules():
            if isinstance(module, BinaryConv2d) and module.binarized:
                module.pack()
                _fold_bwo_gain(module)
        return model


@torch.no_grad()
def _fold_bwo_gain(module: BinaryConv2d) -> None:
    """Move a BWO alpha gain (``fastsnn.albsnn.bwo``) into the packed alpha buffer."""
    gain = getattr(module, "bwo_gain", None)
    if gain is None:
        return
    from ..albsnn.bwo import remove_gain_hook

    alpha = module.alpha if module.alpha is not None else torch.ones_like(gain)
    module.alpha = alpha * gain.detach()
    remove_gain_hook(module)
