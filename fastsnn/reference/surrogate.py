"""Surrogate bumps g(z) of docs/mt_lif.md and their integrals G(z).

``rect``, ``triangle`` and ``sigmoid`` have width ``a`` and unit area, so ``G`` runs from 0
to 1 and is the smooth stand-in for the Heaviside step used by the reference's smooth
(gradcheck) mode. The peer surrogates keep their peer's own parameter in the place of ``a``:
``atan`` (SpikingJelly's / snnTorch's ATan, ``a`` = alpha, unit area) and ``fast_sigmoid``
(snnTorch's fast sigmoid / SuperSpike, ``a`` = slope; area ``2 / slope``, as in snnTorch).
Each formula is written in the order the kernels evaluate it, so float32 results agree bit
for bit.
"""

from __future__ import annotations

import math

import torch

from .._enums import Surrogate, options

SURROGATES = options(Surrogate)  # rect, triangle, sigmoid, atan, fast_sigmoid
# The surrogates whose parameter is the bump width (default: the threshold); the others take
# their peer's parameter (``alpha``, ``slope``) with the peer's default.
WIDTH_SURROGATES = ("rect", "triangle", "sigmoid")
PEER_PARAMETERS = {"atan": ("alpha", 2.0), "fast_sigmoid": ("slope", 25.0)}


def parameter(kind: str, threshold: float, width=None) -> float:
    """The bump's parameter ``a``: ``width`` (default the threshold) for the width
    surrogates; for the peer surrogates ``width`` carries alpha / slope (default the peer's)."""
    if width is not None:
        return float(width)
    return float(PEER_PARAMETERS[kind][1] if kind in PEER_PARAMETERS else threshold)


def bump(z: torch.Tensor, kind: str, a: float) -> torch.Tensor:
    """g(z): the derivative that replaces the Dirac delta of one threshold."""
    if kind == "rect":
        return (z.abs() < a / 2).to(z.dtype) / a
    if kind == "triangle":
        return torch.clamp(1 - z.abs() / a, min=0) / a
    if kind == "sigmoid":
        sig = torch.sigmoid(4 * z / a)
        return (4 / a) * sig * (1 - sig)
    if kind == "atan":  # a = alpha
        # (a/2) * (1/d), not (a/2) / d: a Python float over a tensor is reciprocal-then-
        # multiply in torch, and the kernels follow this form exactly.
        return (a / 2) * (1 / (1 + (math.pi / 2 * (a * z)) ** 2))
    if kind == "fast_sigmoid":  # a = slope
        return 1 / (a * z.abs() + 1) ** 2
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")


def integral(z: torch.Tensor, kind: str, a: float) -> torch.Tensor:
    """G(z) = integral of g from -inf to z (a smooth step from 0 to 1)."""
    if kind == "rect":
        return torch.clamp(z / a + 0.5, 0, 1)
    if kind == "triangle":
        r = torch.clamp(z / a, -1, 1)
        left = 0.5 * (1 + r) ** 2
        right = 1 - 0.5 * (1 - r) ** 2
        return torch.where(r < 0, left, right)
    if kind == "sigmoid":
        return torch.sigmoid(4 * z / a)
    if kind == "atan":
        return 0.5 + torch.atan(math.pi / 2 * a * z) / math.pi
    if kind == "fast_sigmoid":  # runs from 0 to 2 / slope, the bump's area
        left = 1 / (a * (1 - a * z.clamp(max=0)))
        return torch.where(z <= 0, left, (2 - 1 / (1 + a * z.clamp(min=0))) / a)
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")


def multi_bump(h: torch.Tensor, threshold: float, levels: int, kind: str, a: float):
    """sg(h) = sum_k g(h - k*threshold): the staircase's approximate derivative."""
    return sum(bump(h - k * threshold, kind, a) for k in range(1, levels + 1))
