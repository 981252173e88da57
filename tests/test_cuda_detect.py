"""CUDA toolkit detection of the build (build_support/cuda_detect.py) on fake toolkits.

Every toolkit here is a temporary directory with an ``nvcc`` shell script that prints a
release line, so no CUDA is needed.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from build_support import cuda_detect  # noqa: E402
from build_support.cuda_detect import CudaBuildError, detect  # noqa: E402


def _script(path, body):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return str(path)


def _toolkit(root, version="12.4", header=True):
    """A fake toolkit: bin/nvcc reporting ``version``, include/cuda_runtime.h if ``header``."""
    home = os.path.join(str(root), f"cuda-{version}")
    _script(os.path.join(home, "bin", "nvcc"),
            f'echo "Cuda compilation tools, release {version}, V{version}.99"')
    if header:
        os.makedirs(os.path.join(home, "include"), exist_ok=True)
        open(os.path.join(home, "include", "cuda_runtime.h"), "w").close()
    return home


def _on_path(path):
    return lambda name: path if name == "nvcc" else None


def _nowhere(name):
    return None


def test_cuda_home_is_used(tmp_path):
    home = _toolkit(tmp_path)
    choice = detect({"CUDA_HOME": home}, "12.8", which=_nowhere)
    assert choice.enabled and choice.home == home and choice.nvcc_version == "12.4"
    assert "CUDA_HOME" in choice.reason


def test_cuda_path_when_cuda_home_unset(tmp_path):
    home = _toolkit(tmp_path)
    choice = detect({"CUDA_PATH": home}, "12.1", which=_nowhere)
    assert choice.enabled and choice.home == home


def test_a_wrong_cuda_home_is_reported_not_replaced(tmp_path):
    """CUDA_HOME without headers: CPU-only with the reason, even with a good nvcc on PATH."""
    good = _toolkit(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    choice = detect({"CUDA_HOME": str(bad)}, "12.4",
                    which=_on_path(os.path.join(good, "bin", "nvcc")))
    assert not choice.enabled
    assert "CUDA_HOME" in choice.reason and "cuda_runtime.h" in choice.reason


def test_wrapper_script_nvcc_resolves_to_the_real_toolkit(tmp_path):
    """The machine's layout: /usr/local/bin/nvcc is `exec /usr/local/cuda-X/bin/nvcc "$@"`,
    and /usr/local has no CUDA headers (torch's guess would fail)."""
    home = _toolkit(tmp_path / "opt")
    wrapper = _script(str(tmp_path / "usr" / "bin" / "nvcc"),
                      f'exec {os.path.join(home, "bin", "nvcc")} "$@"')
    choice = detect({}, "12.6", which=_on_path(wrapper))
    assert choice.enabled and choice.home == home
    assert "resolved nvcc" in choice.reason


def test_chain_of_symlink_and_wrappers(tmp_path):
    home = _toolkit(tmp_path / "opt")
    inner = _script(str(tmp_path / "w1" / "nvcc"), f'exec "{home}/bin/nvcc" "$@"')
    outer = _script(str(tmp_path / "w2" / "nvcc"), f"NVCC={inner}\nexec $NVCC \"$@\"")
    link = tmp_path / "bin" / "nvcc"
    link.parent.mkdir()
    link.symlink_to(outer)
    assert cuda_detect.resolve_nvcc(str(link)) == os.path.join(home, "bin", "nvcc")
    assert detect({}, "12.4", which=_on_path(str(link))).home == home


def test_wrapper_loop_does_not_hang(tmp_path):
    a, b = str(tmp_path / "a" / "nvcc"), str(tmp_path / "b" / "nvcc")
    _script(a, f'exec {b} "$@"')
    _script(b, f'exec {a} "$@"')
    assert cuda_detect.resolve_nvcc(a) is None
    assert not detect({}, "12.4", which=_on_path(a), default_home=str(tmp_path / "x")).enabled


def test_missing_headers(tmp_path):
    home = _toolkit(tmp_path, header=False)
    choice = detect({}, "12.4", which=_on_path(os.path.join(home, "bin", "nvcc")))
    assert not choice.enabled and "cuda_runtime.h" in choice.reason and home in choice.reason


def test_version_mismatch(tmp_path):
    home = _toolkit(tmp_path, version="13.0")
    choice = detect({"CUDA_HOME": home}, "12.8", which=_nowhere)
    assert not choice.enabled
    assert "13.0" in choice.reason and "12.8" in choice.reason
    with pytest.raises(CudaBuildError, match="12.8"):
        detect({"CUDA_HOME": home, "FASTSNN_CUDA": "1"}, "12.8", which=_nowhere)


def test_minor_versions_may_differ(tmp_path):
    home = _toolkit(tmp_path, version="12.9")
    assert detect({"CUDA_HOME": home}, "12.1", which=_nowhere).enabled


def test_nvcc_without_version(tmp_path):
    home = _toolkit(tmp_path)
    _script(os.path.join(home, "bin", "nvcc"), "echo something else")
    choice = detect({"CUDA_HOME": home}, "12.4", which=_nowhere)
    assert not choice.enabled and "version" in choice.reason


def test_cpu_torch(tmp_path):
    home = _toolkit(tmp_path)
    choice = detect({"CUDA_HOME": home}, None, which=_nowhere)
    assert not choice.enabled and "CPU-only" in choice.reason
    with pytest.raises(CudaBuildError, match="CPU-only"):
        detect({"CUDA_HOME": home, "FASTSNN_CUDA": "1"}, None, which=_nowhere)


def test_no_toolkit_anywhere(tmp_path):
    choice = detect({}, "12.4", which=_nowhere, default_home=str(tmp_path / "none"))
    assert not choice.enabled and "CUDA_HOME" in choice.reason


def test_torch_default_home(tmp_path):
    home = _toolkit(tmp_path)
    choice = detect({}, "12.4", which=_nowhere, default_home=home)
    assert choice.enabled and choice.home == home


def test_fastsnn_cuda_flag(tmp_path):
    home = _toolkit(tmp_path)
    env = {"CUDA_HOME": home}
    off = detect({**env, "FASTSNN_CUDA": "0"}, "12.4", which=_nowhere)
    assert not off.enabled and off.reason == "FASTSNN_CUDA=0"
    assert detect({**env, "FASTSNN_CUDA": "1"}, "12.4", which=_nowhere).enabled
    with pytest.raises(ValueError, match="FASTSNN_CUDA"):
        detect({**env, "FASTSNN_CUDA": "yes"}, "12.4", which=_nowhere)
