"""nvcc compile check of the CUDA kernels (every ``csrc/cuda/*.cu``), GPU or not.

CI has no GPU, so this is where the CUDA sources are known to build: each file must compile
without errors or warnings for every target architecture, with the flags ``setup.py`` gives
nvcc plus the half/bfloat16 macros torch's CUDAExtension defines. Skipped only when nvcc is
absent (neither on PATH nor under CUDA_HOME). All compilations start together and each
architecture's test waits for its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
ARCHS = ("sm_80", "sm_90")
FLAGS = ["-O3", "-std=c++20", "--fmad=false", "--expt-relaxed-constexpr", "-lineinfo",
         # torch.utils.cpp_extension adds these to every nvcc call: the kernels must not
         # rely on the half/bfloat16 operators and implicit conversions they switch off.
         "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
         "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
         "-Xcompiler=-Wall", f"-I{ROOT / 'csrc'}"]


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidate = Path(home, "bin", "nvcc") if home else None
    return str(candidate) if candidate and candidate.is_file() else None


NVCC = _nvcc()
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found (PATH or CUDA_HOME)")


@pytest.fixture(scope="module")
def compilations(tmp_path_factory):
    """Starts every (arch, source) compilation at once; maps arch -> [(cmd, process)]."""
    out = tmp_path_factory.mktemp("nvcc")
    started = {arch: [] for arch in ARCHS}
    for arch in ARCHS:
        for src in SOURCES:
            obj = out / f"{src.stem}.{arch}.o"
            cmd = [NVCC, *FLAGS, f"-arch={arch}", "-c", str(src), "-o", str(obj)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
            started[arch].append((cmd, proc))
    yield started
    for procs in started.values():
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_there_are_cuda_sources():
    assert SOURCES, "no csrc/cuda/*.cu found"


@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_sources_compile(arch, compilations):
    failures = []
    for cmd, proc in compilations[arch]:
        log, _ = proc.communicate(timeout=600)
        if proc.returncode != 0 or "warning" in log.lower():
            failures.append(f"$ {' '.join(cmd)}\n(exit {proc.returncode})\n{log}")
    assert not failures, "\n\n".join(failures)
