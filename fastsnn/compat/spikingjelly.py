"""``from_spikingjelly``: SpikingJelly's multi-step neurons replaced by ``MultiThresholdLIF``.

Mapping (SpikingJelly 2.x ``activation_based.neuron``; K = 1 level):

==========================  ==================================================================
SpikingJelly                fastsnn
==========================  ==================================================================
``IFNode``                  ``decay = 1`` (``h = u + x``)
``LIFNode(tau)``            ``decay = 1 - 1/tau``; ``decay_input=True`` -> ``form="plif"``
                            (``h = decay*u + (1-decay)*x``), ``False`` -> ``form="stbp"``
``ParametricLIFNode``       learnable decay; SpikingJelly's ``1/tau = sigmoid(w)`` is our
                            ``1 - decay``, so our logit is ``-w`` (gradients flip sign too)
``v_threshold``             ``threshold``
``v_reset=vr`` / ``None``   ``reset="hard", v_reset=vr`` / ``reset="soft"`` (the membrane
                            leaks toward ``vr`` and starts there, as in SpikingJelly; soft
                            reset: toward 0)
``detach_reset``            ``detach_reset``
``Sigmoid(alpha)``          ``surrogate="sigmoid", width=4/alpha``
``PiecewiseQuadratic(a)``   ``surrogate="triangle", width=1/a``
``Rect(alpha)``             ``surrogate="rect", width=1/alpha``
``ATan(alpha)``             ``surrogate="atan", alpha=alpha``
==========================  ==================================================================

The width is always set explicitly: SpikingJelly's surrogates do not scale with the
threshold, ours default to ``width = threshold``. Options without an equivalent yet
(other surrogates, ``store_v_seq``) raise ``NotConvertible`` naming the node and the option.
Single-step nodes (``step_mode="s"``) are left in place: they run one step per call, our
modules all steps at once.

Spikes equal SpikingJelly's, not bit for bit by construction: SpikingJelly charges with
``v + (x - (v - v_reset)) / tau``, we with ``v_reset + decay*(v - v_reset) + (1-decay)*x``
(the same real number, other roundings), so a charge within a few ulp of the threshold may
round to the other side. Random inputs never meet that in the tests.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn.lif import MultiThresholdLIF
from .errors import NotConvertible


def from_spikingjelly(model: nn.Module, *, backend=None, stateful: bool = False) -> nn.Module:
    """Replace, in place, every multi-step ``IFNode``, ``LIFNode`` and ``ParametricLIFNode``
    of ``model`` (or ``model`` itself) by the equivalent ``MultiThresholdLIF``; returns the
    model. PLIF weights are carried over. ``backend`` is passed to the new modules;
    ``stateful=True`` makes them keep their membrane between calls as SpikingJelly's nodes
    do (start a new sequence with their ``reset_state()``)."""
    options = dict(backend=backend, stateful=stateful)
    converted = _convert(model, "model", options)
    if converted is not None:
        return converted
    for name, child in list(model.named_modules()):
        for child_name, grandchild in list(child.named_children()):
            new = _convert(grandchild, f"{name}.{child_name}".lstrip("."), options)
            if new is not None:
                setattr(child, child_name, new)
    return model


def _convert(module: nn.Module, where: str, module_options: dict):
    kind = _node_kind(module, where)
    if kind is None or getattr(module, "step_mode", "s") != "m":
        return None
    options = _common_options(module, where)
    if kind == "IFNode":
        decay, form, learnable = 1.0, "stbp", False
    elif kind == "LIFNode":
        decay, learnable = 1.0 - 1.0 / float(module.tau), False
        form = "plif" if module.decay_input else "stbp"
    else:
        decay, learnable = 0.5, True
        form = "plif" if module.decay_input else "stbp"
    new = MultiThresholdLIF(levels=1, decay=decay, learnable_decay=learnable, form=form,
                            **module_options, **options)
    if learnable:
        new.to(module.w.device)
        with torch.no_grad():
            new.decay_logit.copy_(-module.w.detach().reshape(new.decay_logit.shape))
    return new


def _node_kind(module: nn.Module, where: str):
    cls = type(module)
    if not cls.__module__.startswith("spikingjelly."):
        return None
    for base in cls.__mro__:  # subclasses convert only when they add no dynamics of their own
        if base.__name__ in ("IFNode", "LIFNode", "ParametricLIFNode"):
            if base is not cls:
                raise NotConvertible(f"{where}: subclass {cls.__name__} of {base.__name__} "
                                     f"may change its dynamics; convert it by hand")
            return base.__name__
    return None


def _common_options(node: nn.Module, where: str) -> dict:
    name = f"{where} ({type(node).__name__})"
    if getattr(node, "store_v_seq", False):
        raise NotConvertible(f"{name}: store_v_seq=True has no equivalent (our modules do "
                             f"not keep the membrane sequence)")
    v_reset = node.v_reset
    if v_reset is not None and not math.isfinite(float(v_reset)):
        raise NotConvertible(f"{name}: v_reset={v_reset!r} is not a finite value")
    # v_reset=None: soft reset, and SpikingJelly's membrane then rests at 0
    reset, rest = ("soft", 0.0) if v_reset is None else ("hard", float(v_reset))
    threshold = float(node.v_threshold)
    return dict(threshold=threshold, reset=reset, v_reset=rest,
                detach_reset=bool(node.detach_reset), **_surrogate(node.surrogate_function, name))


def _surrogate(fn, name: str) -> dict:
    kind = type(fn).__name__
    alpha = float(getattr(fn, "alpha", math.nan))
    if not getattr(fn, "spiking", True):
        raise NotConvertible(f"{name}: surrogate {kind}(spiking=False) emits analog values")
    if kind == "Sigmoid":
        return dict(surrogate="sigmoid", width=4.0 / alpha)
    if kind == "PiecewiseQuadratic":
        return dict(surrogate="triangle", width=1.0 / alpha)
    if kind == "Rect":
        return dict(surrogate="rect", width=1.0 / alpha)
    if kind == "ATan":
        return dict(surrogate="atan", alpha=alpha)
    raise NotConvertible(f"{name}: surrogate {kind} is not supported yet (Sigmoid, "
                         f"PiecewiseQuadratic, Rect and ATan are)")
