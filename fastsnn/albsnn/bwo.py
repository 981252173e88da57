"""Binary weight optimisation (BWO), after training plateaus (docs/albsnn.md).

Paper D (journal version) says only that BWO updates the overall weight "by directly
adjusting the binary weight" once training hits a bottleneck; both modes are our
reconstruction:

* ``mode="alpha"``: freeze the signs of the binarised layers (their latent weights stop
  training) and learn a per-channel gain on alpha, i.e. ``alpha_eff = gain * mean|W|``.
  The gains are new parameters: add ``bwo.parameters()`` to the optimiser when ``active``
  turns true (``epoch_end`` returns True at that moment).
* ``mode="flip"``: keep an EMA ``m`` of dL/dWb per binary weight and flip a weight when
  ``|m| > flip_threshold`` and ``sign(m) == sign(Wb)`` (gradient descent pushes it across
  zero), writing the flip back to the latent weight (``W <- -W``). The optimiser no
  longer moves the latent weights of binarised layers: ``after_backward()`` consumes
  their gradients.

dL/dWb is read from the latent gradient: the clipped straight-through estimator gives
``dL/dW = dL/dWb * alpha * 1[|W| <= 1]``, so inside the clip ``dL/dWb = dL/dW / alpha``.
This is exact when alpha is detached (``alpha=None``); with ``alpha="channel"`` alpha's own
gradient adds one term per filter (``dL/dalpha * sign(W) / n``), which the flip rule
tolerates as noise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import binary_layers, is_binarized

MODES = ("alpha", "flip")


class BinaryWeightOptimizer:
    def __init__(self, model: nn.Module, mode: str = "alpha", patience: int = 10,
                 flip_threshold: float = 1e-5, flip_ema: float = 1e-3):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        if not flip_threshold > 0:
            raise ValueError(f"flip_threshold must be > 0, got {flip_threshold!r}")
        if not 0 < flip_ema <= 1:
            raise ValueError(f"flip_ema must lie in (0, 1], got {flip_ema!r}")
        self.model, self.mode, self.patience = model, mode, patience
        self.flip_threshold, self.flip_ema = flip_threshold, flip_ema
        self.active = False
        self.best = math.inf
        self.bad_epochs = 0
        self.flips = 0
        self._gains: list[nn.Parameter] = []
        self._momentum: dict[str, torch.Tensor] = {}
        self._hooks = []

    def epoch_end(self, epoch: int, val_loss: float) -> bool:
        """Track the plateau; returns True on the epoch BWO switches on."""
        if val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1
        if self.active or self.bad_epochs < self.patience:
            return False
        self.activate()
        return True

    def layers(self) -> list[tuple[str, nn.Module]]:
        return [(n, m) for n, m in binary_layers(self.model) if is_binarized(m)]

    def activate(self) -> None:
        self.active = True
        if self.mode == "alpha":
            for _, layer in self.layers():
                layer.weight.requires_grad_(False)
                gain = nn.Parameter(torch.ones(layer.out_channels,
                                               device=layer.weight.device))
                layer.register_parameter("bwo_gain", gain)
                self._hooks.append(layer.register_forward_hook(_apply_gain))
                self._gains.append(gain)

    def parameters(self) -> list[nn.Parameter]:
        """The new trainable parameters (alpha gains) once active in mode 'alpha'."""
        return list(self._gains)

    @torch.no_grad()
    def after_backward(self) -> int:
        """Mode 'flip': update the EMA of dL/dWb and flip; returns the number flipped."""
        if not self.active or self.mode != "flip":
            return 0
        flipped = 0
        for name, layer in self.layers():
            w = layer.weight
            if w.grad is None:
                continue
            alpha = _alpha(layer).view(-1, *([1] * (w.dim() - 1)))
            inside = w.abs() <= 1
            grad_wb = torch.where(inside, w.grad / alpha, torch.zeros_like(w))
            m = self._momentum.get(name)
            m = grad_wb * self.flip_ema if m is None else m.mul_(1 - self.flip_ema).add_(
                grad_wb, alpha=self.flip_ema)
            self._momentum[name] = m
            sign_wb = torch.where(w >= 0, 1.0, -1.0)
            flip = (m.abs() > self.flip_threshold) & (torch.sign(m) == sign_wb)
            w[flip] = -w[flip]
            w[flip & (w == 0)] = -1e-6  # sign(0) = +1: a flipped zero must become negative
            m[flip] = 0
            flipped += int(flip.sum())
            w.grad = None  # the flips are this layer's update; the optimiser skips it
        self.flips += flipped
        return flipped


def _alpha(layer: nn.Module) -> torch.Tensor:
    """Per-channel alpha = mean|W| (ones without alpha)."""
    w = layer.weight.detach()
    if layer.alpha_mode is None:
        return torch.ones(w.shape[0], device=w.device, dtype=w.dtype)
    return w.abs().mean(dim=tuple(range(1, w.dim()))).clamp_min(1e-12)


def _apply_gain(layer, args, out):
    gain = layer.bwo_gain
    shape = (1, -1) + (1,) * (out.dim() - 2)
    if out.dim() == 5:  # [T, N, C, H, W]
        shape = (1, 1, -1, 1, 1)
    bias = 0 if layer.bias is None else layer.bias.view(shape)
    return (out - bias) * gain.view(shape) + bias


def remove_gain_hook(layer: nn.Module) -> None:
    """Drop a layer's alpha gain and the forward hook applying it (after folding it)."""
    for key, hook in list(layer._forward_hooks.items()):
        if hook is _apply_gain:
            del layer._forward_hooks[key]
    del layer.bwo_gain
