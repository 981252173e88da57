"""Helpers the test modules import (``from helpers import ...``; tests/ is on sys.path)."""

import os

import pytest
import torch

from fastsnn import _backends
from fastsnn.ops._spine import OPS

DEVICE = torch.device(os.environ.get("FASTSNN_TEST_DEVICE", "cpu"))
FAST = ("cpu", "triton", "cuda")
# FASTSNN_TEST_DEVICE=cuda on a machine without a GPU: the collection shows what a GPU run
# would select (`pytest --collect-only`) and tests/conftest.py skips every test.
GPU_PREVIEW = DEVICE.type == "cuda" and not torch.cuda.is_available()


def fast_backends(op: str, device: torch.device = DEVICE) -> list[str]:
    """The non-reference backends of ``op`` (``fastsnn.<op>``) that can run on ``device``
    (in a GPU preview: those a GPU would add, i.e. missing only the device)."""
    declared = OPS[op]
    if device.type == "cuda" and GPU_PREVIEW:
        return [b for b in ("triton", "cuda") if b in declared.backends
                and _on_a_gpu(b, declared.probe)]
    return [b for b in FAST if b in declared.backends
            and not _backends.why_not(b, device.type, declared.probe)]


def _on_a_gpu(backend: str, kernel: str) -> bool:
    if backend == "triton":  # here the interpreter is on; on a GPU it is off
        return _backends._triton()[0]
    return _backends.why_not(backend, "cuda", kernel) in ("", _backends.NO_CUDA_DEVICE)


def require_backend(backend: str, op: str, device: torch.device = DEVICE) -> None:
    """Skip (with the reason) when ``backend`` cannot run ``op`` here.

    The cpu backend is never skipped silently under ``FASTSNN_REQUIRE_EXTENSION=1``: its
    absence fails the session at start-up.
    """
    reason = _backends.why_not(backend, device.type, OPS[op].probe)
    if reason:
        pytest.skip(f"{backend} backend unavailable: {reason}")


def generator(seed: int) -> torch.Generator:
    """A CPU generator for a hypothesis-drawn seed: fresh inputs that a failure reproduces."""
    return torch.Generator().manual_seed(seed)
