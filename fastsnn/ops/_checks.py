"""Argument checks shared by the public op functions: the one validation pass of user input.

Every failure names the argument: ``TypeError`` for a wrong kind of value, ``ValueError``
for a wrong value. The kernels behind the ops check only what keeps them in bounds.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Optional

import numpy as np
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


def positive_float(value, name: str) -> float:
    """``value`` as a finite float > 0: ``TypeError`` for a non-number (bools, strings,
    tensors), ``ValueError`` for NaN, infinity or a value <= 0."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite float > 0, got {value!r}")
    return float(value)


def finite_float(value, name: str) -> float:
    """``value`` as a finite float: ``TypeError`` for a non-number, ``ValueError`` for NaN
    or infinity."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not -math.inf < value < math.inf:  # NaN fails it too; traces under torch.compile
        raise ValueError(f"{name} must be a finite float, got {value!r}")
    return float(value)


def boolean(value, name: str) -> bool:
    """``value`` as a bool (Python or NumPy); ``TypeError`` for anything else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


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
