"""The peer-library forms of ``mt_lif``'s options, resolved to the kernel contract.

``tau`` is the other spelling of the decay (``decay = 1 - 1/tau``, SpikingJelly's time
constant); ``alpha`` and ``slope`` are the parameters of the peer surrogates ``atan`` and
``fast_sigmoid``, carried in the contract's ``width`` slot (docs/mt_lif.md, "Options that
match the peer libraries").
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Optional, Union

from torch import Tensor

from ..reference.surrogate import PEER_PARAMETERS, WIDTH_SURROGATES
from . import _checks


def decay_from(decay, tau) -> Union[float, Tensor]:
    """``decay`` (default 0.5) or ``1 - 1/tau``; giving both is an error."""
    if tau is None:
        return 0.5 if decay is None else decay
    if decay is not None:
        raise ValueError("give decay or tau, not both")
    if isinstance(tau, Tensor):
        if not tau.is_floating_point():
            raise TypeError(f"tau must be a floating tensor, got {tau.dtype}")
        if tau.numel() and not _checks.values_hold(tau >= 1, lambda: "tau must be >= 1"):
            raise ValueError(f"tau must be >= 1; got values down to {tau.min().item():g}")
        return 1 - 1 / tau
    try:
        tau = _checks.real(tau, "tau")
    except TypeError:
        raise TypeError(f"tau must be a float or a tensor, got {type(tau).__name__}") from None
    if not 1 <= tau < math.inf:
        raise ValueError(f"tau must be a finite float >= 1, got {tau!r}")
    return 1 - 1 / float(tau)


def surrogate_parameter(surrogate: str, threshold: float, width: Optional[float],
                        alpha: Optional[float], slope: Optional[float]) -> float:
    """The value of the contract's ``width`` slot for ``surrogate``; ValueError naming the
    argument that does not belong to it or is out of range."""
    given = {"width": width, "alpha": alpha, "slope": slope}
    if surrogate in WIDTH_SURROGATES:
        wanted, default = "width", threshold
    else:
        wanted, default = PEER_PARAMETERS[surrogate]
    for name, value in given.items():
        if value is None:
            continue
        if name != wanted:
            raise ValueError(f"{name} is the parameter of "
                             f"{_owners(name)}, not of surrogate={surrogate!r} "
                             f"(which takes {wanted})")
        if isinstance(value, bool) or not isinstance(value, Real) or not (
                0 < value < math.inf):
            raise ValueError(f"{name} must be a finite float > 0, got {value!r}")
    value = given[wanted]
    return float(default if value is None else value)


def _owners(name: str) -> str:
    if name == "width":
        return "surrogate " + " / ".join(repr(s) for s in WIDTH_SURROGATES)
    return next(f"surrogate={s!r}" for s, (p, _) in PEER_PARAMETERS.items() if p == name)
