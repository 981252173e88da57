"""``from_snntorch``: snnTorch's ``Leaky`` unrolled over time as one ``MultiThresholdLIF``.

snnTorch runs one step per call (``spk, mem = leaky(x[t], mem)``); the returned module
takes the whole ``[T, N, ...]`` sequence and gives the spikes of that loop, started from
``mem = 0``. Mapping:

=============================  =============================================================
snnTorch ``Leaky``             fastsnn
=============================  =============================================================
``beta``                       ``decay`` (``form="stbp"``: ``h = beta*u + x``); a float, or a
                               ``[C]`` tensor for ``[T, N, C]`` input (snnTorch broadcasts a
                               1-d beta over the last dim)
``threshold``                  ``threshold``
``reset_mechanism="subtract"`` ``reset="subtract_next"``: the threshold is subtracted at the
                               next step, undecayed, detached
``reset_mechanism="zero"``     ``reset="hard", detach_reset=True``
``reset_mechanism="none"``     ``reset="none"``
``atan(alpha)`` (the default)  ``surrogate="atan", alpha=alpha``
``fast_sigmoid(slope)``        ``surrogate="fast_sigmoid", slope=slope``
``sigmoid(slope)``             ``surrogate="sigmoid", width=4/slope``
=============================  =============================================================

snnTorch fires on ``mem > threshold``, we on ``h >= threshold``: the two differ only when the
membrane equals the threshold exactly. Options without an equivalent yet raise
``NotConvertible``: ``learn_beta`` / ``learn_threshold``, ``reset_delay=False``,
``inhibition``, ``state_quant``, ``graded_spikes_factor != 1``, other surrogates.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.lif import MultiThresholdLIF
from .errors import NotConvertible

_RESETS = {"subtract": dict(reset="subtract_next"),
           "zero": dict(reset="hard", detach_reset=True),
           "none": dict(reset="none")}


def from_snntorch(leaky: nn.Module, *, backend=None) -> MultiThresholdLIF:
    """The multi-step ``MultiThresholdLIF`` equal to unrolling the snnTorch ``Leaky``
    ``leaky`` over the first dim of its input. ``backend`` is passed to the module."""
    if type(leaky).__name__ != "Leaky" or not type(leaky).__module__.startswith("snntorch"):
        raise TypeError(f"from_snntorch takes an snntorch.Leaky, got {type(leaky).__name__}")
    _refuse(leaky)
    beta = leaky.beta.detach() if isinstance(leaky.beta, torch.Tensor) else leaky.beta
    if isinstance(beta, torch.Tensor):
        if beta.dim() > 1:
            raise NotConvertible(f"Leaky: beta of shape {tuple(beta.shape)}: a float or a "
                                 f"1-d [C] beta converts")
        beta = float(beta) if beta.numel() == 1 else beta.clamp(0, 1)
    else:
        beta = float(beta)
    beta = min(max(beta, 0.0), 1.0) if isinstance(beta, float) else beta  # snnTorch clamps
    threshold = float(leaky.threshold)
    options = dict(_RESETS[leaky._reset_mechanism], **_surrogate(leaky.spike_grad))
    per_channel = beta.numel() if isinstance(beta, torch.Tensor) else None
    module = MultiThresholdLIF(levels=1, threshold=threshold, decay=0.5, form="stbp",
                               per_channel=per_channel, backend=backend, **options)
    if isinstance(beta, torch.Tensor):
        module.decay_value = beta.to(torch.float32).clone()
    else:
        module.decay_value.fill_(beta)
    return module


def _refuse(leaky) -> None:
    """NotConvertible for every option of ``leaky`` that has no equivalent."""
    checks = [
        (isinstance(leaky.beta, nn.Parameter), "learn_beta=True"),
        (isinstance(getattr(leaky, "threshold", None), nn.Parameter), "learn_threshold=True"),
        (not getattr(leaky, "reset_delay", True), "reset_delay=False"),
        (getattr(leaky, "inhibition", False), "inhibition=True"),
        (bool(getattr(leaky, "state_quant", False)), "state_quant"),
        (float(getattr(leaky, "graded_spikes_factor", 1.0)) != 1.0, "graded_spikes_factor"),
        (getattr(leaky, "surrogate_disable", False), "surrogate_disable=True"),
    ]
    for bad, option in checks:
        if bad:
            raise NotConvertible(f"Leaky: {option} is not supported yet")


def _surrogate(fn) -> dict:
    """Our surrogate options for snnTorch's ``spike_grad`` (a closure over its parameter)."""
    names = fn.__code__.co_names if hasattr(fn, "__code__") else ()
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ()))
                 ) if hasattr(fn, "__code__") else {}
    if "ATan" in names and "alpha" in cells:
        return dict(surrogate="atan", alpha=float(cells["alpha"]))
    if "FastSigmoid" in names and "slope" in cells:
        return dict(surrogate="fast_sigmoid", slope=float(cells["slope"]))
    if "Sigmoid" in names and "slope" in cells:
        return dict(surrogate="sigmoid", width=4.0 / float(cells["slope"]))
    raise NotConvertible(f"Leaky: spike_grad {getattr(fn, '__qualname__', fn)!r} is not "
                         f"supported yet (atan, fast_sigmoid and sigmoid are)")
