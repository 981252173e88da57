"""Argument checks shared by the public op functions: the one validation pass of user input.

Every failure names the argument: ``TypeError`` for a wrong kind of value, ``ValueError``
for a wrong value. The kernels behind the ops check only what keeps them in bounds.
Scalars may be Python or NumPy numbers. Checks of tensor *values* run eagerly with a
``ValueError``; under ``torch.compile`` they become an assertion in the graph
(``values_hold``: the same message, raised by torch as ``RuntimeError`` when the compiled
code runs), and they are skipped for meta tensors (no data).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Optional

import numpy as np
import torch
from torch import Tensor

INT64_MAX = 2**63 - 1  # what a kernel's int argument holds


def integer(value, name: str, low: int, high: Optional[int] = None) -> int:
    """``value`` (a Python or NumPy int) as an int in ``low..high`` (up to ``INT64_MAX``
    without ``high``); bools and floats are refused (``ValueError``, like an out-of-range
    int)."""
    high = INT64_MAX if high is None else high
    ok = isinstance(value, Integral) and not isinstance(value, bool) and low <= value <= high
    if not ok:
        expected = f">= {low}" if high == INT64_MAX else f"in {low}..{high}"
        raise ValueError(f"{name} must be an int {expected}, got {value!r}")
    return int(value)


def positive_float(value, name: str) -> float:
    """``value`` as a finite float > 0: ``TypeError`` for a non-number (bools, strings,
    tensors), ``ValueError`` for NaN, infinity or a value <= 0."""
    real(value, name)
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


def real(value, name: str) -> float:
    """``value`` (a Python or NumPy number, not a bool) as a float; ``TypeError`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    return float(value)


def values_checked(*tensors: Tensor) -> bool:
    """Whether eager value checks that read tensor data run: not while torch.compile
    traces (they would sync and break the graph: ``values_hold`` keeps them there), not
    for meta tensors (no data)."""
    return not torch.compiler.is_compiling() and not any(t.is_meta for t in tensors)


def values_hold(ok: Tensor, message) -> bool:
    """Whether every element of the bool tensor ``ok`` holds (eager; ``message()`` is then
    the caller's to raise). Under torch.compile: ``True``, with an assertion added to the
    graph that raises ``message()`` when the compiled code runs on values that fail."""
    if ok.is_meta:
        return True
    if torch.compiler.is_compiling():
        torch._assert_async(ok.all(), message())
        return True
    return bool(ok.all())
