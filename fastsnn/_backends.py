"""Which backend runs an op: availability, the reason when absent, and the choice.

Backends: ``reference`` (pure torch, always there), ``cpu`` (the C++ kernels in
``fastsnn._C``), ``triton`` (``fastsnn.kernels``; on CPU tensors only under the Triton
interpreter, ``TRITON_INTERPRET=1``), ``cuda`` (``fastsnn._C`` built with CUDA).

``backend=None`` picks the fastest available for the tensor's device; a forced backend
(argument or ``FASTSNN_BACKEND``) that cannot run raises instead of falling back.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Optional

import torch

BACKENDS = ("reference", "cpu", "triton", "cuda")
# The automatic choice takes the first of these that can run, else reference. On CPU
# tensors triton runs only under its interpreter (a test tool), never chosen automatically.
AUTOMATIC = {"cuda": ("cuda", "triton"), "cpu": ("cpu",)}
# A CUDA build of fastsnn._C on a machine without a GPU (or driver) has CUDA kernels that
# cannot run: the last reason the cuda backend checks.
NO_CUDA_DEVICE = "no CUDA device visible to torch"


@functools.cache
def _extension() -> tuple[bool, str]:
    from . import _extension as extension

    try:
        extension.load()
    except ImportError as exc:  # not built, or built against another torch
        return False, f"extension fastsnn._C not importable ({exc})"
    return True, ""


@functools.cache
def _triton() -> tuple[bool, str]:
    try:
        importlib.import_module("triton")
    except ImportError as exc:
        return False, f"triton not importable ({exc})"
    return True, ""


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def has_kernel(kernel: str, dispatch_key: str) -> bool:
    """Whether the extension registered an implementation of ``fastsnn::<kernel>`` for
    ``dispatch_key`` ("CPU" or "CUDA")."""
    if not _extension()[0]:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"fastsnn::{kernel}",
                                                              dispatch_key)
    except RuntimeError:  # the op itself is not registered in this build
        return False


def why_not(backend: str, device: str, kernel: Optional[str] = None) -> str:
    """Empty string when ``backend`` can run on ``device`` ('cpu' or 'cuda'), else why not.

    ``kernel`` names the op (``fastsnn::<kernel>``) whose C++ registration decides the
    ``cpu`` and ``cuda`` backends; without it only the extension itself is checked.
    """
    if backend == "reference":
        return ""
    if backend in ("cpu", "cuda"):  # the C++ extension
        key = backend.upper()
        if device != backend:
            return f"the {backend} backend needs {key} tensors"
        ok, reason = _extension()
        if not ok:
            return reason
        if backend == "cuda" and not importlib.import_module("fastsnn._C").WITH_CUDA:
            return "fastsnn._C was built without CUDA (no nvcc or CPU-only torch at build time)"
        if kernel and not has_kernel(kernel, key):
            return f"fastsnn._C has no {key} kernel {kernel}"
        if backend == "cuda" and not torch.cuda.is_available():
            return NO_CUDA_DEVICE
        return ""
    if backend == "triton":
        ok, reason = _triton()
        if not ok:
            return reason
        if device == "cpu" and not triton_interpreted():
            return "triton on CPU tensors needs the interpreter (TRITON_INTERPRET=1)"
        if device == "cuda" and triton_interpreted():
            return "TRITON_INTERPRET=1 is set: triton runs on CPU tensors only"
        return ""
    raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")


def choose(backend: Optional[str], device: torch.device, kernel: str,
           supported: tuple[str, ...] = BACKENDS) -> str:
    """The backend that runs ``kernel`` for tensors on ``device``.

    ``supported`` lists the backends the op implements. A forced choice that cannot run
    raises ``RuntimeError`` with the reason; the automatic choice takes the first that can.
    """
    return _choose(backend, device.type, kernel, tuple(supported))


# Evaluated once per trace under torch.compile (a constant of the graph): availability
# probes import modules and read the environment, which dynamo must not trace.
@torch.compiler.assume_constant_result
def _choose(backend: Optional[str], dev: str, kernel: str, supported: tuple[str, ...]) -> str:
    forced = backend if backend is not None else os.environ.get("FASTSNN_BACKEND") or None
    if forced is not None:
        if forced not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or None, got {forced!r}")
        if forced not in supported:
            raise RuntimeError(f"backend {forced!r} is not implemented for {kernel}")
        reason = why_not(forced, dev, kernel)
        if reason:
            raise RuntimeError(f"backend {forced!r} is unavailable: {reason}")
        return forced
    for name in AUTOMATIC.get(dev, ()):  # meta (shapes only), other devices: reference
        if name in supported and not why_not(name, dev, kernel):
            return name
    return "reference"


def preference(device: str) -> tuple[str, ...]:
    """Every backend, in the order the automatic choice prefers them on ``device``."""
    first = AUTOMATIC[device] + ("reference",)
    return first + tuple(b for b in BACKENDS if b not in first)


def backends() -> dict[str, dict[str, str]]:
    """Availability of every backend per device type: ``{backend: {device: reason}}``.

    An empty reason means available.
    """
    cuda = torch.cuda.is_available()
    report = {}
    for name in BACKENDS:
        report[name] = {
            "cpu": why_not(name, "cpu"),
            "cuda": why_not(name, "cuda") if cuda else NO_CUDA_DEVICE,
        }
    return report
