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
from ..nn.binary_snn_block import BinarySNNBlock
from ..nn.spike_conv import save_spikes_as_bits
from ..packed_spikes import PackedSpikes, max_pool2d
from ._config import from_config
from .layers import averaging_batch_norm


class _ConvBNLIF(BinarySNNBlock):
    """A ``BinarySNNBlock`` (3x3 conv, BN, LIF) starting in full precision, then optional
    2x2 max pooling (which keeps spike values integral, so the next conv can run packed)."""

    def __init__(self, cin, cout, levels, pool, lif_kw):
        super().__init__(cin, cout, 3, padding=1, levels=levels, **lif_kw)
        self.conv.set_binarized(False)
        self.pool = nn.MaxPool2d(2) if pool else None

    def forward(self, x):  # [T, N, C, H, W] (PackedSpikes in a packed model)
        s = super().forward(x)
        if self.pool is None:
            return s
        if isinstance(s, PackedSpikes):
            return max_pool2d(s, 2)
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

    def export_packed(self, fused: bool = True) -> nn.Module:
        """An inference copy whose binarised layers hold packed weights.

        ``fused`` (default): each binarised stage becomes the fused packed layer
        (``BinarySNNBlock.pack()``: conv, folded batch norm and LIF in one kernel, spikes
        packed between layers; a full-precision stage that feeds one emits packed spikes);
        its predictions equal this model's in eval mode. ``fused=False``: only the convs
        are packed (``binary_conv2d`` kernel), float spikes between layers (what
        ``fastsnn.export.to_onnx`` exports). Parameters of the copy need no gradient.
        """
        model = copy.deepcopy(self).eval().requires_grad_(False)
        stages = list(model.features)
        if fused:
            for i, stage in enumerate(stages):
                if stage.conv.binarized:
                    stage.pack()
                elif i + 1 < len(stages) and stages[i + 1].conv.binarized:
                    stage.lif.packed = True  # the next stage reads packed spikes
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
