"""The torch ABI check on loading fastsnn._C, the build information behind it, and the
build's lookup of the target environment's torch."""

import os
import sys

import pytest
import torch

from fastsnn import _backends, _extension

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from build_support import build_info, torch_env  # noqa: E402


@pytest.mark.parametrize("built,running", [("2.14.1", "2.13.0+cpu"), ("2.13.0", "2.12.1"),
                                           ("3.13.0", "2.13.0")])
def test_another_minor_version_is_refused(built, running):
    with pytest.raises(ImportError) as err:
        _extension.check_torch(built, running)
    message = str(err.value)
    assert built in message and running in message and "--no-build-isolation" in message


@pytest.mark.parametrize("built,running", [("2.13.0", "2.13.1"), ("2.13.0+cpu", "2.13.0"),
                                           ("2.13.0", "2.13.0+cu128")])
def test_same_minor_version_loads(built, running):
    _extension.check_torch(built, running)


@pytest.fixture
def fresh_extension_probe():
    _backends._extension.cache_clear()
    yield
    _backends._extension.cache_clear()


def test_mismatch_makes_the_extension_unavailable(monkeypatch, fresh_extension_probe):
    """A build recorded for another torch: load() raises before importing fastsnn._C, and
    the backend report carries the reason instead of running the kernels by luck."""
    other = "9.99.0"
    monkeypatch.setattr(_extension, "build_info", lambda: {"TORCH_VERSION": other})
    with pytest.raises(ImportError, match="9.99.0"):
        _extension.load()
    ok, reason = _backends._extension()
    assert not ok and other in reason and torch.__version__ in reason
    assert other in _backends.why_not("cpu", "cpu")


def test_build_info_of_this_build():
    """The build in use recorded the torch that runs it (and loads under it)."""
    info = _extension.build_info()
    if not info:
        if os.environ.get("FASTSNN_REQUIRE_EXTENSION") == "1":
            pytest.fail("fastsnn/_build_info.py is missing: the build did not write it")
        pytest.skip("the package is not built here")
    assert set(info) == set(build_info.FIELDS)
    assert _extension.minor_version(info["TORCH_VERSION"]) == \
        _extension.minor_version(torch.__version__)
    assert info["CUDA_KERNELS"] == bool(info["CUDA_ARCHS"])
    _extension.load()


def test_render_and_read_back(tmp_path):
    info = {"TORCH_VERSION": "2.13.0+cpu", "TORCH_CUDA": None, "CUDA_KERNELS": False,
            "CUDA_ARCHS": "", "CUDA_VERSION": "", "CUDA_REASON": "it's a \"CPU\" torch"}
    path = build_info.write(str(tmp_path), info)
    assert build_info.read(path) == info
    assert build_info.read(str(tmp_path / "missing.py")) == {}
    with pytest.raises(ValueError, match="CUDA_REASON"):
        build_info.render({k: v for k, v in info.items() if k != "CUDA_REASON"})


def test_target_environment_torch():
    """The build backend finds the torch of the environment it installs into."""
    if not any(os.path.isdir(os.path.join(d, "torch")) for d in torch_env.target_site_dirs()):
        pytest.skip("torch is not installed in this interpreter's own environment")
    # the distribution may record the version without torch's local label (PyPI's CUDA
    # wheels: metadata 2.11.0, torch.__version__ 2.11.0+cu130)
    found = torch_env.target_torch_version()
    assert found is not None and found.split("+")[0] == torch.__version__.split("+")[0]
    assert torch_env.torch_importable()
    assert torch_env.use_target_torch() is None  # torch importable: nothing to add


def test_isolated_build_uses_the_target_torch(tmp_path, monkeypatch):
    """An isolated build (torch not importable) with torch in the target environment: that
    site directory is appended to sys.path, and the backend asks for no torch download."""
    from build_support import backend

    site = tmp_path / "site-packages"
    (site / "torch-2.13.0+cpu.dist-info").mkdir(parents=True)
    (site / "torch-2.13.0+cpu.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cpu\n")
    monkeypatch.setattr(torch_env, "torch_importable", lambda: False)
    monkeypatch.setattr(torch_env, "target_site_dirs", lambda: [str(site)])
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert torch_env.target_torch_version() == "2.13.0+cpu"
    assert backend.get_requires_for_build_wheel() == []
    assert torch_env.use_target_torch() == str(site) and sys.path[-1] == str(site)

    monkeypatch.setattr(torch_env, "target_site_dirs", lambda: [str(tmp_path / "empty")])
    assert torch_env.target_torch_version() is None
    assert torch_env.use_target_torch() is None
    assert backend.get_requires_for_build_wheel() == ["torch"]
