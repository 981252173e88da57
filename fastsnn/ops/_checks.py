"""Argument checks shared by the public op functions: the one validation pass of user input.

Every failure names the argument: ``TypeError`` for a wrong kind of value, ``ValueError``
for a wrong value. The kernels behind the ops check only what keeps them in bounds.
"""

from __future__ import annotations

from numbers import Integral
from typing import Optional

import torch
from torch import Tensor


def integer(value, name: str, low: int, high: Optional[int] = None) -> int:
    """``value`` as an int in ``low..high`` (no upper bound without ``high``); bools and
    floats are refused (``ValueError``, like an out-of-range int)."""
    ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= low and (
        high is None or value <= high)
    if not ok:
        expected = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an int {expected}, got {value!r}")
    return int(value)


def tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    return x


def same_device(t: Tensor, name: str, x: Tensor) -> None:
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but x is on {x.device}")


def floating(t: Tensor, name: str) -> None:
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {t.dtype}")


def values_checked() -> bool:
    """Whether value checks that read tensor data run: not while torch.compile traces
    (they would sync and break the graph)."""
    return not torch.compiler.is_compiling()
