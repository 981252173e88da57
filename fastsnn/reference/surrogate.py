"""Surrogate bumps g(z) of docs/mt_lif.md and their integrals G(z).

Each bump has width ``a`` and unit area, so ``G`` runs from 0 to 1 and is the smooth
stand-in for the Heaviside step used by the reference's smooth (gradcheck) mode.
"""

from __future__ import annotations

import torch

from .._enums import Surrogate, options

SURROGATES = options(Surrogate)  # ("rect", "triangle", "sigmoid")


def bump(z: torch.Tensor, kind: str, a: float) -> torch.Tensor:
    """g(z): the derivative that replaces the Dirac delta of one threshold."""
    if kind == "rect":
        return (z.abs() < a / 2).to(z.dtype) / a
    if kind == "triangle":
        return torch.clamp(1 - z.abs() / a, min=0) / a
    if kind == "sigmoid":
        sig = torch.sigmoid(4 * z / a)
        return (4 / a) * sig * (1 - sig)
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
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")


def multi_bump(h: torch.Tensor, threshold: float, levels: int, kind: str, a: float):
    """sg(h) = sum_k g(h - k*threshold): the staircase's approximate derivative."""
    return sum(bump(h - k * threshold, kind, a) for k in range(1, levels + 1))
