"""Building blocks the paper networks share: time folding, spiking conv stacks, readout.

Tensors are time-major ``[T, N, ...]``. Stateless layers (conv, batch norm, pooling) run
once on the ``[T*N, ...]`` fold, so one kernel launch covers every time step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional, Union

import torch
from torch import nn

from ..nn import MultiThresholdLIF, SpikeConv2d, SpikeMaxPool2d

# A feature spec: an int is a 3x3 conv (stride 1, "same" padding) to that many channels
# followed by batch norm and a spiking neuron; "M" / "A" a 2x2 max / average pool.
FeatureSpec = Sequence[Union[int, str]]


class TimeDistributed(nn.Module):
    """Applies ``module`` to every step of ``[T, N, ...]`` at once via the ``[T*N, ...]`` fold."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, n = x.shape[:2]
        y = self.module(x.reshape(t * n, *x.shape[2:]))
        return y.reshape(t, n, *y.shape[1:])


class TimeSharedDropout(nn.Module):
    """Dropout whose mask is drawn once per sample and reused at every time step.

    A fresh mask per step would let a neuron's spikes leak through on other steps; sharing
    it is what spiking-network dropout layers (e.g. SpikingJelly's) do.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p must lie in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x[:1]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _AveragingStart:
    """Batch norm whose running statistics average the first ``1/momentum`` batches.

    ``nn.BatchNorm*`` starts its running variance at 1 and updates it by an EMA with
    momentum 0.1, so after n batches ``0.9**n`` of that initial 1 is still in it. The
    pre-normalisation variance of a spiking layer is often far below 1 (sparse spikes,
    default conv init: about 0.05 on the digits), so after one short epoch (22 batches,
    ``0.9**22 = 0.1``) the estimate is about 3x too large; eval mode then shrinks every
    normalised activation, fewer neurons reach threshold, and the error compounds layer by
    layer until nothing spikes (11 % test accuracy, while train-mode statistics give 91 %).
    Here the first ``1/momentum`` batches are averaged with equal weights (PyTorch's
    ``momentum=None`` rule), so the initial values drop out after the first batch; after
    that the usual EMA takes over, so long runs behave exactly as with ``nn.BatchNorm*``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.track_running_stats:
            warm = int(self.num_batches_tracked) * self.base_momentum < 1
            self.momentum = None if warm else self.base_momentum
        return super().forward(x)


class AveragingBatchNorm1d(_AveragingStart, nn.BatchNorm1d):
    def __init__(self, num_features: int, **kw):
        super().__init__(num_features, **kw)
        self.base_momentum = 0.1 if self.momentum is None else self.momentum


class AveragingBatchNorm2d(_AveragingStart, nn.BatchNorm2d):
    def __init__(self, num_features: int, **kw):
        super().__init__(num_features, **kw)
        self.base_momentum = 0.1 if self.momentum is None else self.momentum


def averaging_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d/2d`` inside ``model`` by its averaging-start form
    (same options, parameters and buffers; ``model`` is changed in place and returned)."""
    for name, child in list(model.named_children()):
        kind = {nn.BatchNorm1d: AveragingBatchNorm1d,
                nn.BatchNorm2d: AveragingBatchNorm2d}.get(type(child))
        if kind is None:
            averaging_batch_norm(child)
            continue
        new = kind(child.num_features, eps=child.eps, momentum=child.momentum,
                   affine=child.affine, track_running_stats=child.track_running_stats)
        new.load_state_dict(child.state_dict())
        new.train(child.training)
        setattr(model, name, new.to(next(child.buffers(), torch.empty(0)).device))
    return model


class Readout(nn.Module):
    """Non-spiking linear classifier on ``[T, N, F]``; logits averaged over T."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).mean(0)


def conv_stack(in_channels: int, spec: FeatureSpec, neuron: Callable[[], nn.Module],
               spike_levels: Optional[int] = None) -> tuple[nn.Sequential, int]:
    """Time-distributed conv-BN-neuron / pooling layers from ``spec``; ``(stack, channels)``.

    ``spike_levels``: the stack's input and its neurons' outputs are spikes ``0..levels``;
    a conv whose input is spikes (not average-pooled) is then a ``SpikeConv2d``, max pooling
    of spikes a ``SpikeMaxPool2d``.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    spikes = spike_levels is not None
    for item in spec:
        if item == "M":
            layers.append(TimeDistributed(SpikeMaxPool2d(2, levels=spike_levels) if spikes
                                          else nn.MaxPool2d(2)))
        elif item == "A":
            layers.append(TimeDistributed(nn.AvgPool2d(2)))
            spikes = False
        elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
            conv = (SpikeConv2d(channels, item, 3, padding=1, bias=False, levels=spike_levels)
                    if spikes else nn.Conv2d(channels, item, 3, padding=1, bias=False))
            layers += [TimeDistributed(conv), TimeDistributed(nn.BatchNorm2d(item)), neuron()]
            channels = item
            spikes = spike_levels is not None
        else:
            raise ValueError(f"feature spec items are channel counts or 'M'/'A', got {item!r}")
    return nn.Sequential(*layers), channels


def dense_stack(in_features: int, hidden: Sequence[int], neuron: Callable[[], nn.Module],
                dropout: float, batch_norm: bool = False) -> tuple[nn.Sequential, int]:
    """``[dropout] -> Linear [-> BN] -> neuron`` per hidden width, on ``[T, N, F]``.

    ``batch_norm`` keeps the pre-activations of wide layers fed by sparse spikes in the
    neurons' working range; without it a wide layer can start silent, and a silent layer
    gets no surrogate gradient.
    """
    layers: list[nn.Module] = []
    features = in_features
    for width in hidden:
        if dropout:
            layers.append(TimeSharedDropout(dropout))
        layers.append(nn.Linear(features, width, bias=not batch_norm))
        if batch_norm:
            layers.append(TimeDistributed(nn.BatchNorm1d(width)))
        layers.append(neuron())
        features = width
    if dropout and hidden:
        layers.append(TimeSharedDropout(dropout))
    return nn.Sequential(*layers), features


def neuron_factory(levels: int, surrogate: str, threshold: float, decay: float, reset: str,
                   width, detach_reset: bool, learnable: bool, form: str,
                   backend) -> Callable[[], MultiThresholdLIF]:
    """A constructor of identically configured ``MultiThresholdLIF`` layers."""
    def make() -> MultiThresholdLIF:
        return MultiThresholdLIF(levels=levels, threshold=threshold, decay=decay,
                                 learnable_decay=learnable, form=form, reset=reset,
                                 surrogate=surrogate, width=width,
                                 detach_reset=detach_reset, backend=backend)
    return make


@torch.no_grad()
def output_features(module: nn.Module, example: torch.Tensor) -> int:
    """Features per sample and step that ``module`` produces for ``example`` ``[T, 1, ...]``.

    Runs in eval mode so batch-norm statistics stay untouched.
    """
    was_training = module.training
    module.eval()
    try:
        return int(module(example)[0, 0].numel())
    finally:
        module.train(was_training)
