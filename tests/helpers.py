"""Helpers the test modules import (``from helpers import ...``; tests/ is on sys.path)."""

import os

import pytest
import torch

from fastsnn import _backends

DEVICE = torch.device(os.environ.get("FASTSNN_TEST_DEVICE", "cpu"))


def fast_backends(kernel: str, device: torch.device = DEVICE) -> list[str]:
    """The non-reference backends that can run ``kernel`` on ``device`` here."""
    return [b for b in ("cpu", "triton", "cuda")
            if not _backends.why_not(b, device.type, kernel)]


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
