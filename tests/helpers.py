"""Helpers the test modules import (``from helpers import ...``; tests/ is on sys.path)."""

import os

import pytest
import torch

from fastsnn import _backends

DEVICE = torch.device(os.environ.get("FASTSNN_TEST_DEVICE", "cpu"))
# FASTSNN_TEST_DEVICE=cuda on a machine without a GPU: the collection shows what a GPU run
# would select (`pytest --collect-only`) and tests/conftest.py skips every test.
GPU_PREVIEW = DEVICE.type == "cuda" and not torch.cuda.is_available()


def fast_backends(kernel: str, device: torch.device = DEVICE) -> list[str]:
    """The non-reference backends that can run ``kernel`` on ``device`` here (in a GPU
    preview: those a GPU would add, i.e. missing only the device)."""
    if device.type == "cuda" and GPU_PREVIEW:
        return [b for b in ("triton", "cuda") if _on_a_gpu(b, kernel)]
    return [b for b in ("cpu", "triton", "cuda")
            if not _backends.why_not(b, device.type, kernel)]


def _on_a_gpu(backend: str, kernel: str) -> bool:
    if backend == "triton":  # here the interpreter is on; on a GPU it is off
        return _backends._triton()[0]
    return _backends.why_not(backend, "cuda", kernel) in ("", _backends.NO_CUDA_DEVICE)


def require_backend(backend: str, kernel: str, device: torch.device = DEVICE) -> None:
    """Skip (with the reason) when ``backend`` cannot run here.

    The cpu backend is never skipped silently under ``FASTSNN_REQUIRE_EXTENSION=1``: its
    absence fails the session at start-up.
    """
    reason = _backends.why_not(backend, device.type, kernel)
    if reason:
        pytest.skip(f"{backend} backend unavailable: {reason}")


def generator(seed: int) -> torch.Generator:
    """A CPU generator for a hypothesis-drawn seed: fresh inputs that a failure reproduces."""
    return torch.Generator().manual_seed(seed)
