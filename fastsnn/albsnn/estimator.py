"""Accuracy loss estimators (docs/albsnn.md; a reconstruction of paper D's method).

Paper D says only that estimators measure, while the network trains, the error binarised
weights would introduce; the two formulas here are our reconstruction:

* ``metric="weight"`` (E1): ``||W - alpha*sign(W)||^2 / ||W||^2``, cheap, needs no data.
* ``metric="output"`` (E2): ``||f(x; W) - f(x; Wb)|| / ||f(x; W)||`` of the layer's
  pre-neuron output on a fixed calibration batch.

Estimates are refreshed every ``every`` calls of ``step()`` and smoothed with an EMA.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..reference.binary_conv import binarize
from .layers import binary_layers

METRICS = ("weight", "output")


def weight_error(weight: torch.Tensor, alpha_mode: Optional[str] = "channel") -> float:
    """E1: relative squared error of the binarised weight ``alpha*sign(W)``."""
    w = weight.detach().float()
    norm = w.pow(2).sum()
    if norm == 0:
        return 0.0
    wb = binarize(w, alpha_mode)
    return float((w - wb).pow(2).sum() / norm)


def output_error(layer: nn.Module, x: torch.Tensor) -> float:
    """E2: relative error of the layer's float output when its weight is binarised."""
    w = layer.weight.detach()
    wb = binarize(w, layer.alpha_mode)
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    x = x.detach().flatten(0, 1) if x.dim() == 5 else x.detach()
    full = F.conv2d(x, w, None, **kw)
    norm = full.norm()
    if norm == 0:
        return 0.0
    return float((full - F.conv2d(x, wb, None, **kw)).norm() / norm)


class AccuracyLossEstimator:
    """EMA-smoothed accuracy loss estimate of every binary-capable layer of ``model``."""

    def __init__(self, model: nn.Module, metric: str = "weight", every: int = 50,
                 ema: float = 0.9, calibration_batch: Optional[torch.Tensor] = None):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if metric == "output" and calibration_batch is None:
            raise ValueError("metric='output' needs a calibration_batch")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        if not 0 <= ema < 1:
            raise ValueError(f"ema must lie in [0, 1), got {ema!r}")
        self.model, self.metric, self.every, self.ema = model, metric, every, ema
        self.calibration_batch = calibration_batch
        self.layers = binary_layers(model)
        if not self.layers:
            raise ValueError("model has no BinaryConv2d layer to estimate")
        self.estimates: dict[str, float] = {}
        self.calls = 0

    def step(self) -> bool:
        """Call once per training iteration; refreshes the estimates every ``every`` calls."""
        self.calls += 1
        if (self.calls - 1) % self.every:
            return False
        self.update()
        return True

    def measure(self) -> dict[str, float]:
        """The raw (unsmoothed) estimate of every layer, now."""
        if self.metric == "weight":
            return {n: weight_error(m.weight, m.alpha_mode) for n, m in self.layers}
        inputs = self._layer_inputs()
        return {n: output_error(m, inputs[n]) for n, m in self.layers}

    def update(self) -> dict[str, float]:
        for name, value in self.measure().items():
            old = self.estimates.get(name)
            self.estimates[name] = value if old is None else (
                self.ema * old + (1 - self.ema) * value)
        return dict(self.estimates)

    def _layer_inputs(self) -> dict[str, torch.Tensor]:
        """Each layer's input on the calibration batch (one eval-mode forward, no grad)."""
        captured: dict[str, torch.Tensor] = {}
        hooks = [m.register_forward_pre_hook(
            lambda mod, args, name=n: captured.__setitem__(name, args[0]))
            for n, m in self.layers]
        was_training = self.model.training
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(self.calibration_batch)
        finally:
            self.model.train(was_training)
            for h in hooks:
                h.remove()
        return captured
