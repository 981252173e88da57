"""Whether the build can compile the CUDA kernels, and with which toolkit.

Torch's own lookup (``torch.utils.cpp_extension.CUDA_HOME``) takes the directory above the
``nvcc`` found on PATH. Where that ``nvcc`` is a symlink or a wrapper script
(``exec /usr/local/cuda-13.0/bin/nvcc "$@"``) that directory holds no toolkit and the
compile stops at a missing ``cuda_runtime.h``. This module finds the toolkit the way users
have it and checks it before the build commits to CUDA:

1. ``CUDA_HOME``, else ``CUDA_PATH`` (when set, the only candidate: a wrong one is reported,
   not silently replaced);
2. the toolkit beside the *resolved* ``nvcc`` (symlinks followed, wrapper scripts read);
3. torch's guess (the directory above ``nvcc`` on PATH, else ``/usr/local/cuda``).

A toolkit qualifies when it has ``include/cuda_runtime.h`` and a ``bin/nvcc`` whose major
version equals torch's CUDA major version. ``FASTSNN_CUDA=0`` forces the CPU-only build;
``FASTSNN_CUDA=1`` makes a failed check an error instead of a CPU-only build.

Torch-free and side-effect free (the caller passes the environment and torch's CUDA
version), so the tests can run it on fake toolkit layouts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Optional

_HEADER = os.path.join("include", "cuda_runtime.h")
_RELEASE = re.compile(r"release (\d+)\.(\d+)")
# An absolute path to an executable named nvcc inside a wrapper script.
_SCRIPT_NVCC = re.compile(r"""(?:^|[\s"'=])(/[^\s"';|&]*/nvcc)(?=$|[\s"';|&])""", re.M)
_MAX_WRAPPERS = 4  # wrapper scripts followed in a chain before giving up


class CudaBuildError(RuntimeError):
    """``FASTSNN_CUDA=1`` was set but the CUDA kernels cannot be built."""


@dataclass(frozen=True)
class CudaChoice:
    enabled: bool
    home: Optional[str]  # the toolkit directory when enabled
    nvcc_version: Optional[str]  # "13.0" when enabled
    reason: str  # one line: why CUDA is off, or where the toolkit was found


def detect(env: Mapping[str, str], torch_cuda: Optional[str],
           which: Callable[[str], Optional[str]] = shutil.which,
           default_home: str = "/usr/local/cuda") -> CudaChoice:
    """Decide whether to build the CUDA kernels.

    ``env``: the build environment (``os.environ``); ``torch_cuda``: ``torch.version.cuda``
    (``None`` for a CPU-only torch); ``which``: PATH lookup; ``default_home``: torch's last
    resort. Raises :class:`CudaBuildError` when ``FASTSNN_CUDA=1`` and CUDA is off, and
    ``ValueError`` for another ``FASTSNN_CUDA`` value.
    """
    flag = env.get("FASTSNN_CUDA", "")
    if flag not in ("", "0", "1"):
        raise ValueError(f"FASTSNN_CUDA must be 0, 1 or unset, got {flag!r}")
    if flag == "0":
        return CudaChoice(False, None, None, "FASTSNN_CUDA=0")
    choice = _check(env, torch_cuda, which, default_home)
    if flag == "1" and not choice.enabled:
        raise CudaBuildError(f"FASTSNN_CUDA=1 but the CUDA kernels cannot be built: "
                             f"{choice.reason}")
    return choice


def _check(env: Mapping[str, str], torch_cuda: Optional[str],
           which: Callable[[str], Optional[str]], default_home: str) -> CudaChoice:
    if not torch_cuda:
        return CudaChoice(False, None, None, "torch is a CPU-only build")
    home, source = _find_home(env, which, default_home)
    if home is None:
        return CudaChoice(False, None, None, "no CUDA toolkit found (set CUDA_HOME, or put "
                          "nvcc on PATH)")
    if not os.path.isfile(os.path.join(home, _HEADER)):
        return CudaChoice(False, None, None, f"{home} ({source}) has no {_HEADER}: not a "
                          "CUDA toolkit; set CUDA_HOME to the toolkit directory")
    nvcc = os.path.join(home, "bin", "nvcc")
    version = nvcc_version(nvcc)
    if version is None:
        return CudaChoice(False, None, None, f"{nvcc} ({source}) did not report a version")
    if version.split(".")[0] != torch_cuda.split(".")[0]:
        return CudaChoice(False, None, None, f"nvcc {version} at {home} ({source}) does not "
                          f"match torch's CUDA {torch_cuda} (major versions differ)")
    return CudaChoice(True, home, version, f"CUDA {version} toolkit at {home} ({source})")


def _find_home(env: Mapping[str, str], which: Callable[[str], Optional[str]],
               default_home: str) -> tuple[Optional[str], str]:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(var):
            return os.path.abspath(env[var]), var
    on_path = which("nvcc")
    if on_path:
        real = resolve_nvcc(on_path)
        if real is not None:
            home = os.path.dirname(os.path.dirname(real))
            if os.path.isfile(os.path.join(home, _HEADER)):
                return home, f"beside the resolved nvcc {real}"
        return os.path.dirname(os.path.dirname(os.path.abspath(on_path))), "torch's guess"
    if os.path.isdir(default_home):
        return default_home, "torch's default"
    return None, ""


def resolve_nvcc(path: str) -> Optional[str]:
    """The real nvcc behind ``path``: symlinks followed, then wrapper scripts read for the
    absolute path of the nvcc they run. ``None`` when the chain cannot be followed."""
    seen = set()
    current = os.path.realpath(path)
    for _ in range(_MAX_WRAPPERS + 1):
        if current in seen or not os.path.isfile(current):
            return None
        seen.add(current)
        target = _wrapped_nvcc(current)
        if target is None:
            return current  # a binary, or a script that names no other nvcc: the real one
        current = os.path.realpath(target)
    return None


def _wrapped_nvcc(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    text = head.decode("utf-8", "replace")
    for match in _SCRIPT_NVCC.finditer(text):
        candidate = match.group(1)
        if os.path.realpath(candidate) != path and os.access(candidate, os.X_OK):
            return candidate
    return None


def nvcc_version(nvcc: str) -> Optional[str]:
    """``"major.minor"`` from ``nvcc --version``, or ``None`` when it does not run."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True,
                             timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _RELEASE.search(out)
    return f"{match.group(1)}.{match.group(2)}" if match else None
