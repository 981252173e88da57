"""Test set-up shared by every test module.

* Without a GPU, Triton kernels run under its interpreter on CPU tensors, so the
  interpreter is switched on before anything imports triton.
* ``FASTSNN_REQUIRE_EXTENSION=1`` (set by ``make test`` and CI) turns a missing or broken
  ``fastsnn._C`` into a failure instead of skipped cpu-backend tests.
* ``FASTSNN_TEST_DEVICE=cuda`` (``make gpu-check``) runs the device-generic tests on CUDA;
  without a GPU it collects what a GPU run would select and skips all of it.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from helpers import DEVICE, GPU_PREVIEW  # noqa: E402
from hypothesis import settings  # noqa: E402

from fastsnn import _backends  # noqa: E402

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=False,
                          print_blob=True)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda_bconv(path): run with FASTSNN_CUDA_BCONV=path")
    # Triton < 3.7's interpreter converts 1-element arrays to ints (harmless; numpy < 2.4)
    config.addinivalue_line("filterwarnings",
                            "ignore:Conversion of an array with ndim > 0:DeprecationWarning")


def pytest_sessionstart(session):
    if os.environ.get("FASTSNN_REQUIRE_EXTENSION") == "1":
        ok, reason = _backends._extension()
        if not ok:
            raise pytest.UsageError(f"FASTSNN_REQUIRE_EXTENSION=1 but {reason}")


def pytest_collection_modifyitems(config, items):
    if GPU_PREVIEW:
        skip = pytest.mark.skip(reason="FASTSNN_TEST_DEVICE=cuda but no CUDA device here")
        for item in items:
            item.add_marker(skip)


@pytest.fixture
def device() -> torch.device:
    return DEVICE
